import pytest
from rest_framework.test import APIClient

from decodelab.runs import services
from decodelab.runs.models import Output, RunStatus

PRESETS = [{"strategy": "greedy"}, {"strategy": "beam", "params": {"num_beams": 2}}]


def result(run):
    return {
        "run_id": str(run.id),
        "attempt": 1,
        "outputs": [{"index": 0, "text": "late", "token_ids": [1], "finish_reason": "length", "score": None}],
        "prompt_token_ids": [1],
    }


@pytest.fixture
def comparison(researcher, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return services.comparison_create(owner=researcher.user, prompt="Hi", presets=PRESETS)


@pytest.mark.django_db
def test_cancelling_stops_unfinished_runs_and_a_late_result_is_ignored(comparison, django_capture_on_commit_callbacks):
    done, pending = comparison.runs.order_by("position")
    services.run_store_result(result=result(done))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.runs_cancel(runs=[done, pending]) == 1
    done.refresh_from_db()
    pending.refresh_from_db()
    assert done.status == RunStatus.SUCCEEDED and pending.status == RunStatus.CANCELLED
    assert services.run_store_result(result=result(pending)) is False  # the worker finished it anyway
    assert not Output.objects.filter(run=pending).exists()
    services.run_mark_running(run_id=str(pending.id), attempt=1, worker="w", started_at=1e9)
    pending.refresh_from_db()
    assert pending.status == RunStatus.CANCELLED


@pytest.mark.django_db
def test_the_api_cancels_a_comparison_and_a_run(api, comparison, django_capture_on_commit_callbacks):
    first, second = comparison.runs.order_by("position")
    with django_capture_on_commit_callbacks(execute=True):
        data = api.post(f"/api/v1/runs/{first.id}/cancel/").json()
    assert data["status"] == "cancelled"
    assert api.get(f"/api/v1/runs/{second.id}/").json()["status"] == "queued"  # only that run
    with django_capture_on_commit_callbacks(execute=True):
        data = api.post(f"/api/v1/comparisons/{comparison.id}/cancel/").json()
    assert data["status"] == "cancelled" and {r["status"] for r in data["runs"]} == {"cancelled"}


@pytest.mark.django_db
def test_only_the_owner_can_cancel(comparison, other_researcher, annotator):
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {other_researcher.token}")
    assert other.post(f"/api/v1/comparisons/{comparison.id}/cancel/").status_code == 404
    ann = APIClient()
    ann.credentials(HTTP_AUTHORIZATION=f"Token {annotator.token}")
    assert ann.post(f"/api/v1/comparisons/{comparison.id}/cancel/").status_code == 403
    assert {r.status for r in comparison.runs.all()} == {RunStatus.QUEUED}


@pytest.mark.django_db
def test_the_page_cancels_with_htmx_and_stops_polling(
    client, researcher, comparison, django_capture_on_commit_callbacks
):
    client.force_login(researcher.user)
    page = client.get(f"/comparisons/{comparison.id}/").content.decode()
    assert "Cancel unfinished runs" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/comparisons/{comparison.id}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    body = response.content.decode()
    assert "Cancelled by the researcher." in body and "Cancel unfinished runs" not in body
