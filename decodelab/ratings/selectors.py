"""Reads. Researchers see only their own sessions; annotators only their own assignments (else 404)."""

from __future__ import annotations

from collections import Counter

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, Prefetch, Q, QuerySet
from django.http import Http404

from decodelab.ratings.models import (
    Assignment,
    AssignmentStatus,
    Candidate,
    Item,
    LikertScore,
    RatingSession,
    SessionAnnotator,
    Vote,
)
from decodelab.users.models import Role


def session_list(*, user) -> QuerySet[RatingSession]:
    return (
        RatingSession.objects.filter(owner=user)
        .annotate(
            n_items=Count("items", distinct=True),
            n_votes=Count("items__assignments__vote", distinct=True),
        )
        .order_by("-created_at")
    )


def session_get(*, user, session_id) -> RatingSession:
    try:
        return RatingSession.objects.get(owner=user, id=session_id)
    except (RatingSession.DoesNotExist, ValueError):
        raise Http404("No such rating session.") from None


def annotator_choices() -> QuerySet:
    return get_user_model().objects.filter(role=Role.ANNOTATOR, is_active=True).order_by("username")


def _progress(rows) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for status, n in rows:
        counts[status] += n
    out = {status: counts[status] for status in AssignmentStatus.values}
    return {**out, "total": sum(out.values())}


def annotator_progress(*, session: RatingSession, user) -> dict[str, int]:
    rows = (
        Assignment.objects.filter(item__session=session, annotator=user).values_list("status").annotate(n=Count("id"))
    )
    progress = _progress(rows)
    if session.active:
        # Active sessions draw pairs one at a time, so "total" is only what has been drawn so far.
        progress["open_ended"] = 1
    return progress


def session_progress(*, session: RatingSession) -> list[dict]:
    """Per annotator: assigned, done, skipped and pending items (active sessions: drawn so far)."""
    links = session.annotator_links.select_related("annotator").order_by("annotator__username")
    rows = (
        Assignment.objects.filter(item__session=session).values_list("annotator_id", "status").annotate(n=Count("id"))
    )
    per_user: dict[int, list] = {}
    for annotator_id, status, n in rows:
        per_user.setdefault(annotator_id, []).append((status, n))
    return [{"annotator": link.annotator.username, **_progress(per_user.get(link.annotator_id, []))} for link in links]


def session_summary(*, session: RatingSession) -> dict[str, int]:
    items = session.items.aggregate(total=Count("id"), gold=Count("id", filter=Q(gold=True)))
    links = session.comparison_links.aggregate(total=Count("id"), waiting=Count("id", filter=Q(itemized=False)))
    return {
        "items": items["total"],
        "gold_items": items["gold"],
        "votes": Vote.objects.filter(assignment__item__session=session).count(),
        "comparisons": links["total"],
        "comparisons_waiting": links["waiting"],
    }


# --- annotator side: every lookup is scoped to the requesting annotator ---


def annotator_sessions(*, user) -> list[RatingSession]:
    return list(RatingSession.objects.filter(annotator_links__annotator=user).order_by("-created_at").distinct())


def annotator_session_get(*, user, public_id: str) -> RatingSession:
    try:
        return RatingSession.objects.get(public_id=public_id, annotator_links__annotator=user)
    except RatingSession.DoesNotExist:
        raise Http404("No such rating task.") from None


def _assignments(user) -> QuerySet[Assignment]:
    return Assignment.objects.filter(annotator=user).select_related("item__session")


def assignment_get(*, user, public_id: str) -> Assignment:
    """An assignment of this annotator; anyone else's is 404, not 403, so ids cannot be probed."""
    try:
        return _assignments(user).get(public_id=public_id)
    except Assignment.DoesNotExist:
        raise Http404("No such item.") from None


def assignment_in_progress(*, session: RatingSession, user) -> Assignment | None:
    """The item already on screen (shown, not answered), so a reload shows the same one."""
    return (
        _assignments(user)
        .filter(item__session=session, status=AssignmentStatus.PENDING, shown_at__isnull=False)
        .order_by("shown_at")
        .first()
    )


def assignment_next_pending(*, session: RatingSession, user, gold_only: bool = False) -> Assignment | None:
    qs = _assignments(user).filter(item__session=session, status=AssignmentStatus.PENDING)
    if gold_only:
        qs = qs.filter(item__gold=True)
    return qs.order_by("order_key").first()


def item_candidates(*, item: Item) -> dict[str, Candidate]:
    return {c.public_id: c for c in item.candidates.all()}


def active_open_pairs(*, session: RatingSession, user) -> dict[tuple[str, str], list[int]]:
    """Active sessions: item ids this annotator has not had that still need ratings, by their
    (sorted) configuration pair. One query, flat rows: it runs on every request for the next pair."""
    open_items = (
        session.items.filter(gold=False)
        .exclude(assignments__annotator=user)
        .annotate(live=Count("assignments", filter=~Q(assignments__status=AssignmentStatus.SKIPPED)))
        .filter(live__lt=session.overlap)
        .values("id")
    )
    configs: dict[int, list[str]] = {}
    for item_id, config in Candidate.objects.filter(item__in=open_items).values_list("item_id", "config_hash"):
        configs.setdefault(item_id, []).append(config)
    pairs: dict[tuple[str, str], list[int]] = {}
    for item_id, (a, b) in configs.items():
        pairs.setdefault((min(a, b), max(a, b)), []).append(item_id)
    return pairs


def item_get(*, item_id: int) -> Item:
    return Item.objects.get(id=item_id)


def session_is_member(*, session: RatingSession, user) -> bool:
    return SessionAnnotator.objects.filter(session=session, annotator=user).exists()


# --- researcher side: votes with everything the statistics and exports need ---


def vote_counts(*, session: RatingSession) -> dict[str, int]:
    """Votes on ordinary and on gold items, and the newest vote id (a cheap 'has anything changed')."""
    return Vote.objects.filter(assignment__item__session=session).aggregate(
        votes=Count("id", filter=Q(assignment__item__gold=False)),
        gold=Count("id", filter=Q(assignment__item__gold=True)),
        last=Max("id"),
    )


def session_votes(*, session: RatingSession, gold: bool | None = None) -> QuerySet[Vote]:
    """Votes with their items, candidates and scores; ``gold`` limits them to gold (or ordinary) items."""
    votes = Vote.objects.filter(assignment__item__session=session)
    if gold is not None:
        votes = votes.filter(assignment__item__gold=gold)
    return (
        votes.select_related("assignment__item", "assignment__annotator")
        .prefetch_related(
            Prefetch("assignment__item__candidates", queryset=Candidate.objects.order_by("position")),
            Prefetch("scores", queryset=LikertScore.objects.select_related("candidate")),
        )
        .order_by("created_at", "id")
    )


def session_candidates(*, session: RatingSession) -> QuerySet[Candidate]:
    return Candidate.objects.filter(item__session=session, item__gold=False)


def vote_rows(*, session: RatingSession) -> list[tuple]:
    """(item id, item public id, annotator username, choice, shown order) of non-gold votes, oldest first.

    Plain tuples: active sessions read every vote on each request, so no model instances are built.
    """
    return list(
        Vote.objects.filter(assignment__item__session=session, assignment__item__gold=False)
        .order_by("created_at", "id")
        .values_list(
            "assignment__item_id",
            "assignment__item__public_id",
            "assignment__annotator__username",
            "choice",
            "shown_order",
        )
    )


def candidate_rows(*, session: RatingSession) -> dict[int, list[tuple]]:
    """Item id -> its candidates' (public id, config hash, n_tokens) in canonical order (non-gold items)."""
    out: dict[int, list[tuple]] = {}
    rows = session_candidates(session=session).order_by("item_id", "position")
    for item_id, public_id, config, n_tokens in rows.values_list("item_id", "public_id", "config_hash", "n_tokens"):
        out.setdefault(item_id, []).append((public_id, config, n_tokens))
    return out
