"""`make loadtest`: the web side under a fixed request rate, with locust (headless, 127.0.0.1).

A stack of real processes (redis-server, gunicorn, the result writer, the reaper, and decode
workers running the fast fake decoder) on a temporary database; then, for each submit rate
(20 and 50 requests/s), POST comparisons for 60 s while polling comparison status at 100
requests/s. Printed per phase: p50/p95/p99 latency and errors of both request kinds, and the
submit-to-start latency (a comparison's creation to its run's start on a worker, from the
database). Targets: POST p99 <= 100 ms at 50 req/s with 0 errors; status p99 <= 50 ms;
submit-to-start p99 <= 250 ms. Results also go to bench-results/loadtest.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from scripts import stack_commands as commands
from tests.support.servers import ROOT
from tests.support.stack import new_stack

FAKE_ENV = {
    "DECODELAB_FAKE_DECODER": "1",
    "DECODELAB_FAKE_DELAY_S": "0.005",
    "DECODELAB_MAX_RUNS_IN_FLIGHT": "100000",
    "DJANGO_LOG_LEVEL": "WARNING",
}
TARGETS = {"post_p99_ms": 100, "status_p99_ms": 50, "submit_to_start_p99_ms": 250}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def api_post(stack, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        stack.base_url + path, data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {stack.token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def locust_phase(stack, *, submit_rate: int, poll_rate: int, seconds: int, poll_ids: list[str], out: Path) -> dict:
    prefix = out / f"submit{submit_rate}"
    env = {**os.environ, "LOAD_TOKEN": stack.token, "LOAD_SUBMIT_RATE": str(submit_rate),
           "LOAD_POLL_RATE": str(poll_rate), "LOAD_POLL_IDS": json.dumps(poll_ids)}  # fmt: skip
    users = submit_rate + poll_rate
    started = time.time()
    subprocess.run(
        [str(commands.VENV_BIN / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
         "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", stack.base_url, "--csv", str(prefix),
         "--only-summary", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    rows = {row["Name"]: row for row in csv.DictReader(prefix.with_name(prefix.name + "_stats.csv").open())}

    def summary(name: str) -> dict:
        row = rows.get(name, {})
        return {
            "requests": int(row.get("Request Count", 0)),
            "errors": int(row.get("Failure Count", 0)),
            "rate_per_s": float(row.get("Requests/s", 0)),
            "p50_ms": float(row.get("50%", 0)),
            "p95_ms": float(row.get("95%", 0)),
            "p99_ms": float(row.get("99%", 0)),
        }

    return {"submit_rate": submit_rate, "poll_rate": poll_rate, "seconds": seconds, "started": started,
            "post": summary("POST comparisons"), "status": summary("GET status")}  # fmt: skip


def submit_to_start_ms(stack, since: float, until: float) -> list[float]:
    """Per run created in [since, until): its worker's start minus its comparison's creation."""
    rows = stack.query(
        "select c.created_at, r.started_at from runs_run r join runs_comparison c on c.id = r.comparison_id "
        "where c.prompt like 'load test prompt %' and r.started_at is not null"
    )
    from datetime import datetime

    values = []
    for created, started in rows:
        c, s = datetime.fromisoformat(created), datetime.fromisoformat(started)
        if since <= c.timestamp() < until:
            values.append((s - c).total_seconds() * 1000)
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="20,50", help="POST rates to test, requests/s")
    parser.add_argument("--poll-rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument("--decode-workers", type=int, default=4, help="concurrency of the fake decode worker")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="decodelab-load-"))
    stack = new_stack(tmp, ROOT / "test-artifacts" / "logs" / "loadtest", FAKE_ENV)
    results = {"targets": TARGETS, "phases": []}
    try:
        stack.start("worker", commands.decode_worker("smollm2-135m", "load-decode", concurrency=args.decode_workers))
        stack.start("results", commands.result_writer("load-results"))
        stack.start("reaper", commands.reaper(1))
        stack.start_web(workers=args.web_workers, threads=args.web_threads)
        poll_ids = [api_post(stack, "/api/v1/comparisons/", {"prompt": f"poll {i}", "presets": [{"strategy": "greedy"}],
                    "chat": False, "max_new_tokens": 8})["id"] for i in range(20)]  # fmt: skip
        out = ROOT / "bench-results" / "loadtest"
        out.mkdir(parents=True, exist_ok=True)
        for rate in [int(r) for r in args.rates.split(",")]:
            print(f"--- POST {rate}/s + status {args.poll_rate}/s for {args.seconds} s ---", flush=True)
            phase = locust_phase(stack, submit_rate=rate, poll_rate=args.poll_rate, seconds=args.seconds,
                                 poll_ids=[str(i) for i in poll_ids], out=out)  # fmt: skip
            time.sleep(5)  # let the last submissions start
            latencies = submit_to_start_ms(stack, phase["started"], phase["started"] + args.seconds + 5)
            phase["submit_to_start"] = {
                "runs": len(latencies),
                "p50_ms": percentile(latencies, 50),
                "p95_ms": percentile(latencies, 95),
                "p99_ms": percentile(latencies, 99),
                "mean_ms": statistics.fmean(latencies) if latencies else None,
            }
            results["phases"].append(phase)
            report(phase)
    finally:
        stack.stop_all()
    path = ROOT / "bench-results" / "loadtest.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"saved {path}")
    return 0


def report(phase: dict) -> None:
    post, status, s2s = phase["post"], phase["status"], phase["submit_to_start"]

    def verdict(value, target) -> str:
        return "met" if value is not None and value <= target else "NOT met"

    print(f"POST comparisons @ {phase['submit_rate']}/s: {post['requests']} requests ({post['rate_per_s']:.1f}/s), "
          f"{post['errors']} errors, p50 {post['p50_ms']:.0f} ms, p95 {post['p95_ms']:.0f} ms, "
          f"p99 {post['p99_ms']:.0f} ms (target <= {TARGETS['post_p99_ms']} ms: "
          f"{verdict(post['p99_ms'], TARGETS['post_p99_ms'])})")  # fmt: skip
    print(f"GET status @ {phase['poll_rate']}/s: {status['requests']} requests ({status['rate_per_s']:.1f}/s), "
          f"{status['errors']} errors, p50 {status['p50_ms']:.0f} ms, p95 {status['p95_ms']:.0f} ms, "
          f"p99 {status['p99_ms']:.0f} ms (target <= {TARGETS['status_p99_ms']} ms: "
          f"{verdict(status['p99_ms'], TARGETS['status_p99_ms'])})")  # fmt: skip
    if s2s["runs"]:
        print(f"submit-to-start: {s2s['runs']} runs, p50 {s2s['p50_ms']:.0f} ms, p95 {s2s['p95_ms']:.0f} ms, "
              f"p99 {s2s['p99_ms']:.0f} ms (target <= {TARGETS['submit_to_start_p99_ms']} ms: "
              f"{verdict(s2s['p99_ms'], TARGETS['submit_to_start_p99_ms'])})", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
