"""What both halves agree on to run every job exactly once (torch-free, like the protocol).

How a run survives crashes (the database stays the source of truth for its state):

- The web side dispatches a run as task id ``<run_id>:<dispatch>`` and, just before
  publishing, writes that id to the run's *lease* key in the broker's Redis. A worker
  executes a delivery only while its task id is the lease: a message the reaper replaced
  (after a lost heartbeat) or a run that finished or was cancelled is acknowledged and
  dropped, so a redelivered copy never runs a second time.
- Each time a worker starts a run it increments the run's *starts* counter (atomic INCR,
  shared by every worker). A run whose process died ``MAX_ATTEMPTS`` times (a poison job:
  out-of-memory, a segfault) is reported failed instead of being tried again.
- While it runs, the worker sends a heartbeat every ``heartbeat_s`` seconds; the reaper
  re-dispatches runs whose heartbeat is older than ``stale_s``, dispatches runs the broker
  never received (it was down) and runs the broker lost, and fails a run after
  ``MAX_ATTEMPTS`` attempts with the reason.
- Soft and hard time limits grow with the run's size (``time_limits``). The broker's
  visibility timeout (after which Redis redelivers an unacknowledged message) must be longer
  than the largest hard limit, or a long run would be delivered twice; both sides refuse to
  start when it is not (``check_visibility_timeout``).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from workers.protocol import MAX_NEW_TOKENS
from workers.strategies import MAX_NUM_BEAMS, MAX_RETURN_SEQUENCES

MAX_ATTEMPTS = 3
LEASE_TTL_S = 7 * 24 * 3600  # leases of runs nobody finishes (a deleted database) expire eventually
TIMEOUT_ERROR = "timeout"


def worker_name() -> str:
    """This process's name in run records: DECODELAB_WORKER_NAME, or host:pid of the process
    that decodes (read at call time: prefork children differ from their parent)."""
    return os.environ.get("DECODELAB_WORKER_NAME") or f"{socket.gethostname()}:{os.getpid()}"


def lease_key(run_id: str) -> str:
    return f"decodelab:lease:{run_id}"


def starts_key(run_id: str) -> str:
    return f"decodelab:starts:{run_id}"


def task_id(run_id: str, dispatch: int) -> str:
    return f"{run_id}:{dispatch}"


@dataclass(frozen=True)
class TimePolicy:
    """Time limits per run: ``base_s + per_token_s * max_new_tokens * width_factor`` (soft);
    the hard limit adds ``grace_s`` so the task can report its own timeout first."""

    base_s: float = 60.0
    per_token_s: float = 0.5
    grace_s: float = 30.0
    heartbeat_s: float = 10.0
    stale_s: float = 60.0
    visibility_timeout_s: float = 4 * 3600.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> TimePolicy:
        env = os.environ if environ is None else environ
        names = {
            "base_s": "DECODELAB_TIME_BASE_S",
            "per_token_s": "DECODELAB_TIME_PER_TOKEN_S",
            "grace_s": "DECODELAB_TIME_GRACE_S",
            "heartbeat_s": "DECODELAB_HEARTBEAT_S",
            "stale_s": "DECODELAB_HEARTBEAT_STALE_S",
            "visibility_timeout_s": "DECODELAB_VISIBILITY_TIMEOUT_S",
        }
        values = {}
        for field_name, var in names.items():
            if env.get(var):
                try:
                    values[field_name] = float(env[var])
                except ValueError:
                    raise ValueError(f"{var} must be a number of seconds (got {env[var]!r})") from None
                if values[field_name] <= 0:
                    raise ValueError(f"{var} must be positive (got {env[var]!r})")
        policy = cls(**values)
        if policy.stale_s <= 2 * policy.heartbeat_s:
            raise ValueError(
                f"DECODELAB_HEARTBEAT_STALE_S ({policy.stale_s:g}) must exceed twice DECODELAB_HEARTBEAT_S "
                f"({policy.heartbeat_s:g}), or a busy worker's run would be taken for dead"
            )
        return policy

    def time_limits(self, *, max_new_tokens: int, width: int = 1) -> tuple[float, float]:
        """(soft, hard) seconds for a run; ``width`` is its beams or returned sequences."""
        # Beams share one batched forward pass, so cost grows far slower than the beam count.
        factor = 1 + (max(width, 1) - 1) / 4
        soft = self.base_s + self.per_token_s * max_new_tokens * factor
        return soft, soft + self.grace_s

    @property
    def max_hard_limit_s(self) -> float:
        return self.time_limits(max_new_tokens=MAX_NEW_TOKENS, width=max(MAX_NUM_BEAMS, MAX_RETURN_SEQUENCES))[1]

    def check_visibility_timeout(self) -> None:
        """Refuse a configuration where Redis would redeliver a run that is still running."""
        if self.visibility_timeout_s <= self.max_hard_limit_s:
            raise ValueError(
                f"the broker's visibility timeout ({self.visibility_timeout_s:g} s, DECODELAB_VISIBILITY_TIMEOUT_S) "
                f"must be longer than the largest hard time limit ({self.max_hard_limit_s:g} s); raise it or lower "
                "DECODELAB_TIME_BASE_S / DECODELAB_TIME_PER_TOKEN_S"
            )


def run_width(params: dict) -> int:
    return max(int(params.get("num_beams") or 1), int(params.get("num_return_sequences") or 1))
