"""Inter-annotator agreement: Krippendorff's alpha, Cohen's kappa per annotator pair, Fleiss' kappa.

All take reliability data: a matrix with one row per annotator and one column per unit (a rated item), holding
the annotator's value for the unit or NaN where they did not rate it. Categorical answers are coded as numbers
(``reliability_data`` does it; for ordinal data give the categories in their order).

Definitions shown to users:

- Krippendorff's alpha = 1 - D_o / D_e: observed disagreement between values given to the same unit over the
  disagreement expected by chance from the pooled values (Krippendorff 2011, coincidence-matrix form). Units with
  fewer than two values are not pairable and are ignored. Distances: nominal 0/1; ordinal
  (sum of the counts of the categories from c to k, minus (n_c + n_k) / 2)^2; interval (c - k)^2.
  1 = perfect agreement, 0 = chance level. CI: bootstrap percentile interval over resampled pairable units.
- Cohen's kappa (two annotators, items both rated) = (p_o - p_e) / (1 - p_e): p_o the share of items given the
  same category, p_e = sum_c p_1(c) p_2(c) from each annotator's own category frequencies.
- Fleiss' kappa (many annotators) = (P - P_e) / (1 - P_e), P the mean over items of the share of agreeing rater
  pairs, P_e = sum_c p_c^2. It assumes every item has the same number k of ratings, so only items with exactly
  k ratings are used: k is given, or the most frequent rating count among items with two or more (the larger
  count on a draw); the result says how many items were left out.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np

from .pairwise import Vote

Level = Literal["nominal", "ordinal", "interval"]


@dataclass(frozen=True)
class ReliabilityData:
    """matrix[a, u]: value annotator ``annotators[a]`` gave unit ``units[u]`` (NaN: not rated).

    When built from categories, the value is the category's index in ``categories``.
    """

    matrix: np.ndarray
    annotators: tuple[Hashable, ...]
    units: tuple[Hashable, ...]
    categories: tuple[Hashable, ...] | None = None


def reliability_data(
    ratings: Iterable[tuple[Hashable, Hashable, Hashable]], *, categories: Sequence[Hashable] | None = None
) -> ReliabilityData:
    """Build reliability data from (annotator, unit, value) triples.

    Without ``categories`` the values must be numbers; with them, each value is replaced by its index there
    (their order is the ordinal order). Two values from one annotator for one unit raise ValueError.
    """
    triples = list(ratings)
    annotators = tuple(dict.fromkeys(t[0] for t in triples))
    units = tuple(dict.fromkeys(t[1] for t in triples))
    a_index = {a: i for i, a in enumerate(annotators)}
    u_index = {u: i for i, u in enumerate(units)}
    c_index = None if categories is None else {c: i for i, c in enumerate(categories)}
    matrix = np.full((len(annotators), len(units)), np.nan)
    for annotator, unit, value in triples:
        i, j = a_index[annotator], u_index[unit]
        if not np.isnan(matrix[i, j]):
            raise ValueError(f"annotator {annotator!r} rated unit {unit!r} twice")
        if c_index is None:
            matrix[i, j] = float(value)  # type: ignore[arg-type]
        elif value in c_index:
            matrix[i, j] = c_index[value]
        else:
            raise ValueError(f"value {value!r} is not among the categories")
    return ReliabilityData(matrix, annotators, units, None if categories is None else tuple(categories))


def vote_reliability_data(votes: Iterable[Vote]) -> ReliabilityData:
    """Pairwise votes as nominal reliability data: a unit is (item, unordered configuration pair).

    Values: 0 = the alphabetically first configuration of the pair preferred, 1 = the other, 2 = tie,
    3 = both_bad, so that votes shown in either orientation are comparable.
    """
    triples = []
    for vote in votes:
        lo, hi = sorted((vote.config_a, vote.config_b))
        winner = vote.winner
        value = {None: 2 if vote.outcome == "tie" else 3, lo: 0, hi: 1}[winner]
        triples.append((vote.annotator_id, (vote.item_id, lo, hi), value))
    return reliability_data(triples)


def _matrix(data: ReliabilityData | np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    matrix = data.matrix if isinstance(data, ReliabilityData) else np.asarray(data, dtype=float)
    if matrix.ndim != 2:
        raise ValueError("reliability data is a 2-D matrix: annotators x units")
    return matrix


@dataclass(frozen=True)
class AlphaResult:
    """Krippendorff's alpha with its bootstrap CI (NaN bounds when n_bootstrap=0)."""

    alpha: float
    ci_lower: float
    ci_upper: float
    level: str
    n_units: int  # pairable units (two or more values)
    n_values: int  # values in pairable units


def _alpha_from_coincidences(o: np.ndarray, values: np.ndarray, level: Level) -> np.ndarray:
    """Alpha for a batch of coincidence matrices o (B, V, V)."""
    n_c = o.sum(axis=2)
    n = n_c.sum(axis=1)
    v = len(values)
    e = (n_c[:, :, None] * n_c[:, None, :] - n_c[:, :, None] * np.eye(v)) / (n - 1)[:, None, None]
    if level == "nominal":
        d = np.broadcast_to(1.0 - np.eye(v), o.shape)
    elif level == "interval":
        d = np.broadcast_to((values[:, None] - values[None, :]) ** 2, o.shape)
    else:
        lo, hi = np.minimum.outer(np.arange(v), np.arange(v)), np.maximum.outer(np.arange(v), np.arange(v))
        cum = np.cumsum(n_c, axis=1)
        between = cum[:, hi] - cum[:, lo] + n_c[:, lo]
        d = (between - (n_c[:, lo] + n_c[:, hi]) / 2) ** 2
    expected = (e * d).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1.0 - (o * d).sum(axis=(1, 2)) / expected, np.nan)


def krippendorff_alpha(
    data: ReliabilityData | np.ndarray | Sequence[Sequence[float]],
    *,
    level: Level = "nominal",
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> AlphaResult:
    """Krippendorff's alpha (see the module docstring); NaN when fewer than two values or no pairable unit."""
    if level not in ("nominal", "ordinal", "interval"):
        raise ValueError("level must be 'nominal', 'ordinal' or 'interval'")
    matrix = _matrix(data)
    values = np.unique(matrix[~np.isnan(matrix)])
    counts = (matrix.T[:, :, None] == values[None, None, :]).sum(axis=1)  # (units, V)
    m = counts.sum(axis=1)
    counts = counts[m >= 2]
    m = m[m >= 2]
    nan = float("nan")
    if len(values) < 2 or counts.shape[0] == 0:
        return AlphaResult(nan, nan, nan, level, int(counts.shape[0]), int(m.sum()))
    v = len(values)
    per_unit = (counts[:, :, None] * counts[:, None, :] - counts[:, :, None] * np.eye(v)) / (m - 1)[:, None, None]
    alpha = float(_alpha_from_coincidences(per_unit.sum(axis=0)[None], values, level)[0])
    lower = upper = nan
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        units = counts.shape[0]
        weights = rng.multinomial(units, np.full(units, 1.0 / units), size=n_bootstrap).astype(float)
        o = (weights @ per_unit.reshape(units, v * v)).reshape(n_bootstrap, v, v)
        boot = _alpha_from_coincidences(o, values, level)
        q = (1.0 - ci_level) / 2
        lower, upper = (float(x) for x in np.nanquantile(boot, [q, 1 - q]))
    return AlphaResult(alpha, lower, upper, level, int(counts.shape[0]), int(m.sum()))


def cohen_kappa(first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray) -> tuple[float, int]:
    """Cohen's kappa between two annotators' values (NaN = not rated) on the items both rated.

    Returns (kappa, number of shared items); kappa is NaN with no shared item or when chance agreement is 1.
    """
    x, y = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    both = ~np.isnan(x) & ~np.isnan(y)
    x, y = x[both], y[both]
    if x.size == 0:
        return float("nan"), 0
    categories = np.unique(np.concatenate([x, y]))
    p_x = (x[:, None] == categories).mean(axis=0)
    p_y = (y[:, None] == categories).mean(axis=0)
    observed, chance = float((x == y).mean()), float(p_x @ p_y)
    if chance >= 1.0:
        return float("nan"), int(x.size)
    return (observed - chance) / (1.0 - chance), int(x.size)


@dataclass(frozen=True)
class PairKappa:
    annotator_a: Hashable
    annotator_b: Hashable
    kappa: float
    n_items: int


def cohen_kappa_pairs(data: ReliabilityData | np.ndarray | Sequence[Sequence[float]]) -> list[PairKappa]:
    """Cohen's kappa for every pair of annotators (rows), on the items both rated."""
    matrix = _matrix(data)
    names = data.annotators if isinstance(data, ReliabilityData) else tuple(range(matrix.shape[0]))
    out = []
    for i, j in combinations(range(matrix.shape[0]), 2):
        kappa, shared = cohen_kappa(matrix[i], matrix[j])
        out.append(PairKappa(names[i], names[j], kappa, shared))
    return out


@dataclass(frozen=True)
class FleissResult:
    kappa: float
    n_items: int  # items used (exactly n_raters ratings)
    n_raters: int
    n_items_left_out: int  # items with a different number of ratings


def fleiss_kappa(
    data: ReliabilityData | np.ndarray | Sequence[Sequence[float]], *, n_raters: int | None = None
) -> FleissResult:
    """Fleiss' kappa over the items with exactly ``n_raters`` ratings (see the module docstring)."""
    matrix = _matrix(data)
    per_item = (~np.isnan(matrix)).sum(axis=0)
    if n_raters is None:
        rated = per_item[per_item >= 2]
        if rated.size == 0:
            return FleissResult(float("nan"), 0, 0, int(per_item.size))
        found, freq = np.unique(rated, return_counts=True)
        n_raters = int(found[freq == freq.max()].max())
    if n_raters < 2:
        raise ValueError("Fleiss' kappa needs at least two ratings per item")
    used = matrix[:, per_item == n_raters]
    left_out = int(per_item.size - used.shape[1])
    if used.shape[1] == 0:
        return FleissResult(float("nan"), 0, n_raters, left_out)
    categories = np.unique(used[~np.isnan(used)])
    counts = (used.T[:, :, None] == categories).sum(axis=1)  # (items, categories)
    k = n_raters
    agreement = ((counts**2).sum(axis=1) - k) / (k * (k - 1))
    shares = counts.sum(axis=0) / counts.sum()
    chance = float((shares**2).sum())
    kappa = float("nan") if chance >= 1.0 else (float(agreement.mean()) - chance) / (1.0 - chance)
    return FleissResult(kappa, int(used.shape[1]), k, left_out)
