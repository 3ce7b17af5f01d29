"""The Celery task `workers.decode`: dict in, result dict sent to the web side's result writer.

Thin on purpose: the decoding is in workers.engine, callable without Celery. What makes a run
happen exactly once (leases, the attempt counter, heartbeats) is described in
workers.reliability.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from workers import batching, fake
from workers.celery_app import POLICY, RESULTS_QUEUE, app, ledger
from workers.protocol import DecodeResult, queue_name
from workers.reliability import MAX_ATTEMPTS, TIMEOUT_ERROR, worker_name

log = logging.getLogger(__name__)


def _report(task: str, *args: Any) -> None:
    app.send_task(task, args=list(args), queue=RESULTS_QUEUE)


class Heartbeat:
    """Tells the web side every few seconds that these runs are still being worked on."""

    def __init__(self, runs: list[tuple[str, str]], every_s: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(runs, every_s), daemon=True)

    def _beat(self, runs: list[tuple[str, str]], every_s: float) -> None:
        while not self._stop.wait(every_s):
            for run_id, task_id in runs:
                try:
                    _report("runs.heartbeat", run_id, task_id, time.time())
                except Exception:  # a broker blip must not kill the run; the next beat retries
                    log.warning("heartbeat for %s not sent", run_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def _execute(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if fake.enabled():
        t0 = time.perf_counter()
        results = [fake.execute_dict(request, worker=worker_name()) for request in requests]
        # The fake decodes one request after another: its "step time" grows with the batch.
        steps = max((r.get("max_new_tokens", 0) for r in requests if isinstance(r, dict)), default=0)
        rows = sum(batching.request_rows(r) for r in requests if isinstance(r, dict))
        model = str(requests[0].get("model")) if isinstance(requests[0], dict) else ""
        batching.STEP_TIMES.record(model, rows, steps, time.perf_counter() - t0)
        return results
    from workers.engine import execute_batch_dicts  # torch is imported by the pool child that decodes

    return execute_batch_dicts(requests)


def _begin(request: dict[str, Any], task_id: str, started_at: float) -> dict[str, Any] | None:
    """The per-run protocol before decoding: lease check, start count, running mark. Returns the
    request with its attempt number, or None when it must not run (superseded, or failed after
    too many attempts: reported here)."""
    run_id = request.get("run_id") if isinstance(request, dict) else None
    if not run_id:
        return request
    if ledger().lease(run_id) != task_id:
        # Superseded by a re-dispatch, or the run finished or was cancelled: a redelivered
        # copy must not run twice.
        log.info("dropping %s: not the run's current dispatch", task_id)
        return None
    attempt = ledger().start(run_id)
    if attempt > MAX_ATTEMPTS:
        _report(
            "runs.store_result",
            DecodeResult.failure(
                run_id=run_id,
                attempt=attempt - 1,
                error=f"failed after {MAX_ATTEMPTS} attempts: the worker process running it died each time "
                "(killed, out of memory or crashed)",
            ).to_dict(),
        )
        return None
    _report("runs.mark_running", run_id, attempt, worker_name(), started_at, task_id)
    return {**request, "attempt": attempt}


def _batching_enabled() -> bool:
    """Batching is on for real decoders; the fake decoder (fault and load tests) batches only when
    DECODELAB_MAX_BATCH is set explicitly, so the other fault tests keep one run per task."""
    return batching.max_batch_rows() > 1 and (not fake.enabled() or "DECODELAB_MAX_BATCH" in os.environ)


@app.task(name="workers.decode", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def decode(self: Any, request: dict[str, Any]) -> None:
    started_at = time.time()
    first = _begin(request, self.request.id, started_at)
    if first is None:
        return
    soft = self.request.timelimit[1] if self.request.timelimit else None
    members = [(self.request.id, first)]
    if _batching_enabled() and first.get("run_id") and isinstance(first.get("model"), str):
        for taken in batching.claim(ledger().client, queue_name(first["model"]), first, soft_limit=soft):
            joined = _begin(taken.request, taken.task_id, started_at)
            if joined is not None:
                members.append((taken.task_id, joined))
        if len(members) > 1:
            log.info("decoding %d runs together", len(members))
    requests = [r for _, r in members]
    beating = [(r["run_id"], task_id) for task_id, r in members if r.get("run_id")]
    try:
        with Heartbeat(beating, POLICY.heartbeat_s):
            results = _execute(requests)
    except SoftTimeLimitExceeded:
        error = f"{TIMEOUT_ERROR}: ran past its soft time limit of {soft or '?'} s"
        results = [_failure(r, error) for r in requests]
    except Exception as exc:  # a bug or an out-of-memory error: report it on the runs, don't lose them
        log.exception("runs %s failed", [r.get("run_id") for r in requests])
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        results = [_failure(r, error) for r in requests]
    # Sent before the ack (acks_late): if the worker dies here the task is redelivered, and the
    # result writer ignores the second copy of a result.
    for result in results:
        _report("runs.store_result", result)


def _failure(request: dict[str, Any], error: str) -> dict[str, Any]:
    return DecodeResult.failure(run_id=request.get("run_id"), attempt=request.get("attempt", 1), error=error).to_dict()
