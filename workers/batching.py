"""Worker-side batching: a decode task takes compatible runs waiting in its queue along with it.

When a worker starts a run, it waits ``DECODELAB_BATCH_WAIT_MS`` (default 5) for a burst of
submissions to land, then takes up to ``DECODELAB_MAX_BATCH - 1`` more runs with the same
``batch_key`` (model, strategy and parameters; the prompt, seed, budget and stop strings may
differ) straight from its model's queue in the broker, oldest first, and decodes them together
with its own (``workers.engine.execute_batch``). An experiment's cells, a sampling preset's runs
and single runs submitted together all arrive this way.

The reliability protocol stays per run (``workers.reliability``): each taken run's lease is
checked, its start counted, it is marked running, it heartbeats, and its result goes to the
result writer on its own, which stores it once. A message is taken with ``LREM``, so of two
workers scanning one queue only one gets it. A taken message is no longer in the broker: if the
worker dies while decoding it, the reaper re-dispatches the run when its heartbeat goes stale,
or, if it was never marked running, when it finds the run missing from the broker -- the paths
that already recover the runs of a killed worker.

A run is taken only if its ``max_new_tokens`` is at most the first run's and the batch's
estimated time stays within the first run's soft time limit, because the whole batch runs
under that task's time limits. The estimate uses this process's measured step times per batch
size (``STEP_TIMES``), and before any measurement a pessimistic guess per row.

Torch-free: the task module imports it before any model is loaded.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Strategies whose decoders take a batch of runs (``decode_batch``); the others decode one run at
# a time (diverse beam and contrastive search reorder every row each step; beam search and
# constrained decoding batch the beams and samples of their one run).
BATCHED = frozenset({"greedy", "sampling", "speculative"})
SCAN = 200  # queued messages looked at per claim, oldest first
GUESS_STEP_S_PER_ROW = 0.25  # before any measurement: a slow CPU with a small model, pessimistic


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a positive integer (got {raw!r})")
    return int(raw)


def max_batch_rows() -> int:
    """DECODELAB_MAX_BATCH: the most runs decoded together (1 turns batching off)."""
    return _env_int("DECODELAB_MAX_BATCH", 16)


def max_batch_tokens() -> int:
    """DECODELAB_MAX_BATCH_TOKENS: the most KV-cache slots a batch may hold (memory bound)."""
    return _env_int("DECODELAB_MAX_BATCH_TOKENS", 65536)


def wait_s() -> float:
    return _env_int("DECODELAB_BATCH_WAIT_MS", 5) / 1000


def batch_key(request: dict[str, Any]) -> tuple[str, str, str] | None:
    """Requests with the same key may be decoded together (``None``: always alone)."""
    strategy = request.get("strategy")
    if strategy not in BATCHED or not isinstance(request.get("params", {}), dict):
        return None
    return (str(request.get("model")), str(strategy), json.dumps(request.get("params") or {}, sort_keys=True))


def request_rows(request: dict[str, Any]) -> int:
    """Rows a request decodes (its samples for sampling, else one)."""
    n = (request.get("params") or {}).get("num_return_sequences", 1)
    return n if isinstance(n, int) and n >= 1 else 1


@dataclass
class StepTimes:
    """Measured seconds per decoding step, per (model, rows), in this process."""

    seconds: dict[tuple[str, int], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, model: str, rows: int, steps: int, seconds: float) -> None:
        if steps < 1 or seconds <= 0:
            return
        with self._lock:
            old = self.seconds.get((model, rows))
            value = seconds / steps
            self.seconds[(model, rows)] = value if old is None else 0.7 * old + 0.3 * value

    def per_step(self, model: str, rows: int) -> float:
        """The step time for ``rows`` rows: measured, or the largest measured per-row time times
        ``rows`` (batching never costs more than that), or the pessimistic guess."""
        with self._lock:
            if (model, rows) in self.seconds:
                return self.seconds[(model, rows)]
            per_row = [s / r for (m, r), s in self.seconds.items() if m == model]
        return (max(per_row) if per_row else GUESS_STEP_S_PER_ROW) * rows


STEP_TIMES = StepTimes()


@dataclass(frozen=True)
class Taken:
    """A run taken from the queue: its task id (the run's lease), its request and time limits."""

    task_id: str
    request: dict[str, Any]
    soft_limit: float | None
    hard_limit: float | None


def parse_message(raw: bytes | str) -> Taken | None:
    """A ``workers.decode`` message as kombu's Redis transport stores it, or None."""
    try:
        message = json.loads(raw)
        headers = message["headers"]
        if headers.get("task") != "workers.decode":
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        request = args[0]
        hard, soft = (headers.get("timelimit") or [None, None])[:2]
        if not isinstance(request, dict) or not isinstance(headers.get("id"), str):
            return None
        return Taken(headers["id"], request, soft, hard)
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def fits(first: dict[str, Any], others: list[dict[str, Any]], candidate: dict[str, Any], soft_limit: float | None):
    """Whether ``candidate`` may join the batch of ``first`` and ``others``."""
    tokens = candidate.get("max_new_tokens", 64)
    if not isinstance(tokens, int) or tokens > first.get("max_new_tokens", 64):
        return False
    if len(others) + 2 > max_batch_rows():
        return False
    if soft_limit is None:
        return True
    rows = sum(request_rows(r) for r in (first, *others, candidate))
    estimate = first.get("max_new_tokens", 64) * STEP_TIMES.per_step(str(first.get("model")), rows)
    return estimate <= 0.8 * soft_limit


def claim(
    client: Any,
    queue: str,
    first: dict[str, Any],
    *,
    soft_limit: float | None,
    accept: Callable[[dict[str, Any], list[dict[str, Any]], dict[str, Any], float | None], bool] = fits,
) -> list[Taken]:
    """Take the queued runs that may be decoded with ``first``, oldest first (see the module
    docstring). ``client`` is a Redis client of the broker; ``queue`` the model's queue."""
    key = batch_key(first)
    if key is None or max_batch_rows() < 2:
        return []
    time.sleep(wait_s())
    taken: list[Taken] = []
    try:
        raws = client.lrange(queue, -SCAN, -1)  # kombu pushes on the left: the oldest are on the right
        for raw in reversed(raws):
            if len(taken) + 1 >= max_batch_rows():
                break
            message = parse_message(raw)
            if message is None or batch_key(message.request) != key:
                continue
            if not accept(first, [t.request for t in taken], message.request, soft_limit):
                continue
            if client.lrem(queue, 1, raw) == 1:  # another worker may have taken it first
                taken.append(message)
    except Exception:  # a broker blip: decode what was taken so far, the rest stays queued
        log.warning("could not take more runs from %s", queue, exc_info=True)
    return taken
