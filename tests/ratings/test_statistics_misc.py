"""Elo, Likert summaries, Pareto frontier and outcome matrices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from decodelab.ratings.statistics import (
    LikertRating,
    ParetoPoint,
    Vote,
    elo_ratings,
    likert_summary,
    outcome_matrices,
    pareto_frontier,
)
from tests.ratings.simulate import simulate_votes


def test_elo_ranks_a_stronger_configuration_higher_and_conserves_points():
    rng = np.random.default_rng(0)
    votes = simulate_votes([0.0, 0.7, 1.4], 3000, rng, tie_strength=0.3)
    ratings = elo_ratings(votes)
    assert ratings["cfg2"] > ratings["cfg1"] > ratings["cfg0"]
    assert sum(ratings.values()) == pytest.approx(3 * 1000.0)


def test_elo_update_follows_the_formula():
    ratings = elo_ratings([Vote("p", "a", "x", "y", "a"), Vote("p", "a", "x", "y", "tie")], k=32)
    first = 1000 + 32 * (1 - 0.5)
    expected = 1 / (1 + 10 ** ((2000 - first - first) / 400))
    assert ratings["x"] == pytest.approx(first + 32 * (0.5 - expected))


def test_likert_t_interval_matches_scipy_and_bootstrap_is_close():
    rng = np.random.default_rng(1)
    values = rng.normal(3.5, 0.8, size=40).round().clip(1, 5)
    ratings = [LikertRating("c1", "fluency", v) for v in values] + [("c1", "accuracy", 4.0)]
    summary = {(s.config, s.criterion): s for s in likert_summary(ratings)}
    cell = summary["c1", "fluency"]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert (cell.n, cell.mean) == (40, pytest.approx(values.mean()))
    assert (cell.ci_lower, cell.ci_upper) == (pytest.approx(low), pytest.approx(high))
    assert np.isnan(summary["c1", "accuracy"].ci_lower)  # one rating: no interval
    boot = likert_summary(ratings, method="bootstrap", n_bootstrap=4000, seed=2)[1]
    assert boot.ci_lower == pytest.approx(low, abs=0.1) and boot.ci_upper == pytest.approx(high, abs=0.1)


def test_likert_t_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    covered = 0
    for run in range(400):
        values = rng.integers(1, 6, size=30)  # uniform on 1..5: true mean 3
        cell = likert_summary([("c", "q", v) for v in values])[0]
        covered += cell.ci_lower <= 3.0 <= cell.ci_upper
        del run
    assert 0.9 <= covered / 400 <= 0.99


def test_pareto_frontier_on_a_hand_built_example():
    points = [
        ParetoPoint("greedy", 0.10, 10.0),
        ParetoPoint("beam4", 0.50, 40.0),
        ParetoPoint("slow_bad", 0.20, 50.0),  # dominated by beam4
        ParetoPoint("topk", 0.30, 12.0),
        ParetoPoint("topk_copy", 0.30, 12.0),  # identical: kept
        ParetoPoint("topp", 0.25, 15.0),  # dominated by topk
        ParetoPoint("cheap_bad", 0.10, 11.0),  # dominated by greedy (same score, dearer)
        ParetoPoint("best", 0.60, 90.0),
    ]
    frontier = [p.config for p in pareto_frontier(points)]
    assert frontier == ["greedy", "topk", "topk_copy", "beam4", "best"]
    assert pareto_frontier([("only", 1.0, 1.0)])[0].config == "only"
    with pytest.raises(ValueError):
        pareto_frontier([("x", float("nan"), 1.0)])


def test_outcome_matrices_count_each_outcome_separately():
    votes = [
        Vote("p", "a", "x", "y", "a"),
        Vote("p", "a", "y", "x", "a"),
        Vote("p", "a", "x", "y", "tie"),
        Vote("p", "a", "x", "z", "both_bad"),
    ]
    m = outcome_matrices(votes)
    assert m.configs == ("x", "y", "z")
    assert m.wins.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    assert m.ties[0, 1] == m.ties[1, 0] == 1
    assert m.both_bad[0, 2] == m.both_bad[2, 0] == 1
    assert m.votes_per_config.tolist() == [4, 3, 1]
    with pytest.raises(ValueError, match="not in configs"):
        outcome_matrices(votes, configs=["x", "y"])
