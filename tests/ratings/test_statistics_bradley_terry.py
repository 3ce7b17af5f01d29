"""Bradley-Terry / Davidson fits: against choix, against an independent likelihood maximisation, and in simulation."""

from __future__ import annotations

import time

import choix
import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.sparse.csgraph import connected_components
from scipy.stats import spearmanr

from decodelab.ratings.statistics import (
    Vote,
    fit_bradley_terry,
    fit_bradley_terry_length_controlled,
)
from decodelab.ratings.statistics.davidson import strongly_connected
from tests.ratings.simulate import centred, config_ids, scores_in_order, simulate_votes


def _choix_data(votes: list[Vote], ids: list[str]) -> list[tuple[int, int]]:
    index = {c: i for i, c in enumerate(ids)}
    return [
        (index[v.config_a], index[v.config_b]) if v.outcome == "a" else (index[v.config_b], index[v.config_a])
        for v in votes
    ]


@pytest.mark.parametrize(("seed", "n_configs", "n_votes"), [(0, 4, 300), (1, 6, 1000), (2, 8, 2000)])
def test_scores_match_choix_maximum_likelihood_without_ties(seed, n_configs, n_votes):
    rng = np.random.default_rng(seed)
    ids = config_ids(n_configs)
    votes = simulate_votes(rng.normal(0, 1, n_configs), n_votes, rng)
    result = fit_bradley_terry(votes, configs=ids, n_bootstrap=0)
    reference = choix.ilsr_pairwise(n_configs, _choix_data(votes, ids), alpha=0.0, max_iter=10_000, tol=1e-12)
    difference = np.abs(scores_in_order(result, ids) - centred(reference)).max()
    print(f"\nBT vs choix.ilsr_pairwise (alpha=0), {n_configs} configs, {n_votes} votes: max |diff| = {difference:.2e}")
    assert difference < 1e-3
    assert result.l2 == 0.0
    assert result.tie_strength == 0.0


def test_l2_prior_matches_choix_penalised_fit():
    # choix penalises alpha * sum(theta^2); the prior here is 0.5 * l2 * sum(s^2), so l2 = 2 * alpha.
    rng = np.random.default_rng(3)
    ids = config_ids(5)
    votes = simulate_votes([0.0, 0.3, 0.6, 0.9, 1.2], 400, rng)
    result = fit_bradley_terry(votes, configs=ids, n_bootstrap=0, l2=0.2)
    reference = choix.opt_pairwise(5, _choix_data(votes, ids), alpha=0.1, tol=1e-10)
    assert np.abs(scores_in_order(result, ids) - centred(reference)).max() < 1e-3


def test_a_configuration_that_never_loses_gets_the_documented_prior():
    votes = [Vote("i", "x", "top", other, "a") for other in ("mid", "low") for _ in range(5)]
    votes += [Vote("i", "x", "mid", "low", outcome) for outcome in ("a", "a", "a", "b")]
    result = fit_bradley_terry(votes, n_bootstrap=200, seed=1)
    assert result.l2 == 0.01
    assert all(np.isfinite(row.score) and np.isfinite(row.ci_upper) for row in result.scores)
    assert [row.config for row in result.scores] == ["top", "mid", "low"]
    ids = ["top", "mid", "low"]
    reference = choix.opt_pairwise(3, _choix_data(votes, ids), alpha=0.005, tol=1e-10)
    assert np.abs(scores_in_order(result, ids) - centred(reference)).max() < 1e-3


def test_batched_strong_connectivity_agrees_with_scipy():
    rng = np.random.default_rng(30)
    for _ in range(300):
        n, rows = int(rng.integers(2, 10)), int(rng.integers(1, 25))
        first = rng.integers(0, n, rows)
        second = (first + rng.integers(1, n, rows)) % n
        kind = rng.integers(0, 3, rows)  # 0: first preferred, 1: second preferred, 2: tie
        weights = rng.integers(0, 2, size=(4, rows)).astype(float)
        mine = strongly_connected(n, first, second, kind, weights)
        for b in range(4):
            used = weights[b] > 0
            adjacency = np.zeros((n, n), dtype=bool)
            adjacency[first[used & (kind != 1)], second[used & (kind != 1)]] = True
            adjacency[second[used & (kind != 0)], first[used & (kind != 0)]] = True
            components, _ = connected_components(adjacency, directed=True, connection="strong")
            assert mine[b] == (components == 1)


def _reference_davidson(votes: list[Vote], ids: list[str], with_length: bool) -> tuple[np.ndarray, float, float]:
    """Independent maximisation: Davidson's pi-form likelihood, s_0 fixed at 0, Nelder-Mead (twice, restarted)."""
    index = {c: i for i, c in enumerate(ids)}
    a = np.array([index[v.config_a] for v in votes])
    b = np.array([index[v.config_b] for v in votes])
    outcome = np.array([v.outcome for v in votes])
    x = np.zeros(len(votes))
    if with_length:
        la, lb = np.array([v.length_a for v in votes]), np.array([v.length_b for v in votes])
        relative = (la - lb) / (la + lb)
        x = relative / np.sqrt(np.mean(relative**2))
    n = len(ids)

    def negative_log_likelihood(theta: np.ndarray) -> float:
        s = np.concatenate([[0.0], theta[: n - 1]])
        nu = np.exp(theta[n - 1])
        beta = theta[n] if with_length else 0.0
        pa = np.exp(s[a] + beta * x / 2)  # length effect split symmetrically, as in pi_a / pi_b = e^{d}
        pb = np.exp(s[b] - beta * x / 2)
        denominator = pa + pb + nu * np.sqrt(pa * pb)
        numerator = np.where(outcome == "a", pa, np.where(outcome == "b", pb, nu * np.sqrt(pa * pb)))
        return -np.sum(np.log(numerator / denominator))

    start = np.zeros(n + int(with_length))
    options = {"xatol": 1e-10, "fatol": 1e-12, "maxiter": 50_000, "maxfev": 50_000}
    for _ in range(3):
        start = minimize(negative_log_likelihood, start, method="Nelder-Mead", options=options).x
    s = centred(np.concatenate([[0.0], start[: n - 1]]))
    return s, float(np.exp(start[n - 1])), float(start[n]) if with_length else 0.0


def test_davidson_ties_match_an_independent_nelder_mead_fit():
    rng = np.random.default_rng(4)
    ids = config_ids(4)
    votes = simulate_votes([0.0, 0.4, 0.9, 1.5], 600, rng, tie_strength=0.5)
    votes += [Vote("x", "y", "cfg0", "cfg1", "both_bad")] * 7  # both_bad counts as a tie by default
    result = fit_bradley_terry(votes, configs=ids, n_bootstrap=0)
    as_ties = [
        Vote(v.item_id, v.annotator_id, v.config_a, v.config_b, "tie" if v.outcome == "both_bad" else v.outcome)
        for v in votes
    ]
    s, nu, _ = _reference_davidson(as_ties, ids, with_length=False)
    difference = np.abs(scores_in_order(result, ids) - s).max()
    print(f"\nDavidson vs Nelder-Mead: max |diff| = {difference:.2e}, nu {result.tie_strength:.4f} vs {nu:.4f}")
    assert difference < 1e-4
    assert result.tie_strength == pytest.approx(nu, abs=1e-4)


def test_both_bad_can_be_dropped_instead_of_counted_as_ties():
    rng = np.random.default_rng(5)
    votes = simulate_votes([0.0, 1.0, 2.0], 300, rng)
    extra = [Vote("x", "y", "cfg0", "cfg2", "both_bad")] * 30
    dropped = fit_bradley_terry(votes + extra, n_bootstrap=0, both_bad="drop")
    plain = fit_bradley_terry(votes, n_bootstrap=0)
    as_ties = fit_bradley_terry(votes + extra, n_bootstrap=0)
    assert dropped.as_dict() == pytest.approx(plain.as_dict(), abs=1e-9)
    assert as_ties.tie_strength > 0
    # Thirty ties between the extremes pull them together.
    assert as_ties.as_dict()["cfg2"] - as_ties.as_dict()["cfg0"] < plain.as_dict()["cfg2"] - plain.as_dict()["cfg0"]


def test_swapping_sides_of_every_vote_changes_nothing():
    rng = np.random.default_rng(6)
    votes = simulate_votes([0.0, 0.5, 1.0, 1.5], 500, rng, tie_strength=0.3)
    swap = {"a": "b", "b": "a", "tie": "tie"}
    swapped = [Vote(v.item_id, v.annotator_id, v.config_b, v.config_a, swap[v.outcome]) for v in votes]
    one = fit_bradley_terry(votes, n_bootstrap=100, seed=9)
    two = fit_bradley_terry(swapped, n_bootstrap=100, seed=9)
    assert one.as_dict() == pytest.approx(two.as_dict(), abs=1e-9)
    bounds = [[r.ci_lower, r.ci_upper] for r in one.scores], [[r.ci_lower, r.ci_upper] for r in two.scores]
    assert np.allclose(*bounds, atol=1e-9)


def test_length_controlled_fit_matches_an_independent_nelder_mead_fit():
    rng = np.random.default_rng(7)
    ids = config_ids(4)
    votes = simulate_votes([0.0, 0.5, 1.0, 1.5], 500, rng, tie_strength=0.3, length_effect=2.0)
    result = fit_bradley_terry_length_controlled(votes, configs=ids, n_bootstrap=0)
    s, nu, beta = _reference_davidson(votes, ids, with_length=True)
    assert np.abs(scores_in_order(result, ids) - s).max() < 1e-4
    assert result.beta == pytest.approx(beta, abs=1e-4)
    assert result.tie_strength == pytest.approx(nu, abs=1e-4)


def test_length_control_removes_a_pure_length_preference():
    # Equal true quality; cfg1 writes twice as long and annotators favour longer outputs.
    rng = np.random.default_rng(8)
    votes = simulate_votes([0.0, 0.0, 0.0], 2000, rng, length_effect=3.0, mean_length=[150, 300, 150])
    plain = fit_bradley_terry(votes, n_bootstrap=200, seed=1)
    controlled = fit_bradley_terry_length_controlled(votes, n_bootstrap=200, seed=1)
    assert plain.scores[0].config == "cfg1"
    assert plain.scores[0].ci_lower > 0  # the plain fit credits length as quality
    for row in controlled.scores:
        assert row.ci_lower < 0 < row.ci_upper
    # beta is per rms of the relative length difference; per unit of relative difference it is beta / scale.
    per_unit = controlled.beta / controlled.length_scale
    assert abs(per_unit - 3.0) < 3 * controlled.beta_se / controlled.length_scale
    assert controlled.beta_ci[0] < controlled.beta < controlled.beta_ci[1]


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_simulated_votes_recover_the_true_order(seed):
    strengths = [-1.25, -0.75, -0.25, 0.25, 0.75, 1.25]
    rng = np.random.default_rng(seed)
    votes = simulate_votes(strengths, 3000, rng, tie_strength=0.3)
    result = fit_bradley_terry(votes, configs=config_ids(6), n_bootstrap=0)
    rho = spearmanr(scores_in_order(result, config_ids(6)), strengths).statistic
    assert rho == 1.0
    assert sorted(row.rank for row in result.scores) == [1, 2, 3, 4, 5, 6]


def _coverage(repetitions: int, n_bootstrap: int, seed: int) -> float:
    strengths = np.array([-1.0, -0.6, -0.2, 0.2, 0.6, 1.0])
    ids = config_ids(6)
    rng = np.random.default_rng(seed)
    covered = []
    for _ in range(repetitions):
        votes = simulate_votes(strengths, 600, rng, tie_strength=0.3)
        result = fit_bradley_terry(votes, configs=ids, n_bootstrap=n_bootstrap, seed=rng)
        rows = [result.score_of(c) for c in ids]
        covered += [row.ci_lower <= truth <= row.ci_upper for row, truth in zip(rows, centred(strengths), strict=True)]
    return float(np.mean(covered))


def test_wald_interval_coverage_is_near_95_percent():
    coverage = _coverage(repetitions=200, n_bootstrap=0, seed=20)
    print(f"\nWald (Fisher information) 95% CI coverage over 200 simulations x 6 configs: {coverage:.3f}")
    assert 0.88 <= coverage <= 0.99


def test_bootstrap_interval_coverage_is_near_95_percent():
    coverage = _coverage(repetitions=100, n_bootstrap=200, seed=21)
    print(f"\nBootstrap percentile 95% CI coverage over 100 simulations x 6 configs (B=200): {coverage:.3f}")
    assert 0.88 <= coverage <= 0.99


def test_fisher_standard_errors_agree_with_the_bootstrap_spread():
    rng = np.random.default_rng(22)
    votes = simulate_votes([0.0, 0.3, 0.7, 1.2, 1.4], 1500, rng, tie_strength=0.4)
    result = fit_bradley_terry(votes, n_bootstrap=1000, seed=3)
    for row in result.scores:
        bootstrap_sd = (row.ci_upper - row.ci_lower) / (2 * 1.96)
        assert row.se == pytest.approx(bootstrap_sd, rel=0.2)
        assert row.rank_lower <= row.rank <= row.rank_upper


def test_bootstrap_is_reproducible_and_fast():
    rng = np.random.default_rng(23)
    votes = simulate_votes(rng.normal(0, 0.7, 8), 2000, rng, tie_strength=0.3, length_effect=1.0)
    started = time.perf_counter()
    one = fit_bradley_terry(votes, n_bootstrap=1000, seed=5)
    plain_seconds = time.perf_counter() - started
    started = time.perf_counter()
    controlled = fit_bradley_terry_length_controlled(votes, n_bootstrap=1000, seed=5)
    controlled_seconds = time.perf_counter() - started
    print(f"\n1000 bootstraps on 2000 votes: {plain_seconds:.2f} s, length-controlled {controlled_seconds:.2f} s")
    assert one == fit_bradley_terry(votes, n_bootstrap=1000, seed=5)
    assert one.ci_method == "bootstrap-percentile"
    assert controlled.beta_ci is not None
    assert plain_seconds < 10 and controlled_seconds < 20


def test_invalid_input_is_rejected():
    with pytest.raises(ValueError):
        Vote("i", "x", "same", "same", "a")
    with pytest.raises(ValueError):
        Vote("i", "x", "p", "q", "left")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two configurations"):
        fit_bradley_terry([], configs=["p"])
    with pytest.raises(ValueError, match="length_a and length_b"):
        fit_bradley_terry_length_controlled([Vote("i", "x", "p", "q", "a")])
