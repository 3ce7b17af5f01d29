"""Bradley-Terry rankings of configurations, with ties (Davidson model) and bootstrap confidence intervals.

Definitions shown to users:

- Score: the centred log-strength s_i of the Davidson model (see ``davidson``): among decisive votes,
  P(i preferred to j) = 1 / (1 + exp(-(s_i - s_j))); scores sum to 0 over the reported configurations.
- Ties and "both_bad" votes are Davidson ties (``both_bad="drop"`` ignores both_bad votes instead):
  P(tie) = nu / (e^{d/2} + e^{-d/2} + nu) with d = s_i - s_j. The tie strength nu is fitted jointly; nu = 0
  (plain Bradley-Terry) when the data hold no tie. Davidson rather than Rao-Kupper because it leaves the
  decisive-vote odds exactly e^{s_i - s_j}, so scores read on the same scale as plain Bradley-Terry.
- Fit: maximum likelihood by Newton's method (exact gradient and Hessian; the fit and all bootstrap resamples
  are solved together, as one batch). When the ML estimate does not exist
  (comparison graph not strongly connected: a configuration never lost, or never won, or two groups never
  compared) an L2 prior 0.5 * l2 * sum(s^2) is added, with l2 = 0.01 by default, i.e. a N(0, 10^2) prior on each
  log-strength: weak enough not to move well-supported scores, strong enough to keep the others finite. The
  prior is also used when the unpenalised fit has a standard error above 100 (the estimate ran off to infinity
  some other way, e.g. outcomes perfectly separated by length). Resampling never adds a comparison, so when the
  full data's comparison graph needs the prior, every bootstrap resample does too.
- CI: bootstrap percentile interval. Votes are resampled with replacement (B resamples, seeded), each resample is
  refitted with the same rule, and the (1-level)/2 and (1+level)/2 quantiles of each score are reported. With
  n_bootstrap=0 a Wald interval score +/- z * se is reported, se from the inverse observed information.
- Rank: 1 + the number of configurations with a strictly higher score; the rank interval is the bootstrap
  percentile interval of the rank.
- Length control: logit P(a preferred | decisive) = s_a - s_b + beta * x with
  x = ((len_a - len_b) / (len_a + len_b)) / rms, rms being the root-mean-square of that relative difference over
  the fitted votes; beta > 0 means annotators favour the longer output, and the scores are then the preferences
  left once length is accounted for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from .davidson import covariance, make_design, newton_fit, strongly_connected
from .pairwise import KIND_A, KIND_B, KIND_TIE, BothBad, EncodedVotes, Vote, encode_votes

L2_FALLBACK = 0.01
MAX_SE = 100.0  # log-strength units; beyond this the estimate has run off to infinity


@dataclass(frozen=True)
class ConfigScore:
    """One configuration's row of a ranking (see the module docstring for the definitions)."""

    config: str
    score: float
    se: float
    ci_lower: float
    ci_upper: float
    rank: int
    rank_lower: int | None
    rank_upper: int | None
    n_votes: int


@dataclass(frozen=True)
class BradleyTerryResult:
    """A fitted ranking. ``scores`` are sorted best first."""

    scores: tuple[ConfigScore, ...]
    tie_strength: float  # Davidson nu; 0.0 when there are no ties
    n_votes: int
    n_bootstrap: int
    ci_level: float
    ci_method: str  # "bootstrap-percentile" or "wald"
    l2: float  # the prior used on the full data (0.0: plain maximum likelihood)
    beta: float | None = None  # length effect per rms of relative length difference (length control only)
    beta_se: float | None = None
    beta_ci: tuple[float, float] | None = None
    length_scale: float | None = None  # the rms of (len_a - len_b) / (len_a + len_b)

    def score_of(self, config: str) -> ConfigScore:
        """The row of ``config``."""
        for row in self.scores:
            if row.config == config:
                return row
        raise KeyError(config)

    def as_dict(self) -> dict[str, float]:
        """config -> score."""
        return {row.config: row.score for row in self.scores}


def fit_bradley_terry(
    votes: Sequence[Vote],
    *,
    configs: Sequence[str] | None = None,
    both_bad: BothBad = "tie",
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int | np.random.Generator | None = 0,
    l2: float | None = None,
) -> BradleyTerryResult:
    """Davidson/Bradley-Terry scores, ranks and CIs for the configurations in ``votes`` (or ``configs``).

    l2=None applies the prior only when the ML estimate does not exist (decided per bootstrap resample too);
    a number forces that prior everywhere. ``seed`` makes the bootstrap reproducible.
    """
    encoded = encode_votes(votes, configs=configs, both_bad=both_bad)
    return _fit(encoded, None, None, n_bootstrap=n_bootstrap, ci_level=ci_level, seed=seed, l2=l2)


def fit_bradley_terry_length_controlled(
    votes: Sequence[Vote],
    *,
    configs: Sequence[str] | None = None,
    both_bad: BothBad = "tie",
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int | np.random.Generator | None = 0,
    l2: float | None = None,
) -> BradleyTerryResult:
    """Length-controlled scores: s and beta fitted jointly (see the module docstring); every vote needs lengths."""
    encoded = encode_votes(votes, configs=configs, both_bad=both_bad)
    la, lb = encoded.length_a, encoded.length_b
    if np.isnan(la).any() or np.isnan(lb).any():
        raise ValueError("length control needs length_a and length_b on every vote")
    if (la < 0).any() or (lb < 0).any():
        raise ValueError("lengths must be non-negative")
    total = la + lb
    relative = np.divide(la - lb, total, out=np.zeros_like(total), where=total > 0)
    scale = float(np.sqrt(np.mean(relative**2))) if relative.size else 0.0
    if scale == 0.0:
        raise ValueError("length control needs votes whose two outputs differ in length")
    return _fit(encoded, relative / scale, scale, n_bootstrap=n_bootstrap, ci_level=ci_level, seed=seed, l2=l2)


def _rows(encoded: EncodedVotes, x: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Likelihood rows and their counts; without lengths, identical (pair, outcome) votes share one row."""
    first, second, kind = encoded.first, encoded.second, encoded.kind
    if x is not None:
        return first, second, kind, np.ones(len(kind))
    # Orient every pair low index first so that "i beat j" reads the same whichever side i was shown as.
    swap = first > second
    lo, hi = np.where(swap, second, first), np.where(swap, first, second)
    flipped = np.where(kind == KIND_TIE, KIND_TIE, np.where(swap, KIND_A + KIND_B - kind, kind))
    keys, counts = np.unique(np.stack([lo, hi, flipped], axis=1), axis=0, return_counts=True)
    return keys[:, 0], keys[:, 1], keys[:, 2], counts.astype(float)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Competition ranks along the last axis: 1 + number of strictly higher scores."""
    return 1 + (scores[..., None, :] > scores[..., :, None]).sum(axis=-1)


def _fit(
    encoded: EncodedVotes,
    x: np.ndarray | None,
    length_scale: float | None,
    *,
    n_bootstrap: int,
    ci_level: float,
    seed: int | np.random.Generator | None,
    l2: float | None,
) -> BradleyTerryResult:
    n = len(encoded.configs)
    if n < 2:
        raise ValueError("a ranking needs at least two configurations")
    if len(encoded.kind) == 0:
        raise ValueError("no votes to fit")
    if not 0 < ci_level < 1:
        raise ValueError("ci_level must be in (0, 1)")
    first, second, kind, counts = _rows(encoded, x)
    design = make_design(n, first, second, kind, x=x, has_theta=bool((kind == KIND_TIE).any()))

    def solve(weights: np.ndarray, init: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if l2 is None:
            priors = np.where(strongly_connected(n, first, second, kind, weights), 0.0, L2_FALLBACK)
        else:
            priors = np.full(weights.shape[0], float(l2))
        params, hess, _ = newton_fit(design, weights, priors, init=init)
        if l2 is None:
            # The graph test misses other ways the estimate can run off to infinity (outcomes perfectly
            # separated by length); an unbounded standard error on s or beta reveals them.
            q = design.z.shape[1]
            variance = np.diagonal(covariance(hess, n), axis1=1, axis2=2)[:, :q]
            runaway = (priors == 0) & ~np.all(variance < MAX_SE**2, axis=1)
            if runaway.any():
                priors[runaway] = L2_FALLBACK
                params[runaway], hess[runaway], _ = newton_fit(design, weights[runaway], priors[runaway], init=init)
        return params, hess, priors

    params, hess, priors = solve(counts[None, :], None)
    l2_full = float(priors[0])
    se = np.sqrt(np.clip(np.diag(covariance(hess, n)[0]), 0.0, None))
    estimate = params[0]
    scores = estimate[:n]
    beta_index = n if design.has_beta else None

    alpha = 1.0 - ci_level
    beta_ci: tuple[float, float] | None = None
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        # Resampling votes with replacement is a multinomial draw over rows weighted by their counts.
        weights = rng.multinomial(int(counts.sum()), counts / counts.sum(), size=n_bootstrap).astype(float)
        boot, _, _ = solve(weights, estimate)
        lower, upper = np.quantile(boot[:, :n], [alpha / 2, 1 - alpha / 2], axis=0)
        boot_ranks = _ranks(boot[:, :n])
        rank_lower = np.quantile(boot_ranks, alpha / 2, axis=0, method="lower").astype(int)
        rank_upper = np.quantile(boot_ranks, 1 - alpha / 2, axis=0, method="higher").astype(int)
        method = "bootstrap-percentile"
        if beta_index is not None:
            b_lo, b_hi = np.quantile(boot[:, beta_index], [alpha / 2, 1 - alpha / 2])
            beta_ci = (float(b_lo), float(b_hi))
    else:
        z = norm.ppf(1 - alpha / 2)
        lower, upper = scores - z * se[:n], scores + z * se[:n]
        rank_lower = rank_upper = None
        method = "wald"
        if beta_index is not None:
            beta_ci = (float(estimate[n] - z * se[n]), float(estimate[n] + z * se[n]))

    ranks = _ranks(scores)
    involved = np.bincount(encoded.first, minlength=n) + np.bincount(encoded.second, minlength=n)
    rows = [
        ConfigScore(
            config=encoded.configs[i],
            score=float(scores[i]),
            se=float(se[i]),
            ci_lower=float(lower[i]),
            ci_upper=float(upper[i]),
            rank=int(ranks[i]),
            rank_lower=None if rank_lower is None else int(rank_lower[i]),
            rank_upper=None if rank_upper is None else int(rank_upper[i]),
            n_votes=int(involved[i]),
        )
        for i in np.argsort(-scores, kind="stable")
    ]
    return BradleyTerryResult(
        scores=tuple(rows),
        tie_strength=float(np.exp(estimate[-1])) if design.has_theta else 0.0,
        n_votes=len(encoded.kind),
        n_bootstrap=n_bootstrap,
        ci_level=ci_level,
        ci_method=method,
        l2=l2_full,
        beta=None if beta_index is None else float(estimate[beta_index]),
        beta_se=None if beta_index is None else float(se[beta_index]),
        beta_ci=beta_ci,
        length_scale=length_scale,
    )
