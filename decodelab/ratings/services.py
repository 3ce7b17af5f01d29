"""Writes: create sessions, turn finished comparisons into items, assign them, store votes.

Randomness that an annotator could exploit (left/right order, queue order, opaque ids) comes
from ``secrets`` so that it is unpredictable, not merely shuffled.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from decodelab.common.errors import ApplicationError
from decodelab.ratings.models import (
    Assignment,
    AssignmentStatus,
    Candidate,
    Choice,
    Item,
    LikertScore,
    Mode,
    RatingSession,
    SessionAnnotator,
    SessionComparison,
    SessionStatus,
    Vote,
)
from decodelab.runs import selectors as runs_selectors
from decodelab.users.models import Role

MAX_COMPARISONS = 500
MAX_GOLD = 100
MAX_RANKING_ITEMS_PER_PROMPT = 10
DEFAULT_CRITERIA = ["fluency", "relevance", "overall"]
_random = secrets.SystemRandom()


class VoteConflict(ApplicationError):
    """A second answer to the same assignment (or one to a skipped item)."""

    status_code = 409


def _annotators(usernames: Iterable[str]) -> list:
    names = list(dict.fromkeys(usernames))
    if not names:
        raise ApplicationError("choose at least one annotator", field="annotators")
    users = {u.username: u for u in get_user_model().objects.filter(username__in=names)}
    for name in names:
        user = users.get(name)
        if user is None:
            raise ApplicationError(f"no user {name!r}", field="annotators")
        if user.role != Role.ANNOTATOR:
            raise ApplicationError(f"{name!r} is not an annotator", field="annotators")
    return [users[n] for n in names]


def _clean_gold(gold: Sequence[dict[str, Any]], mode: str, criteria: list[str], k: int) -> list[dict[str, Any]]:
    """Gold items: a prompt, its outputs as texts and the expected answer (see the README)."""
    if len(gold) > MAX_GOLD:
        raise ApplicationError(f"at most {MAX_GOLD} gold items", field="gold")
    clean = []
    for i, entry in enumerate(gold):
        field = f"gold[{i}]"
        if not isinstance(entry, dict):
            raise ApplicationError("must be an object with prompt, outputs and expected", field=field)
        prompt, outputs, expected = entry.get("prompt"), entry.get("outputs"), entry.get("expected")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ApplicationError("must be a non-empty string", field=f"{field}.prompt")
        need = {Mode.PAIRWISE: 2, Mode.LIKERT: 1}.get(mode, k)
        if not isinstance(outputs, list) or len(outputs) != need or not all(isinstance(o, str) for o in outputs):
            raise ApplicationError(f"must be a list of {need} texts for a {mode} session", field=f"{field}.outputs")
        if mode == Mode.PAIRWISE and expected not in (0, 1, "tie", "both_bad"):
            raise ApplicationError("must be 0 or 1 (the better output), 'tie' or 'both_bad'", field=f"{field}.expected")
        if mode == Mode.LIKERT and not (
            isinstance(expected, dict)
            and expected
            and set(expected) <= set(criteria)
            and all(isinstance(v, int) and 1 <= v <= 5 for v in expected.values())
        ):
            raise ApplicationError("must map criteria to values 1-5", field=f"{field}.expected")
        if mode == Mode.RANKING and not (isinstance(expected, list) and sorted(expected) == list(range(need))):
            raise ApplicationError(
                f"must order the output indexes 0..{need - 1}, best first", field=f"{field}.expected"
            )
        clean.append({"prompt": prompt, "outputs": outputs, "expected": expected})
    return clean


@transaction.atomic
def session_create(
    *,
    owner,
    name: str,
    mode: str,
    comparison_ids: Sequence[Any],
    annotators: Sequence[str],
    overlap: int = 1,
    criteria: Sequence[str] | None = None,
    ranking_k: int = 3,
    instructions: str = "",
    active: bool = False,
    reveal_after_vote: bool = False,
    gold: Sequence[dict[str, Any]] = (),
    experiment_id: Any = None,
) -> RatingSession:
    """Create a session over the owner's comparisons; items appear as their runs finish."""
    if mode not in Mode.values:
        raise ApplicationError(f"must be one of {', '.join(Mode.values)}", field="mode")
    try:
        ids = list(dict.fromkeys(str(uuid.UUID(str(c))) for c in comparison_ids))
    except ValueError:
        raise ApplicationError("must be comparison ids (UUIDs)", field="comparisons") from None
    if not ids:
        raise ApplicationError("choose at least one comparison", field="comparisons")
    if len(ids) > MAX_COMPARISONS:
        raise ApplicationError(f"at most {MAX_COMPARISONS} comparisons", field="comparisons")
    # A foreign or unknown comparison is reported like a missing one (no existence leak).
    owned = {str(c.id) for c in runs_selectors.comparison_list(user=owner).filter(id__in=ids)}
    missing = [c for c in ids if c not in owned]
    if missing:
        raise ApplicationError(f"no comparison {missing[0]}", field="comparisons")
    users = _annotators(annotators)
    if not 1 <= overlap <= len(users):
        raise ApplicationError(f"must be between 1 and the number of annotators ({len(users)})", field="overlap")
    crit = [c.strip() for c in (criteria or []) if c.strip()]
    if mode == Mode.LIKERT:
        crit = list(dict.fromkeys(crit or DEFAULT_CRITERIA))
        if len(crit) > 9:
            raise ApplicationError("at most 9 criteria (one number key each)", field="criteria")
    else:
        crit = []
    if mode == Mode.RANKING and not 2 <= ranking_k <= 9:
        raise ApplicationError("must be between 2 and 9", field="ranking_k")
    if active and mode != Mode.PAIRWISE:
        raise ApplicationError("active pair selection needs a pairwise session", field="active")
    gold_items = _clean_gold(list(gold), mode, crit, ranking_k)

    session = RatingSession(
        owner=owner,
        name=name.strip(),
        mode=mode,
        criteria=crit,
        ranking_k=ranking_k,
        overlap=overlap,
        instructions=instructions,
        active=active,
        reveal_after_vote=reveal_after_vote,
        experiment_id=experiment_id,
    )
    session.full_clean()
    session.save()
    SessionComparison.objects.bulk_create([SessionComparison(session=session, comparison_id=c) for c in ids])
    SessionAnnotator.objects.bulk_create([SessionAnnotator(session=session, annotator=u) for u in users])
    for n, entry in enumerate(gold_items):
        item = Item.objects.create(
            session=session, key=f"gold:{n}", prompt=entry["prompt"], gold=True, expected=entry["expected"]
        )
        Candidate.objects.bulk_create(
            [Candidate(item=item, position=i, text=text) for i, text in enumerate(entry["outputs"])]
        )
        # Gold items check every annotator, so each one gets every gold item.
        _assign(item, users)
    session_items_sync(session=session)
    return session


def _cost_ms_per_token(metrics: dict | None) -> float | None:
    """Decode time per token; the first new token belongs to prefill, hence new_tokens - 1."""
    if not metrics or metrics.get("decode_ms") is None or metrics.get("new_tokens") is None:
        return None
    return float(metrics["decode_ms"]) / max(int(metrics["new_tokens"]) - 1, 1)


def _configurations(comparisons: Iterable) -> list[dict[str, Any]]:
    """One entry per configuration that succeeded on this prompt: its first output (n-best index 0)."""
    seen: dict[str, dict[str, Any]] = {}
    runs = [run for c in comparisons for run in c.runs.all()]
    for run in sorted(runs, key=lambda r: (r.sample, r.comparison.created_at, r.position)):
        outputs = [o for o in run.outputs.all() if o.index == 0]
        if run.status != "succeeded" or not outputs:
            continue
        key = run.config_hash or f"run-{run.id}"
        seen.setdefault(
            key,
            {
                "config_hash": key,
                "label": run.label,
                "run": run,
                "output": outputs[0],
                "cost": _cost_ms_per_token(run.metrics),
            },
        )
    return list(seen.values())


def _groups(session: RatingSession, configs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    if session.mode == Mode.LIKERT:
        return [[c] for c in configs]
    if session.mode == Mode.PAIRWISE:
        return [list(p) for p in combinations(configs, 2)]
    k = min(session.ranking_k, len(configs))
    groups = [list(g) for g in combinations(configs, k)]
    if len(groups) > MAX_RANKING_ITEMS_PER_PROMPT:
        groups = _random.sample(groups, MAX_RANKING_ITEMS_PER_PROMPT)
    return groups


def _make_items(session: RatingSession, comparisons: list) -> list[Item]:
    configs = _configurations(comparisons)
    if len(configs) < (1 if session.mode == Mode.LIKERT else 2):
        return []
    prompt = comparisons[0].prompt
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:16]
    items = []
    for group in _groups(session, configs):
        key = f"{digest}:" + "|".join(sorted(c["config_hash"] for c in group))
        item, created = Item.objects.get_or_create(
            session=session, key=key, defaults={"comparison": group[0]["run"].comparison, "prompt": prompt}
        )
        if not created:
            continue
        Candidate.objects.bulk_create(
            [
                Candidate(
                    item=item,
                    position=i,
                    output=c["output"],
                    run_id=c["run"].id,
                    config_hash=c["config_hash"],
                    label=c["label"],
                    text=c["output"].text,
                    n_tokens=len(c["output"].token_ids or []),
                    cost_ms_per_token=c["cost"],
                )
                for i, c in enumerate(group)
            ]
        )
        items.append(item)
    return items


def _shown_order(item: Item) -> list[str]:
    ids = list(item.candidates.order_by("position").values_list("public_id", flat=True))
    return _random.sample(ids, len(ids))


def _assign(item: Item, users: Sequence, *, shown: bool = False) -> list[Assignment]:
    now = timezone.now() if shown else None
    return Assignment.objects.bulk_create(
        [Assignment(item=item, annotator=u, shown_order=_shown_order(item), shown_at=now) for u in users]
    )


def _top_up(session: RatingSession, items: Iterable[Item]) -> None:
    """Give each item ``overlap`` annotators who have not skipped it, the least loaded first."""
    users = [link.annotator for link in session.annotator_links.select_related("annotator")]
    load = Counter(Assignment.objects.filter(item__session=session).values_list("annotator_id", flat=True).iterator())
    for item in items:
        taken = set(item.assignments.values_list("annotator_id", flat=True))
        live = item.assignments.exclude(status=AssignmentStatus.SKIPPED).count()
        free = [u for u in users if u.id not in taken]
        _random.shuffle(free)  # random among equally loaded annotators
        chosen = sorted(free, key=lambda u: load[u.id])[: max(session.overlap - live, 0)]
        for u in chosen:
            load[u.id] += 1
        _assign(item, chosen)


def session_items_sync(*, session: RatingSession) -> int:
    """Make items for comparisons whose runs have all finished; assign them unless the session is active.

    Idempotent (items are keyed), so any request may call it; it only opens a write transaction when
    there is something to write. Returns the number of new items.
    """
    links = {link.comparison_id: link for link in session.comparison_links.filter(itemized=False)}
    by_prompt: dict[str, list] = {}
    for comparison in runs_selectors.comparison_list(user=session.owner).filter(id__in=list(links)):
        by_prompt.setdefault(comparison.prompt, []).append(comparison)
    new_items: list[Item] = []
    for group in by_prompt.values():
        if any(not run.is_finished for c in group for run in c.runs.all()):
            continue  # items appear only once every run of the prompt has finished
        full = [runs_selectors.comparison_get(user=session.owner, comparison_id=c.id) for c in group]
        with transaction.atomic():
            new_items.extend(_make_items(session, full))
            SessionComparison.objects.filter(id__in=[links[c.id].id for c in group]).update(itemized=True)
    if not session.active:
        under = list(
            session.items.filter(gold=False)
            .annotate(
                live=Count("assignments", filter=~Q(assignments__status=AssignmentStatus.SKIPPED)),
                total=Count("assignments"),
            )
            .filter(live__lt=session.overlap, total__lt=session.annotator_links.count())
        )
        if under:
            with transaction.atomic():
                _top_up(session, under)
    return len(new_items)


def assignment_mark_shown(*, assignment: Assignment) -> Assignment:
    if assignment.shown_at is None:
        assignment.shown_at = timezone.now()
        assignment.save(update_fields=["shown_at", "updated_at"])
    return assignment


def assignment_create(*, item: Item, annotator) -> Assignment | None:
    """Active sessions: put one chosen item in an annotator's queue, shown now. None if they already had it."""
    try:
        with transaction.atomic():
            return _assign(item, [annotator], shown=True)[0]
    except IntegrityError:
        return None


def session_stop(*, session: RatingSession) -> None:
    if session.status == SessionStatus.OPEN:
        session.status = SessionStatus.STOPPED
        session.save(update_fields=["status", "updated_at"])


def session_set_status(*, session: RatingSession, status: str) -> RatingSession:
    if status not in SessionStatus.values:
        raise ApplicationError(f"must be one of {', '.join(SessionStatus.values)}", field="status")
    session.status = status
    session.save(update_fields=["status", "updated_at"])
    return session


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
        _top_up(assignment.item.session, [assignment.item])  # someone else rates it instead
    return assignment
