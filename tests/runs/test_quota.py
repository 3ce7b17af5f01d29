import pytest
from rest_framework.test import APIClient

from decodelab.runs import services
from decodelab.runs.models import Comparison

URL = "/api/v1/comparisons/"
BODY = {"prompt": "Hi", "presets": [{"strategy": "greedy"}, {"strategy": "beam"}]}


@pytest.mark.django_db
def test_past_the_runs_in_flight_quota_a_submission_gets_429_and_nothing_is_stored(
    api, researcher, other_researcher, broker, settings, django_capture_on_commit_callbacks
):
    settings.DECODELAB_MAX_RUNS_IN_FLIGHT = 3
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(URL, BODY, format="json")
        refused = api.post(URL, BODY, format="json")
    assert first.status_code == 201
    assert refused.status_code == 429
    assert "presets" in refused.json()["errors"] and "limit is 3" in refused.json()["detail"]
    assert Comparison.objects.count() == 1 and broker.llen("decode.smollm2-135m") == 2
    # The quota is per user, and finished (here: cancelled) runs no longer count.
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {other_researcher.token}")
    assert other.post(URL, BODY, format="json").status_code == 201
    services.runs_cancel(runs=list(Comparison.objects.get(id=first.json()["id"]).runs.all()))
    assert api.post(URL, BODY, format="json").status_code == 201


@pytest.mark.django_db
def test_the_form_shows_the_quota_error(client, researcher, broker, settings):
    settings.DECODELAB_MAX_RUNS_IN_FLIGHT = 1
    client.force_login(researcher.user)
    response = client.post(
        "/comparisons/new/",
        {"prompt": "Hi", "max_new_tokens": "8", "presets-a-strategy": "greedy", "presets-b-strategy": "greedy"},
    )
    assert response.status_code == 429
    assert "the limit is 1" in response.content.decode()
    assert Comparison.objects.count() == 0
