import pytest

from decodelab.runs import services
from decodelab.runs.models import Comparison

QUEUE = "decode.smollm2-135m"


def form(**extra):
    data = {
        "prompt": "Name three rivers.",
        "chat": "on",
        "max_new_tokens": "12",
        "model": "smollm2-135m",
        "presets-a-strategy": "greedy",
        "presets-a-seed": "0",
        "presets-b-strategy": "beam",
        "presets-b-num_beams": "3",
        "presets-b-num_return_sequences": "2",
        "presets-b-length_penalty": "1.0",
        "presets-b-seed": "0",
    }
    data.update(extra)
    return data


@pytest.fixture
def web(client, researcher):
    client.force_login(researcher.user)
    return client


@pytest.mark.django_db
def test_pages_require_login(client):
    response = client.get("/comparisons/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_annotators_are_refused_researcher_pages(client, annotator):
    client.force_login(annotator.user)
    assert client.get("/comparisons/").status_code == 403
    assert client.get("/comparisons/new/").status_code == 403


@pytest.mark.django_db
def test_new_comparison_form_creates_runs_in_form_order_and_redirects(web, broker, django_capture_on_commit_callbacks):
    page = web.get("/comparisons/new/")
    assert page.status_code == 200 and b'name="prompt"' in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post("/comparisons/new/", form())
    comparison = Comparison.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/comparisons/{comparison.id}/"
    runs = list(comparison.runs.order_by("position"))
    assert [(r.strategy, r.params.get("num_beams")) for r in runs] == [("greedy", None), ("beam", 3)]
    assert comparison.chat is True and comparison.max_new_tokens == 12
    assert broker.llen(QUEUE) == 2


@pytest.mark.django_db
def test_an_invalid_form_is_shown_again_with_the_field_and_limit_and_nothing_is_stored(web, broker):
    response = web.post("/comparisons/new/", form(**{"presets-b-num_beams": "12"}))
    assert response.status_code == 400
    body = response.content.decode()
    assert "presets[1].params.num_beams" in body and "between 1 and 8" in body
    assert 'value="12"' in body  # the researcher's input is kept
    assert Comparison.objects.count() == 0 and broker.llen(QUEUE) == 0


@pytest.mark.django_db
def test_switching_a_rows_strategy_returns_that_strategys_parameters(web):
    response = web.get("/comparisons/new/preset-row/", {"key": "x1", "presets-x1-strategy": "sampling"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="presets-x1-temperature"' in body and 'name="presets-x1-top_p"' in body
    assert "num_beams" not in body


@pytest.mark.django_db
def test_detail_polls_until_every_run_is_finished_then_stops_with_286(
    web, researcher, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        comparison = services.comparison_create(owner=researcher.user, prompt="Hi", presets=[{"strategy": "greedy"}])
    url = f"/comparisons/{comparison.id}/"
    page = web.get(url)
    assert page.status_code == 200 and b'hx-trigger="every 1s"' in page.content
    assert web.get(url, HTTP_HX_REQUEST="true").status_code == 200
    run = comparison.runs.get()
    services.run_store_result(
        result={
            "run_id": str(run.id),
            "attempt": 1,
            "outputs": [
                {
                    "index": 0,
                    "text": "<script>alert(1)</script><img src=x onerror=alert(2)>",
                    "token_ids": [1],
                    "finish_reason": "length",
                    "score": None,
                }
            ],
            "prompt_token_ids": [1],
        }
    )
    partial = web.get(url, HTTP_HX_REQUEST="true")
    assert partial.status_code == 286
    body = partial.content.decode()
    assert "hx-trigger" not in body
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img src=x" not in body


@pytest.mark.django_db
def test_another_researchers_comparison_page_is_404(
    client, other_researcher, researcher, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        comparison = services.comparison_create(
            owner=other_researcher.user, prompt="Hi", presets=[{"strategy": "greedy"}]
        )
    client.force_login(researcher.user)
    assert client.get(f"/comparisons/{comparison.id}/").status_code == 404


@pytest.mark.django_db
def test_a_speculative_row_offers_only_drafts_that_share_the_targets_tokenizer(web):
    from decodelab.catalog.services import models_report

    models_report(
        reporter="w",
        models=[
            {"name": "qwen2.5-coder-0.5b", "display_name": "Q", "tokenizer_family": "qwen2.5", "installed": True},
        ],
    )
    body = web.get("/comparisons/new/preset-row/", {"key": "k", "strategy": "speculative", "model": "smollm2-135m"})
    html = body.content.decode()
    assert 'name="presets-k-draft_model"' in html and 'name="presets-k-proposer"' in html
    assert '<option value="smollm2-135m"' in html and "qwen2.5-coder-0.5b" not in html
