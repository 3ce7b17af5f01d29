"""Sampling against transformers' ``generate(do_sample=True)``.

The oracle is seeded with ``torch.manual_seed(seed)`` (generate draws from the global CPU
generator); our decoder gets ``torch.Generator().manual_seed(seed)``. Both streams are the
same, so the samples must be identical token for token. The processors and warpers themselves
are checked one by one in ``test_logits.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.workers.decoders.helpers import recorded_forwards
from workers.decoders import greedy, logits, sampling
from workers.strategies import GreedyConfig, SamplingConfig


def run_sampling(model, input_ids, config, *, seed, max_new_tokens, eos_token_ids, on_first_token=None):
    kwargs = {} if on_first_token is None else {"on_first_token": on_first_token}
    return sampling.decode(
        model,
        input_ids,
        config,
        max_new_tokens=max_new_tokens,
        eos_token_ids=eos_token_ids,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )


def oracle_sampling(hf_generate, model, input_ids, config, *, seed, max_new_tokens, eos_token_ids, pad_token_id):
    torch.manual_seed(seed)
    return hf_generate(
        model,
        input_ids,
        eos_token_ids=eos_token_ids,
        pad_token_id=pad_token_id,
        do_sample=True,
        num_beams=1,
        temperature=config.temperature,
        top_k=config.top_k,
        top_p=config.top_p,
        min_p=config.min_p,  # 0.0 makes generate run MinPLogitsWarper(0.0), which removes nothing
        typical_p=config.typical_p,
        repetition_penalty=config.repetition_penalty,
        num_return_sequences=config.num_return_sequences,
        max_new_tokens=max_new_tokens,
    )


# --- the decoder -------------------------------------------------------------------------

SAMPLING_CASES = [
    SamplingConfig(temperature=1.0, top_k=50, top_p=1.0, num_return_sequences=1),
    SamplingConfig(temperature=0.7, top_k=0, top_p=0.9, num_return_sequences=3),
    SamplingConfig(temperature=1.5, top_k=20, top_p=0.8, num_return_sequences=4),
    # The repetition penalty (over prompt and generated tokens), min-p and typical-p.
    SamplingConfig(temperature=1.0, top_k=0, repetition_penalty=1.3, num_return_sequences=3),
    SamplingConfig(temperature=1.2, top_k=0, min_p=0.1, num_return_sequences=2),
    SamplingConfig(temperature=1.0, top_k=0, typical_p=0.8, num_return_sequences=3),
    SamplingConfig(
        temperature=0.9, top_k=40, top_p=0.95, min_p=0.05, typical_p=0.9, repetition_penalty=0.8, num_return_sequences=4
    ),
]


def case_id(c: SamplingConfig) -> str:
    extras = f"-minp{c.min_p}-typ{c.typical_p}-rep{c.repetition_penalty}"
    return f"t{c.temperature}-k{c.top_k}-p{c.top_p}{extras}-n{c.num_return_sequences}"


@pytest.mark.parametrize("config", SAMPLING_CASES, ids=case_id)
@pytest.mark.parametrize("seed", [0, 1234])
def test_sampling_matches_transformers_generate_with_the_same_seed_on_tiny_model(tiny_model, hf_generate, config, seed):
    ids = tiny_model.prompt(seed + 11, 6)
    eos = [tiny_model.eos_token_id]
    ours = run_sampling(tiny_model.model, ids, config, seed=seed, max_new_tokens=20, eos_token_ids=eos)
    expected = oracle_sampling(
        hf_generate,
        tiny_model.model,
        ids,
        config,
        seed=seed,
        max_new_tokens=20,
        eos_token_ids=eos,
        pad_token_id=tiny_model.pad_token_id,
    )
    assert [s.token_ids for s in ours] == expected.tokens
    assert len(ours) == config.num_return_sequences


def test_sampling_stops_each_row_at_eos_like_generate_on_tiny_model(tiny_model, hf_generate):
    config = SamplingConfig(temperature=1.0, top_k=8, top_p=1.0, num_return_sequences=4)
    ids = tiny_model.prompt(21, 5)
    seed = 7
    free_run = run_sampling(tiny_model.model, ids, config, seed=seed, max_new_tokens=16, eos_token_ids=[])
    assert all(s.finish_reason == "length" and len(s.token_ids) == 16 for s in free_run)
    # Make row 0's fourth token an end of sequence; the other rows may or may not meet it.
    eos_token = free_run[0].token_ids[3]
    eos = [eos_token]

    ours = run_sampling(tiny_model.model, ids, config, seed=seed, max_new_tokens=16, eos_token_ids=eos)
    expected = oracle_sampling(
        hf_generate,
        tiny_model.model,
        ids,
        config,
        seed=seed,
        max_new_tokens=16,
        eos_token_ids=eos,
        pad_token_id=tiny_model.pad_token_id,
    )
    assert [s.token_ids for s in ours] == expected.tokens
    for free, seq in zip(free_run, ours, strict=True):
        # Same stream, so each row is its free run cut at its first eos (inclusive).
        if eos_token in free.token_ids:
            cut = free.token_ids.index(eos_token) + 1
            assert seq.token_ids == free.token_ids[:cut] and seq.finish_reason == "eos"
        else:
            assert seq.token_ids == free.token_ids and seq.finish_reason == "length"
    assert ours[0].finish_reason == "eos" and len(ours[0].token_ids) <= 4
    assert any(s.finish_reason == "length" for s in ours)  # finished and running rows were mixed


def test_sampling_with_the_same_seed_repeats_and_with_another_seed_differs(tiny_model):
    config = SamplingConfig(temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=2)
    ids = tiny_model.prompt(31, 5)
    first = run_sampling(tiny_model.model, ids, config, seed=42, max_new_tokens=16, eos_token_ids=[])
    again = run_sampling(tiny_model.model, ids, config, seed=42, max_new_tokens=16, eos_token_ids=[])
    other = run_sampling(tiny_model.model, ids, config, seed=43, max_new_tokens=16, eos_token_ids=[])
    assert [s.token_ids for s in first] == [s.token_ids for s in again]
    assert [s.score for s in first] == [s.score for s in again]
    assert [s.token_ids for s in first] != [s.token_ids for s in other]
    assert first[0].token_ids != first[1].token_ids  # the rows are independent draws


def test_sampling_draws_only_from_the_given_generator(tiny_model):
    config = SamplingConfig(num_return_sequences=2)
    ids = tiny_model.prompt(41, 5)
    torch.manual_seed(99)
    global_state = torch.get_rng_state()
    generator = torch.Generator().manual_seed(5)
    generator_state = generator.get_state()
    sampling.decode(tiny_model.model, ids, config, max_new_tokens=8, eos_token_ids=[], generator=generator)
    assert torch.equal(torch.get_rng_state(), global_state)
    assert not torch.equal(generator.get_state(), generator_state)


def test_sampling_with_top_k_one_is_greedy(tiny_model):
    ids = tiny_model.prompt(51, 7)
    [sampled] = run_sampling(
        tiny_model.model, ids, SamplingConfig(top_k=1), seed=3, max_new_tokens=12, eos_token_ids=[]
    )
    [best] = greedy.decode(
        tiny_model.model, ids, GreedyConfig(), max_new_tokens=12, eos_token_ids=[], generator=torch.Generator()
    )
    assert sampled.token_ids == best.token_ids
    assert sampled.score == 0.0  # a single surviving token has probability one


def test_sampling_score_is_the_log_probability_under_the_warped_distribution(tiny_model):
    config = SamplingConfig(temperature=0.8, top_k=30, top_p=0.95)
    ids = tiny_model.prompt(61, 4)
    [seq] = run_sampling(tiny_model.model, ids, config, seed=8, max_new_tokens=6, eos_token_ids=[])
    full = torch.cat([ids, torch.tensor([seq.token_ids])], dim=1)
    with torch.inference_mode():
        raw = tiny_model.model(full).logits[0].float()  # [len, vocab]
    warped = logits.warp(raw, temperature=0.8, top_k=30, top_p=0.95)
    log_probs = torch.log_softmax(warped, dim=-1)
    start = ids.shape[1] - 1
    expected = sum(float(log_probs[start + i, t]) for i, t in enumerate(seq.token_ids))
    assert seq.score is not None and math.isfinite(seq.score)
    assert math.isclose(seq.score, expected, abs_tol=1e-3)


def test_sampling_repetition_penalty_covers_the_prompt_and_the_generated_tokens(tiny_model):
    """The score is the log-probability under the processed distribution; recomputing it from
    an uncached forward pass needs the penalty over the prompt *and* the tokens generated so far."""
    config = SamplingConfig(temperature=0.9, top_k=0, min_p=0.02, typical_p=0.95, repetition_penalty=3.0)
    ids = tiny_model.prompt(62, 6)
    [seq] = run_sampling(tiny_model.model, ids, config, seed=9, max_new_tokens=8, eos_token_ids=[])
    full = torch.cat([ids, torch.tensor([seq.token_ids])], dim=1)  # [1, prompt_len + 8]
    with torch.inference_mode():
        raw = tiny_model.model(full).logits[0].float()  # [len, vocab]
    prompt_len = ids.shape[1]

    def score_with_history(history_start: int) -> float:
        total = 0.0
        for i, token in enumerate(seq.token_ids):
            position = prompt_len - 1 + i
            processed = logits.process(
                raw[position : position + 1],
                full[:, history_start : position + 1],
                repetition_penalty=3.0,
                temperature=0.9,
                min_p=0.02,
                typical_p=0.95,
            )
            total += float(torch.log_softmax(processed, dim=-1)[0, token])
        return total

    assert math.isclose(seq.score, score_with_history(0), abs_tol=1e-3)
    assert not math.isclose(seq.score, score_with_history(prompt_len), abs_tol=1e-3)  # prompt left out


def test_sampling_signals_first_token_once_after_prefill(tiny_model):
    ids = tiny_model.prompt(71, 6)
    calls_at_first_token: list[int] = []
    with recorded_forwards(tiny_model.model) as calls:
        out = run_sampling(
            tiny_model.model,
            ids,
            SamplingConfig(num_return_sequences=3),
            seed=1,
            max_new_tokens=5,
            eos_token_ids=[],
            on_first_token=lambda: calls_at_first_token.append(len(calls)),
        )
    assert calls_at_first_token == [1]
    assert calls == [(3, 6)] + [(3, 1)] * 4  # one batched forward per step for all rows
    assert [len(s.token_ids) for s in out] == [5, 5, 5]


@pytest.mark.parametrize(
    ("prompt", "config", "seed"),
    [
        ("chat_poem", SamplingConfig(temperature=0.8, top_k=40, top_p=0.9, num_return_sequences=2), 0),
        ("plain", SamplingConfig(temperature=1.0, top_k=50, top_p=1.0, num_return_sequences=1), 17),
        ("chat_capital", SamplingConfig(temperature=1.2, top_k=0, top_p=0.95, num_return_sequences=3), 5),
        (
            "chat_poem",
            SamplingConfig(
                temperature=0.8,
                top_k=0,
                top_p=0.95,
                min_p=0.05,
                typical_p=0.9,
                repetition_penalty=1.3,
                num_return_sequences=2,
            ),
            3,
        ),
    ],
)
def test_sampling_matches_transformers_generate_on_smollm2(smollm, smollm_prompts, hf_generate, prompt, config, seed):
    ids = smollm_prompts[prompt]
    eos = smollm.eos_token_ids
    ours = run_sampling(smollm.model, ids, config, seed=seed, max_new_tokens=12, eos_token_ids=eos)
    expected = oracle_sampling(
        hf_generate,
        smollm.model,
        ids,
        config,
        seed=seed,
        max_new_tokens=12,
        eos_token_ids=eos,
        pad_token_id=smollm.tokenizer.pad_token_id,
    )
    assert [s.token_ids for s in ours] == expected.tokens
    for seq in ours:
        assert seq.finish_reason == ("eos" if seq.token_ids[-1] in eos else "length")
