"""Streamed exports of a session's votes (JSONL, CSV) and of preference pairs for DPO-style training.

Rows are generated one vote at a time from an iterator, so a large session never sits in memory
as one string.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from itertools import combinations
from typing import Any

from decodelab.ratings import selectors
from decodelab.ratings.models import Mode, RatingSession
from decodelab.ratings.models import Vote as StoredVote

VOTE_COLUMNS = [
    "vote_id",
    "session",
    "item",
    "comparison",
    "gold",
    "annotator",
    "mode",
    "shown_left_config",
    "shown_left_label",
    "shown_right_config",
    "shown_right_label",
    "shown_configs",
    "choice",
    "winner_config",
    "reason",
    "ranking_configs",
    "scores",
    "shown_at",
    "created_at",
]


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def vote_row(vote: StoredVote, session: RatingSession) -> dict[str, Any]:
    """One vote with the order it was shown in, resolved to configuration hashes and labels."""
    item = vote.assignment.item
    by_id = {c.public_id: c for c in item.candidates.all()}
    shown = [by_id[pid] for pid in vote.shown_order]
    left, right = [*shown, None, None][:2]
    winner = {"left": left, "right": right}.get(vote.choice)
    return {
        "vote_id": vote.id,
        "session": str(session.id),
        "item": item.public_id,
        "comparison": str(item.comparison_id) if item.comparison_id else None,
        "gold": item.gold,
        "annotator": vote.assignment.annotator.username,
        "mode": session.mode,
        "shown_left_config": left.config_hash if left else None,
        "shown_left_label": left.label if left else None,
        "shown_right_config": right.config_hash if right else None,
        "shown_right_label": right.label if right else None,
        "shown_configs": [c.config_hash for c in shown],
        "choice": vote.choice or None,
        "winner_config": winner.config_hash if winner else None,
        "reason": vote.reason,
        "ranking_configs": [by_id[pid].config_hash for pid in vote.ranking] if vote.ranking else None,
        "scores": {s.criterion: s.value for s in vote.scores.all()} or None,
        "shown_at": _iso(vote.shown_at),
        "created_at": _iso(vote.created_at),
    }


def _votes(session: RatingSession) -> Iterator[StoredVote]:
    # chunk_size keeps prefetching (candidates, scores) working while iterating in batches.
    return selectors.session_votes(session=session).iterator(chunk_size=500)


def votes_jsonl(session: RatingSession) -> Iterator[str]:
    for vote in _votes(session):
        yield json.dumps(vote_row(vote, session), ensure_ascii=False) + "\n"


def votes_csv(session: RatingSession) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=VOTE_COLUMNS)
    writer.writeheader()
    for vote in _votes(session):
        row = vote_row(vote, session)
        for key in ("shown_configs", "ranking_configs"):
            row[key] = "|".join(row[key]) if row[key] else ""
        row["scores"] = json.dumps(row["scores"]) if row["scores"] else ""
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _pair(vote: StoredVote, session: RatingSession, chosen, rejected, source: str) -> dict[str, Any]:
    return {
        "prompt": vote.assignment.item.prompt,
        "chosen": chosen.text,
        "rejected": rejected.text,
        "provenance": {
            "session": str(session.id),
            "vote": vote.id,
            "item": vote.assignment.item.public_id,
            "comparison": str(vote.assignment.item.comparison_id),
            "annotator": vote.assignment.annotator.username,
            "chosen_config": chosen.config_hash,
            "chosen_label": chosen.label,
            "rejected_config": rejected.config_hash,
            "rejected_label": rejected.label,
            "source": source,
            "reason": vote.reason,
            "created_at": _iso(vote.created_at),
        },
    }


def preference_pairs(session: RatingSession) -> Iterator[dict[str, Any]]:
    """Decisive pairwise votes, and every pair a ranking implies; ties, both-bad, gold and Likert are left out."""
    for vote in _votes(session):
        item = vote.assignment.item
        if item.gold:
            continue
        by_id = {c.public_id: c for c in item.candidates.all()}
        if session.mode == Mode.PAIRWISE and vote.choice in ("left", "right"):
            left, right = (by_id[pid] for pid in vote.shown_order)
            chosen, rejected = (left, right) if vote.choice == "left" else (right, left)
            yield _pair(vote, session, chosen, rejected, "pairwise")
        elif session.mode == Mode.RANKING and vote.ranking:
            for better, worse in combinations(vote.ranking, 2):
                yield _pair(vote, session, by_id[better], by_id[worse], "ranking")


def preferences_jsonl(session: RatingSession) -> Iterator[str]:
    for pair in preference_pairs(session):
        yield json.dumps(pair, ensure_ascii=False) + "\n"
