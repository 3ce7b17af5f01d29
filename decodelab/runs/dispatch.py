"""Hand a run to the decode workers: the task `workers.decode`, by name, on the model's queue.

The web side never imports the worker code; it sends plain JSON built by workers.protocol,
and before each send it writes the run's lease (see workers.reliability) to the broker's Redis.
"""

from __future__ import annotations

import functools
import json
import logging
import time

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from decodelab.config.celery import app
from workers.protocol import DecodeRequest, queue_name
from workers.reliability import LEASE_TTL_S, lease_key, run_width

log = logging.getLogger(__name__)

DECODE_TASK = "workers.decode"
UNACKED_KEY = "unacked"  # kombu's Redis transport default (transport option unacked_key)


def _redis() -> redis.Redis:
    """A client for the broker's Redis, the one the Celery app publishes to."""
    return _redis_for(app.conf.broker_url)


@functools.cache
def _redis_for(url: str) -> redis.Redis:
    # One quick retry, no backoff: while the broker is down a submission must still answer
    # at once (its runs are stored and the reaper dispatches them later).
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1, retry=Retry(NoBackoff(), 1))


def build_request(run) -> DecodeRequest:
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
        attempt=run.attempts + 1,
        enqueued_at=time.time(),
    )


def time_limits(run) -> tuple[float, float]:
    return settings.DECODELAB_TIME_POLICY.time_limits(
        max_new_tokens=run.comparison.max_new_tokens, width=run_width(run.params)
    )


def send_decode(request: DecodeRequest, *, task_id: str, limits: tuple[float, float]) -> None:
    """Lease the run to this task id and publish it. Raises the broker's error when it
    cannot be reached (the run then stays undispatched, and the reaper sends it later)."""
    _redis().set(lease_key(request.run_id or ""), task_id, ex=LEASE_TTL_S)
    soft, hard = limits
    app.send_task(
        DECODE_TASK,
        args=[request.to_dict()],
        queue=queue_name(request.model),
        task_id=task_id,
        soft_time_limit=soft,
        time_limit=hard,
    )


def release(run_ids: list[str]) -> None:
    """Drop the leases of finished or cancelled runs: any copy still queued is then skipped."""
    if not run_ids:
        return
    try:
        _redis().delete(*[lease_key(r) for r in run_ids])
    except redis.RedisError:  # the lease expires on its own; a stale copy would only be dropped later
        log.warning("could not release leases of %d runs", len(run_ids), exc_info=True)


def queued_task_ids(models: list[str]) -> set[str]:
    """Task ids the broker still holds for these models: waiting in their queues (the Redis
    lists kombu uses) or delivered to a worker and not yet acknowledged (kombu's ``unacked``
    hash; with prefetch 1 such a task is starting or running, and its start may simply not be
    recorded yet). A queued run whose task is in neither place was lost by the broker.

    Raises redis.RedisError when the broker is unreachable.
    """
    client = _redis()
    raw_messages = [raw for model in models for raw in client.lrange(queue_name(model), 0, -1)]
    for raw in client.hvals(UNACKED_KEY):
        try:
            raw_messages.append(json.loads(raw)[0])  # [message, exchange, routing key]
        except (ValueError, IndexError, TypeError):
            continue
    ids: set[str] = set()
    for raw in raw_messages:
        try:
            message = json.loads(raw) if isinstance(raw, (bytes, str)) else raw
            ids.add(message["headers"]["id"])
        except (ValueError, KeyError, TypeError):
            continue
    return ids


def revoke(task_ids: list[str]) -> None:
    """Ask the workers to drop these tasks if they have not started them (best effort)."""
    try:
        app.control.revoke(task_ids)
    except Exception:  # the broker being down must not fail a cancellation already stored
        log.warning("could not revoke %s", task_ids, exc_info=True)
