"""Pairwise votes and the count matrices built from them.

A vote is one annotator's blind judgement of two outputs for the same prompt (item), each produced by a
configuration (an opaque id such as a config hash). Outcomes:

- ``"a"``: the output of ``config_a`` is better; ``"b"``: the output of ``config_b`` is better;
- ``"tie"``: both are equally good; ``"both_bad"``: neither is acceptable.

``both_bad`` says nothing about which of the two is preferred, so every model here treats it as a tie by default
(Bradley-Terry: a Davidson tie; Elo: half a point each). It is still counted separately in ``OutcomeMatrices`` so
that a page can show how often both outputs were rejected. Callers that prefer to ignore such votes pass
``both_bad="drop"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Outcome = Literal["a", "b", "tie", "both_bad"]
Side = Literal["a", "b"]
BothBad = Literal["tie", "drop"]

OUTCOMES: tuple[str, ...] = ("a", "b", "tie", "both_bad")

# Row kinds used by the likelihood code: the first-listed config won, the second won, or a tie.
KIND_A, KIND_B, KIND_TIE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Vote:
    """One pairwise judgement.

    item_id: the prompt (or prompt + sample) both outputs answer.
    annotator_id: who voted.
    config_a, config_b: the two configurations compared (distinct opaque ids).
    outcome: "a", "b", "tie" or "both_bad" (see the module docstring).
    shown_left: which of the two ("a" or "b") was displayed on the left; used by the position-bias check.
    length_a, length_b: output lengths (tokens or characters, the same unit for all votes), for length control.
    """

    item_id: str
    annotator_id: str
    config_a: str
    config_b: str
    outcome: Outcome
    shown_left: Side = "a"
    length_a: float | None = None
    length_b: float | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        if self.shown_left not in ("a", "b"):
            raise ValueError(f"shown_left must be 'a' or 'b', got {self.shown_left!r}")
        if self.config_a == self.config_b:
            raise ValueError("a vote compares two different configurations")

    @property
    def winner(self) -> str | None:
        """The preferred configuration id, or None for a tie or both_bad."""
        if self.outcome == "a":
            return self.config_a
        if self.outcome == "b":
            return self.config_b
        return None


@dataclass(frozen=True)
class OutcomeMatrices:
    """Counts over configurations, indexed in the order of ``configs``.

    wins[i, j]: votes in which configs[i] was preferred to configs[j].
    ties[i, j]: votes between i and j with outcome "tie" (symmetric).
    both_bad[i, j]: votes between i and j with outcome "both_bad" (symmetric).
    """

    configs: tuple[str, ...]
    wins: np.ndarray
    ties: np.ndarray
    both_bad: np.ndarray

    @property
    def comparisons(self) -> np.ndarray:
        """Total votes between each pair, whatever the outcome (symmetric)."""
        return self.wins + self.wins.T + self.ties + self.both_bad

    @property
    def votes_per_config(self) -> np.ndarray:
        """Number of votes each configuration took part in."""
        return self.comparisons.sum(axis=1)


def config_order(votes: Iterable[Vote], configs: Sequence[str] | None = None) -> tuple[str, ...]:
    """The configurations to report: ``configs`` when given (in that order), else those seen, sorted."""
    if configs is not None:
        order = tuple(configs)
        if len(set(order)) != len(order):
            raise ValueError("configs contains duplicates")
        return order
    seen: set[str] = set()
    for vote in votes:
        seen.add(vote.config_a)
        seen.add(vote.config_b)
    return tuple(sorted(seen))


def outcome_matrices(votes: Sequence[Vote], *, configs: Sequence[str] | None = None) -> OutcomeMatrices:
    """Win, tie and both-bad count matrices over configurations (see ``OutcomeMatrices``).

    Votes on a configuration missing from ``configs`` raise ValueError rather than being silently dropped.
    """
    order = config_order(votes, configs)
    index = {c: i for i, c in enumerate(order)}
    n = len(order)
    wins = np.zeros((n, n), dtype=np.int64)
    ties = np.zeros((n, n), dtype=np.int64)
    both_bad = np.zeros((n, n), dtype=np.int64)
    for vote in votes:
        try:
            i, j = index[vote.config_a], index[vote.config_b]
        except KeyError as exc:
            raise ValueError(f"vote on a configuration not in configs: {exc.args[0]!r}") from None
        if vote.outcome == "a":
            wins[i, j] += 1
        elif vote.outcome == "b":
            wins[j, i] += 1
        else:
            target = ties if vote.outcome == "tie" else both_bad
            target[i, j] += 1
            target[j, i] += 1
    return OutcomeMatrices(configs=order, wins=wins, ties=ties, both_bad=both_bad)


@dataclass(frozen=True)
class EncodedVotes:
    """Votes as arrays for the likelihood code: one entry per kept vote."""

    configs: tuple[str, ...]
    first: np.ndarray  # index of config_a
    second: np.ndarray  # index of config_b
    kind: np.ndarray  # KIND_A, KIND_B or KIND_TIE
    length_a: np.ndarray  # NaN where unknown
    length_b: np.ndarray


def encode_votes(
    votes: Sequence[Vote], *, configs: Sequence[str] | None = None, both_bad: BothBad = "tie"
) -> EncodedVotes:
    """Turn votes into index arrays; ``both_bad`` votes become ties or are dropped (see the module docstring)."""
    if both_bad not in ("tie", "drop"):
        raise ValueError("both_bad must be 'tie' or 'drop'")
    order = config_order(votes, configs)
    index = {c: i for i, c in enumerate(order)}
    kind_of = {"a": KIND_A, "b": KIND_B, "tie": KIND_TIE, "both_bad": KIND_TIE}
    kept = [v for v in votes if not (v.outcome == "both_bad" and both_bad == "drop")]
    try:
        first = np.array([index[v.config_a] for v in kept], dtype=np.int64)
        second = np.array([index[v.config_b] for v in kept], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"vote on a configuration not in configs: {exc.args[0]!r}") from None
    kind = np.array([kind_of[v.outcome] for v in kept], dtype=np.int64)
    nan = float("nan")
    length_a = np.array([nan if v.length_a is None else v.length_a for v in kept], dtype=float)
    length_b = np.array([nan if v.length_b is None else v.length_b for v in kept], dtype=float)
    return EncodedVotes(order, first, second, kind, length_a, length_b)
