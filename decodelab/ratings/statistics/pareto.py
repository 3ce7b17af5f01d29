"""Quality-versus-cost Pareto frontier of configurations.

Definition: configuration p is dominated when another configuration q is at least as good on both axes
(score_q >= score_p and cost_q <= cost_p) and strictly better on one. The frontier is the set of configurations
that no other dominates: the ones worth considering at some quality/cost trade-off. Points are compared as given;
score uncertainty is not taken into account.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple


class ParetoPoint(NamedTuple):
    """config: id; score: higher is better (e.g. a Bradley-Terry score); cost: lower is better (e.g. ms per token)."""

    config: str
    score: float
    cost: float


def pareto_frontier(points: Iterable[ParetoPoint | tuple[str, float, float]]) -> list[ParetoPoint]:
    """The non-dominated points, ordered by increasing cost (so also increasing score).

    Points with identical score and cost are all kept; NaN scores or costs raise ValueError.
    """
    items = [ParetoPoint(*point) for point in points]
    for point in items:
        if math.isnan(point.score) or math.isnan(point.cost):
            raise ValueError(f"score and cost must be numbers: {point}")
    # Sorted by cost, then best score first: a point is on the frontier iff its score beats every cheaper point's
    # (or equals the best one at exactly the same cost and score).
    items.sort(key=lambda p: (p.cost, -p.score))
    frontier: list[ParetoPoint] = []
    best = -math.inf
    for point in items:
        if point.score > best:
            frontier.append(point)
            best = point.score
        elif frontier and point.score == frontier[-1].score and point.cost == frontier[-1].cost:
            frontier.append(point)
    return frontier
