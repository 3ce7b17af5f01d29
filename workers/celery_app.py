"""The decode workers' Celery app. Configured from the environment only (no Django).

Profile for long GPU tasks: late ack with reject-on-worker-lost (a killed worker's task is
redelivered, not lost), prefetch 1 (a busy worker holds no queued work), JSON only, soft and
hard time limits sent with each run (sized by the web side from the run), and a broker
visibility timeout longer than the largest hard limit: checked here, at import, so a worker
with a bad configuration refuses to start.
"""

from __future__ import annotations

import functools
import logging
import os

import redis
from celery import Celery
from celery.signals import worker_process_init, worker_ready

from workers.reliability import LEASE_TTL_S, TimePolicy, lease_key, starts_key, worker_name

POLICY = TimePolicy.from_env()
POLICY.check_visibility_timeout()

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
    # Fallbacks for a task sent without limits; the web side sends per-run limits.
    task_soft_time_limit=POLICY.max_hard_limit_s - POLICY.grace_s,
    task_time_limit=POLICY.max_hard_limit_s,
    broker_transport_options={"visibility_timeout": POLICY.visibility_timeout_s},
    worker_hijack_root_logger=False,
)
app.conf.imports = ["workers.tasks"]

RESULTS_QUEUE = "results"


class Ledger:
    """The run's lease and start counter, kept in the broker's Redis (see workers.reliability)."""

    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)

    @property
    def client(self) -> redis.Redis:
        """The broker's Redis, for taking queued runs into a batch (workers.batching)."""
        return self._redis

    def lease(self, run_id: str) -> str | None:
        value = self._redis.get(lease_key(run_id))
        return value.decode() if value is not None else None

    def start(self, run_id: str) -> int:
        """Count one more start of the run; returns this start's number (1 for the first)."""
        key = starts_key(run_id)
        with self._redis.pipeline() as pipe:
            count, _ = pipe.incr(key).expire(key, LEASE_TTL_S).execute()
        return int(count)


@functools.cache
def ledger() -> Ledger:
    return Ledger(app.conf.broker_url)


@worker_process_init.connect
def _preload_models(**_: object) -> None:
    """Load the models this worker serves when its process starts, not on the first request."""
    names = [n for n in os.environ.get("DECODELAB_PRELOAD_MODELS", "").split(",") if n]
    if not names:
        return
    from workers import runtime

    for name in names:
        loaded, _ = runtime.load(name)
        # Capture the common decode steps now (CUDA, graph mode), not inside a user's run.
        took = runtime.warm_up(loaded)
        logging.getLogger(__name__).info("preloaded %s (captured steps in %.1f s)", name, took)


@worker_ready.connect
def _report_models(**_: object) -> None:
    """Tell the web side which models this worker's host has installed and prepared, so the
    catalogue offers them (and their valid draft pairs)."""
    from importlib.metadata import version

    from workers.models import CATALOG, model_status
    from workers.runtime import default_dtype

    statuses = [model_status(spec, default_dtype(), version("transformers")) for spec in CATALOG.values()]
    app.send_task("catalog.models_report", args=[worker_name(), statuses], queue=RESULTS_QUEUE)
