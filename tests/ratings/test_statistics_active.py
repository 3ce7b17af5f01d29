"""Active pair selection and the stop rule."""

from __future__ import annotations

import numpy as np

from decodelab.ratings.statistics import Vote, next_pair, separated, simulate_active_vs_uniform
from tests.ratings.simulate import simulate_votes


def test_active_selection_separates_with_fewer_votes_than_uniform():
    result = simulate_active_vs_uniform(strengths=[0.0, 0.5, 1.0, 2.0, 3.0, 4.0], n_runs=8, seed=1, max_votes=6000)
    print(
        f"\nvotes until separated (6 configs, 8 runs): active mean {result.mean_active:.0f} {result.votes_active}, "
        f"uniform mean {result.mean_uniform:.0f} {result.votes_uniform}"
    )
    assert result.unseparated_active == 0
    assert result.mean_active < result.mean_uniform


def test_active_selection_also_wins_with_evenly_spaced_strengths_and_ties():
    result = simulate_active_vs_uniform(
        strengths=[0.0, 0.6, 1.2, 1.8, 2.4], n_runs=6, seed=2, tie_strength=0.4, max_votes=6000
    )
    print(f"\nevenly spaced, ties: active mean {result.mean_active:.0f}, uniform mean {result.mean_uniform:.0f}")
    assert result.mean_active < result.mean_uniform


def test_warm_up_shows_the_least_compared_pair_first():
    votes = [Vote("p", "x", "a", "b", "a")] * 3 + [Vote("p", "x", "a", "c", "b")]
    assert set(next_pair(votes, candidates=["a", "b", "c"])) == {"b", "c"}
    assert set(next_pair([], candidates=["a", "b"])) == {"a", "b"}


def test_after_warm_up_the_least_settled_pair_is_shown():
    rng = np.random.default_rng(0)
    # cfg0 far below; cfg1 and cfg2 nearly equal: their order is the open question.
    votes = simulate_votes([-2.0, 0.5, 0.55], 600, rng)
    assert set(next_pair(votes, candidates=["cfg0", "cfg1", "cfg2"])) == {"cfg1", "cfg2"}
    # Only configurations with an output for this prompt are offered.
    assert set(next_pair(votes, candidates=["cfg0", "cfg1"])) == {"cfg0", "cfg1"}


def test_stop_rule():
    rng = np.random.default_rng(1)
    assert separated(simulate_votes([0.0, 1.5, 3.0], 900, rng))
    assert not separated(simulate_votes([0.0, 0.0, 0.0], 900, rng))
    never_compared = [Vote("p", "x", "a", "b", "a"), Vote("p", "x", "b", "a", "a"), Vote("p", "x", "c", "d", "a")]
    assert not separated(never_compared * 50)
    assert not separated([])
