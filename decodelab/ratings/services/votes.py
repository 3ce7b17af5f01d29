"""Writes: an annotator's vote (once) or skip."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from decodelab.common.errors import ApplicationError
from decodelab.ratings.models import Assignment, AssignmentStatus, Choice, LikertScore, Mode, SessionStatus, Vote
from decodelab.ratings.services.sessions import top_up


class VoteConflict(ApplicationError):
    """A second answer to the same assignment (or one to a skipped item)."""

    status_code = 409


def _check_open(assignment: Assignment) -> None:
    if assignment.status == AssignmentStatus.DONE or Vote.objects.filter(assignment=assignment).exists():
        raise VoteConflict("You have already voted on this item; a vote cannot be cast twice.")
    if assignment.status == AssignmentStatus.SKIPPED:
        raise VoteConflict("You skipped this item; it can no longer be rated.")


def _likert_scores(scores: Any, criteria: list[str]) -> dict[str, int]:
    if not isinstance(scores, dict):
        raise ApplicationError("give a score for each criterion", field="scores")
    clean = {}
    for criterion in criteria:
        value = scores.get(criterion)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise ApplicationError("must be an integer from 1 to 5", field=f"scores.{criterion}")
        clean[criterion] = value
    extra = sorted(set(scores) - set(criteria))
    if extra:
        raise ApplicationError("not a criterion of this session", field=f"scores.{extra[0]}")
    return clean


def vote_cast(
    *,
    assignment: Assignment,
    choice: str = "",
    reason: str = "",
    scores: dict[str, Any] | None = None,
    ranking: list[str] | None = None,
) -> Vote:
    """Store an annotator's answer. A second answer raises VoteConflict (409), whatever the race."""
    session = assignment.item.session
    _check_open(assignment)
    if session.status == SessionStatus.CLOSED:
        raise ApplicationError("This session is closed.", field="session")
    candidates = list(assignment.item.candidates.order_by("position"))
    fields: dict[str, Any] = {"reason": (reason or "").strip()[:2000]}
    likert: dict[str, int] = {}
    if session.mode == Mode.PAIRWISE:
        if choice not in Choice.values:
            raise ApplicationError(f"must be one of {', '.join(Choice.values)}", field="choice")
        fields["choice"] = choice
    elif session.mode == Mode.LIKERT:
        likert = _likert_scores(scores, session.criteria)
    else:
        ids = {c.public_id for c in candidates}
        if not isinstance(ranking, list) or len(ranking) != len(ids) or set(ranking) != ids:
            raise ApplicationError("must list every output id of the item once, best first", field="ranking")
        fields["ranking"] = ranking
    try:
        with transaction.atomic():
            vote = Vote.objects.create(
                assignment=assignment, shown_order=assignment.shown_order, shown_at=assignment.shown_at, **fields
            )
            LikertScore.objects.bulk_create(
                [LikertScore(vote=vote, candidate=candidates[0], criterion=c, value=v) for c, v in likert.items()]
            )
            assignment.status = AssignmentStatus.DONE
            assignment.done_at = vote.created_at
            assignment.save(update_fields=["status", "done_at", "updated_at"])
    except IntegrityError:
        # Two requests raced past _check_open: the one-to-one constraint let only one vote in.
        raise VoteConflict("You have already voted on this item; a vote cannot be cast twice.") from None
    return vote


@transaction.atomic
def assignment_skip(*, assignment: Assignment) -> Assignment:
    _check_open(assignment)
    assignment.status = AssignmentStatus.SKIPPED
    assignment.done_at = timezone.now()
    assignment.save(update_fields=["status", "done_at", "updated_at"])
    if not assignment.item.session.active and not assignment.item.gold:
        top_up(assignment.item.session, [assignment.item])  # someone else rates it instead
    return assignment
