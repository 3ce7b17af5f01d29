"""Contrastive search against transformers 4.55.4's contrastive search and against greedy search.

transformers 5 has no contrastive search, so the oracle is a recording: the token ids that
``scripts/record_decoder_references.py`` took from transformers 4.55.4's
``generate(penalty_alpha=..., top_k=...)`` on the same models (the test checks the weights are
the recorded ones, bit for bit). Every output must match token for token.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.workers.decoders import references
from tests.workers.decoders.helpers import recorded_forwards
from workers.decoders import DECODERS, contrastive, greedy
from workers.strategies import ContrastiveConfig, GreedyConfig


def recorded_cases(model_name: str) -> list[dict]:
    return references.recorded_cases(model_name, "contrastive")


def run(model, input_ids, config, *, max_new_tokens, eos_token_ids, on_first_token=None):
    kwargs = {} if on_first_token is None else {"on_first_token": on_first_token}
    [seq] = contrastive.decode(
        model,
        input_ids,
        config,
        max_new_tokens=max_new_tokens,
        eos_token_ids=eos_token_ids,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )
    return seq


def run_greedy(model, input_ids, *, max_new_tokens, eos_token_ids):
    [seq] = greedy.decode(model, input_ids, GreedyConfig(), max_new_tokens=max_new_tokens, eos_token_ids=eos_token_ids)
    return seq


# --- transformers 4.55.4's recordings -----------------------------------------------------


def check_recorded_case(model, case) -> None:
    seq = run(
        model,
        torch.tensor([case["input_ids"]]),
        ContrastiveConfig(**case["params"]),
        max_new_tokens=case["max_new_tokens"],
        eos_token_ids=case["eos_token_ids"],
    )
    [expected] = case["outputs"]
    context = f"{case['model']} {case['params']} eos={case['eos_token_ids']}"
    assert seq.token_ids == expected["token_ids"], context
    assert seq.finish_reason == ("eos" if seq.token_ids[-1] in case["eos_token_ids"] else "length"), context


def test_contrastive_matches_transformers_4_55_recordings_on_tiny_model(tiny_model):
    name = f"tiny-{tiny_model.name}"
    references.assert_is_the_recorded_model(tiny_model.model, name)
    cases = recorded_cases(name)
    assert len(cases) >= 3
    assert any(c["outputs"][0]["token_ids"][-1] in c["eos_token_ids"] for c in cases)  # eos endings covered
    for case in cases:
        check_recorded_case(tiny_model.model, case)


def test_contrastive_matches_transformers_4_55_recordings_on_smollm2(smollm):
    references.assert_is_the_recorded_model(smollm.model, "smollm2-135m")
    cases = recorded_cases("smollm2-135m")
    assert len(cases) >= 2
    for case in cases:
        assert case["eos_token_ids"] == smollm.eos_token_ids
        check_recorded_case(smollm.model, case)
    # The recordings are not greedy in disguise: the penalty changed some choices.
    chat = recorded_cases("smollm2-135m")[0]
    ids = torch.tensor([chat["input_ids"]])
    plain = run_greedy(smollm.model, ids, max_new_tokens=chat["max_new_tokens"], eos_token_ids=chat["eos_token_ids"])
    assert plain.token_ids != chat["outputs"][0]["token_ids"]


# --- penalty_alpha = 0 is greedy search ---------------------------------------------------


@pytest.mark.parametrize("top_k", [2, 5])
def test_penalty_alpha_zero_is_greedy_search(tiny_model, hf_generate, top_k):
    """``generate`` runs greedy search for ``penalty_alpha == 0``, and so does ``decode``; the
    contrastive loop itself (``search``) with ``alpha == 0`` ranks by probability alone and
    picks the same tokens, through its batched candidate forwards and cache selection."""
    eos = [tiny_model.eos_token_id]
    for prompt_seed in range(3):
        ids = tiny_model.prompt(1100 + prompt_seed, 5 + prompt_seed)
        expected = run_greedy(tiny_model.model, ids, max_new_tokens=16, eos_token_ids=eos)
        oracle = hf_generate(
            tiny_model.model,
            ids,
            eos_token_ids=eos,
            pad_token_id=tiny_model.pad_token_id,
            do_sample=False,
            penalty_alpha=0.0,
            top_k=top_k,
            max_new_tokens=16,
        )
        seq = run(
            tiny_model.model,
            ids,
            ContrastiveConfig(penalty_alpha=0.0, top_k=top_k),
            max_new_tokens=16,
            eos_token_ids=eos,
        )
        assert seq.token_ids == expected.token_ids == oracle.tokens[0]
        loop = contrastive.search(
            tiny_model.model, ids, penalty_alpha=0.0, top_k=top_k, max_new_tokens=16, eos_token_ids=eos
        )
        assert loop.token_ids == expected.token_ids
        assert math.isclose(loop.score, expected.score, abs_tol=1e-4)
        assert loop.metrics["non_greedy_choices"] == 0


def test_penalty_alpha_zero_is_greedy_search_on_smollm2(smollm, smollm_prompts):
    ids = smollm_prompts["chat_capital"]
    eos = smollm.eos_token_ids
    expected = run_greedy(smollm.model, ids, max_new_tokens=10, eos_token_ids=eos)
    loop = contrastive.search(smollm.model, ids, penalty_alpha=0.0, top_k=3, max_new_tokens=10, eos_token_ids=eos)
    assert loop.token_ids == expected.token_ids


# --- what each step computes --------------------------------------------------------------


def test_token_info_is_what_an_uncached_forward_pass_gives(tiny_model):
    """Each chosen token's probability, candidate rank and degeneration penalty (max cosine
    similarity of its last hidden state to all earlier positions'), recomputed from one
    forward pass over the whole output without a cache; and ``score`` is the sum of log-probs."""
    ids = tiny_model.prompt(1200, 6)
    seq = run(tiny_model.model, ids, ContrastiveConfig(penalty_alpha=0.6, top_k=4), max_new_tokens=12, eos_token_ids=[])
    assert len(seq.token_ids) == 12 and seq.finish_reason == "length"
    full = torch.cat([ids, torch.tensor([seq.token_ids])], dim=1)  # [1, prompt_len + 12]
    with torch.inference_mode():
        out = tiny_model.model(full, output_hidden_states=True)
    probs = torch.softmax(out.logits[0].float(), dim=-1)  # [len, vocab]
    hidden = out.hidden_states[-1][0]  # [len, H]
    unit = hidden / hidden.norm(dim=-1, keepdim=True)
    prompt_len = ids.shape[1]
    total = 0.0
    for i, (token, info) in enumerate(zip(seq.token_ids, seq.token_info, strict=True)):
        position = prompt_len + i  # where the chosen token sits
        expected_penalty = float((unit[:position] @ unit[position]).max())
        assert math.isclose(info["degeneration_penalty"], expected_penalty, abs_tol=1e-4), i
        assert math.isclose(info["prob"], float(probs[position - 1, token]), abs_tol=1e-5), i
        ranked = torch.topk(probs[position - 1], 4).indices.tolist()
        assert ranked[info["candidate_rank"]] == token, i
        total += math.log(float(probs[position - 1, token]))
    assert math.isclose(seq.score, total, abs_tol=1e-3)
    assert seq.metrics["non_greedy_choices"] == sum(1 for info in seq.token_info if info["candidate_rank"])
    assert seq.metrics["non_greedy_choices"] > 0  # alpha = 0.6 overrides the model on this random model


def test_degeneration_penalty_is_the_largest_cosine_similarity():
    context = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]]).repeat(2, 1, 1)  # [2, 3, 2]
    candidates = torch.tensor([[[1.0, 1.0]], [[-1.0, 0.0]]])  # [2, 1, 2]
    penalty = contrastive._degeneration_penalty(context, candidates)
    assert torch.allclose(penalty, torch.tensor([2**-0.5, 1.0]))


def test_contrastive_runs_one_forward_over_the_candidates_per_token(tiny_model):
    ids = tiny_model.prompt(1300, 7)
    calls_at_first_token: list[int] = []
    with recorded_forwards(tiny_model.model) as calls:
        seq = run(
            tiny_model.model,
            ids,
            ContrastiveConfig(penalty_alpha=0.5, top_k=3),
            max_new_tokens=5,
            eos_token_ids=[],
            on_first_token=lambda: calls_at_first_token.append(len(calls)),
        )
    assert len(seq.token_ids) == 5
    assert calls == [(1, 7)] + [(3, 1)] * 5  # prefill, then the k candidates of every step as one batch
    assert calls_at_first_token == [2]  # the first choice needs the first candidates' hidden states


def test_contrastive_stops_at_eos(tiny_model):
    ids = tiny_model.prompt(1301, 5)
    config = ContrastiveConfig(penalty_alpha=0.6, top_k=4)
    free = run(tiny_model.model, ids, config, max_new_tokens=12, eos_token_ids=[])
    eos_token = next(t for i, t in enumerate(free.token_ids) if i >= 3 and t not in free.token_ids[:i])
    cut = free.token_ids.index(eos_token) + 1
    seq = run(tiny_model.model, ids, config, max_new_tokens=12, eos_token_ids=[eos_token])
    assert seq.token_ids == free.token_ids[:cut] and seq.finish_reason == "eos"
    assert len(seq.token_info) == len(seq.token_ids)


def test_contrastive_checks_its_inputs(tiny_model):
    ids = tiny_model.prompt(1302, 4)
    with pytest.raises(AssertionError):
        run(tiny_model.model, torch.cat([ids, ids]), ContrastiveConfig(), max_new_tokens=4, eos_token_ids=[])
    with pytest.raises(AssertionError):
        run(tiny_model.model, ids, GreedyConfig(), max_new_tokens=4, eos_token_ids=[])
    with pytest.raises(ValueError):
        run(tiny_model.model, ids, ContrastiveConfig(), max_new_tokens=0, eos_token_ids=[])


def test_registry_maps_contrastive_to_its_decoder():
    assert DECODERS["contrastive"] is contrastive.decode
