"""Annotator quality checks: position (left/right) bias and accuracy on gold items.

Definitions shown to users:

- Left share: among an annotator's decisive votes (outcome "a" or "b"; ties and both_bad carry no side), the
  share that chose the output shown on the left. p-value: two-sided exact binomial test of that count against
  a fair 0.5 (scipy.stats.binomtest). Sides are assigned at random, so an unbiased annotator sits near 0.5
  whatever the configurations' quality; a small p-value flags a side preference.
- Gold accuracy: on gold items (prompts with a known expected answer: the configuration that should win, or
  "tie" / "both_bad"), the share of the annotator's votes that give that answer, with a Clopper-Pearson exact
  CI. A vote on a gold item whose pair does not include the expected winner cannot be judged and is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scipy.stats import binomtest

from .pairwise import Vote


@dataclass(frozen=True)
class PositionBias:
    annotator: str
    n_decisive: int
    n_left: int
    left_share: float  # NaN without decisive votes
    p_value: float  # 1.0 without decisive votes


def position_bias(votes: Iterable[Vote]) -> list[PositionBias]:
    """Left share and binomial p-value per annotator (see the module docstring), sorted by annotator."""
    tallies: dict[str, list[int]] = {}
    for vote in votes:
        tally = tallies.setdefault(vote.annotator_id, [0, 0])
        if vote.outcome in ("a", "b"):
            tally[0] += 1
            tally[1] += vote.outcome == vote.shown_left
    out = []
    for annotator, (decisive, left) in sorted(tallies.items()):
        if decisive == 0:
            out.append(PositionBias(annotator, 0, 0, float("nan"), 1.0))
            continue
        p_value = float(binomtest(left, decisive, 0.5, alternative="two-sided").pvalue)
        out.append(PositionBias(annotator, decisive, left, left / decisive, p_value))
    return out


@dataclass(frozen=True)
class GoldAccuracy:
    annotator: str
    n_gold: int  # judged votes on gold items
    n_correct: int
    accuracy: float  # NaN when n_gold == 0
    ci_lower: float
    ci_upper: float


def gold_accuracy(votes: Iterable[Vote], gold: Mapping[str, str], *, ci_level: float = 0.95) -> list[GoldAccuracy]:
    """Accuracy per annotator on gold items; ``gold`` maps item_id -> expected winner config, "tie" or "both_bad"."""
    tallies: dict[str, list[int]] = {}
    for vote in votes:
        expected = gold.get(vote.item_id)
        if expected is None:
            continue
        if expected in ("tie", "both_bad"):
            correct = vote.outcome == expected
        elif expected in (vote.config_a, vote.config_b):
            correct = vote.winner == expected
        else:
            continue
        tally = tallies.setdefault(vote.annotator_id, [0, 0])
        tally[0] += 1
        tally[1] += correct
    out = []
    for annotator, (judged, correct) in sorted(tallies.items()):
        interval = binomtest(correct, judged).proportion_ci(confidence_level=ci_level, method="exact")
        out.append(GoldAccuracy(annotator, judged, correct, correct / judged, interval.low, interval.high))
    return out
