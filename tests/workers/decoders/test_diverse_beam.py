"""Diverse (group) beam search against transformers 4.55.4's group beam search and our beam search.

transformers 5 has no group beam search, so the oracle is a recording: token ids, scores and
groups that ``scripts/record_decoder_references.py`` took from transformers 4.55.4's
``generate(num_beam_groups=..., diversity_penalty=...)`` on the same models (the test checks the
weights are the recorded ones, bit for bit). Every output must match token for token, its
score within 1e-4 and its group exactly.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.workers.decoders import references
from tests.workers.decoders.helpers import recorded_forwards
from workers.decoders import DECODERS, beam, diverse_beam
from workers.strategies import BeamConfig, DiverseBeamConfig


def recorded_cases(model_name: str) -> list[dict]:
    return references.recorded_cases(model_name, "diverse_beam")


def run(model, input_ids, config, *, max_new_tokens, eos_token_ids, on_first_token=None):
    kwargs = {} if on_first_token is None else {"on_first_token": on_first_token}
    return diverse_beam.decode(
        model,
        input_ids,
        config,
        max_new_tokens=max_new_tokens,
        eos_token_ids=eos_token_ids,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )


def run_groups(
    model, input_ids, *, num_beams, num_groups, max_new_tokens, eos_token_ids, best_running_only=False, **kw
):
    """The group loop itself, every hypothesis of every group, best first."""
    hypotheses = diverse_beam._search(
        model,
        input_ids,
        num_beams=num_beams,
        num_groups=num_groups,
        diversity_penalty=kw.get("diversity_penalty", 0.5),
        length_penalty=kw.get("length_penalty", 1.0),
        early_stopping=kw.get("early_stopping", False),
        max_new_tokens=max_new_tokens,
        eos_token_ids=list(eos_token_ids),
        on_first_token=lambda: None,
        best_running_only=best_running_only,
    )
    return sorted(hypotheses, key=lambda h: h.score, reverse=True)


def assert_same_hypotheses(ours, expected, context) -> None:
    assert [h.token_ids for h in ours] == [h.token_ids for h in expected], context
    for a, b in zip(ours, expected, strict=True):
        assert math.isclose(a.score, b.score, abs_tol=1e-4), (context, a.score, b.score)


# --- transformers 4.55.4's recordings -----------------------------------------------------


def check_recorded_case(model, case) -> None:
    ours = run(
        model,
        torch.tensor([case["input_ids"]]),
        DiverseBeamConfig(**case["params"]),
        max_new_tokens=case["max_new_tokens"],
        eos_token_ids=case["eos_token_ids"],
    )
    expected = case["outputs"]
    context = f"{case['model']} {case['params']} eos={case['eos_token_ids']}"
    assert [s.token_ids for s in ours] == [e["token_ids"] for e in expected], context
    for seq, exp in zip(ours, expected, strict=True):
        assert math.isclose(seq.score, exp["score"], abs_tol=1e-4), (context, seq.score, exp["score"])
        assert seq.group == exp["group"], context
        assert seq.finish_reason == ("eos" if seq.token_ids[-1] in case["eos_token_ids"] else "length"), context


def test_diverse_beam_matches_transformers_4_55_recordings_on_tiny_model(tiny_model):
    name = f"tiny-{tiny_model.name}"
    references.assert_is_the_recorded_model(tiny_model.model, name)
    cases = recorded_cases(name)
    assert len(cases) >= 5
    assert any(s["outputs"][0]["token_ids"][-1] in s["eos_token_ids"] for s in cases)  # early endings covered
    for case in cases:
        check_recorded_case(tiny_model.model, case)


def test_diverse_beam_matches_transformers_4_55_recordings_on_smollm2(smollm):
    references.assert_is_the_recorded_model(smollm.model, "smollm2-135m")
    cases = recorded_cases("smollm2-135m")
    assert len(cases) >= 2
    for case in cases:
        assert case["eos_token_ids"] == smollm.eos_token_ids
        check_recorded_case(smollm.model, case)


# --- (a) one group is beam search ----------------------------------------------------------

ONE_GROUP_CASES = [
    DiverseBeamConfig(num_beams=2, num_beam_groups=1, num_return_sequences=2, length_penalty=1.0),
    DiverseBeamConfig(num_beams=4, num_beam_groups=1, num_return_sequences=3, length_penalty=0.5, early_stopping=True),
    DiverseBeamConfig(num_beams=3, num_beam_groups=1, num_return_sequences=3, length_penalty=2.0),
    DiverseBeamConfig(num_beams=1, num_beam_groups=1, num_return_sequences=1, length_penalty=1.0),
]


def one_group_id(c: DiverseBeamConfig) -> str:
    return f"b{c.num_beams}-n{c.num_return_sequences}-lp{c.length_penalty}-es{c.early_stopping}"


@pytest.mark.parametrize("config", ONE_GROUP_CASES, ids=one_group_id)
def test_one_group_equals_beam_search_and_transformers_generate(tiny_model, hf_generate, config):
    """As in generate, ``num_beam_groups == 1`` is plain beam search (greedy for one beam)."""
    ids = tiny_model.prompt(600 + config.num_beams, 6)
    beam_config = BeamConfig(
        num_beams=config.num_beams,
        num_return_sequences=config.num_return_sequences,
        length_penalty=config.length_penalty,
        early_stopping=config.early_stopping,
    )
    free = beam.decode(
        tiny_model.model, ids, BeamConfig(num_beams=4, num_return_sequences=1), max_new_tokens=12, eos_token_ids=[]
    )
    for eos in ([tiny_model.eos_token_id], [free[0].token_ids[3]]):  # the model's eos, then one it reaches
        ours = run(tiny_model.model, ids, config, max_new_tokens=12, eos_token_ids=eos)
        expected = beam.decode(tiny_model.model, ids, beam_config, max_new_tokens=12, eos_token_ids=eos)
        oracle = hf_generate(
            tiny_model.model,
            ids,
            eos_token_ids=eos,
            pad_token_id=tiny_model.pad_token_id,
            do_sample=False,
            num_beams=config.num_beams,
            num_return_sequences=config.num_return_sequences,
            length_penalty=config.length_penalty,
            early_stopping=config.early_stopping,
            max_new_tokens=12,
        )
        assert [s.token_ids for s in ours] == [s.token_ids for s in expected] == oracle.tokens
        for seq, ref in zip(ours, expected, strict=True):
            assert math.isclose(seq.score, ref.score, abs_tol=1e-4)
            assert seq.group == 0
        if oracle.scores is not None:  # generate reports no sequences_scores for one beam
            for seq, score in zip(ours, oracle.scores, strict=True):
                assert math.isclose(seq.score, score, abs_tol=1e-4)


def test_the_group_loop_with_one_group_is_beam_search_but_for_the_done_test(tiny_model):
    """The group loop itself, run with one group, is transformers 4's ``BeamSearchScorer`` beam
    search. With transformers 5's done test (``best_running_only``) it equals
    ``workers.decoders.beam`` on every case, including eos endings; with its own done test it
    differs only where that test lets it search on (pinned below)."""
    for prompt_seed in range(4):
        ids = tiny_model.prompt(700 + prompt_seed, 5)
        for num_beams, length_penalty, early_stopping in [(2, 1.0, False), (4, 0.5, True), (3, 2.0, False)]:
            free = beam.decode(
                tiny_model.model,
                ids,
                BeamConfig(num_beams=num_beams, num_return_sequences=num_beams),
                max_new_tokens=10,
                eos_token_ids=[],
            )
            for position in (1, 4):
                eos = [free[0].token_ids[position]]
                expected = beam.decode(
                    tiny_model.model,
                    ids,
                    BeamConfig(
                        num_beams=num_beams,
                        num_return_sequences=num_beams,
                        length_penalty=length_penalty,
                        early_stopping=early_stopping,
                    ),
                    max_new_tokens=10,
                    eos_token_ids=eos,
                )
                ours = run_groups(
                    tiny_model.model,
                    ids,
                    num_beams=num_beams,
                    num_groups=1,
                    max_new_tokens=10,
                    eos_token_ids=eos,
                    length_penalty=length_penalty,
                    early_stopping=early_stopping,
                    best_running_only=True,
                )
                assert_same_hypotheses(ours, expected, (prompt_seed, num_beams, length_penalty, position))


# (prompt seed, num_beams, eos position) of an input where transformers 4's done test (best of
# all candidates, eos included) keeps searching after transformers 5's (best running beam) stops.
DONE_TEST_DISAGREES = {"peaked": (7, 2, 3), "flat": (1, 4, 1)}


def test_the_two_done_tests_really_differ_on_a_pinned_input(tiny_model):
    prompt_seed, num_beams, position = DONE_TEST_DISAGREES[tiny_model.name]
    ids = tiny_model.prompt(prompt_seed, 5)
    free = beam.decode(
        tiny_model.model,
        ids,
        BeamConfig(num_beams=num_beams, num_return_sequences=num_beams),
        max_new_tokens=10,
        eos_token_ids=[],
    )
    eos = [free[0].token_ids[position]]
    five = beam.decode(
        tiny_model.model,
        ids,
        BeamConfig(num_beams=num_beams, num_return_sequences=num_beams),
        max_new_tokens=10,
        eos_token_ids=eos,
    )
    common = {"num_beams": num_beams, "num_groups": 1, "max_new_tokens": 10, "eos_token_ids": eos}
    assert_same_hypotheses(run_groups(tiny_model.model, ids, best_running_only=True, **common), five, "5.x rule")
    four = run_groups(tiny_model.model, ids, **common)
    assert [h.token_ids for h in four] != [h.token_ids for h in five]
    # Searching on only ever replaces a finished hypothesis with a better one.
    assert all(a.score >= b.score for a, b in zip(four, five, strict=True))
    assert any(a.score > b.score for a, b in zip(four, five, strict=True))


# --- (b) the first group is beam search with num_beams / num_beam_groups beams ------------

FIRST_GROUP_CASES = [
    DiverseBeamConfig(num_beams=4, num_beam_groups=2, diversity_penalty=0.5, num_return_sequences=4),
    DiverseBeamConfig(
        num_beams=6, num_beam_groups=3, diversity_penalty=1.0, num_return_sequences=6, early_stopping=True
    ),
    DiverseBeamConfig(
        num_beams=6, num_beam_groups=2, diversity_penalty=2.0, num_return_sequences=6, length_penalty=0.5
    ),
    DiverseBeamConfig(num_beams=4, num_beam_groups=4, diversity_penalty=1.0, num_return_sequences=4),
]


def group_id(c: DiverseBeamConfig) -> str:
    return f"b{c.num_beams}-g{c.num_beam_groups}-d{c.diversity_penalty}-lp{c.length_penalty}-es{c.early_stopping}"


@pytest.mark.parametrize("config", FIRST_GROUP_CASES, ids=group_id)
def test_first_group_is_beam_search_with_num_beams_over_num_beam_groups_beams(tiny_model, config):
    """The diversity penalty only lowers later groups, so group 0 is a beam search with
    ``S = num_beams / num_beam_groups`` beams: all ``num_beams`` hypotheses are returned
    (``num_return_sequences == num_beams``) and group 0's ``S`` of them are that search's n-best."""
    size = config.num_beams // config.num_beam_groups
    ids = tiny_model.prompt(800 + config.num_beams + config.num_beam_groups, 6)
    free = beam.decode(
        tiny_model.model, ids, BeamConfig(num_beams=size, num_return_sequences=1), max_new_tokens=12, eos_token_ids=[]
    )
    options = {"length_penalty": config.length_penalty, "early_stopping": config.early_stopping}
    beam_config = BeamConfig(num_beams=size, num_return_sequences=size, **options)
    for eos in ([tiny_model.eos_token_id], [free[0].token_ids[2]], [free[0].token_ids[5]]):
        out = run(tiny_model.model, ids, config, max_new_tokens=12, eos_token_ids=eos)
        assert len(out) == config.num_beams
        assert sorted(s.group for s in out) == sorted(list(range(config.num_beam_groups)) * size)
        first_group = [s for s in out if s.group == 0]
        # Our own beam search with S beams (workers.decoders.beam), transformers 5's rules...
        expected = beam.decode(tiny_model.model, ids, beam_config, max_new_tokens=12, eos_token_ids=eos)
        assert_same_hypotheses(first_group, expected, ("beam", eos))
        # ... and transformers 4's BeamSearchScorer beam search with S beams (the group loop, one
        # group), to which group 0 is equal by construction whatever the done test does.
        scorer = run_groups(
            tiny_model.model, ids, num_beams=size, num_groups=1, max_new_tokens=12, eos_token_ids=eos, **options
        )
        assert_same_hypotheses(first_group, scorer, ("scorer", eos))


# --- properties ----------------------------------------------------------------------------


def test_a_large_diversity_penalty_makes_every_group_start_differently(tiny_model):
    ids = tiny_model.prompt(900, 6)
    config = DiverseBeamConfig(num_beams=4, num_beam_groups=4, diversity_penalty=100.0, num_return_sequences=4)
    out = run(tiny_model.model, ids, config, max_new_tokens=8, eos_token_ids=[])
    assert sorted(s.group for s in out) == [0, 1, 2, 3]
    assert len({s.token_ids[0] for s in out}) == 4  # each group avoided the earlier groups' tokens
    assert all(len({s.token_ids[t] for s in out}) == 4 for t in range(8))  # at every step
    scores = [s.score for s in out]
    assert scores == sorted(scores, reverse=True)  # the n-best across groups, best first
    [greedy_like] = [s for s in out if s.group == 0]  # one beam per group: group 0 is greedy
    [best] = beam.decode(
        tiny_model.model, ids, BeamConfig(num_beams=1, num_return_sequences=1), max_new_tokens=8, eos_token_ids=[]
    )
    assert greedy_like.token_ids == best.token_ids


def test_without_a_diversity_penalty_the_groups_do_not_interact(tiny_model):
    ids = tiny_model.prompt(901, 6)
    hypotheses = run_groups(
        tiny_model.model, ids, num_beams=6, num_groups=2, max_new_tokens=8, eos_token_ids=[], diversity_penalty=0.0
    )
    by_group = [[h for h in hypotheses if h.group == g] for g in (0, 1)]
    assert_same_hypotheses(by_group[1], by_group[0], "identical groups")


def test_diverse_beam_runs_one_forward_per_step_over_all_beams(tiny_model):
    ids = tiny_model.prompt(902, 7)
    calls_at_first_token: list[int] = []
    config = DiverseBeamConfig(num_beams=6, num_beam_groups=3, num_return_sequences=2)
    with recorded_forwards(tiny_model.model) as calls:
        out = run(
            tiny_model.model,
            ids,
            config,
            max_new_tokens=5,
            eos_token_ids=[],
            on_first_token=lambda: calls_at_first_token.append(len(calls)),
        )
    assert calls_at_first_token == [1]
    assert calls == [(6, 7)] + [(6, 1)] * 4  # prefill of the repeated prompt, then one step for all groups
    assert [len(s.token_ids) for s in out] == [5, 5]
    assert all(s.finish_reason == "length" for s in out)


def test_diverse_beam_checks_its_inputs(tiny_model):
    ids = tiny_model.prompt(903, 4)
    config = DiverseBeamConfig(num_beams=4, num_beam_groups=2)
    with pytest.raises(AssertionError):
        run(tiny_model.model, torch.cat([ids, ids]), config, max_new_tokens=4, eos_token_ids=[])
    with pytest.raises(AssertionError):
        run(tiny_model.model, ids, BeamConfig(num_beams=4), max_new_tokens=4, eos_token_ids=[])
    with pytest.raises(ValueError):
        run(tiny_model.model, ids, config, max_new_tokens=0, eos_token_ids=[])


def test_registry_maps_diverse_beam_to_its_decoder():
    assert DECODERS["diverse_beam"] is diverse_beam.decode
