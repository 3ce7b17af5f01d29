"""Annotator pages: the queue and the one-item-at-a-time rating page (htmx).

Blind by construction: templates under ratings/annotator/ receive only ``serializers.blind_item``
(opaque ids, prompt, texts in the stored order, instructions, criteria) and progress counts.
Every lookup is scoped to the logged-in annotator, so anyone else's item is 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from decodelab.common.errors import ApplicationError
from decodelab.ratings import selectors, serializers, services, serving
from decodelab.ratings.models import Mode
from decodelab.ratings.services import VoteConflict

TEMPLATE = "ratings/annotator/task.html"


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    if getattr(request.user, "is_researcher", False):
        return redirect("ratings:session_list")  # researchers manage sessions; they have no queue
    tasks = [
        {
            "id": s.public_id,
            "mode": s.mode,
            "instructions": s.instructions,
            "progress": selectors.annotator_progress(session=s, user=request.user),
        }
        for s in selectors.annotator_sessions(user=request.user)
    ]
    return render(request, "ratings/annotator/queue.html", {"tasks": tasks})


def _context(session, user, assignment=None, **extra: Any) -> dict[str, Any]:
    item = serializers.blind_item(assignment) if assignment else None
    return {
        "task_id": session.public_id,
        "mode": session.mode,
        "instructions": session.instructions,
        "item": item,
        "ranks": list(range(1, len(item["outputs"]) + 1)) if item else [],
        "progress": selectors.annotator_progress(session=session, user=user),
        **extra,
    }


def _render_next(request: HttpRequest, session, **extra: Any) -> HttpResponse:
    assignment = serving.next_assignment(session=session, user=request.user)
    context = _context(session, request.user, assignment, **extra)
    if request.htmx:
        return render(request, f"{TEMPLATE}#item", context)
    return render(request, TEMPLATE, context)


@login_required
@require_GET
def task(request: HttpRequest, task_id: str) -> HttpResponse:
    session = selectors.annotator_session_get(user=request.user, public_id=task_id)
    return _render_next(request, session)


@login_required
@require_GET
def item_detail(request: HttpRequest, item_id: str) -> HttpResponse:
    """One of the annotator's items: to rate if pending; after the vote, the reveal when the session allows it."""
    assignment = selectors.assignment_get(user=request.user, public_id=item_id)
    session = assignment.item.session
    context = _context(session, request.user, assignment, reveal=serializers.reveal(assignment))
    return render(request, TEMPLATE, context)


def _vote_fields(post, mode: str, item: dict[str, Any]) -> dict[str, Any]:
    """Form fields to vote_cast arguments: choice + reason, score-<criterion>, or rank-<output id>."""
    if mode == Mode.PAIRWISE:
        return {"choice": post.get("choice", ""), "reason": post.get("reason", "")}
    if mode == Mode.LIKERT:
        scores: dict[str, Any] = {}
        for criterion in item["criteria"]:
            raw = post.get(f"score-{criterion}", "")
            if not raw.isdigit():
                raise ApplicationError("choose a score from 1 to 5", field=criterion)
            scores[criterion] = int(raw)
        return {"scores": scores, "reason": post.get("reason", "")}
    ranks = {}
    for n, out in enumerate(item["outputs"], start=1):
        raw = post.get(f"rank-{out['id']}", "")
        if not raw.isdigit():
            raise ApplicationError(f"give output {n} a rank", field="ranking")
        ranks[out["id"]] = int(raw)
    if sorted(ranks.values()) != list(range(1, len(ranks) + 1)):
        raise ApplicationError("give each output a different rank, 1 = best", field="ranking")
    return {"ranking": sorted(ranks, key=ranks.__getitem__), "reason": post.get("reason", "")}


@login_required
@require_POST
def vote(request: HttpRequest, item_id: str) -> HttpResponse:
    assignment = selectors.assignment_get(user=request.user, public_id=item_id)
    session = assignment.item.session
    item = serializers.blind_item(assignment)
    try:
        services.vote_cast(assignment=assignment, **_vote_fields(request.POST, session.mode, item))
    except VoteConflict as exc:
        # A double press or a second tab: the first vote stands; move on.
        return _render_next(request, session, notice=exc.message)
    except ApplicationError as exc:
        context = _context(session, request.user, assignment, error=exc.message)
        # htmx swaps only 2xx responses, so the form with its message comes back as 200 there.
        status = 200 if request.htmx else exc.status_code
        return render(request, f"{TEMPLATE}#item" if request.htmx else TEMPLATE, context, status=status)
    assignment.refresh_from_db()
    revealed = serializers.reveal(assignment)
    if revealed is None:
        if request.htmx:
            return _render_next(request, session, notice="Saved.")
        return redirect("ratings:task", task_id=session.public_id)
    if request.htmx:
        context = _context(session, request.user, assignment, reveal=revealed)
        return render(request, f"{TEMPLATE}#item", context)
    return redirect("ratings:item", item_id=assignment.public_id)


@login_required
@require_POST
def skip(request: HttpRequest, item_id: str) -> HttpResponse:
    assignment = selectors.assignment_get(user=request.user, public_id=item_id)
    session = assignment.item.session
    try:
        services.assignment_skip(assignment=assignment)
    except VoteConflict as exc:
        return _render_next(request, session, notice=exc.message)
    if request.htmx:
        return _render_next(request, session, notice="Skipped.")
    return redirect("ratings:task", task_id=session.public_id)
