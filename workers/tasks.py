"""The Celery task `workers.decode`: dict in, result dict sent to the web side's result writer.

Thin on purpose: the decoding is in workers.engine, callable without Celery.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from workers.celery_app import RESULTS_QUEUE, app
from workers.engine import WORKER_NAME, execute_dict
from workers.protocol import DecodeResult

log = logging.getLogger(__name__)


@app.task(name="workers.decode", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def decode(self: Any, request: dict[str, Any]) -> None:
    started_at = time.time()
    run_id = request.get("run_id") if isinstance(request, dict) else None
    attempt = request.get("attempt", 1) if isinstance(request, dict) else 1
    app.send_task("runs.mark_running", args=[run_id, attempt, WORKER_NAME, started_at], queue=RESULTS_QUEUE)
    try:
        result = execute_dict(request)
    except Exception as exc:  # a bug or an out-of-memory error: report it on the run, don't lose it
        log.exception("run %s failed", run_id)
        result = DecodeResult.failure(
            run_id=run_id, attempt=attempt, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        ).to_dict()
    # Sent before the ack (acks_late): if the worker dies here the task is redelivered, and the
    # result writer ignores the second copy of a result.
    app.send_task("runs.store_result", args=[result], queue=RESULTS_QUEUE)
