"""Hand a run to the decode workers: the task `workers.decode`, by name, on the model's queue.

The web side never imports the worker code; it sends plain JSON built by workers.protocol.
"""

from __future__ import annotations

import logging
import time

from decodelab.config.celery import app
from workers.protocol import DecodeRequest, queue_name

log = logging.getLogger(__name__)

DECODE_TASK = "workers.decode"


def build_request(run, *, attempt: int) -> DecodeRequest:
    comparison = run.comparison
    return DecodeRequest(
        model=comparison.model,
        strategy=run.strategy,
        prompt=comparison.prompt,
        chat=comparison.chat,
        max_new_tokens=comparison.max_new_tokens,
        stop=list(comparison.stop or []),
        params=run.params,
        seed=run.seed,
        run_id=str(run.id),
        attempt=attempt,
        enqueued_at=time.time(),
    )


def send_decode(request: DecodeRequest) -> None:
    """Publish one decode task. Raises the broker's error when it cannot be reached."""
    app.send_task(
        DECODE_TASK,
        args=[request.to_dict()],
        queue=queue_name(request.model),
        task_id=f"{request.run_id}:{request.attempt}",
    )


def revoke(task_ids: list[str]) -> None:
    """Ask the workers to drop these tasks if they have not started them (best effort)."""
    try:
        app.control.revoke(task_ids)
    except Exception:  # the broker being down must not fail a cancellation already stored
        log.warning("could not revoke %s", task_ids, exc_info=True)
