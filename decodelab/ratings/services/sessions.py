"""Writes: create sessions, turn finished comparisons into items, assign them to annotators.

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
from django.utils import timezone

from decodelab.common.errors import ApplicationError
from decodelab.ratings.models import (
    Assignment,
    AssignmentStatus,
    Candidate,
    Item,
    Mode,
    RatingSession,
    SessionAnnotator,
    SessionComparison,
    SessionStatus,
)
from decodelab.runs import selectors as runs_selectors
from decodelab.users.models import Role

MAX_COMPARISONS = 500
MAX_GOLD = 100
MAX_RANKING_ITEMS_PER_PROMPT = 10
DEFAULT_CRITERIA = ["fluency", "relevance", "overall"]
_random = secrets.SystemRandom()


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
    """The prompt's new items with their candidates, in three queries whatever their number."""
    configs = _configurations(comparisons)
    if len(configs) < (1 if session.mode == Mode.LIKERT else 2):
        return []
    prompt = comparisons[0].prompt
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:16]
    keyed = {
        f"{digest}:" + "|".join(sorted(c["config_hash"] for c in group)): group for group in _groups(session, configs)
    }
    existing = set(session.items.filter(key__in=list(keyed)).values_list("key", flat=True))
    new = [
        (Item(session=session, key=key, comparison=group[0]["run"].comparison, prompt=prompt), group)
        for key, group in keyed.items()
        if key not in existing
    ]
    Item.objects.bulk_create([item for item, _ in new])
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
            for item, group in new
            for i, c in enumerate(group)
        ]
    )
    return [item for item, _ in new]


def _shown(ids: Sequence[str]) -> list[str]:
    """Left to right (or 1..k): a fresh random order for each (item, annotator)."""
    return _random.sample(list(ids), len(ids))


def _candidate_ids(items: Sequence[Item]) -> dict[int, list[str]]:
    ids: dict[int, list[str]] = {}
    rows = Candidate.objects.filter(item__in=items).order_by("item_id", "position")
    for item_id, public_id in rows.values_list("item_id", "public_id"):
        ids.setdefault(item_id, []).append(public_id)
    return ids


def _assign(item: Item, users: Sequence, *, shown: bool = False) -> list[Assignment]:
    now = timezone.now() if shown else None
    ids = _candidate_ids([item])[item.id]
    return Assignment.objects.bulk_create(
        [Assignment(item=item, annotator=u, shown_order=_shown(ids), shown_at=now) for u in users]
    )


TOP_UP_BATCH = 500


def top_up(session: RatingSession, items: Sequence[Item]) -> None:
    """Give each item ``overlap`` annotators who have not skipped it, the least loaded first."""
    users = [link.annotator for link in session.annotator_links.select_related("annotator")]
    load = Counter(Assignment.objects.filter(item__session=session).values_list("annotator_id", flat=True).iterator())
    for start in range(0, len(items), TOP_UP_BATCH):
        batch = items[start : start + TOP_UP_BATCH]
        taken: dict[int, set[int]] = {}
        live: Counter[int] = Counter()
        for item_id, annotator_id, status in Assignment.objects.filter(item__in=batch).values_list(
            "item_id", "annotator_id", "status"
        ):
            taken.setdefault(item_id, set()).add(annotator_id)
            live[item_id] += status != AssignmentStatus.SKIPPED
        candidates = _candidate_ids(batch)
        new = []
        for item in batch:
            free = [u for u in users if u.id not in taken.get(item.id, set())]
            _random.shuffle(free)  # random among equally loaded annotators
            for u in sorted(free, key=lambda u: load[u.id])[: max(session.overlap - live[item.id], 0)]:
                load[u.id] += 1
                new.append(Assignment(item=item, annotator=u, shown_order=_shown(candidates[item.id])))
        Assignment.objects.bulk_create(new)


def session_items_sync(*, session: RatingSession) -> int:
    """Make items for comparisons whose runs have all finished; assign them unless the session is active.

    Idempotent (items are keyed), so any request may call it; it only opens a write transaction when
    there is something to write. Returns the number of new items.
    """
    links = {link.comparison_id: link for link in session.comparison_links.filter(itemized=False)}
    if not links:
        return 0
    by_prompt: dict[str, list] = {}
    for comparison in runs_selectors.comparison_list(user=session.owner).filter(id__in=list(links)):
        by_prompt.setdefault(comparison.prompt, []).append(comparison)
    new_items: list[Item] = []
    for group in by_prompt.values():
        if any(not run.is_finished for c in group for run in c.runs.all()):
            continue  # items appear only once every run of the prompt has finished
        full = [runs_selectors.comparison_get(user=session.owner, comparison_id=c.id) for c in group]
        with transaction.atomic():
            items = _make_items(session, full)
            if not session.active:
                top_up(session, items)
            SessionComparison.objects.filter(id__in=[links[c.id].id for c in group]).update(itemized=True)
        new_items.extend(items)
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
