"""Per-configuration summaries of Likert (scale) ratings, one per rating criterion.

Definitions shown to users:

- mean: arithmetic mean of the ratings a configuration received on a criterion; n: how many ratings.
- CI, method "t" (default): Student-t interval mean +/- t_{n-1, (1+level)/2} * sd / sqrt(n), sd with n - 1 in the
  denominator. It treats ratings as independent draws; ratings of the same annotator or prompt are correlated,
  so read it as a lower bound on the uncertainty. Needs n >= 2 (NaN otherwise).
- CI, method "bootstrap": percentile interval of the mean over ``n_bootstrap`` resamples of that configuration's
  ratings (seeded); no normality assumption, same independence assumption. Needs n >= 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from scipy.stats import t as student_t


class LikertRating(NamedTuple):
    """One rating: ``config`` got ``value`` on ``criterion`` (e.g. "fluency", 1-5)."""

    config: str
    criterion: str
    value: float


@dataclass(frozen=True)
class LikertSummary:
    """Summary of one (configuration, criterion) cell; see the module docstring."""

    config: str
    criterion: str
    n: int
    mean: float
    sd: float
    ci_lower: float
    ci_upper: float
    method: str


def likert_summary(
    ratings: Iterable[LikertRating | tuple[str, str, float]],
    *,
    ci_level: float = 0.95,
    method: Literal["t", "bootstrap"] = "t",
    n_bootstrap: int = 2000,
    seed: int | np.random.Generator | None = 0,
) -> list[LikertSummary]:
    """Mean, n, sd and CI per (config, criterion), sorted by criterion then config."""
    if method not in ("t", "bootstrap"):
        raise ValueError("method must be 't' or 'bootstrap'")
    if not 0 < ci_level < 1:
        raise ValueError("ci_level must be in (0, 1)")
    groups: dict[tuple[str, str], list[float]] = {}
    for config, criterion, value in ratings:
        groups.setdefault((criterion, config), []).append(float(value))
    rng = np.random.default_rng(seed)
    alpha = 1.0 - ci_level
    out = []
    for (criterion, config), values in sorted(groups.items()):
        x = np.asarray(values)
        n, mean = x.size, float(x.mean())
        sd = float(x.std(ddof=1)) if n > 1 else float("nan")
        if n < 2:
            lower = upper = float("nan")
        elif method == "t":
            half = float(student_t.ppf(1 - alpha / 2, n - 1)) * sd / np.sqrt(n)
            lower, upper = mean - half, mean + half
        else:
            means = x[rng.integers(0, n, size=(n_bootstrap, n))].mean(axis=1)
            lower, upper = (float(v) for v in np.quantile(means, [alpha / 2, 1 - alpha / 2]))
        out.append(LikertSummary(config, criterion, n, mean, sd, float(lower), float(upper), method))
    return out
