"""Greedy decoding against transformers' ``generate(do_sample=False, num_beams=1)``."""

from __future__ import annotations

import math

import pytest
import torch

from workers.decoders import DECODERS, beam, greedy, sampling
from workers.strategies import STRATEGIES, GreedyConfig


def run_greedy(model, input_ids, *, max_new_tokens, eos_token_ids, on_first_token=None):
    kwargs = {} if on_first_token is None else {"on_first_token": on_first_token}
    [seq] = greedy.decode(
        model,
        input_ids,
        GreedyConfig(),
        max_new_tokens=max_new_tokens,
        eos_token_ids=eos_token_ids,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )
    return seq


def first_new_token_at(tokens: list[int], min_index: int) -> tuple[int, int]:
    """(index, token) of the first token at or after ``min_index`` not seen before it."""
    for i in range(min_index, len(tokens)):
        if tokens[i] not in tokens[:i]:
            return i, tokens[i]
    raise AssertionError(f"no fresh token in {tokens}")


def test_registry_maps_every_strategy_to_its_decoder():
    assert set(DECODERS) == set(STRATEGIES)
    assert DECODERS["greedy"] is greedy.decode
    assert DECODERS["sampling"] is sampling.decode
    assert DECODERS["beam"] is beam.decode


@pytest.mark.parametrize(("prompt_seed", "prompt_len", "max_new_tokens"), [(1, 5, 24), (2, 12, 16), (3, 1, 8)])
def test_greedy_matches_transformers_generate_on_tiny_model(
    tiny_model, hf_generate, prompt_seed, prompt_len, max_new_tokens
):
    ids = tiny_model.prompt(prompt_seed, prompt_len)
    eos = [tiny_model.eos_token_id]
    expected = hf_generate(
        tiny_model.model,
        ids,
        eos_token_ids=eos,
        pad_token_id=tiny_model.pad_token_id,
        do_sample=False,
        num_beams=1,
        max_new_tokens=max_new_tokens,
    )
    seq = run_greedy(tiny_model.model, ids, max_new_tokens=max_new_tokens, eos_token_ids=eos)
    assert seq.token_ids == expected.tokens[0]
    if seq.finish_reason == "length":
        assert len(seq.token_ids) == max_new_tokens
    else:
        assert seq.token_ids[-1] in eos


@pytest.mark.parametrize("extra_eos", [False, True])
def test_greedy_stops_at_eos_like_generate_on_tiny_model(tiny_model, hf_generate, extra_eos):
    ids = tiny_model.prompt(4, 6)
    free_run = run_greedy(tiny_model.model, ids, max_new_tokens=20, eos_token_ids=[])
    assert free_run.finish_reason == "length"
    stop_at, eos_token = first_new_token_at(free_run.token_ids, 2)
    # A second eos id that never occurs must change nothing; it also exercises the list form.
    unused = next(t for t in range(3, tiny_model.vocab_size) if t not in free_run.token_ids)
    eos = [unused, eos_token] if extra_eos else [eos_token]

    seq = run_greedy(tiny_model.model, ids, max_new_tokens=20, eos_token_ids=eos)
    expected = hf_generate(
        tiny_model.model,
        ids,
        eos_token_ids=eos,
        pad_token_id=tiny_model.pad_token_id,
        do_sample=False,
        max_new_tokens=20,
    )
    assert seq.finish_reason == "eos"
    assert seq.token_ids == free_run.token_ids[: stop_at + 1]
    assert seq.token_ids[-1] == eos_token
    assert seq.token_ids == expected.tokens[0]


def test_greedy_score_is_the_sum_of_chosen_log_probabilities(tiny_model):
    ids = tiny_model.prompt(5, 4)
    seq = run_greedy(tiny_model.model, ids, max_new_tokens=6, eos_token_ids=[])
    full = torch.cat([ids, torch.tensor([seq.token_ids])], dim=1)
    with torch.inference_mode():
        log_probs = torch.log_softmax(tiny_model.model(full).logits[0].float(), dim=-1)
    prompt_len = ids.shape[1]
    expected = sum(float(log_probs[prompt_len - 1 + i, t]) for i, t in enumerate(seq.token_ids))
    assert seq.score is not None and math.isclose(seq.score, expected, abs_tol=1e-4)
    # Greedy picks each step's argmax under the full (uncached) forward too.
    assert seq.token_ids == log_probs[prompt_len - 1 : -1].argmax(-1).tolist()


def test_greedy_runs_one_forward_per_token_and_signals_first_token_after_prefill(tiny_model, counting_model):
    model = counting_model(tiny_model.model)
    ids = tiny_model.prompt(6, 9)
    calls_at_first_token: list[int] = []
    seq = run_greedy(
        model,
        ids,
        max_new_tokens=7,
        eos_token_ids=[],
        on_first_token=lambda: calls_at_first_token.append(len(model.calls)),
    )
    assert len(seq.token_ids) == 7 and seq.finish_reason == "length"
    assert calls_at_first_token == [1]  # once, right after the prefill chose the first token
    assert model.calls == [(1, 9)] + [(1, 1)] * 6  # prefill, then one cached step per further token


def test_greedy_with_one_new_token_returns_a_length_finish(tiny_model, hf_generate):
    ids = tiny_model.prompt(7, 5)
    seq = run_greedy(tiny_model.model, ids, max_new_tokens=1, eos_token_ids=[tiny_model.eos_token_id])
    expected = hf_generate(
        tiny_model.model,
        ids,
        eos_token_ids=[tiny_model.eos_token_id],
        pad_token_id=0,
        do_sample=False,
        max_new_tokens=1,
    )
    assert seq.token_ids == expected.tokens[0]
    assert len(seq.token_ids) == 1


def test_greedy_rejects_a_batch_of_prompts(tiny_model):
    ids = torch.cat([tiny_model.prompt(8, 4)] * 2)
    with pytest.raises(AssertionError):
        run_greedy(tiny_model.model, ids, max_new_tokens=4, eos_token_ids=[])


@pytest.mark.parametrize("prompt", ["plain", "chat_capital", "chat_poem"])
def test_greedy_matches_transformers_generate_on_smollm2(smollm, smollm_prompts, hf_generate, prompt):
    ids = smollm_prompts[prompt]
    eos = smollm.eos_token_ids
    expected = hf_generate(
        smollm.model,
        ids,
        eos_token_ids=eos,
        pad_token_id=smollm.tokenizer.pad_token_id,
        do_sample=False,
        num_beams=1,
        max_new_tokens=16,
    )
    seq = run_greedy(smollm.model, ids, max_new_tokens=16, eos_token_ids=eos)
    assert seq.token_ids == expected.tokens[0]
    assert seq.finish_reason == ("eos" if seq.token_ids[-1] in eos else "length")
    if prompt == "chat_capital":  # a short factual answer: the model ends its turn
        assert seq.finish_reason == "eos"
