"""Reads of the workbench. Querysets are scoped to the owner: another user's objects are 404."""

from __future__ import annotations

import datetime as dt
import statistics
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, F, Min, Prefetch, Q, QuerySet
from django.db.models.functions import Length, Substr
from django.http import Http404
from django.utils import timezone

from decodelab.common.errors import ApplicationError
from decodelab.experiments import aggregate
from decodelab.experiments.models import (
    Experiment,
    ExperimentComparison,
    ExperimentConfig,
    Preset,
    PromptItem,
    PromptSet,
    Sweep,
)
from decodelab.runs.models import FINISHED_STATUSES, Output, Run, RunStatus

STATUSES = ("queued", "running", "finished", "cancelled")
PREVIEW_CHARS = 140
# Runs started this recently count as evidence of a worker when estimating the time left.
WORKER_WINDOW = dt.timedelta(minutes=10)


def _get(queryset: QuerySet, what: str, **lookup: Any):
    try:
        return queryset.get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, ValidationError):  # a malformed id is no object either
        raise Http404(f"No such {what}.") from None


# --- prompt sets -------------------------------------------------------------------------


def prompt_set_list(*, user, q: str = "") -> QuerySet[PromptSet]:
    qs = (
        PromptSet.objects.filter(owner=user)
        .annotate(
            item_count=Count("items", distinct=True),
            duplicate_count=Count("items", filter=Q(items__duplicate_of__isnull=False), distinct=True),
        )
        .order_by("-created_at")
    )
    return qs.filter(name__icontains=q) if q else qs


def prompt_set_find(*, user, prompt_set_id) -> PromptSet | None:
    """The user's prompt set, or None for an unknown, foreign or malformed id (form and API input)."""
    try:
        return prompt_set_list(user=user).filter(id=uuid.UUID(str(prompt_set_id))).first()
    except ValueError:
        return None


def prompt_set_get(*, user, prompt_set_id) -> PromptSet:
    items = PromptItem.objects.order_by("position").select_related("duplicate_of")
    qs = prompt_set_list(user=user).prefetch_related(Prefetch("items", queryset=items))
    return _get(qs, "prompt set", id=prompt_set_id)


# --- presets and sweeps ------------------------------------------------------------------


def preset_list(*, user, strategy: str = "", model: str = "", q: str = "", config_hash: str = "") -> QuerySet[Preset]:
    qs = Preset.objects.filter(owner=user).select_related("sweep")
    if strategy:
        qs = qs.filter(strategy=strategy)
    if model:
        qs = qs.filter(model=model)
    if config_hash:
        qs = qs.filter(config_hash=config_hash)
    if q:
        qs = qs.filter(name__icontains=q)
    return qs


def preset_get(*, user, preset_id) -> Preset:
    return _get(Preset.objects.filter(owner=user), "preset", id=preset_id)


def presets_by_ids(*, user, ids: list) -> list[Preset]:
    """The user's presets in the order asked; an unknown or foreign id is an error naming it."""
    for i, preset_id in enumerate(ids):
        try:
            uuid.UUID(str(preset_id))
        except ValueError:
            raise ApplicationError(f"not a preset id: {str(preset_id)!r}", field=f"presets[{i}]") from None
    found = {str(p.id): p for p in Preset.objects.filter(owner=user, id__in=ids)}
    for i, preset_id in enumerate(ids):
        if str(preset_id) not in found:
            raise ApplicationError(f"no such preset {str(preset_id)!r}", field=f"presets[{i}]")
    return [found[str(i)] for i in ids]


def sweep_list(*, user) -> QuerySet[Sweep]:
    return Sweep.objects.filter(owner=user).prefetch_related(
        Prefetch("presets", queryset=Preset.objects.order_by("created_at"))
    )


def sweep_get(*, user, sweep_id) -> Sweep:
    return _get(sweep_list(user=user), "sweep", id=sweep_id)


# --- experiments -------------------------------------------------------------------------


def experiment_runs(experiment: Experiment) -> QuerySet[Run]:
    return Run.objects.filter(comparison__experiment_link__experiment=experiment)


def experiment_list(*, user, status: str = "", q: str = "", prompt_set: str = "") -> QuerySet[Experiment]:
    runs = "comparisons__comparison__runs"
    qs = (
        Experiment.objects.filter(owner=user)
        .select_related("prompt_set")
        .annotate(
            run_total=Count(runs, distinct=True),
            run_unfinished=Count(runs, filter=Q(**{f"{runs}__status__in": ("queued", "running")}), distinct=True),
            run_started=Count(runs, filter=~Q(**{f"{runs}__status": "queued"}), distinct=True),
        )
        .order_by("-created_at")
    )
    if q:
        qs = qs.filter(name__icontains=q)
    if prompt_set:
        try:
            qs = qs.filter(prompt_set_id=uuid.UUID(str(prompt_set)))
        except ValueError:
            raise ApplicationError("must be a prompt set id", field="prompt_set") from None
    if status == "cancelled":
        qs = qs.filter(cancelled_at__isnull=False)
    elif status == "finished":
        qs = qs.filter(cancelled_at__isnull=True, run_unfinished=0)
    elif status == "running":
        qs = qs.filter(cancelled_at__isnull=True, run_unfinished__gt=0, run_started__gt=0)
    elif status == "queued":
        qs = qs.filter(cancelled_at__isnull=True, run_unfinished__gt=0, run_started=0)
    return qs


def experiment_list_status(experiment: Experiment) -> dict[str, Any]:
    """Status and counts of an experiment from experiment_list's annotations (no query)."""
    total, unfinished = experiment.run_total, experiment.run_unfinished
    if experiment.cancelled_at:
        status = "cancelled"
    elif total and not unfinished:
        status = "finished"
    elif experiment.run_started:
        status = "running"
    else:
        status = "queued"
    return {"status": status, "total": total, "finished": total - unfinished}


def experiment_get(*, user, experiment_id) -> Experiment:
    qs = Experiment.objects.filter(owner=user).select_related("prompt_set")
    qs = qs.prefetch_related(Prefetch("configs", queryset=ExperimentConfig.objects.order_by("position")))
    return _get(qs, "experiment", id=experiment_id)


def experiment_progress(experiment: Experiment, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Run counts by status, percent finished and an ETA.

    ETA = unfinished runs / throughput, where throughput = runs a worker finished (succeeded or
    failed) per second since the first of them started, over the last 10 minutes once the
    experiment has run longer. A throughput, not a mean run duration: workers decode compatible
    runs together, so 16 runs that finish at once after 10 s are 1.6 runs/s of progress, not 16
    runs of 10 s each; several workers add up the same way. None until a run has finished.
    ``workers`` = distinct workers that started one of its runs in the last 10 minutes.
    """
    now = now or timezone.now()
    runs = experiment_runs(experiment)
    counts = {s: 0 for s in RunStatus.values}
    for row in runs.values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    total = sum(counts.values())
    finished = sum(counts[s] for s in FINISHED_STATUSES)
    workers = (
        runs.filter(started_at__gte=now - WORKER_WINDOW).exclude(worker="").values("worker").distinct().count() or 1
    )
    remaining = total - finished
    worked = runs.filter(status__in=(RunStatus.SUCCEEDED, RunStatus.FAILED), started_at__isnull=False)
    durations = [
        (end - start).total_seconds()
        for start, end in worked.filter(status=RunStatus.SUCCEEDED).values_list("started_at", "finished_at")
        if end
    ]
    first_start = worked.aggregate(first=Min("started_at"))["first"]
    window_start = max(first_start, now - WORKER_WINDOW) if first_start else None
    done_in_window = worked.filter(finished_at__gte=window_start).count() if window_start else 0
    span = (now - window_start).total_seconds() if window_start else 0.0
    if total and not remaining:
        eta: float | None = 0.0
    elif done_in_window and span > 0:
        eta = remaining / (done_in_window / span)
    else:
        eta = None  # nothing has finished yet (or nothing lately): no basis for an estimate
    if experiment.cancelled_at:
        status = "cancelled"
    elif total and remaining == 0:
        status = "finished"
    elif finished or counts["running"]:
        status = "running"
    else:
        status = "queued"
    return {
        "status": status,
        "total": total,
        "finished": finished,
        "percent": round(100 * finished / total, 1) if total else 0.0,
        **counts,
        "eta_s": None if eta is None or status == "cancelled" else round(eta, 1),
        "mean_run_s": round(statistics.fmean(durations), 3) if durations else None,
        "workers": workers,
        "done": status in ("finished", "cancelled"),
    }


def experiment_items(experiment: Experiment) -> QuerySet[PromptItem]:
    """The prompts the experiment ran, in set order."""
    ids = ExperimentComparison.objects.filter(experiment=experiment).values("item_id")
    return PromptItem.objects.filter(id__in=ids).order_by("position")


def experiment_grid(experiment: Experiment, items: list[PromptItem]) -> dict[str, Any]:
    """Cells for the given prompts: for each (prompt, configuration), its runs by sample with
    the first output's preview. Four queries, whatever the size: links, runs, outputs, configs."""
    configs = list(experiment.configs.all())
    by_hash = {c.config_hash: c for c in configs}
    links = ExperimentComparison.objects.filter(experiment=experiment, item__in=items).values(
        "item_id", "comparison_id"
    )
    item_of = {link["comparison_id"]: link["item_id"] for link in links}
    runs = list(
        Run.objects.filter(comparison_id__in=item_of)
        .order_by("sample")
        .values("id", "comparison_id", "config_hash", "sample", "status", "error", "seed")
    )
    previews = {
        o["run_id"]: o
        for o in Output.objects.filter(run__comparison_id__in=list(item_of), index=0).values(
            "run_id", "finish_reason", preview=Substr("text", 1, PREVIEW_CHARS), length=Length("text")
        )
    }
    cells: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for run in runs:
        out = previews.get(run["id"])
        run["preview"] = out["preview"].strip() if out else ""
        run["truncated"] = bool(out and out["length"] > PREVIEW_CHARS)
        run["finish_reason"] = out["finish_reason"] if out else ""
        cells.setdefault((item_of[run["comparison_id"]], run["config_hash"]), []).append(run)
    rows = [
        {"item": item, "cells": [{"config": c, "runs": cells.get((item.id, c.config_hash), [])} for c in configs]}
        for item in items
    ]
    return {"configs": configs, "rows": rows, "by_hash": by_hash}


def _item_runs(experiment: Experiment, item_id) -> QuerySet[Run]:
    links = ExperimentComparison.objects.filter(experiment=experiment, item_id=item_id)
    return Run.objects.filter(comparison__experiment_link__in=links)


def experiment_cell(experiment: Experiment, *, item_id, config_hash: str) -> tuple[PromptItem, ExperimentConfig, list]:
    """One cell: its prompt, configuration and runs (every sample) with their outputs."""
    config = next((c for c in experiment.configs.all() if c.config_hash == config_hash), None)
    link = ExperimentComparison.objects.filter(experiment=experiment, item_id=item_id).select_related("item").first()
    if config is None or link is None:
        raise Http404("No such cell.")
    runs = list(
        _item_runs(experiment, link.item_id)
        .filter(config_hash=config_hash)
        .select_related("comparison")
        .prefetch_related(Prefetch("outputs", queryset=Output.objects.order_by("index")))
        .order_by("sample")
    )
    return link.item, config, runs


def experiment_prompt_runs(experiment: Experiment, *, item_id) -> tuple[PromptItem, list[Run]]:
    """Every run of one prompt (all configurations, all samples) with outputs, for side by side."""
    link = ExperimentComparison.objects.filter(experiment=experiment, item_id=item_id).select_related("item").first()
    if link is None:
        raise Http404("No such prompt in this experiment.")
    runs = list(
        _item_runs(experiment, link.item_id)
        .prefetch_related(Prefetch("outputs", queryset=Output.objects.order_by("index")))
        .order_by("sample", "position")
    )
    return link.item, runs


def output_get(*, user, run_id, index: int) -> Output:
    qs = Output.objects.select_related("run", "run__comparison").filter(run__comparison__owner=user)
    return _get(qs, "output", run_id=run_id, index=index)


def experiment_output_rows(experiment: Experiment) -> QuerySet[Run]:
    """Runs of the experiment for metrics and exports, with prompt ids (annotated), in order."""
    return (
        experiment_runs(experiment)
        .annotate(
            item_id=F("comparison__experiment_link__item_id"),
            item_position=F("comparison__experiment_link__item__position"),
        )
        .order_by("item_position", "config_hash", "sample")
    )


def experiment_metrics(experiment: Experiment) -> dict[str, Any]:
    """Per-configuration metrics (definitions: experiments.aggregate), from two queries."""
    configs = [
        {"config_hash": c.config_hash, "label": c.label, "strategy": c.strategy, "model": c.model}
        for c in experiment.configs.all()
    ]
    runs = list(
        experiment_runs(experiment).values(
            "id", "config_hash", "status", "metrics", "environment", item_id=F("comparison__experiment_link__item_id")
        )
    )
    outputs = list(
        Output.objects.filter(run__in=experiment_runs(experiment)).values(
            "run_id", "text", "token_ids", "finish_reason", "metrics", "trace"
        )
    )
    return aggregate.configuration_metrics(configs, runs, outputs)
