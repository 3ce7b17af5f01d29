"""The whole path: API -> Django -> Celery (real redis) -> worker process -> result writer -> DB."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

pytestmark = pytest.mark.e2e

METRIC_KEYS = {
    "queue_wait_ms",
    "model_load_ms",
    "model_cache_hit",
    "prefill_ms",
    "decode_ms",
    "new_tokens",
    "tokens_per_s",
    "peak_memory_bytes",
}
ENV_KEYS = {"device", "dtype", "seed", "torch_version", "transformers_version", "batch_size"}


def call(stack, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        stack.base_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Token {stack.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_finished(stack, comparison_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, data = call(stack, "GET", f"/api/v1/comparisons/{comparison_id}/")
        if data["status"] in ("finished", "failed"):
            return data
        time.sleep(0.5)
    raise AssertionError(f"comparison not finished after {timeout} s: {data}; logs in {stack.logs}")


def test_a_comparison_submitted_over_the_api_is_decoded_by_a_worker_and_stored(live_stack):
    status, created = call(
        live_stack,
        "POST",
        "/api/v1/comparisons/",
        {
            "prompt": "The capital of France is",
            "chat": False,
            "max_new_tokens": 12,
            "presets": [
                {"strategy": "greedy"},
                {"strategy": "beam", "params": {"num_beams": 3, "num_return_sequences": 2}},
            ],
        },
    )
    assert status == 201, created
    data = wait_finished(live_stack, created["id"])
    greedy, beam = data["runs"]
    for run in (greedy, beam):
        assert run["status"] == "succeeded", run
        assert run["outputs"][0]["text"].strip()
        assert set(run["metrics"]) >= METRIC_KEYS and set(run["environment"]) >= ENV_KEYS
        assert run["metrics"]["queue_wait_ms"] is not None and run["metrics"]["new_tokens"] >= 1
        assert run["prompt_token_ids"] and run["attempts"] == 1 and run["worker"]
    assert len(beam["outputs"]) == 2 and beam["outputs"][0]["score"] >= beam["outputs"][1]["score"]


def test_the_compare_command_goes_through_the_broker_and_worker(live_stack):
    proc = live_stack.manage(
        "compare",
        "--prompt",
        "The capital of France is",
        "--strategies",
        "greedy,beam",
        "--max-new-tokens",
        "12",
        "--user",
        live_stack.username,
        "--json",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [r["strategy"] for r in data["runs"]] == ["greedy", "beam"]
    assert all(r["status"] == "succeeded" and r["outputs"][0]["text"].strip() for r in data["runs"])
    assert all(set(r["metrics"]) >= METRIC_KEYS for r in data["runs"])


def test_the_compare_command_reports_bad_input_without_storing(live_stack):
    proc = live_stack.manage(
        "compare",
        "--prompt",
        "Hi",
        "--strategies",
        "beam",
        "--param",
        "beam.num_beams=20",
        "--user",
        live_stack.username,
    )
    assert proc.returncode != 0
    assert "presets[0].params.num_beams: must be between 1 and 8" in proc.stderr


def test_runs_submitted_together_are_decoded_together_and_equal_alone(live_stack):
    """The worker takes compatible queued runs along (workers/batching.py): their environment says
    how many shared the batch, and each run's tokens are those it gets decoded alone."""
    from workers.engine import execute
    from workers.protocol import DecodeRequest

    prompts = ["The capital of Italy is", "Water boils at", "My favourite colour is", "The sun rises in the",
               "Two plus two is", "The largest planet is"]  # fmt: skip
    ids = []
    for prompt in prompts:  # the first starts at once; the others queue behind it and are taken along
        status, created = call(live_stack, "POST", "/api/v1/comparisons/",
                               {"prompt": prompt, "chat": False, "max_new_tokens": 24,
                                "presets": [{"strategy": "greedy"}]})  # fmt: skip
        assert status == 201, created
        ids.append(created["id"])
    runs = [wait_finished(live_stack, i)["runs"][0] for i in ids]
    assert all(r["status"] == "succeeded" for r in runs), runs
    sizes = [r["environment"]["batch_size"] for r in runs]
    assert max(sizes) > 1, f"no run was batched: {sizes}"
    for prompt, run in zip(prompts, runs, strict=True):
        alone = execute(DecodeRequest(model="smollm2-135m", strategy="greedy", prompt=prompt, max_new_tokens=24))
        assert run["outputs"][0]["token_ids"] == alone.outputs[0].token_ids
        assert run["attempts"] == 1
