"""Online Elo ratings, for reference next to the Bradley-Terry ranking.

Definition (as in the early Chatbot Arena leaderboard): every configuration starts at ``base``; votes are
processed in the order given. For a vote between a and b, the expected score of a is
E_a = 1 / (1 + 10^((R_b - R_a) / scale)); a scores S_a = 1 if preferred, 0 if b is preferred and 0.5 for a tie or
both_bad; then R_a += k (S_a - E_a) and R_b -= k (S_a - E_a). Elo depends on vote order and has no confidence
interval, which is why the Bradley-Terry fit is the ranking of record.
"""

from __future__ import annotations

from collections.abc import Sequence

from .pairwise import BothBad, Vote, config_order

_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}


def elo_ratings(
    votes: Sequence[Vote],
    *,
    k: float = 4.0,
    base: float = 1000.0,
    scale: float = 400.0,
    both_bad: BothBad = "tie",
    configs: Sequence[str] | None = None,
) -> dict[str, float]:
    """Elo rating of each configuration after processing ``votes`` in order (see the module docstring).

    both_bad="drop" skips both_bad votes instead of scoring them as ties.
    """
    if both_bad not in ("tie", "drop"):
        raise ValueError("both_bad must be 'tie' or 'drop'")
    ratings = dict.fromkeys(config_order(votes, configs), base)
    for vote in votes:
        if vote.outcome == "both_bad" and both_bad == "drop":
            continue
        if vote.config_a not in ratings or vote.config_b not in ratings:
            raise ValueError("vote on a configuration not in configs")
        ra, rb = ratings[vote.config_a], ratings[vote.config_b]
        expected_a = 1.0 / (1.0 + 10.0 ** ((rb - ra) / scale))
        delta = k * (_SCORE[vote.outcome] - expected_a)
        ratings[vote.config_a] = ra + delta
        ratings[vote.config_b] = rb - delta
    return ratings
