"""Vote simulators shared by the rating-statistics tests (Davidson model with optional length effect)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from decodelab.ratings.statistics import Vote


def config_ids(n: int) -> list[str]:
    return [f"cfg{i}" for i in range(n)]


def simulate_votes(
    strengths: Sequence[float],
    n_votes: int,
    rng: np.random.Generator,
    *,
    tie_strength: float = 0.0,
    length_effect: float = 0.0,
    mean_length: Sequence[float] | None = None,
    annotators: Sequence[str] = ("ann0",),
) -> list[Vote]:
    """Votes on uniformly drawn pairs; d = s_a - s_b + length_effect * (len_a - len_b) / (len_a + len_b).

    P(a) = e^{d/2} / D, P(b) = e^{-d/2} / D, P(tie) = nu / D with D = e^{d/2} + e^{-d/2} + nu.
    Lengths are drawn around ``mean_length`` (per config, default 200) when given or when length_effect != 0.
    """
    s = np.asarray(strengths, dtype=float)
    n = s.size
    ids = config_ids(n)
    means = np.full(n, 200.0) if mean_length is None else np.asarray(mean_length, dtype=float)
    with_lengths = mean_length is not None or length_effect != 0.0
    a = rng.integers(0, n, size=n_votes)
    b = (a + rng.integers(1, n, size=n_votes)) % n  # uniform over the other configurations
    la, lb = rng.gamma(8.0, means[a] / 8.0), rng.gamma(8.0, means[b] / 8.0)
    d = s[a] - s[b] + length_effect * (la - lb) / (la + lb)
    weights = np.stack([np.exp(d / 2), np.exp(-d / 2), np.full(n_votes, tie_strength)], axis=1)
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    outcome = (rng.random(n_votes)[:, None] > cumulative[:, :2]).sum(axis=1)
    left = rng.random(n_votes) < 0.5
    return [
        Vote(
            item_id=f"item{k % 40}",
            annotator_id=annotators[k % len(annotators)],
            config_a=ids[a[k]],
            config_b=ids[b[k]],
            outcome=("a", "b", "tie")[outcome[k]],
            shown_left="a" if left[k] else "b",
            length_a=float(la[k]) if with_lengths else None,
            length_b=float(lb[k]) if with_lengths else None,
        )
        for k in range(n_votes)
    ]


def centred(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x - x.mean()


def scores_in_order(result, configs: Sequence[str]) -> np.ndarray:
    by_config = result.as_dict()
    return np.array([by_config[c] for c in configs])
