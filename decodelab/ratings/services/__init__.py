"""Writes of the ratings app: sessions and their items (``sessions``), votes and skips (``votes``)."""

from decodelab.ratings.services.sessions import (
    DEFAULT_CRITERIA,
    assignment_create,
    assignment_mark_shown,
    session_create,
    session_items_sync,
    session_set_status,
    session_stop,
)
from decodelab.ratings.services.votes import VoteConflict, assignment_skip, vote_cast

__all__ = [
    "DEFAULT_CRITERIA",
    "VoteConflict",
    "assignment_create",
    "assignment_mark_shown",
    "assignment_skip",
    "session_create",
    "session_items_sync",
    "session_set_status",
    "session_stop",
    "vote_cast",
]
