import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from decodelab.experiments import selectors, services
from decodelab.experiments.models import Experiment, Preset, PromptSet, Sweep
from tests.experiments.support import finish, preset, prompt_set, trace_for

XSS = "<script>alert(1)</script>"


@pytest.fixture
def web(client, researcher):
    client.force_login(researcher.user)
    return client


@pytest.fixture
def finished(researcher):
    """A finished 2-prompt x 2-configuration x 2-sample experiment with traces."""
    user = researcher.user
    ps = prompt_set(user, prompts=["The capital of France is", f"Say {XSS}"])
    presets = [preset(user, "greedy"), preset(user, "sampling", params={"temperature": 0.7})]
    experiment = services.experiment_create(owner=user, name="exp", prompt_set=ps, presets=presets, samples=2)
    for run in selectors.experiment_runs(experiment):
        words = ["The", " cat", " sat" if run.sample == 0 else f" {XSS}"]
        output = {
            "index": 0,
            "text": "".join(words),
            "token_ids": [100, 101, 102 + run.sample],
            "finish_reason": "eos",
            "score": None,
            "trace": trace_for(words),
        }
        finish(run, outputs=[output])
    return experiment


@pytest.mark.django_db
def test_workbench_pages_require_a_researcher(client, annotator):
    assert client.get("/experiments/").status_code == 302
    client.force_login(annotator.user)
    for path in ("/experiments/", "/experiments/prompt-sets/", "/experiments/presets/", "/experiments/sweeps/new/"):
        assert client.get(path).status_code == 403


@pytest.mark.django_db
def test_upload_form_creates_a_prompt_set_and_bad_files_show_the_line(web):
    page = web.get("/experiments/prompt-sets/")
    assert page.status_code == 200 and b'type="file"' in page.content and b'for="upload-file"' in page.content
    response = web.post(
        "/experiments/prompt-sets/upload/",
        {"file": SimpleUploadedFile("qs.csv", b"prompt,id\nHello,h\nHello,h2\n"), "name": "greetings"},
    )
    ps = PromptSet.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/prompt-sets/{ps.id}/"
    detail = web.get(response["Location"]).content.decode()
    assert "duplicate of h" in detail and "greetings" in detail

    bad = web.post("/experiments/prompt-sets/upload/", {"file": SimpleUploadedFile("b.csv", b"prompt,x\nHi,1\n")})
    assert bad.status_code == 400 and "line 1: unknown column &#x27;x&#x27;" in bad.content.decode()
    latin = web.post("/experiments/prompt-sets/upload/", {"file": SimpleUploadedFile("l.csv", b"prompt\n\xe9\n")})
    assert latin.status_code == 400 and "is not UTF-8" in latin.content.decode()
    assert PromptSet.objects.count() == 1

    typed = web.post("/experiments/prompt-sets/new/", {"name": "typed", "prompts": "One\n\nTwo\n"})
    assert typed.status_code == 302 and PromptSet.objects.get(name="typed").items.count() == 2


@pytest.mark.django_db
def test_preset_pages_create_edit_swap_strategy_clone_and_delete(web):
    form = web.get("/experiments/presets/new/").content.decode()
    assert 'for="c-strategy"' in form and 'name="param-temperature"' in form
    fields = web.get("/experiments/presets/fields/?strategy=beam", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="param-fields"' in fields and 'name="param-num_beams"' in fields and "<html" not in fields
    post = {
        "name": "warm",
        "strategy": "sampling",
        "param-temperature": "1.3",
        "max_new_tokens": "8",
        "chat": "on",
        "seed_policy": "per-sample",
        "seed": "0",
        "model": "smollm2-135m",
    }
    assert web.post("/experiments/presets/new/", post).status_code == 302
    p = Preset.objects.get()
    assert p.params["temperature"] == 1.3 and p.max_new_tokens == 8 and p.chat
    bad = web.post(f"/experiments/presets/{p.id}/", {**post, "param-temperature": "0"})
    assert bad.status_code == 400 and "must be &gt; 0.0" in bad.content.decode()
    web.post(f"/experiments/presets/{p.id}/", {**post, "param-temperature": "0.5"})
    p.refresh_from_db()
    assert p.params["temperature"] == 0.5
    clone = web.post(f"/experiments/presets/{p.id}/clone/")
    copy = Preset.objects.exclude(id=p.id).get()
    assert clone["Location"] == f"/experiments/presets/{copy.id}/" and copy.cloned_from_id == p.id
    listing = web.get("/experiments/presets/?strategy=sampling").content.decode()
    assert p.config_hash in listing and "warm (copy)" in listing
    web.post(f"/experiments/presets/{copy.id}/delete/")
    assert Preset.objects.count() == 1


@pytest.mark.django_db
def test_sweep_builder_makes_a_grid_of_presets(web):
    page = web.get("/experiments/sweeps/new/").content.decode()
    assert 'for="x-param"' in page and 'for="y-values"' in page
    post = {
        "strategy": "sampling",
        "max_new_tokens": "8",
        "seed_policy": "per-sample",
        "seed": "0",
        "x_param": "temperature",
        "x_values": "0.7, 1.0",
        "y_param": "top_p",
        "y_values": "0.9,1",
    }
    response = web.post("/experiments/sweeps/new/", post)
    sweep = Sweep.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/sweeps/{sweep.id}/"
    detail = web.get(response["Location"]).content.decode()
    assert detail.count('class="hash"') == 4 and "Run an experiment with these 4 presets" in detail
    bad = web.post("/experiments/sweeps/new/", {**post, "x_values": "0.7, -1"})
    assert bad.status_code == 400 and "x.values[1]" in bad.content.decode()
    nan = web.post("/experiments/sweeps/new/", {**post, "x_values": "0.7, warm"})
    assert nan.status_code == 400 and "must be a number" in nan.content.decode()
    assert Sweep.objects.count() == 1


@pytest.mark.django_db
def test_new_experiment_page_runs_and_the_progress_section_stops_polling_when_done(web, researcher):
    user = researcher.user
    ps, p1, p2 = prompt_set(user), preset(user), preset(user, "sampling")
    page = web.get(f"/experiments/new/?presets={p1.id},{p2.id}&prompt_set={ps.id}").content.decode()
    assert page.count("checked>") >= 2 and f'value="{ps.id}" selected' in page
    bad = web.post("/experiments/new/", {"name": "x", "prompt_set": str(ps.id), "samples": "1"})
    assert bad.status_code == 400 and "presets" in bad.content.decode()
    response = web.post(
        "/experiments/new/",
        {
            "name": "e1",
            "prompt_set": str(ps.id),
            "presets": [str(p1.id), str(p2.id)],
            "samples": "2",
            "seeds": "5, 6",
            "skip_duplicates": "on",
        },
    )
    experiment = Experiment.objects.get()
    assert response.status_code == 302 and experiment.seeds == [5, 6]
    detail = web.get(response["Location"]).content.decode()
    assert 'role="progressbar"' in detail and 'hx-trigger="every 1s"' in detail and "0.0 %" in detail
    for run in selectors.experiment_runs(experiment):
        finish(run)
    poll = web.get(response["Location"], HTTP_HX_REQUEST="true")
    assert poll.status_code == 286 and "100.0 %" in poll.content.decode() and "<html" not in poll.content.decode()
    listing = web.get("/experiments/?status=finished").content.decode()
    assert ">e1</a>" in listing and "badge-finished" in listing and "8 / 8" in listing
    assert ">e1</a>" not in web.get("/experiments/?status=running").content.decode()


@pytest.mark.django_db
def test_cancel_from_the_page(web, researcher):
    user = researcher.user
    experiment = services.experiment_create(owner=user, name="e", prompt_set=prompt_set(user), presets=[preset(user)])
    response = web.post(f"/experiments/{experiment.id}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 286 and 'data-status="cancelled"' in response.content.decode()


@pytest.mark.django_db
def test_grid_cell_side_by_side_and_diff_pages_escape_model_output(web, finished):
    base = f"/experiments/{finished.id}"
    grid = web.get(f"{base}/grid/")
    html = grid.content.decode()
    assert grid.status_code == 200 and html.count('class="grid-cell"') == 4 and XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "The cat sat" in html
    config = finished.configs.order_by("position")[1]
    item = selectors.experiment_items(finished)[0]
    cell = web.get(f"{base}/cells/{item.id}/{config.config_hash}/").content.decode()
    assert cell.count('class="card run"') == 2 and "token-view" in cell and "top:" in cell and XSS not in cell
    assert web.get(f"{base}/cells/{item.id}/0000000000000000/").status_code == 404
    two = web.get(f"{base}/prompts/{item.id}/").content.decode()
    assert two.count('class="card run"') == 2 and "Diff columns 1 and 2" in two
    four = web.get(f"{base}/prompts/{item.id}/?layout=4&sample=1").content.decode()
    assert "layout-4" in four and four.count('class="card run"') == 2  # only two configurations exist

    cell_runs = selectors.experiment_runs(finished).filter(
        config_hash=config.config_hash, comparison__prompt=item.prompt
    )
    runs = {r.sample: r for r in cell_runs}
    diff = web.get(f"{base}/diff/?a={runs[0].id}:0&b={runs[1].id}:0").content.decode()
    assert "First divergence at token 3" in diff and 'id="first-divergence-b"' in diff and XSS not in diff
    assert web.get(f"{base}/diff/?a={runs[0].id}:0").status_code == 404


@pytest.mark.django_db
def test_metrics_page_has_chart_data_and_definitions(web, finished):
    page = web.get(f"/experiments/{finished.id}/metrics/").content.decode()
    assert "chart-4.6.1.umd.min.js" in page and "js/experiment-charts.js" in page and 'id="spread-chart"' in page
    data = json.loads(page.split('<script id="chart-data" type="application/json">')[1].split("</script>")[0])
    assert len(data["labels"]) == 2 and data["series"]["tokens_per_s"][0]["median"] == 50.0
    assert "self-BLEU" in page and 'title="Mean BLEU-4' in page


@pytest.mark.django_db
def test_export_download_from_the_page(web, finished):
    response = web.get(f"/experiments/{finished.id}/export/?format=csv")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode()
    assert lines.startswith("experiment_id,experiment,prompt_id") and lines.count("The cat") >= 8


@pytest.mark.django_db
def test_another_researchers_workbench_is_404(client, other_researcher, finished):
    client.force_login(other_researcher.user)
    item = selectors.experiment_items(finished)[0]
    for path in (
        f"/experiments/{finished.id}/",
        f"/experiments/{finished.id}/grid/",
        f"/experiments/{finished.id}/metrics/",
        f"/experiments/{finished.id}/export/",
        f"/experiments/{finished.id}/prompts/{item.id}/",
        f"/experiments/prompt-sets/{finished.prompt_set_id}/",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/experiments/{finished.id}/cancel/").status_code == 404


@pytest.mark.django_db
def test_malformed_ids_are_refused_not_crashes(web, researcher, finished):
    ps = prompt_set(researcher.user, name="other")
    bad = web.post("/experiments/new/", {"name": "x", "prompt_set": str(ps.id), "presets": ["junk"], "samples": "1"})
    assert bad.status_code == 400 and "presets[0]" in bad.content.decode()
    no_set = web.post("/experiments/new/", {"name": "x", "prompt_set": "junk", "samples": "1"})
    assert no_set.status_code == 400 and "prompt_set" in no_set.content.decode()
    assert web.get(f"/experiments/{finished.id}/diff/?a=junk:0&b=junk:0").status_code == 404
    assert web.get("/api/v1/experiments/?prompt_set=junk").status_code == 400


@pytest.mark.django_db
def test_cell_shows_beams_groups_speculative_marks_histogram_and_validity(web, researcher):
    user = researcher.user
    presets = [
        preset(user, "speculative", params={"proposer": "prompt_lookup"}),
        preset(user, "constrained", params={"regex": "[a-z ]+"}),
        preset(user, "diverse_beam", params={"num_beams": 2, "num_beam_groups": 2, "num_return_sequences": 2}),
    ]
    experiment = services.experiment_create(owner=user, name="e", prompt_set=prompt_set(user), presets=presets)
    item = selectors.experiment_items(experiment)[0]
    spec = ["target", "accepted", "accepted", "bonus", "corrected"]
    for run in selectors.experiment_runs(experiment).filter(comparison__prompt=item.prompt):
        texts = ["a", " b", " c", " d", " e"]
        if run.strategy == "speculative":
            outputs = [
                {
                    "index": 0,
                    "text": "a b c d e",
                    "token_ids": [1, 2, 3, 4, 5],
                    "finish_reason": "length",
                    "metrics": {"drafted": 4, "accepted": 2, "acceptance_rate": 0.5},
                    "trace": trace_for(texts, spec),
                }
            ]
        elif run.strategy == "constrained":
            trace = trace_for(texts[:2])
            trace[1]["forced"] = True
            outputs = [
                {
                    "index": 0,
                    "text": "a b",
                    "token_ids": [1, 2],
                    "finish_reason": "constraint",
                    "metrics": {"valid": True, "forced_tokens": 1},
                    "trace": trace,
                }
            ]
        else:
            outputs = [
                {
                    "index": i,
                    "text": f"beam {i}",
                    "token_ids": [1, 2],
                    "finish_reason": "eos",
                    "score": -0.25 * (i + 1),
                    "group": i,
                    "trace": trace_for(["beam", f" {i}"]),
                }
                for i in range(2)
            ]
        finish(run, outputs=outputs)
    pages = {
        c.strategy: web.get(f"/experiments/{experiment.id}/cells/{item.id}/{c.config_hash}/").content.decode()
        for c in experiment.configs.all()
    }
    assert "spec-accepted" in pages["speculative"] and "spec-bonus" in pages["speculative"]
    assert (
        "Verification steps by accepted draft tokens" in pages["speculative"]
        and "acceptance rate" in pages["speculative"]
    )
    assert 'class="tok forced"' in pages["constrained"] and '<span class="ok">valid</span>' in pages["constrained"]
    assert "group 1" in pages["diverse_beam"] and "score -0.5000" in pages["diverse_beam"]


def test_a_json_parameter_nested_absurdly_deep_is_a_form_error_not_a_server_error(web):
    deep = "[" * 5000 + "]" * 5000
    post = {"name": "deep", "strategy": "constrained", "param-json_schema": deep, "max_new_tokens": "8",
            "seed_policy": "fixed", "seed": "0", "model": "smollm2-135m"}  # fmt: skip
    response = web.post("/experiments/presets/new/", post)
    assert response.status_code == 400
    assert "nested deeper than" in response.content.decode()
    assert not Preset.objects.exists()
