"""Reads. Querysets are scoped to the user: another user's comparison does not exist (404)."""

from __future__ import annotations

from django.db.models import Count, Prefetch, QuerySet
from django.http import Http404

from decodelab.runs.models import Comparison, Output, Run, RunStatus


def comparison_list(*, user) -> QuerySet[Comparison]:
    return Comparison.objects.filter(owner=user).prefetch_related("runs")


def comparison_get(*, user, comparison_id) -> Comparison:
    runs = Run.objects.order_by("position").prefetch_related(
        Prefetch("outputs", queryset=Output.objects.order_by("index"))
    )
    try:
        return Comparison.objects.prefetch_related(Prefetch("runs", queryset=runs)).get(owner=user, id=comparison_id)
    except (Comparison.DoesNotExist, ValueError):
        raise Http404("No such comparison.") from None


def run_get(*, user, run_id) -> Run:
    try:
        return (
            Run.objects.select_related("comparison")
            .prefetch_related(Prefetch("outputs", queryset=Output.objects.order_by("index")))
            .get(comparison__owner=user, id=run_id)
        )
    except (Run.DoesNotExist, ValueError):
        raise Http404("No such run.") from None


def comparison_status(comparison: Comparison) -> str:
    """queued, running (some run started or finished), finished, failed (every run failed) or
    cancelled (every run cancelled)."""
    return status_of({run.status for run in comparison.runs.all()})


def status_of(states: set[str]) -> str:
    if states <= {"queued"}:
        return "queued"
    if states & {"queued", "running"}:
        return "running"
    if states == {"failed"}:
        return "failed"
    return "cancelled" if states == {"cancelled"} else "finished"


def comparison_progress(*, user, comparison_id) -> dict:
    """How far a comparison got, in two small queries (built for frequent polling): its status
    and its runs counted per status."""
    if not Comparison.objects.filter(owner=user, id=comparison_id).exists():
        raise Http404("No such comparison.")
    rows = Run.objects.filter(comparison_id=comparison_id).order_by().values_list("status").annotate(n=Count("id"))
    counts = dict(rows)
    by_status = {status: counts.get(status, 0) for status in RunStatus.values}
    total = sum(by_status.values())
    unfinished = by_status[RunStatus.QUEUED] + by_status[RunStatus.RUNNING]
    status = status_of({s for s, n in by_status.items() if n})
    return {"id": comparison_id, "status": status, "runs": by_status, "total": total, "finished": unfinished == 0}
