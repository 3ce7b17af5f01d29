import io
import json

import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from decodelab.experiments import selectors
from decodelab.experiments.models import Experiment, Preset, PromptItem, PromptSet, Sweep
from decodelab.runs.models import Comparison, Run
from tests.experiments.support import finish, preset, prompt_set, trace_for

API = "/api/v1"


def upload(api, content: bytes, filename="prompts.csv", **extra):
    return api.post(
        f"{API}/prompt-sets/upload/", {"file": SimpleUploadedFile(filename, content), **extra}, format="multipart"
    )


@pytest.fixture
def other_api(other_researcher):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {other_researcher.token}")
    return client


# --- prompt sets -------------------------------------------------------------------------


@pytest.mark.django_db
def test_upload_a_csv_prompt_set_with_a_duplicate_flagged(api):
    body = b"prompt,id,reference,tags\nThe capital of France is,fr,Paris,geo;easy\nName a colour.,,,\n"
    body += b"The capital of France is,fr2,,\n"
    response = upload(api, body, name="capitals")
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["name"], data["source"], data["filename"], data["item_count"]) == ("capitals", "csv", "prompts.csv", 3)
    items = data["items"]
    assert [(i["id"], i["reference"], i["tags"], i["duplicate_of"]) for i in items] == [
        ("fr", "Paris", ["geo", "easy"], None),
        ("3", "", [], None),
        ("fr2", "", [], "fr"),
    ]
    assert data["duplicate_count"] == 1
    assert api.get(f"{API}/prompt-sets/{data['id']}/").json()["items"] == items


@pytest.mark.django_db
def test_upload_jsonl_named_by_the_file(api):
    response = upload(api, b'{"prompt": "Hi", "id": "a"}\n{"prompt": "Bye"}\n', filename="greetings.jsonl")
    assert response.status_code == 201 and response.json()["name"] == "greetings"
    assert [i["id"] for i in response.json()["items"]] == ["a", "2"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "filename", "fragment"),
    [
        (b"text,id\nhello,1\n", "p.csv", "line 1: unknown column 'text'"),
        (b"id,reference\n1,x\n", "p.csv", "no 'prompt' column"),
        (b"prompt\n" + "caf\xe9".encode("latin-1") + b"\n", "p.csv", "'p.csv' is not UTF-8"),
        (b"prompt\n" + b"x" * (2 * 1024 * 1024 + 10), "big.csv", "'big.csv' is 2,097,169 bytes; the limit is"),
        (b'{"prompt": "ok"}\n{"prompt": ""}\n', "p.jsonl", "line 2: prompt must be a non-empty string"),
        (b"prompt\nx\n", "p.xlsx", "cannot tell the format"),
    ],
)
def test_bad_uploads_get_a_400_naming_the_problem_and_store_nothing(api, content, filename, fragment):
    response = upload(api, content, filename=filename)
    assert response.status_code == 400, response.content
    data = response.json()
    assert fragment in data["detail"]
    assert set(data["errors"]) <= {"file", "format"} and data["errors"]
    assert PromptSet.objects.count() == PromptItem.objects.count() == 0


@pytest.mark.django_db
def test_upload_refusals_before_parsing(api):
    response = api.post(f"{API}/prompt-sets/upload/", {"name": "x"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["errors"]
    assert api.post(f"{API}/prompt-sets/upload/", {"file": "prompt\nx"}, format="json").status_code == 415
    huge = upload(api, b"prompt\n" + b"x" * (5 * 1024 * 1024))
    assert huge.status_code == 413 and "body" in huge.json()["errors"]
    # Other paths keep the 256 KB limit.
    big_json = api.post(f"{API}/prompt-sets/", {"name": "x", "prompts": ["y" * 300_000]}, format="json")
    assert big_json.status_code == 413
    assert PromptSet.objects.count() == 0


@pytest.mark.django_db
def test_create_list_filter_and_delete_prompt_sets(api, other_api):
    created = api.post(
        f"{API}/prompt-sets/",
        {"name": "capitals", "prompts": [{"prompt": "France?", "id": "fr", "reference": "Paris"}, "Italy?"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    ps = created.json()
    assert [i["id"] for i in ps["items"]] == ["fr", "1"]
    api.post(f"{API}/prompt-sets/", {"name": "other", "prompts": ["x"]}, format="json")
    listing = api.get(f"{API}/prompt-sets/?q=CAPIT").json()
    assert listing["count"] == 1 and listing["results"][0]["item_count"] == 2
    assert api.get(f"{API}/prompt-sets/?page_size=1").json()["next"]
    bad = api.post(f"{API}/prompt-sets/", {"name": "x", "prompts": ["ok", {"prompt": " "}]}, format="json")
    assert bad.status_code == 400 and "prompts[1]: prompt must be a non-empty string" in bad.json()["detail"]
    assert other_api.get(f"{API}/prompt-sets/{ps['id']}/").status_code == 404
    assert other_api.delete(f"{API}/prompt-sets/{ps['id']}/").status_code == 404
    assert api.delete(f"{API}/prompt-sets/{ps['id']}/").status_code == 204
    assert api.get(f"{API}/prompt-sets/{ps['id']}/").status_code == 404


@pytest.mark.django_db
def test_researcher_endpoints_refuse_annotators_and_anonymous_callers(annotator):
    client = APIClient()
    assert client.get(f"{API}/experiments/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {annotator.token}")
    for path in ("prompt-sets/", "presets/", "sweeps/", "experiments/"):
        assert client.get(f"{API}/{path}").status_code == 403


# --- presets and sweeps ------------------------------------------------------------------


@pytest.mark.django_db
def test_preset_create_read_filter_edit_clone_delete(api, other_api):
    params = {"temperature": 0.8, "top_p": 0.9}
    body = {"name": "nucleus", "strategy": "sampling", "params": params, "max_new_tokens": 8}
    created = api.post(f"{API}/presets/", body, format="json")
    assert created.status_code == 201, created.content
    p = created.json()
    assert p["params"]["top_k"] == 50 and len(p["config_hash"]) == 16 and p["identity"]["max_new_tokens"] == 8
    api.post(f"{API}/presets/", {"strategy": "greedy"}, format="json")
    assert api.get(f"{API}/presets/?strategy=sampling").json()["count"] == 1
    assert api.get(f"{API}/presets/?config_hash={p['config_hash']}").json()["results"][0]["id"] == p["id"]
    assert api.get(f"{API}/presets/?q=nucl").json()["count"] == 1

    edited = api.patch(f"{API}/presets/{p['id']}/", {"params": {"temperature": 0.5}}, format="json").json()
    assert edited["params"]["temperature"] == 0.5 and edited["params"]["top_p"] == 1.0
    assert edited["config_hash"] != p["config_hash"] and edited["name"] == "nucleus"
    clone = api.post(f"{API}/presets/{p['id']}/clone/", {"name": "copy", "max_new_tokens": 16}, format="json")
    assert clone.status_code == 201
    assert clone.json()["cloned_from"] == p["id"] and clone.json()["max_new_tokens"] == 16

    bad = api.patch(f"{API}/presets/{p['id']}/", {"params": {"temperature": 99}}, format="json")
    assert bad.status_code == 400 and "params.temperature" in bad.json()["errors"]
    bad = api.post(f"{API}/presets/", {"strategy": "beam", "params": {"num_beams": 12}}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"] == {"params.num_beams": ["must be between 1 and 8 (got 12)"]}
    assert other_api.patch(f"{API}/presets/{p['id']}/", {"name": "x"}, format="json").status_code == 404
    assert api.delete(f"{API}/presets/{p['id']}/").status_code == 204
    assert Preset.objects.count() == 2


@pytest.mark.django_db
def test_sweeps_from_a_base_config_or_a_preset(api):
    response = api.post(
        f"{API}/sweeps/",
        {
            "base": {"strategy": "sampling", "max_new_tokens": 8},
            "x": {"param": "temperature", "values": [0.7, 1.0]},
            "y": {"param": "top_p", "values": [0.9, 1.0]},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    sweep = response.json()
    assert sweep["x"] == {"param": "temperature", "values": [0.7, 1.0]} and len(sweep["presets"]) == 4
    # By name: Postgres' jsonb does not keep a JSON object's key order.
    points = {(p["sweep_point"]["temperature"], p["sweep_point"]["top_p"]) for p in sweep["presets"]}
    assert points == {(0.7, 0.9), (0.7, 1.0), (1.0, 0.9), (1.0, 1.0)}
    assert api.get(f"{API}/sweeps/{sweep['id']}/").json()["id"] == sweep["id"]
    assert api.get(f"{API}/sweeps/").json()["count"] == 1

    base = api.post(f"{API}/presets/", {"strategy": "beam", "params": {"num_beams": 2}}, format="json").json()
    response = api.post(
        f"{API}/sweeps/", {"base_preset": base["id"], "x": {"param": "num_beams", "values": [2, 4]}}, format="json"
    )
    assert response.status_code == 201 and [p["params"]["num_beams"] for p in response.json()["presets"]] == [2, 4]
    bad = api.post(
        f"{API}/sweeps/", {"base_preset": base["id"], "x": {"param": "num_beams", "values": [4, 9]}}, format="json"
    )
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["x.values[1]"]
    both = api.post(f"{API}/sweeps/", {"x": {"param": "top_k", "values": [1]}}, format="json")
    assert both.status_code == 400 and "base" in both.json()["errors"]
    assert Sweep.objects.count() == 2


# --- experiments -------------------------------------------------------------------------


def create_experiment(api, user, *, samples=2, presets=None):
    ps = prompt_set(user, prompts=["The capital of France is", "Name a colour."])
    presets = presets or [preset(user, "greedy"), preset(user, "sampling", params={"temperature": 0.7})]
    response = api.post(
        f"{API}/experiments/",
        {"name": "first", "prompt_set": str(ps.id), "presets": [str(p.id) for p in presets], "samples": samples},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.django_db
def test_create_an_experiment_and_follow_its_progress_to_the_end(api, researcher):
    data = create_experiment(api, researcher.user)
    assert data["progress"]["total"] == 8 and data["progress"]["status"] == "queued" and data["seeds"] == [0, 1]
    assert [c["label"] for c in data["configs"]] == ["greedy", "sampling (temperature=0.7)"]
    experiment = Experiment.objects.get(id=data["id"])
    for run in selectors.experiment_runs(experiment):
        finish(run, text=f"sample {run.sample} of {run.label}")
    done = api.get(f"{API}/experiments/{data['id']}/").json()["progress"]
    assert done["percent"] == 100.0 and done["status"] == "finished" and done["succeeded"] == 8
    assert api.get(f"{API}/experiments/?status=finished").json()["count"] == 1
    assert api.get(f"{API}/experiments/?status=running").json()["count"] == 0
    assert api.get(f"{API}/experiments/?q=fir").json()["count"] == 1
    assert api.get(f"{API}/experiments/?prompt_set={data['prompt_set']['id']}").json()["count"] == 1
    assert api.get(f"{API}/experiments/?status=bogus").status_code == 400


@pytest.mark.django_db
def test_experiment_create_refusals(api, researcher, other_researcher, settings):
    user = researcher.user
    ps, p = prompt_set(user), preset(user)
    foreign_ps, foreign_p = prompt_set(other_researcher.user), preset(other_researcher.user)
    url = f"{API}/experiments/"
    body = {"name": "e", "prompt_set": str(ps.id), "presets": [str(p.id)]}
    cases = [
        ({"prompt_set": str(foreign_ps.id)}, "prompt_set", 400),
        ({"presets": [str(p.id), str(foreign_p.id)]}, "presets[1]", 400),
        ({"presets": []}, "presets", 400),
        ({"samples": 2, "seeds": [3]}, "seeds", 400),
        ({"samples": 99}, "samples", 400),
    ]
    for change, field, code in cases:
        response = api.post(url, {**body, **change}, format="json")
        assert response.status_code == code and field in response.json()["errors"], (change, response.content)
    settings.DECODELAB_MAX_RUNS_IN_FLIGHT = 1
    quota = api.post(url, body, format="json")
    assert quota.status_code == 429 and "DECODELAB_MAX_RUNS_IN_FLIGHT" in quota.json()["detail"]
    assert Experiment.objects.count() == Comparison.objects.count() == Run.objects.count() == 0


@pytest.mark.django_db
def test_cancel_an_experiment(api, researcher, other_api):
    data = create_experiment(api, researcher.user, samples=1)
    assert other_api.post(f"{API}/experiments/{data['id']}/cancel/").status_code == 404
    response = api.post(f"{API}/experiments/{data['id']}/cancel/")
    assert response.status_code == 200
    progress = response.json()["progress"]
    assert progress["status"] == "cancelled" and progress["cancelled"] == 4 and progress["done"]
    assert response.json()["cancelled_at"]


@pytest.mark.django_db
def test_grid_metrics_and_diff(api, researcher, other_api):
    data = create_experiment(api, researcher.user)
    experiment = Experiment.objects.get(id=data["id"])
    texts = {0: ["The", " cat", " sat"], 1: ["The", " cat", " ran"]}
    for run in selectors.experiment_runs(experiment):
        words = texts[run.sample]
        output = {
            "index": 0,
            "text": "".join(words),
            "token_ids": [100, 101, 102 + run.sample],
            "finish_reason": "length" if run.strategy == "sampling" else "eos",
            "score": None,
            "trace": trace_for(words),
        }
        finish(run, outputs=[output], metrics={"tokens_per_s": 40.0 if run.strategy == "greedy" else 30.0})

    grid = api.get(f"{API}/experiments/{data['id']}/grid/?page_size=1")
    assert grid.status_code == 200, grid.content
    grid = grid.json()
    assert grid["count"] == 2 and grid["next"] and len(grid["rows"]) == 1
    row = grid["rows"][0]
    assert row["item"]["prompt"] == "The capital of France is"
    assert [c["config_hash"] for c in row["cells"]] == [c["config_hash"] for c in grid["configs"]]
    assert [(r["sample"], r["preview"]) for r in row["cells"][0]["runs"]] == [(0, "The cat sat"), (1, "The cat ran")]

    metrics = api.get(f"{API}/experiments/{data['id']}/metrics/").json()
    greedy, sampling = metrics["configurations"]
    assert greedy["tokens_per_s"]["median"] == 40.0 and sampling["tokens_per_s"]["median"] == 30.0
    assert greedy["distinct_1"]["median"] == pytest.approx(4 / 6) and greedy["distinct_1"]["n"] == 2
    assert greedy["self_bleu"]["median"] == pytest.approx((2 / 9) ** 0.25)
    assert greedy["nonterminating_rate"] == 0.0 and sampling["nonterminating_rate"] == 1.0
    assert greedy["validity_rate"] is None and greedy["quality"] is None and greedy["runs"]["succeeded"] == 4
    assert metrics["environment"]["mismatch"] is False

    first_prompt = selectors.experiment_runs(experiment).filter(comparison__prompt__startswith="The")
    runs = {(r.strategy, r.sample): r for r in first_prompt}
    a, b = runs[("greedy", 0)], runs[("greedy", 1)]
    diff = api.get(f"{API}/outputs/diff/?a={a.id}:0&b={b.id}:0").json()
    assert diff["first_divergence"] == 2 and [t["text"] for t in diff["b"] if t["first"]] == [" ran"]
    assert api.get(f"{API}/outputs/diff/?a={a.id}&b={b.id}:0").status_code == 400
    assert other_api.get(f"{API}/outputs/diff/?a={a.id}:0&b={b.id}:0").status_code == 404


@pytest.mark.django_db
def test_metrics_warn_when_runs_differ_in_device_or_versions(api, researcher):
    data = create_experiment(api, researcher.user, samples=1)
    runs = list(selectors.experiment_runs(Experiment.objects.get(id=data["id"])))
    for i, run in enumerate(runs):
        finish(run, environment={"device": "cuda:0" if i == 0 else "cpu"})
    env = api.get(f"{API}/experiments/{data['id']}/metrics/").json()["environment"]
    assert env["mismatch"] is True and sorted(e["device"] for e in env["environments"]) == ["cpu", "cuda:0"]


@pytest.mark.django_db
def test_exports_in_three_formats_one_row_per_output(api, researcher):
    data = create_experiment(api, researcher.user, samples=1)
    experiment = Experiment.objects.get(id=data["id"])
    runs = list(selectors.experiment_runs(experiment).order_by("created_at", "position"))
    beam_outputs = [
        {"index": i, "text": f"beam {i}", "token_ids": [1, 2], "finish_reason": "eos", "score": -0.5 - i,
         "trace": trace_for(["beam", f" {i}"])}
        for i in range(2)
    ]  # fmt: skip
    finish(runs[0], outputs=beam_outputs)
    finish(runs[1], error="params: boom")
    finish(runs[2], text='=cmd|" a,b\nline')
    url = f"{API}/experiments/{data['id']}/export"

    jsonl = api.get(url + "?format=jsonl")
    assert jsonl.status_code == 200 and jsonl["Content-Type"] == "application/x-ndjson"
    assert jsonl.streaming and f"experiment-{data['id']}.jsonl" in jsonl["Content-Disposition"]
    rows = [json.loads(line) for line in b"".join(jsonl.streaming_content).decode().splitlines()]
    assert len(rows) == 2 + 1 + 1 + 1  # two beams, a failed run, an output, an unfinished run
    first = rows[0]
    assert (first["prompt_id"], first["output_index"], first["score"], first["text"]) == ("0", 0, -0.5, "beam 0")
    assert first["config_hash"] == runs[0].config_hash and first["config"]["strategy"] == runs[0].strategy
    assert first["environment"]["device"] == "cpu" and first["tokens_per_s"] == 50.0 and "trace" not in first
    assert [r["status"] for r in rows] == ["succeeded", "succeeded", "failed", "succeeded", "queued"]
    assert rows[2]["output_index"] is None and rows[2]["error"] == "params: boom"

    csv_response = api.get(url + "?format=csv&traces=1")
    assert csv_response["Content-Type"].startswith("text/csv")
    import csv

    table = list(csv.DictReader(io.StringIO(b"".join(csv_response.streaming_content).decode())))
    assert len(table) == 5 and table[3]["text"] == '=cmd|" a,b\nline'
    assert json.loads(table[0]["trace"])[1]["text"] == " 0" and json.loads(table[0]["params"]) == runs[0].params

    parquet = api.get(url + "?format=parquet&traces=true")
    assert parquet.status_code == 200 and parquet["Content-Type"] == "application/vnd.apache.parquet"
    frame = pq.read_table(io.BytesIO(b"".join(parquet.streaming_content)))
    assert frame.num_rows == 5 and frame.column("text").to_pylist()[:2] == ["beam 0", "beam 1"]
    assert frame.schema.field("score").type == "double" and "trace" in frame.column_names
    assert frame.column("output_index").to_pylist()[2] is None

    bad = api.get(url + "?format=xlsx")
    assert bad.status_code == 400 and "format" in bad.json()["errors"]


@pytest.mark.django_db
def test_the_schema_lists_every_workbench_operation_with_examples(api):
    schema = api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/v1/prompt-sets/",
        "/api/v1/prompt-sets/upload/",
        "/api/v1/prompt-sets/{prompt_set_id}/",
        "/api/v1/presets/",
        "/api/v1/presets/{preset_id}/clone/",
        "/api/v1/sweeps/",
        "/api/v1/experiments/",
        "/api/v1/experiments/{experiment_id}/grid/",
        "/api/v1/experiments/{experiment_id}/metrics/",
        "/api/v1/experiments/{experiment_id}/export",
        "/api/v1/outputs/diff/",
    ):
        assert path in paths, path
    upload_op = paths["/api/v1/prompt-sets/upload/"]["post"]
    assert "multipart/form-data" in upload_op["requestBody"]["content"]
    assert paths["/api/v1/sweeps/"]["post"]["requestBody"]["content"]["application/json"]["examples"]
