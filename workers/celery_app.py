"""The decode workers' Celery app. Configured from the environment only (no Django).

Profile for long GPU tasks: late ack with reject-on-worker-lost (a killed worker's task is
redelivered, not lost), prefetch 1 (a busy worker holds no queued work), JSON only, and soft
and hard time limits.
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

app = Celery("decodelab-workers")
app.conf.update(
    broker_url=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_backend=None,
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=int(os.environ.get("DECODELAB_TASK_SOFT_TIME_LIMIT", "600")),
    task_time_limit=int(os.environ.get("DECODELAB_TASK_TIME_LIMIT", "660")),
    worker_hijack_root_logger=False,
)
app.conf.imports = ["workers.tasks"]

RESULTS_QUEUE = "results"


@worker_process_init.connect
def _preload_models(**_: object) -> None:
    """Load the models this worker serves when its process starts, not on the first request."""
    names = [n for n in os.environ.get("DECODELAB_PRELOAD_MODELS", "").split(",") if n]
    if not names:
        return
    from workers import runtime

    for name in names:
        runtime.load(name)
        logging.getLogger(__name__).info("preloaded %s", name)


@worker_ready.connect
def _report_models(**_: object) -> None:
    """Tell the web side which models this worker's host has installed and prepared, so the
    catalogue offers them (and their valid draft pairs)."""
    from importlib.metadata import version

    from workers.engine import WORKER_NAME
    from workers.models import CATALOG, model_status
    from workers.runtime import default_dtype

    statuses = [model_status(spec, default_dtype(), version("transformers")) for spec in CATALOG.values()]
    app.send_task("catalog.models_report", args=[WORKER_NAME, statuses], queue=RESULTS_QUEUE)
