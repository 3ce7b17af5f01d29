import json

import pytest
from rest_framework.test import APIClient

from decodelab.runs.models import Comparison, Run, RunStatus

QUEUE = "decode.smollm2-135m"
URL = "/api/v1/comparisons/"
BODY = {
    "prompt": "The capital of France is",
    "chat": False,
    "max_new_tokens": 16,
    "presets": [{"strategy": "greedy"}, {"strategy": "beam", "params": {"num_beams": 4, "num_return_sequences": 2}}],
}


def post(api, body, capture):
    with capture(execute=True):
        return api.post(URL, body, format="json")


@pytest.mark.django_db
def test_create_returns_the_comparison_with_queued_runs_and_dispatches_them(
    api, broker, django_capture_on_commit_callbacks
):
    response = post(api, BODY, django_capture_on_commit_callbacks)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "queued"
    assert [r["strategy"] for r in data["runs"]] == ["greedy", "beam"]
    assert data["runs"][1]["params"]["num_beams"] == 4
    assert broker.llen(QUEUE) == 2
    detail = api.get(f"{URL}{data['id']}/").json()
    assert detail["id"] == data["id"] and len(detail["runs"]) == 2
    run = api.get(f"/api/v1/runs/{data['runs'][0]['id']}/").json()
    assert run["comparison_id"] == data["id"] and run["status"] == "queued"
    listing = api.get(URL).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == data["id"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"prompt": ""}, "prompt", ""),
        ({"prompt": "   "}, "prompt", "must not be empty"),
        ({"prompt": "x" * 8001}, "prompt", "8000"),
        ({"max_new_tokens": 0}, "max_new_tokens", "1"),
        ({"max_new_tokens": 1025}, "max_new_tokens", "1024"),
        ({"presets": [{"strategy": "nucleus"}]}, "presets[0].strategy", "not a valid choice"),
        (
            {"presets": [{"strategy": "beam", "params": {"num_beams": 9}}]},
            "presets[0].params.num_beams",
            "between 1 and 8",
        ),
        (
            {"presets": [{"strategy": "sampling", "params": {"top_q": 0.5}}]},
            "presets[0].params.top_q",
            "unknown parameter",
        ),
        ({"presets": [{"strategy": "sampling", "params": {"temperature": 0}}]}, "presets[0].params.temperature", "> 0"),
        ({"presets": [{"strategy": "greedy"}] * 9}, "presets", "at most 8"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "4"),
        ({"stop": ["x" * 65]}, "stop[0]", "64"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_nothing_is_stored_or_dispatched(
    api, broker, django_capture_on_commit_callbacks, change, field, fragment
):
    response = post(api, {**BODY, **change}, django_capture_on_commit_callbacks)
    assert response.status_code == 400, response.content
    data = response.json()
    assert field in data["errors"], data
    assert fragment in " ".join(data["errors"][field])
    assert data["detail"].startswith(field)
    assert Comparison.objects.count() == 0 and Run.objects.count() == 0
    assert broker.llen(QUEUE) == 0


@pytest.mark.django_db
def test_a_body_over_256_kb_is_refused_before_parsing(api, broker):
    body = json.dumps({**BODY, "prompt": "x" * (300 * 1024)})
    response = api.generic("POST", URL, body, content_type="application/json")
    assert response.status_code == 413
    assert "262144" in response.json()["detail"] and "body" in response.json()["errors"]
    assert Comparison.objects.count() == 0 and broker.llen(QUEUE) == 0


@pytest.mark.django_db
def test_malformed_json_is_a_400(api):
    response = api.generic("POST", URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


@pytest.mark.django_db
def test_unauthenticated_calls_are_refused(db):
    client = APIClient()
    response = client.get(URL)
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert client.post(URL, BODY, format="json").status_code == 401
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert bad_token.get(URL).status_code == 401


@pytest.mark.django_db
def test_another_researchers_comparison_and_run_do_not_exist(
    api, other_researcher, broker, django_capture_on_commit_callbacks
):
    theirs = APIClient()
    theirs.credentials(HTTP_AUTHORIZATION=f"Token {other_researcher.token}")
    created = post(theirs, BODY, django_capture_on_commit_callbacks).json()
    assert api.get(f"{URL}{created['id']}/").status_code == 404
    assert api.get(f"/api/v1/runs/{created['runs'][0]['id']}/").status_code == 404
    assert api.get(URL).json()["count"] == 0


@pytest.mark.django_db
def test_annotators_cannot_use_researcher_endpoints(annotator):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {annotator.token}")
    assert client.get(URL).status_code == 403
    assert client.post(URL, BODY, format="json").status_code == 403


@pytest.mark.django_db
def test_catalog_lists_strategies_with_their_parameters_and_the_default_model(api):
    data = api.get("/api/v1/strategies/").json()
    names = {s["name"]: s for s in data["strategies"]}
    assert {"greedy", "sampling", "beam"} <= set(names)
    beam_params = {p["name"]: p["default"] for p in names["beam"]["params"]}
    assert beam_params["num_beams"] == 4
    assert [m["name"] for m in data["models"] if m["default"]] == ["smollm2-135m"]


@pytest.mark.django_db
def test_openapi_schema_describes_every_operation_and_the_docs_page_serves_without_a_cdn(api, client, researcher):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    ops = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {
        "comparisons_list",
        "comparisons_create",
        "comparisons_retrieve",
        "runs_retrieve",
        "catalog_retrieve",
    } <= ops
    client.force_login(researcher.user)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger" in html.lower() and "cdn" not in html.lower() and "https://" not in html


@pytest.mark.django_db
def test_status_counts_runs_per_status_for_polling_and_hides_foreign_comparisons(
    api, other_researcher, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(
            "/api/v1/comparisons/", {"prompt": "Hi", "presets": [{"strategy": "greedy"}] * 2}, format="json"
        )
    comparison_id = created.json()["id"]
    Run.objects.filter(comparison_id=comparison_id, position=0).update(status=RunStatus.SUCCEEDED)
    body = api.get(f"/api/v1/comparisons/{comparison_id}/status/").json()
    assert body["runs"]["queued"] == 1 and body["runs"]["succeeded"] == 1 and body["total"] == 2
    assert (body["status"], body["finished"]) == ("running", False)
    Run.objects.filter(comparison_id=comparison_id).update(status=RunStatus.SUCCEEDED)
    assert api.get(f"/api/v1/comparisons/{comparison_id}/status/").json()["finished"] is True
    api.credentials(HTTP_AUTHORIZATION=f"Token {other_researcher.token}")
    assert api.get(f"/api/v1/comparisons/{comparison_id}/status/").status_code == 404
