"""A stack whose decode workers run the fake decoder (workers/fake.py), with short heartbeat,
reaper and time-limit settings, so faults show within seconds. Everything else is real:
redis-server, Celery workers, the result writer, the reaper, gunicorn, the task code path."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from scripts import stack_commands as commands
from tests.support.servers import ROOT, wait_for
from tests.support.stack import Stack, new_stack

MODEL = "smollm2-135m"
FAULT_ENV = {
    "DECODELAB_FAKE_DECODER": "1",
    "DECODELAB_FAKE_DELAY_S": "0.3",
    "DECODELAB_HEARTBEAT_S": "0.5",
    "DECODELAB_HEARTBEAT_STALE_S": "3",
    "DECODELAB_LOST_GRACE_S": "3",
    "DECODELAB_TIME_BASE_S": "4",
    "DECODELAB_TIME_PER_TOKEN_S": "0.01",
    "DECODELAB_TIME_GRACE_S": "2",
    "DECODELAB_MAX_RUNS_IN_FLIGHT": "1000",
    "DECODELAB_WORKER_NAME": "",
}
TERMINAL = ("succeeded", "failed", "cancelled")


def _marks(values: list) -> str:
    """SQL placeholders, one per value (the values themselves are bound, never formatted in)."""
    return ",".join("?" * len(values))


@dataclass
class FaultStack:
    stack: Stack
    workers_started: int = 0

    def start_worker(self, *, concurrency: int = 4, env: dict[str, str] | None = None) -> str:
        """Start a decode worker and wait until Celery says it is ready; returns its name."""
        self.workers_started += 1
        name = f"worker{self.workers_started}"
        log = self.stack.logs / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        self.stack.start(name, commands.decode_worker(MODEL, f"fault-{name}", concurrency=concurrency), env)

        def ready() -> bool:
            return log.exists() and " ready." in log.read_text(errors="replace")[offset:]

        wait_for(ready, 60, f"{name} to be ready")
        return name

    def submit(self, prompt: str, presets: list[dict] | None = None, *, retry_s: float = 0) -> list[str]:
        """POST one comparison through the API; returns its run ids."""
        body = json.dumps(
            {"prompt": prompt, "presets": presets or [{"strategy": "greedy"}], "max_new_tokens": 8, "chat": False}
        ).encode()
        deadline = time.monotonic() + retry_s
        while True:
            request = urllib.request.Request(
                f"{self.stack.base_url}/api/v1/comparisons/",
                data=body,
                headers={"Authorization": f"Token {self.stack.token}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert response.status == 201
                    return [run["id"] for run in json.load(response)["runs"]]
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def statuses(self, run_ids: list[str]) -> dict[str, tuple]:
        rows = self.stack.query(
            f"select id, status, attempts, dispatches, error from runs_run where id in ({_marks(run_ids)})",  # noqa: S608
            tuple(r.replace("-", "") for r in run_ids),
        )
        return {row[0]: row[1:] for row in rows}

    def wait_finished(self, run_ids: list[str], timeout: float) -> dict[str, tuple]:
        def done() -> bool:
            states = self.statuses(run_ids)
            return len(states) == len(run_ids) and all(s[0] in TERMINAL for s in states.values())

        wait_for(done, timeout, f"{len(run_ids)} runs to finish", interval=0.5)
        return self.statuses(run_ids)

    def outputs_per_run(self, run_ids: list[str]) -> dict[str, int]:
        rows = self.stack.query(
            f"select run_id, count(*) from runs_output where run_id in ({_marks(run_ids)}) group by run_id",  # noqa: S608
            tuple(r.replace("-", "") for r in run_ids),
        )
        return dict(rows)


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    stack = new_stack(tmp_path_factory.mktemp("faults"), ROOT / "test-artifacts" / "logs" / "faults", FAULT_ENV)
    try:
        stack.start("results", commands.result_writer("fault-results"))
        stack.start("reaper", commands.reaper(0.5))
        stack.start_web(workers=2, threads=4)
        yield FaultStack(stack)
    finally:
        stack.stop_all()


def print_counts(title: str, states: dict[str, tuple], outputs: dict[str, int]) -> None:
    by_status: dict[str, int] = {}
    for status, *_ in states.values():
        by_status[status] = by_status.get(status, 0) + 1
    duplicates = sum(1 for n in outputs.values() if n > 1)
    retried = sum(1 for s in states.values() if s[1] > 1 or s[2] > 1)
    print(f"\n[{title}] runs={len(states)} {by_status} outputs={sum(outputs.values())} "
          f"duplicate_outputs={duplicates} retried={retried}")  # fmt: skip
