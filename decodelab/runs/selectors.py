"""Reads. Querysets are scoped to the user: another user's comparison does not exist (404)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from decodelab.runs.models import Comparison, Output, Run


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
    states = {run.status for run in comparison.runs.all()}
    if states <= {"queued"}:
        return "queued"
    if states & {"queued", "running"}:
        return "running"
    if states == {"failed"}:
        return "failed"
    return "cancelled" if states == {"cancelled"} else "finished"
