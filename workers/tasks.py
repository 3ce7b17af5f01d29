"""The Celery task `workers.decode`: dict in, result dict sent to the web side's result writer.

Thin on purpose: the decoding is in workers.engine, callable without Celery. What makes a run
happen exactly once (leases, the attempt counter, heartbeats) is described in
workers.reliability.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from workers import fake
from workers.celery_app import POLICY, RESULTS_QUEUE, app, ledger
from workers.protocol import DecodeResult
from workers.reliability import MAX_ATTEMPTS, TIMEOUT_ERROR, worker_name

log = logging.getLogger(__name__)


def _report(task: str, *args: Any) -> None:
    app.send_task(task, args=list(args), queue=RESULTS_QUEUE)


class Heartbeat:
    """Tells the web side every few seconds that this run is still being worked on."""

    def __init__(self, run_id: str, task_id: str, every_s: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(run_id, task_id, every_s), daemon=True)

    def _beat(self, run_id: str, task_id: str, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                _report("runs.heartbeat", run_id, task_id, time.time())
            except Exception:  # a broker blip must not kill the run; the next beat retries
                log.warning("heartbeat for %s not sent", run_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def _execute(request: dict[str, Any]) -> dict[str, Any]:
    if fake.enabled():
        return fake.execute_dict(request, worker=worker_name())
    from workers.engine import execute_dict  # torch is imported by the pool child that decodes

    return execute_dict(request)


@app.task(name="workers.decode", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def decode(self: Any, request: dict[str, Any]) -> None:
    started_at = time.time()
    run_id = request.get("run_id") if isinstance(request, dict) else None
    task_id = self.request.id
    attempt = 1
    if run_id:
        if ledger().lease(run_id) != task_id:
            # Superseded by a re-dispatch, or the run finished or was cancelled: a redelivered
            # copy must not run twice.
            log.info("dropping %s: not the run's current dispatch", task_id)
            return
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
            return
        request = {**request, "attempt": attempt}
        _report("runs.mark_running", run_id, attempt, worker_name(), started_at, task_id)
    soft = self.request.timelimit[1] if self.request.timelimit else None
    beating = Heartbeat(run_id, task_id, POLICY.heartbeat_s) if run_id else contextlib.nullcontext()
    try:
        with beating:
            result = _execute(request)
    except SoftTimeLimitExceeded:
        result = DecodeResult.failure(
            run_id=run_id, attempt=attempt, error=f"{TIMEOUT_ERROR}: ran past its soft time limit of {soft or '?'} s"
        ).to_dict()
    except Exception as exc:  # a bug or an out-of-memory error: report it on the run, don't lose it
        log.exception("run %s failed", run_id)
        result = DecodeResult.failure(
            run_id=run_id, attempt=attempt, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        ).to_dict()
    # Sent before the ack (acks_late): if the worker dies here the task is redelivered, and the
    # result writer ignores the second copy of a result.
    _report("runs.store_result", result)
