"""Fault tests: kill workers, pool children and the broker on purpose; no run is lost and none
is stored twice. Run with `pytest -m faults -s` to see each test's counts."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time

import pytest

from tests.faults.conftest import print_counts
from tests.support.servers import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def submit_many(faults, n: int, tag: str, *, retry_s: float = 0, into: list[str] | None = None) -> list[str]:
    """Submit ``n`` one-run comparisons; run ids are appended to ``into`` as they come back."""
    run_ids = [] if into is None else into
    for i in range(n):
        run_ids += faults.submit(f"{tag} prompt {i}", retry_s=retry_s)
    return run_ids


def wait_some_running(faults, run_ids: list[str], timeout: float = 20) -> int:
    """Wait until the database shows runs in progress (some still queued); returns how many."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [s[0] for s in faults.statuses(run_ids).values()]
        if "running" in states and "queued" in states:
            return states.count("running")
        time.sleep(0.05)
    return 0


def assert_all_succeeded_once(faults, title: str, run_ids: list[str], timeout: float = 120) -> dict:
    states = faults.wait_finished(run_ids, timeout)
    outputs = faults.outputs_per_run(run_ids)
    print_counts(title, states, outputs)
    failed = {k: v for k, v in states.items() if v[0] != "succeeded"}
    assert not failed, f"not succeeded: {failed}"
    assert len(outputs) == len(run_ids), "a run finished without its output"
    assert all(n == 1 for n in outputs.values()), "an output was stored twice"
    return states


def test_killing_pool_children_ten_times_during_100_jobs_loses_and_duplicates_nothing(faults):
    name = faults.start_worker(concurrency=4)
    try:
        run_ids = submit_many(faults, 100, "children")
        worker_pid = faults.stack.procs[name].pid
        kills, rng = 0, random.Random(5)
        while kills < 10:
            time.sleep(0.7)
            busy = children(worker_pid)
            if busy:
                subprocess.run(["kill", "-9", str(rng.choice(busy))], check=False)
                kills += 1
        states = assert_all_succeeded_once(faults, "kill -9 a pool child x10, 100 jobs", run_ids)
        assert kills == 10
        assert any(s[1] > 1 for s in states.values()), "no kill interrupted a running job; the test proved nothing"
    finally:
        faults.stack.kill(name, signal.SIGTERM)


def test_killing_the_whole_worker_and_starting_a_new_one_loses_nothing(faults):
    first = faults.start_worker(concurrency=2)
    run_ids = submit_many(faults, 30, "whole")
    running = wait_some_running(faults, run_ids)
    faults.stack.kill(first, signal.SIGKILL)
    second = faults.start_worker(concurrency=2)
    try:
        states = assert_all_succeeded_once(faults, "kill -9 the whole worker, start another", run_ids)
        assert running > 0, "nothing was running when the worker was killed"
        assert any(s[2] > 1 for s in states.values()), "no run needed the reaper; the test proved nothing"
    finally:
        faults.stack.kill(second, signal.SIGTERM)


def test_killing_a_worker_while_it_decodes_runs_it_took_along_loses_and_duplicates_nothing(faults):
    """Batching (workers/batching.py): the worker takes queued runs out of the broker, so when it
    dies those messages are gone; the reaper must bring every such run back, exactly once."""
    batching = {"DECODELAB_MAX_BATCH": "8"}
    first = faults.start_worker(concurrency=1, env=batching)
    log = faults.stack.logs / f"{first}.log"
    run_ids = submit_many(faults, 40, "batched")
    wait_for(lambda: "runs together" in log.read_text(errors="replace"), 60, "a batch of taken runs")
    faults.stack.kill(first, signal.SIGKILL)
    second = faults.start_worker(concurrency=1, env=batching)
    try:
        states = assert_all_succeeded_once(faults, "kill -9 a worker decoding a batch of taken runs", run_ids)
        assert any(s[2] > 1 for s in states.values()), "no run needed the reaper; the test proved nothing"
    finally:
        faults.stack.kill(second, signal.SIGTERM)


def test_killing_the_broker_during_200_submissions_and_restarting_it_loses_nothing(faults):
    name = faults.start_worker(concurrency=4)
    try:
        run_ids: list[str] = []
        errors: list[BaseException] = []

        def submit() -> None:
            try:
                submit_many(faults, 200, "broker", retry_s=10, into=run_ids)
            except BaseException as exc:
                errors.append(exc)

        submitter = threading.Thread(target=submit)
        submitter.start()
        while len(run_ids) < 60 and submitter.is_alive():
            time.sleep(0.05)
        faults.stack.kill("redis", signal.SIGKILL)
        down_at = len(run_ids)
        time.sleep(2)  # submissions go on while the broker is down: stored, dispatched later
        during = len(run_ids) - down_at
        faults.stack.start_redis()
        submitter.join(timeout=180)
        assert not errors, errors
        assert len(run_ids) == 200
        assert during > 0, "no submission happened while the broker was down"
        print(f"\n[broker] killed after {down_at} submissions; {during} accepted while it was down")
        assert_all_succeeded_once(faults, "kill -9 redis during 200 submissions", run_ids, timeout=180)
    finally:
        faults.stack.kill(name, signal.SIGTERM)


def test_a_poison_job_fails_after_exactly_three_attempts_and_the_others_succeed(faults):
    name = faults.start_worker(concurrency=2)
    try:
        poison = faults.submit("fault:die")
        others = submit_many(faults, 10, "poison-neighbours")
        states = faults.wait_finished(poison, 120)
        status, attempts, _dispatches, error = states[poison[0].replace("-", "")]
        print(f"\n[poison] status={status} attempts={attempts} error={error!r}")
        assert status == "failed"
        assert attempts == 3
        assert "failed after 3 attempts" in error
        assert_all_succeeded_once(faults, "poison job neighbours", others)
    finally:
        faults.stack.kill(name, signal.SIGTERM)


def test_a_job_past_its_time_limit_fails_with_timeout_and_the_next_job_is_fine(faults):
    name = faults.start_worker(concurrency=1)
    try:
        hard = faults.submit("fault:hang=60")  # deaf to the soft limit: the hard limit stops it
        soft = faults.submit("fault:sleep=60")  # the soft limit interrupts it
        states = faults.wait_finished(hard + soft, 120)
        for run_id in hard + soft:
            status, _attempts, _dispatches, error = states[run_id.replace("-", "")]
            print(f"\n[timeout] status={status} error={error!r}")
            assert status == "failed"
            assert error.startswith("timeout")
        assert "hard time limit" in states[hard[0].replace("-", "")][3]
        assert "soft time limit" in states[soft[0].replace("-", "")][3]
        assert_all_succeeded_once(faults, "the job after the timeouts", faults.submit("after the timeouts"))
    finally:
        faults.stack.kill(name, signal.SIGTERM)


def test_sigterm_during_running_jobs_loses_nothing(faults):
    first = faults.start_worker(concurrency=4)
    run_ids = submit_many(faults, 60, "sigterm")
    running = wait_some_running(faults, run_ids)
    faults.stack.kill(first, signal.SIGTERM)  # warm shutdown: finish what runs, hand back the rest
    second = faults.start_worker(concurrency=4)
    try:
        assert running > 0, "nothing was running at SIGTERM"
        assert_all_succeeded_once(faults, "SIGTERM during running jobs", run_ids)
    finally:
        faults.stack.kill(second, signal.SIGTERM)
