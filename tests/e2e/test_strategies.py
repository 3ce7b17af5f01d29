"""Every strategy through the whole pipeline: API -> broker -> worker -> result writer -> API."""

from __future__ import annotations

import pytest

from tests.e2e.test_pipeline import call, wait_finished

pytestmark = pytest.mark.e2e

PRESETS = [
    {"strategy": "greedy"},
    {"strategy": "sampling", "params": {"temperature": 0.8, "top_p": 0.9, "min_p": 0.05}, "seed": 3},
    {"strategy": "beam", "params": {"num_beams": 2}},
    {"strategy": "diverse_beam", "params": {"num_beams": 4, "num_beam_groups": 2, "num_return_sequences": 4}},
    {"strategy": "contrastive", "params": {"penalty_alpha": 0.6, "top_k": 4}},
    {"strategy": "speculative", "params": {"proposer": "prompt_lookup"}},
    {"strategy": "speculative", "params": {"proposer": "draft_model", "draft_model": "smollm2-135m"}},
    {"strategy": "constrained", "params": {"choices": ["Paris", "London", "Rome"]}},
]


def test_every_strategy_runs_end_to_end_with_its_metrics_and_traces(live_stack):
    status, created = call(
        live_stack,
        "POST",
        "/api/v1/comparisons/",
        {
            "prompt": "Repeat exactly: The capital of France is Paris. The capital of France is",
            "chat": True,
            "max_new_tokens": 12,
            "presets": PRESETS,
        },
    )
    assert status == 201, created
    runs = wait_finished(live_stack, created["id"], timeout=400)["runs"]
    assert [r["status"] for r in runs] == ["succeeded"] * len(PRESETS), [r["error"] for r in runs]
    greedy, sampling, beam, diverse, contrastive, lookup, draft, constrained = runs
    for run in runs:
        first = run["outputs"][0]
        assert first["trace"] and len(first["trace"]) == len(first["token_ids"])
        assert {"logprob", "entropy", "top"} <= set(first["trace"][0])
    # Lossless speculative decoding equals greedy, token for token, through the whole stack.
    assert lookup["outputs"][0]["token_ids"] == greedy["outputs"][0]["token_ids"]
    assert draft["outputs"][0]["token_ids"] == greedy["outputs"][0]["token_ids"]
    assert draft["outputs"][0]["metrics"]["acceptance_rate"] == 1.0  # the draft is the target itself
    assert {t.get("spec") for t in draft["outputs"][0]["trace"]} <= {"accepted", "bonus", "corrected", "target"}
    assert sampling["outputs"][0]["score"] is not None and beam["outputs"][0]["score"] is not None
    assert sorted({o["group"] for o in diverse["outputs"]}) == [0, 1]
    assert constrained["outputs"][0]["text"] in ("Paris", "London", "Rome")
    assert constrained["outputs"][0]["metrics"]["valid"] is True
    assert "compile_ms" in constrained["outputs"][0]["metrics"]
    assert "mean_degeneration_penalty" in contrastive["outputs"][0]["metrics"]


def test_a_grammar_that_does_not_compile_fails_its_run_naming_the_field(live_stack):
    status, created = call(
        live_stack,
        "POST",
        "/api/v1/comparisons/",
        {
            "prompt": "Say a number",
            "max_new_tokens": 8,
            "presets": [{"strategy": "constrained", "params": {"regex": "[0-9"}}, {"strategy": "greedy"}],
        },
    )
    assert status == 201, created
    bad, good = wait_finished(live_stack, created["id"])["runs"]
    assert bad["status"] == "failed" and bad["error_field"] == "params.regex", bad
    assert good["status"] == "succeeded"  # the worker serves the next run normally


def test_stop_strings_end_the_outputs_of_every_strategy(live_stack):
    strategies = [
        {"strategy": "greedy"},
        {"strategy": "sampling", "params": {"temperature": 0.7}, "seed": 1},
        {"strategy": "beam", "params": {"num_beams": 2}},
        {"strategy": "contrastive"},
        {"strategy": "speculative", "params": {"proposer": "prompt_lookup"}},
    ]
    status, created = call(
        live_stack,
        "POST",
        "/api/v1/comparisons/",
        {
            "prompt": "Write three short sentences about cats.",
            "max_new_tokens": 64,
            "stop": ["."],
            "presets": strategies,
        },
    )
    assert status == 201, created
    runs = wait_finished(live_stack, created["id"], timeout=400)["runs"]
    for run in runs:
        assert run["status"] == "succeeded", run["error"]
        out = run["outputs"][0]
        assert out["finish_reason"] == "stop", (run["strategy"], out)
        assert "." not in out["text"] and out["text"].strip()
    greedy, *_, speculative = runs
    assert speculative["outputs"][0]["token_ids"] == greedy["outputs"][0]["token_ids"]
