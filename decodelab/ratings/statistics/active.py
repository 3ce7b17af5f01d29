"""Active pair selection: which two configurations to show next, and when to stop.

Cheap CI. Every decision refits the Davidson/Bradley-Terry model by maximum likelihood and uses Wald intervals
for score differences, (s_i - s_j) +/- z * se(s_i - s_j), se from the inverse observed (Fisher) information; the
bootstrap would be too slow per vote.

Why differences, not each score's own interval: scores are centred, so every score's own interval carries the
uncertainty of the mean of all scores. Comparing two configurations directly narrows the interval of their
difference but not that shared part, so a policy that keeps comparing the two whose own intervals overlap most
can stall for ever (it did in simulation). The interval of the difference is also the claim a ranking makes:
"i is above j".

Policy (``next_pair``). Warm-up: while a candidate configuration has fewer than ``warmup_votes`` votes, show
the candidate pair compared least so far. Afterwards, show the candidate pair whose difference interval overlaps
zero most, overlap = z * se(s_i - s_j) - |s_i - s_j| in score units (negative once the pair is separated): the
pair whose order is least settled.

Stop rule (``separated``). Stop when, for every pair adjacent in the ranking, the interval of the difference
excludes zero, and the comparison graph is strongly connected (the maximum-likelihood estimate exists).
Checking it after every batch is sequential testing, so it is a practical stopping heuristic, not an exact 95%
guarantee.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations, pairwise

import numpy as np
from scipy.stats import norm

from .bradley_terry import L2_FALLBACK
from .davidson import covariance, make_design, newton_fit, strongly_connected
from .pairwise import KIND_A, KIND_B, KIND_TIE, BothBad, Vote, config_order, outcome_matrices


@dataclass(frozen=True)
class _Fit:
    scores: np.ndarray
    diff_se: np.ndarray  # diff_se[i, j]: standard error of scores[i] - scores[j]
    connected: bool
    params: np.ndarray

    def margin(self, a: int, b: int, z: float) -> float:
        """How far the Wald interval of s_a - s_b reaches past zero (> 0: the order of a and b is unsettled)."""
        return z * self.diff_se[a, b] - abs(self.scores[a] - self.scores[b])


def _fit_counts(wins: np.ndarray, ties: np.ndarray, init: np.ndarray | None = None) -> _Fit:
    """Maximum-likelihood fit and standard errors of score differences from win and tie count matrices."""
    n = wins.shape[0]
    i, j = np.triu_indices(n, 1)
    first = np.concatenate([i, i, i])
    second = np.concatenate([j, j, j])
    kind = np.repeat([KIND_A, KIND_B, KIND_TIE], i.size)
    weights = np.concatenate([wins[i, j], wins[j, i], ties[i, j]]).astype(float)
    keep = weights > 0
    first, second, kind, weights = first[keep], second[keep], kind[keep], weights[keep]
    connected = bool(strongly_connected(n, first, second, kind, weights))
    design = make_design(n, first, second, kind, x=None, has_theta=bool((kind == KIND_TIE).any()))
    if init is not None and init.size != design.n_params:
        init = None
    params, hess, _ = newton_fit(design, weights[None], np.array([0.0 if connected else L2_FALLBACK]), init=init)
    cov = covariance(hess, n)[0][:n, :n]
    variance = np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov
    return _Fit(params[0, :n], np.sqrt(np.clip(variance, 0.0, None)), connected, params[0])


def _is_separated(fit: _Fit, z: float) -> bool:
    order = np.argsort(-fit.scores)
    return fit.connected and all(fit.margin(a, b, z) < 0 for a, b in pairwise(order))


def _choose(
    fit: _Fit | None, comparisons: np.ndarray, candidates: Sequence[int], warmup_votes: int, z: float
) -> tuple[int, int]:
    votes = comparisons.sum(axis=1)
    pairs = list(combinations(candidates, 2))
    if fit is None or min(votes[c] for c in candidates) < warmup_votes:
        return min(pairs, key=lambda p: (comparisons[p], votes[p[0]] + votes[p[1]]))
    overlap = [fit.margin(a, b, z) for a, b in pairs]
    # The largest overlap wins; among equals, the pair compared least.
    return max(zip(pairs, overlap, strict=True), key=lambda item: (item[1], -comparisons[item[0]]))[0]


def _counts(votes: Sequence[Vote], configs: Sequence[str], both_bad: BothBad):
    matrices = outcome_matrices(votes, configs=configs)
    ties = matrices.ties + (matrices.both_bad if both_bad == "tie" else 0)
    comparisons = matrices.wins + matrices.wins.T + ties
    return matrices.wins, ties, comparisons


def next_pair(
    votes: Sequence[Vote],
    *,
    candidates: Sequence[str],
    configs: Sequence[str] | None = None,
    ci_level: float = 0.95,
    warmup_votes: int = 5,
    both_bad: BothBad = "tie",
) -> tuple[str, str]:
    """The next pair of ``candidates`` (the configurations with an output for this prompt) to show.

    ``votes`` are all votes so far (every prompt); the fit uses every configuration in them and in ``configs``.
    See the module docstring for the rule. Needs at least two candidates.
    """
    if len(set(candidates)) < 2:
        raise ValueError("need at least two candidate configurations")
    order = tuple(dict.fromkeys([*config_order(votes, configs), *candidates]))
    index = {c: i for i, c in enumerate(order)}
    wins, ties, comparisons = _counts(votes, order, both_bad)
    cand = [index[c] for c in dict.fromkeys(candidates)]
    z = float(norm.ppf(0.5 + ci_level / 2))
    fit = _fit_counts(wins, ties) if comparisons.sum() > 0 else None
    a, b = _choose(fit, comparisons, cand, warmup_votes, z)
    return order[a], order[b]


def separated(
    votes: Sequence[Vote], *, configs: Sequence[str] | None = None, ci_level: float = 0.95, both_bad: BothBad = "tie"
) -> bool:
    """Whether the stop rule holds: every adjacent pair in the ranking has a difference interval excluding zero."""
    order = config_order(votes, configs)
    if len(order) < 2 or not votes:
        return False
    wins, ties, _ = _counts(votes, order, both_bad)
    z = float(norm.ppf(0.5 + ci_level / 2))
    return _is_separated(_fit_counts(wins, ties), z)


@dataclass(frozen=True)
class ActiveVsUniform:
    """Votes needed until ``separated`` held, per run, for the active and the uniform-random policy."""

    votes_active: tuple[int, ...]
    votes_uniform: tuple[int, ...]
    mean_active: float
    mean_uniform: float
    unseparated_active: int  # runs that hit max_votes (counted as max_votes in the means)
    unseparated_uniform: int


def _run_policy(
    strengths: np.ndarray,
    rng: np.random.Generator,
    *,
    active: bool,
    tie_strength: float,
    batch_size: int,
    max_votes: int,
    z: float,
    warmup_votes: int,
) -> int | None:
    n = strengths.size
    wins = np.zeros((n, n))
    ties = np.zeros((n, n))
    pairs = list(combinations(range(n), 2))
    fit = None
    total = 0
    while total < max_votes:
        comparisons = wins + wins.T + ties
        if comparisons.sum(axis=1).min() >= warmup_votes:
            fit = _fit_counts(wins, ties, None if fit is None else fit.params)
            if _is_separated(fit, z):
                return total
        if active:
            a, b = _choose(fit, comparisons, range(n), warmup_votes, z)
        else:
            a, b = pairs[rng.integers(len(pairs))]
        half = (strengths[a] - strengths[b]) / 2
        probs = np.array([np.exp(half), np.exp(-half), tie_strength])
        won_a, won_b, tied = rng.multinomial(batch_size, probs / probs.sum())
        wins[a, b] += won_a
        wins[b, a] += won_b
        ties[a, b] += tied
        ties[b, a] += tied
        total += batch_size
    return None


def simulate_active_vs_uniform(
    *,
    strengths: Sequence[float],
    n_runs: int = 10,
    seed: int = 0,
    batch_size: int = 10,
    max_votes: int = 5000,
    tie_strength: float = 0.0,
    ci_level: float = 0.95,
    warmup_votes: int = 5,
) -> ActiveVsUniform:
    """Simulate votes from a Davidson model with the given true log-strengths (and tie strength nu) and count
    the votes each policy needs before the stop rule holds.

    Both policies get the same true strengths; each run draws its own random stream for each policy from
    ``seed``. Votes come in batches of ``batch_size`` on one pair; the rule is checked before each batch.
    """
    true = np.asarray(strengths, dtype=float)
    if true.size < 2:
        raise ValueError("need at least two strengths")
    z = float(norm.ppf(0.5 + ci_level / 2))
    streams = np.random.SeedSequence(seed).spawn(2 * n_runs)
    needed: dict[bool, list[int | None]] = {True: [], False: []}
    for run in range(n_runs):
        for active in (True, False):
            rng = np.random.default_rng(streams[2 * run + int(active)])
            needed[active].append(
                _run_policy(
                    true,
                    rng,
                    active=active,
                    tie_strength=tie_strength,
                    batch_size=batch_size,
                    max_votes=max_votes,
                    z=z,
                    warmup_votes=warmup_votes,
                )
            )

    def filled(values: list[int | None]) -> tuple[int, ...]:
        return tuple(max_votes if v is None else v for v in values)

    act, uni = filled(needed[True]), filled(needed[False])
    return ActiveVsUniform(
        votes_active=act,
        votes_uniform=uni,
        mean_active=float(np.mean(act)),
        mean_uniform=float(np.mean(uni)),
        unseparated_active=needed[True].count(None),
        unseparated_uniform=needed[False].count(None),
    )
