"""Batched decoding (several runs in one batch of rows) against the same runs decoded alone.

A row's tokens must not depend on what it was batched with. Where float32 arithmetic of a
different batch shape (left padding, wider matrices) flips a token, the first divergence must be
a near-tie of the row's own distribution (top-2 log-probability gap < 1e-4), and such rows must
stay under 5 %. Each test prints its exact-equivalence rate (``pytest -s``).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.workers.decoders.test_executor import NEAR_TIE, assert_same_or_near_tie
from workers.decoders import greedy, sampling, speculative
from workers.executor import Execution
from workers.strategies import SamplingConfig, SpeculativeConfig

MAX_DIVERGENT = 0.05


def mixed_prompts(tiny_model: Any, n: int) -> list[list[int]]:
    return [tiny_model.prompt(100 + i, 1 + (i * 7) % 23)[0].tolist() for i in range(n)]


def check_rows(model: Any, prompts: list[list[int]], alone: list[list[int]], batched: list[list[int]], label: str):
    exact = sum(assert_same_or_near_tie(model, p, a, b) for p, a, b in zip(prompts, alone, batched, strict=True))
    rate = exact / len(prompts)
    print(f"{label}: {exact}/{len(prompts)} rows identical ({rate:.0%}); the others diverge at near-ties < {NEAR_TIE}")
    assert 1 - rate <= MAX_DIVERGENT or (len(prompts) < 20 and exact >= len(prompts) - 1)


def greedy_alone(model: Any, prompt: list[int], max_new_tokens: int, eos: list[int], mode: str) -> list[int]:
    [[seq]] = greedy.decode_batch(
        model, [prompt], max_new_tokens=[max_new_tokens], eos_token_ids=eos, execution=Execution(mode=mode)
    )
    return seq.token_ids


@pytest.mark.parametrize("size", [1, 4, 16])
@pytest.mark.parametrize("mode", ["static", "graph"])
def test_batched_greedy_equals_one_at_a_time(tiny_model, size, mode):
    model = tiny_model.model
    prompts = mixed_prompts(tiny_model, size)
    # An eos that row 0 emits at its third step, so rows finish mid-batch.
    eos = [greedy_alone(model, prompts[0], 3, [], "eager")[2]]
    alone = [greedy_alone(model, p, 20, eos, "eager") for p in prompts]
    out = greedy.decode_batch(model, prompts, max_new_tokens=[20] * size, eos_token_ids=eos,
                              execution=Execution(mode=mode))  # fmt: skip
    batched = [o[0].token_ids for o in out]
    assert batched[0] == alone[0] and len(batched[0]) == 3 and out[0][0].finish_reason == "eos"
    check_rows(model, prompts, alone, batched, f"greedy {tiny_model.name} x{size} {mode}")


@pytest.mark.parametrize("size", [4, 16])
def test_batched_greedy_equals_one_at_a_time_on_smollm(smollm, size):
    tok = smollm.tokenizer
    texts = ["The capital of France is", "Write a haiku about rain.", "def fibonacci(n):", "1, 2, 3, 4,"]
    prompts = [tok(texts[i % 4] + " " * (i // 4)).input_ids for i in range(size)]
    eos = smollm.eos_token_ids
    alone = [greedy_alone(smollm.model, p, 12, eos, "static") for p in prompts]
    out = greedy.decode_batch(smollm.model, prompts, max_new_tokens=[12] * size, eos_token_ids=eos)
    check_rows(smollm.model, prompts, alone, [o[0].token_ids for o in out], f"greedy SmolLM2 x{size}")


def test_a_run_may_ask_for_fewer_tokens_than_its_neighbours(tiny_model):
    prompts = mixed_prompts(tiny_model, 3)
    out = greedy.decode_batch(tiny_model.model, prompts, max_new_tokens=[2, 9, 5], eos_token_ids=[])
    assert [len(o[0].token_ids) for o in out] == [2, 9, 5]
    assert all(o[0].finish_reason == "length" for o in out)


@pytest.mark.parametrize("position", [0, 3, 7])
def test_seeded_sampling_gives_the_same_tokens_alone_and_in_any_batch_position(tiny_model, position):
    model = tiny_model.model
    config = SamplingConfig(temperature=0.9, top_p=0.95, num_return_sequences=2)
    prompts = mixed_prompts(tiny_model, 8)

    def run(prompt: list[int], seed: int) -> sampling.SampleRun:
        return sampling.SampleRun(prompt, torch.Generator().manual_seed(seed), 14)

    [alone] = sampling.decode_batch(model, [run(prompts[0], 42)], config, eos_token_ids=[2])
    others = [run(p, 1000 + i) for i, p in enumerate(prompts[1:])]
    batch = [*others[:position], run(prompts[0], 42), *others[position:]]
    out = sampling.decode_batch(model, batch, config, eos_token_ids=[2])
    assert [s.token_ids for s in out[position]] == [s.token_ids for s in alone]
    assert [s.score for s in out[position]] == pytest.approx([s.score for s in alone], abs=1e-4)


def noisy_copy(model: Any, scale: float) -> Any:
    """A draft model that agrees with ``model`` on most tokens, not all: rows accept different
    numbers of drafts, so the ragged state (holes, per-row positions) is exercised."""
    import copy

    draft = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        head = draft.lm_head.weight
        head += torch.randn(head.shape, generator=gen) * head.std() * scale
    return draft


def spec_runs(prompts: list[list[int]], max_new_tokens: int) -> list[speculative.SpecRun]:
    return [speculative.SpecRun(p, torch.Generator().manual_seed(5), max_new_tokens) for p in prompts]


@pytest.mark.parametrize("size", [1, 4, 16])
@pytest.mark.parametrize("proposer", ["prompt_lookup", "draft_model"])
@pytest.mark.parametrize("mode", ["static", "graph"])
def test_batched_speculative_greedy_equals_greedy_row_by_row(tiny_model, size, proposer, mode):
    model = tiny_model.model
    # Repetitive prompts, so prompt lookup finds drafts and rows accept different numbers of them.
    prompts = [(p * 3)[: 4 + 5 * (i % 5)] for i, p in enumerate(mixed_prompts(tiny_model, size))]
    params = {"proposer": proposer, "num_draft_tokens": 4, "prompt_lookup_num_tokens": 4}
    if proposer == "draft_model":
        params["draft_model"] = "tiny"
    config = SpeculativeConfig(**params)
    eos = [tiny_model.eos_token_id]
    alone = [greedy_alone(model, p, 16, eos, "eager") for p in prompts]
    draft = noisy_copy(model, 0.5)
    out = speculative.decode_batch(model, spec_runs(prompts, 16), config, eos_token_ids=eos,
                                   draft_model=draft, execution=Execution(mode=mode))  # fmt: skip
    check_rows(model, prompts, alone, [o[0].token_ids for o in out], f"spec {proposer} {tiny_model.name} x{size}")
    if proposer == "draft_model" and size > 1:
        rates = {o[0].metrics["accepted"] / max(1, o[0].metrics["drafted"]) for o in out}
        assert len(rates) > 1, "rows accepted different shares of their drafts (ragged state exercised)"


@pytest.mark.parametrize("size", [4, 16])
def test_batched_prompt_lookup_equals_greedy_on_smollm(smollm, size):
    tok = smollm.tokenizer
    base = [
        "Repeat exactly: the quick brown fox jumps over the lazy dog.",
        "Copy this list: apples, pears, plums, cherries, figs.",
        "Say again: to be or not to be, that is the question.",
        "Echo: one two three four five six seven.",
    ]
    prompts = [tok(base[i % 4] + " " * (i // 4)).input_ids for i in range(size)]
    eos = smollm.eos_token_ids
    alone = [greedy_alone(smollm.model, p, 16, eos, "static") for p in prompts]
    config = SpeculativeConfig(proposer="prompt_lookup", prompt_lookup_num_tokens=6)
    out = speculative.decode_batch(smollm.model, spec_runs(prompts, 16), config, eos_token_ids=eos)
    check_rows(smollm.model, prompts, alone, [o[0].token_ids for o in out], f"prompt lookup SmolLM2 x{size}")


def test_batched_speculative_sampling_equals_alone(tiny_model):
    model = tiny_model.model
    prompts = [(p * 3)[: 6 + 3 * i] for i, p in enumerate(mixed_prompts(tiny_model, 4))]
    config = SpeculativeConfig(proposer="draft_model", draft_model="tiny", do_sample=True, temperature=0.8)
    alone = [
        speculative.decode_batch(model, spec_runs([p], 12), config, eos_token_ids=[2], draft_model=model)[0][0]
        for p in prompts
    ]
    out = speculative.decode_batch(model, spec_runs(prompts, 12), config, eos_token_ids=[2], draft_model=model)
    assert [o[0].token_ids for o in out] == [a.token_ids for a in alone]
    assert [o[0].metrics["accepted"] for o in out] == [a.metrics["accepted"] for a in alone]


def test_verify_greedy_from_recorded_stats_equals_verify_greedy():
    from workers import trace

    gen = torch.Generator().manual_seed(0)
    for k in range(0, 6):
        logits = torch.randn((k + 1, 50), generator=gen) * 3
        best = torch.argmax(logits, dim=-1).tolist()
        draft = best[:k]
        if k >= 2:
            draft[k // 2] = (draft[k // 2] + 1) % 50  # a rejection in the middle
        expected = speculative.verify_greedy(logits, draft)
        got, emitted = speculative.verify_greedy_from_stats(trace.step_stats(logits, torch.argmax(logits, -1)), draft)
        assert (got.tokens, got.accepted) == (expected.tokens, expected.accepted)
        assert got.log_probs == pytest.approx(expected.log_probs, abs=1e-6)
        assert [e["token"] for e in emitted] == expected.tokens
