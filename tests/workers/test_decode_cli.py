"""`python -m workers.decode`: the decoder contract without Django or a broker."""

import json
import subprocess
import sys

from tests.support.servers import ROOT


def run_cli(lines: list[str], *args: str) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "workers.decode", *args],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=True,
    )
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_jsonl_requests_get_one_result_line_each_with_outputs_metrics_and_clear_errors():
    good = {
        "model": "smollm2-135m",
        "strategy": "greedy",
        "prompt": "The capital of France is",
        "chat": False,
        "max_new_tokens": 6,
    }
    beam = {
        "model": "smollm2-135m",
        "strategy": "beam",
        "prompt_token_ids": [504, 3575, 282, 4649, 314],
        "max_new_tokens": 4,
        "params": {"num_beams": 2, "num_return_sequences": 2},
    }
    results = run_cli(
        [
            json.dumps(good),
            json.dumps({**good, "params": {"num_beams": 3}}),
            json.dumps({**good, "strategy": "beam", "params": {"num_beams": 12}}),
            json.dumps({**good, "max_new_tokens": 2000}),
            json.dumps({**good, "prompt": ""}),
            "{broken json",
            json.dumps(beam),
        ]
    )
    assert len(results) == 7
    first = results[0]
    assert first["error"] is None
    [out] = first["outputs"]
    assert out["text"].strip() and len(out["token_ids"]) == first["metrics"]["new_tokens"] <= 6
    assert out["finish_reason"] in ("eos", "length")
    assert first["prompt_token_ids"] == [504, 3575, 282, 4649, 314]
    assert set(first["metrics"]) >= {
        "queue_wait_ms",
        "model_load_ms",
        "model_cache_hit",
        "prefill_ms",
        "decode_ms",
        "new_tokens",
        "tokens_per_s",
        "peak_memory_bytes",
    }
    assert first["environment"]["torch_version"].startswith("2.13.0") and first["environment"]["device"] == "cpu"
    assert results[1]["error_field"] == "params.num_beams" and "unknown parameter" in results[1]["error"]
    assert results[2]["error_field"] == "params.num_beams" and "between 1 and 8" in results[2]["error"]
    assert results[3]["error_field"] == "max_new_tokens" and "1024" in results[3]["error"]
    assert results[4]["error_field"] == "prompt"
    assert results[5]["error_field"] == "request" and "invalid JSON" in results[5]["error"]
    beams = results[6]["outputs"]
    assert len(beams) == 2 and beams[0]["score"] >= beams[1]["score"]
    # Same prompt ids as the text prompt: the model was loaded once and reused.
    assert results[6]["metrics"]["model_cache_hit"] is True
    assert beams[0]["token_ids"][:1] == out["token_ids"][:1]


def test_a_line_nested_too_deeply_is_an_error_for_that_line_not_a_crash():
    deep = "[" * 100_000 + "]" * 100_000
    done = subprocess.run(
        [sys.executable, "-m", "workers.decode"], input=deep + "\n", capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["error_field"] == "request" and "nested too deeply" in result["error"]
