"""workers.engine: batches of requests, their bounds, and traces taken from the decode's own logits."""

from __future__ import annotations

import json

import pytest

from tests.workers.test_decode_cli import run_cli
from workers import runtime
from workers.engine import _prepare, batch_key, execute, execute_batch, request_tokens
from workers.protocol import DecodeRequest
from workers.trace import token_trace

PROMPTS = ["The capital of France is", "Name three colours:", "def add(a, b):", "Once upon a time"]


def request(strategy: str = "greedy", prompt: str = PROMPTS[0], **kwargs) -> DecodeRequest:
    fields = {"model": "smollm2-135m", "strategy": strategy, "prompt": prompt, "max_new_tokens": 8, **kwargs}
    return DecodeRequest(**fields)


@pytest.fixture(scope="module")
def smollm():
    return runtime.load("smollm2-135m")[0]


@pytest.mark.parametrize(
    ("strategy", "params"),
    [
        ("greedy", {}),
        ("sampling", {"temperature": 0.8, "num_return_sequences": 2}),
        ("speculative", {"proposer": "prompt_lookup", "prompt_lookup_num_tokens": 4}),
        ("constrained", {"regex": "[A-Z][a-z]+( [a-z]+)*\\."}),
    ],
)
def test_traces_from_the_decode_logits_equal_the_teacher_forced_oracle(smollm, strategy, params):
    result = execute(request(strategy, "Repeat: red green blue. Repeat: red green", params=params, seed=3))
    assert result.error is None
    for output in result.outputs:
        oracle = token_trace(smollm.model, smollm.tokenizer, result.prompt_token_ids, output.token_ids)
        assert [t["id"] for t in output.trace] == [t["id"] for t in oracle]
        for got, want in zip(output.trace, oracle, strict=True):
            assert got["logprob"] == pytest.approx(want["logprob"], abs=1e-3)
            assert got["entropy"] == pytest.approx(want["entropy"], abs=1e-3)
            assert [t[2] for t in got["top"]] == pytest.approx([t[2] for t in want["top"]], abs=1e-3)
            assert {t[0] for t in got["top"][:3]} == {t[0] for t in want["top"][:3]} or (
                abs(got["top"][2][2] - got["top"][3][2]) < 1e-3  # the 3rd and 4th nearly tie
            )


def test_compatible_requests_are_decoded_together_and_match_alone(monkeypatch):
    reqs = [request(prompt=p, seed=i, max_new_tokens=6 + i) for i, p in enumerate(PROMPTS)]
    reqs.append(request("beam", params={"num_beams": 2}))  # decoded alone
    alone = [execute(r) for r in reqs]
    together = execute_batch(reqs)
    assert [o.outputs[0].token_ids for o in together] == [o.outputs[0].token_ids for o in alone]
    assert [r.environment.batch_size for r in together] == [4, 4, 4, 4, 1]
    assert together[0].environment.executor == "static"
    assert together[0].environment.captured is False
    assert batch_key(reqs[0]) == batch_key(reqs[1]) != batch_key(reqs[4])


def test_batches_are_split_by_size_and_by_cache_slots(monkeypatch):
    reqs = [request(prompt=p, max_new_tokens=4) for p in PROMPTS]
    monkeypatch.setenv("DECODELAB_MAX_BATCH", "3")
    assert [r.environment.batch_size for r in execute_batch(reqs)] == [3, 3, 3, 1]
    monkeypatch.setenv("DECODELAB_MAX_BATCH", "16")
    slots = [request_tokens(_prepare(i, r)) for i, r in enumerate(reqs)]
    monkeypatch.setenv("DECODELAB_MAX_BATCH_TOKENS", str(2 * max(slots)))  # two requests fit, never three
    assert 3 * min(slots) > 2 * max(slots)
    assert [r.environment.batch_size for r in execute_batch(reqs)] == [2, 2, 2, 2]


def test_a_run_too_large_for_the_worker_fails_alone_with_the_reason(monkeypatch):
    monkeypatch.setenv("DECODELAB_MAX_BATCH_TOKENS", "60")
    small = request(max_new_tokens=4)
    big = request(max_new_tokens=200, run_id="r-big")
    results = execute_batch([small, big, small])
    assert results[0].error is None and results[2].error is None
    assert results[1].run_id == "r-big"
    assert results[1].error_field == "max_new_tokens"
    assert "DECODELAB_MAX_BATCH_TOKENS (60)" in results[1].error


def test_cli_batch_option_decodes_lines_together_in_order():
    lines = [json.dumps(request(prompt=p, max_new_tokens=4).to_dict()) for p in PROMPTS[:3]]
    lines.insert(1, "{not json")
    out = run_cli(lines, "--batch", "8")
    assert len(out) == 4
    assert "invalid JSON" in out[1]["error"]
    assert [o["environment"]["batch_size"] for o in (out[0], out[2], out[3])] == [3, 3, 3]
