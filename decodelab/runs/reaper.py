"""The reaper: one sweep finds runs that would otherwise never finish, and moves them on.

- Runs never sent (the broker was down at submission, or large experiments) are dispatched.
- Running runs whose heartbeat went stale (their worker died or hung) are sent again, or
  failed: with "timeout" when they were already past their hard time limit, and after
  ``MAX_ATTEMPTS`` starts with the reason.
- Queued runs missing from their broker queue for ``DECODELAB_LOST_GRACE_S`` without having
  started (the broker restarted and lost them) are sent again.

`manage.py reap` runs a sweep every ``DECODELAB_REAP_EVERY_S`` seconds (one reaper per
deployment). A sweep is idempotent, so two reapers at once cost work, never runs.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from decodelab.runs import dispatch, services
from decodelab.runs.models import Run, RunStatus
from workers.reliability import MAX_ATTEMPTS, TIMEOUT_ERROR

log = logging.getLogger(__name__)

# The broker losing a run this many times means something other than a restart is wrong.
MAX_DISPATCHES = 10
# Runs created this recently are left to their own on-commit dispatch.
FRESH_S = 2.0


@dataclass
class Sweep:
    dispatched: int = 0
    redispatched_stale: int = 0
    redispatched_lost: int = 0
    failed: int = 0
    broker_down: bool = False

    def __bool__(self) -> bool:
        return bool(self.dispatched or self.redispatched_stale or self.redispatched_lost or self.failed)


def reap(*, now: dt.datetime | None = None) -> Sweep:
    now = now or timezone.now()
    sweep = Sweep()
    _reap_stale(now, sweep)
    _dispatch_pending(now, sweep)
    if not sweep.broker_down:
        _redispatch_lost(now, sweep)
    if sweep:
        log.info("reaper: %s", sweep)
    return sweep


def _fail(run: Run, reason: str, now: dt.datetime) -> bool:
    with transaction.atomic():
        done = Run.objects.filter(id=run.id, status=run.status, dispatches=run.dispatches).update(
            status=RunStatus.FAILED, error=reason, finished_at=now
        )
    if done:
        dispatch.release([str(run.id)])
    return bool(done)


def _reap_stale(now: dt.datetime, sweep: Sweep) -> None:
    policy = settings.DECODELAB_TIME_POLICY
    cutoff = now - dt.timedelta(seconds=policy.stale_s)
    stale = Run.objects.select_related("comparison").filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff), status=RunStatus.RUNNING
    )
    for run in stale:
        ran_s = (now - run.started_at).total_seconds() if run.started_at else 0.0
        if run.time_limit_s and ran_s >= run.time_limit_s:
            reason = (
                f"{TIMEOUT_ERROR}: ran past its hard time limit of {run.time_limit_s:g} s and its worker "
                f"process was stopped ({run.worker or 'unknown worker'})"
            )
            sweep.failed += _fail(run, reason, now)
        elif run.attempts >= MAX_ATTEMPTS:
            reason = (
                f"failed after {run.attempts} attempts: the worker running it stopped responding each time "
                f"(last: {run.worker or 'unknown'}, no heartbeat for {policy.stale_s:g} s)"
            )
            sweep.failed += _fail(run, reason, now)
        elif services.run_dispatch(run=run):
            sweep.redispatched_stale += 1
        else:
            sweep.broker_down = True
            return


def _dispatch_pending(now: dt.datetime, sweep: Sweep) -> None:
    pending = Run.objects.select_related("comparison").filter(
        status=RunStatus.QUEUED, dispatched_at__isnull=True, created_at__lt=now - dt.timedelta(seconds=FRESH_S)
    )
    for run in pending.order_by("created_at"):
        if not services.run_dispatch(run=run):
            sweep.broker_down = True
            return
        sweep.dispatched += 1


def _redispatch_lost(now: dt.datetime, sweep: Sweep) -> None:
    grace = dt.timedelta(seconds=settings.DECODELAB_LOST_GRACE_S)
    candidates = list(
        Run.objects.select_related("comparison").filter(status=RunStatus.QUEUED, dispatched_at__lt=now - grace)
    )
    if not candidates:
        return
    try:
        waiting = dispatch.queued_task_ids(sorted({run.comparison.model for run in candidates}))
    except Exception:
        log.warning("reaper: cannot read the broker's queues", exc_info=True)
        sweep.broker_down = True
        return
    for run in candidates:
        if run.task_id in waiting:
            continue
        # Re-read: the run may have started (or finished) since the candidates were listed.
        if not Run.objects.filter(id=run.id, status=RunStatus.QUEUED, dispatches=run.dispatches).exists():
            continue
        if run.dispatches >= MAX_DISPATCHES:
            sweep.failed += _fail(run, f"the task broker lost this run {run.dispatches} times", now)
        elif services.run_dispatch(run=run):
            sweep.redispatched_lost += 1
        else:
            sweep.broker_down = True
            return
