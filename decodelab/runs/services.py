"""Writes: create comparisons, dispatch their runs after commit, store worker results once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from decodelab.catalog import selectors as catalog
from decodelab.catalog.confighash import config_hash, config_identity
from decodelab.common.errors import ApplicationError, QuotaExceeded
from decodelab.runs import dispatch
from decodelab.runs.models import FINISHED_STATUSES, Comparison, Output, Run, RunStatus
from workers.protocol import (
    DecodeResult,
    ParamError,
    check_model_config,
    validate_max_new_tokens,
    validate_prompt,
    validate_seed,
    validate_stop,
)
from workers.reliability import task_id
from workers.strategies import STRATEGIES, build_config

log = logging.getLogger(__name__)


def preset_label(strategy: str, params: dict[str, Any]) -> str:
    """A short human label: the strategy plus the parameters that differ from its defaults
    (choices such as the speculative proposer always shown), long values shortened."""

    def short(v: Any) -> str:
        text = v if isinstance(v, str) else json.dumps(v)
        return text if len(text) <= 24 else text[:23] + "…"

    specs = {spec["name"]: spec for spec in STRATEGIES[strategy].param_specs()}
    shown = [
        f"{k}={short(v)}"
        for k, v in params.items()
        if v is not None and (specs[k]["kind"] == "choice" or specs[k]["default"] != v)
    ]
    return f"{strategy} ({', '.join(shown)})" if shown else strategy


def _validated_presets(
    presets: Any, model: str, offered: list[str], *, max_presets: int | None = None
) -> list[dict[str, Any]]:
    if not isinstance(presets, list) or not presets:
        raise ApplicationError("give at least one decoder preset", field="presets")
    limit = max_presets or settings.DECODELAB_MAX_PRESETS
    if len(presets) > limit:
        raise ApplicationError(f"at most {limit} presets per comparison (got {len(presets)})", field="presets")
    clean = []
    for i, preset in enumerate(presets):
        prefix = f"presets[{i}]"
        if not isinstance(preset, dict):
            raise ApplicationError("must be an object with strategy and params", field=prefix)
        unknown = sorted(set(preset) - {"strategy", "params", "seed", "label", "sample"})
        if unknown:
            raise ApplicationError(
                "unknown field (allowed: strategy, params, seed, label, sample)", field=f"{prefix}.{unknown[0]}"
            )
        sample = preset.get("sample", 0)
        if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample < 1000:
            raise ApplicationError("must be an integer between 0 and 999", field=f"{prefix}.sample")
        try:
            config = build_config(preset.get("strategy"), preset.get("params"))
            check_model_config(model, config)
            seed = validate_seed(preset.get("seed", 0))
        except ParamError as exc:
            raise ApplicationError(exc.message, field=f"{prefix}.{exc.field}") from exc
        draft = getattr(config, "draft_model", None)
        if draft and draft not in offered:
            raise ApplicationError(
                f"{draft!r} is not installed here (installed: {', '.join(offered)})",
                field=f"{prefix}.params.draft_model",
            )
        params = config.to_params()
        label = preset.get("label") or preset_label(config.strategy, params)
        if not isinstance(label, str) or len(label) > 200:
            raise ApplicationError("must be a string of at most 200 characters", field=f"{prefix}.label")
        clean.append({"strategy": config.strategy, "params": params, "seed": seed, "label": label, "sample": sample})
    return clean


def _validated_model(model: Any, offered: list[str]) -> str:
    if model in (None, ""):
        return settings.DECODELAB_DEFAULT_MODEL
    if model not in offered:
        raise ApplicationError(f"unknown model {model!r} (available: {', '.join(offered)})", field="model")
    return model


@transaction.atomic
def comparison_create(
    *,
    owner,
    prompt: Any,
    presets: Any,
    max_new_tokens: Any = 64,
    chat: Any = True,
    model: Any = None,
    stop: Any = None,
    max_presets: int | None = None,
    seed_policy: str = "fixed",
    dispatch_now: bool = True,
) -> Comparison:
    """Validate everything first; store the comparison and its runs; dispatch after commit.

    Any invalid field raises ApplicationError naming it, before a row is written. Presets may
    carry ``sample`` (the sample number, for repeated seeds of one configuration);
    ``seed_policy`` goes into every run's configuration hash. ``max_presets`` lets callers
    that build many runs per prompt (experiments) set their own limit; ``dispatch_now=False``
    leaves the runs for the reaper to dispatch (large experiments).
    """
    try:
        prompt = validate_prompt(prompt)
        max_new_tokens = validate_max_new_tokens(max_new_tokens)
        stop = validate_stop([] if stop is None else stop)
    except ParamError as exc:
        raise ApplicationError(exc.message, field=exc.field) from exc
    if not isinstance(chat, bool):
        raise ApplicationError("must be true or false", field="chat")
    offered = catalog.offered_model_names()  # one catalogue query for the model and every draft
    model = _validated_model(model, offered)
    clean_presets = _validated_presets(presets, model, offered, max_presets=max_presets)

    _check_quota(owner, adding=len(clean_presets))
    comparison = Comparison(
        owner=owner, prompt=prompt, chat=chat, max_new_tokens=max_new_tokens, model=model, stop=stop
    )
    comparison.full_clean()
    comparison.save()
    revision = catalog.model_revision(model)
    runs = []
    for i, preset in enumerate(clean_presets):
        identity = config_identity(
            model=model,
            strategy=preset["strategy"],
            params=preset["params"],
            max_new_tokens=max_new_tokens,
            chat=chat,
            stop=stop,
            seed_policy=seed_policy,
            model_revision=revision,
        )
        runs.append(Run(comparison=comparison, position=i, config_hash=config_hash(identity), **preset))
    Run.objects.bulk_create(runs)
    if dispatch_now:
        transaction.on_commit(lambda: _dispatch_created(runs))
    return comparison


def _dispatch_created(runs: list[Run]) -> None:
    """Send runs just created (still in memory, so no re-read). At the first broker failure the
    rest stay queued and undispatched, with the reason logged; the reaper sends them later."""
    for run in runs:
        if not run_dispatch(run=run):
            break


def _check_quota(owner, *, adding: int) -> None:
    """Refuse a submission that would put the user over their runs-in-flight quota.

    Counted and enforced inside the creating transaction, with the user's row locked, so two
    concurrent submissions cannot both slip under the limit (on SQLite the IMMEDIATE
    transaction already serialises writers).
    """
    limit = settings.DECODELAB_MAX_RUNS_IN_FLIGHT
    get_user_model().objects.select_for_update().filter(pk=owner.pk).exists()
    in_flight = Run.objects.filter(comparison__owner=owner, status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).count()
    if in_flight + adding > limit:
        raise QuotaExceeded(
            f"{in_flight} runs in flight and {adding} more asked for; the limit is {limit} "
            "(DECODELAB_MAX_RUNS_IN_FLIGHT). Wait for runs to finish or cancel some.",
            field="presets",
        )


def run_dispatch(*, run: Run) -> bool:
    """One send with a new task id (and lease). False when the broker could not be reached."""
    number = run.dispatches + 1
    limits = dispatch.time_limits(run)
    try:
        dispatch.send_decode(dispatch.build_request(run), task_id=task_id(str(run.id), number), limits=limits)
    except Exception:  # the broker is down or refused the message
        log.warning("could not dispatch run %s; the reaper will retry", run.id, exc_info=True)
        return False
    now = timezone.now()
    Run.objects.filter(id=run.id, status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).update(
        status=RunStatus.QUEUED,
        dispatches=number,
        dispatched_at=now,
        queued_at=run.queued_at or now,
        heartbeat_at=None,
        soft_time_limit_s=limits[0],
        time_limit_s=limits[1],
    )
    return True


def run_mark_running(*, run_id: str, attempt: int, worker: str, started_at: float, task: str | None = None) -> None:
    """A worker started the run (its ``attempt``-th start). Never moves a finished run
    backwards, and ignores a start of a dispatch the reaper has since replaced."""
    runs = Run.objects.filter(id=run_id).exclude(status__in=FINISHED_STATUSES)
    if task is not None:
        runs = runs.filter(dispatches=_dispatch_number(task))
    at = dt.datetime.fromtimestamp(started_at, tz=dt.UTC)
    runs.update(status=RunStatus.RUNNING, worker=worker[:200], started_at=at, heartbeat_at=at, attempts=attempt)


def run_heartbeat(*, run_id: str, task: str, at: float) -> None:
    Run.objects.filter(id=run_id, status=RunStatus.RUNNING, dispatches=_dispatch_number(task)).update(
        heartbeat_at=dt.datetime.fromtimestamp(at, tz=dt.UTC)
    )


def _dispatch_number(task: str) -> int:
    try:
        return int(task.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return -1


@transaction.atomic
def run_store_result(*, result: dict[str, Any]) -> bool:
    """Store a worker's result exactly once. Returns False when it was already stored.

    The row lock serialises concurrent writers; the unique (run, index) constraint on
    outputs is the backstop that makes a second write impossible.
    """
    parsed = DecodeResult.from_dict(result)
    run = Run.objects.select_for_update().filter(id=parsed.run_id).first()
    if run is None:
        log.warning("result for unknown run %s ignored", parsed.run_id)
        return False
    if run.is_finished:
        return False
    now = timezone.now()
    run.finished_at = now
    run.started_at = run.started_at or now
    run.environment = _as_dict(parsed.environment)
    run.metrics = _as_dict(parsed.metrics)
    if parsed.environment:
        run.worker = parsed.environment.worker[:200]
    if parsed.ok:
        run.status = RunStatus.SUCCEEDED
        run.prompt_token_ids = parsed.prompt_token_ids
        Output.objects.bulk_create(
            [
                Output(
                    run=run,
                    index=o.index,
                    text=o.text,
                    token_ids=o.token_ids,
                    score=o.score,
                    finish_reason=o.finish_reason,
                    group=o.group,
                    metrics=o.metrics,
                    trace=o.trace,
                )
                for o in parsed.outputs
            ]
        )
    else:
        run.status = RunStatus.FAILED
        run.error = parsed.error or "unknown error"
        run.error_field = parsed.error_field or ""
    run.attempts = max(run.attempts, parsed.attempt)
    run.save()
    run_ids = [str(run.id)]
    transaction.on_commit(lambda: dispatch.release(run_ids))
    return True


def _as_dict(obj: Any) -> dict[str, Any] | None:
    return dataclasses.asdict(obj) if obj is not None else None


@transaction.atomic
def runs_cancel(*, runs: list[Run]) -> int:
    """Cancel the given runs that have not finished; return how many were cancelled.

    The database decides: a cancelled run is finished, so a result that arrives later is
    ignored by run_store_result. Queued tasks are also revoked at the broker (best effort:
    a worker that already started one finishes it, and its result is dropped).
    """
    ids = [r.id for r in runs if not r.is_finished]
    locked = list(Run.objects.select_for_update().filter(id__in=ids).exclude(status__in=FINISHED_STATUSES))
    for run in locked:
        run.status = RunStatus.CANCELLED
        run.finished_at = timezone.now()
        run.error = "Cancelled by the researcher."
        run.save(update_fields=["status", "finished_at", "error", "updated_at"])
    task_ids = [run.task_id for run in locked if run.dispatches]
    run_ids = [str(run.id) for run in locked]
    if locked:
        transaction.on_commit(lambda: (dispatch.release(run_ids), task_ids and dispatch.revoke(task_ids)))
    return len(locked)
