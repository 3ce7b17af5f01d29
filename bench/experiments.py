"""Workbench benchmark: an experiment through the whole stack, and the grid page's server time.

1. Live: a stack of real processes (redis-server, a decode worker on the default model on CPU,
   the result writer, the reaper, gunicorn) on a temporary database. Over the API it creates a
   20-prompt set (samples/prompts.jsonl) and 5 presets (greedy, two samplings, beam, prompt
   lookup), starts the experiment once the worker is ready, and polls its progress until every
   run has finished. Reported: wall time from submission to 100 %, runs per second, failures.
2. Render: in this process, on a scratch SQLite database, a finished 100-prompt x 6-preset
   experiment (600 runs written through the real result path, each output with a 32-token
   trace), then the grid page (100 prompts x 6 cells on one page) rendered repeatedly by
   Django's test client: server time per render (view + template, no network), median and p95,
   against the 500 ms target. The metrics page and the API grid are timed for reference.

    python -m bench.experiments [--tokens 16] [--renders 15] [--skip-live] [--out bench-results/experiments.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from scripts import stack_commands as commands
from tests.support.servers import ROOT, wait_for
from tests.support.stack import new_stack

MODEL = "smollm2-135m"
TARGET_MS = 500.0
PROMPTS = [json.loads(line) for line in (ROOT / "samples" / "prompts.jsonl").read_text().splitlines() if line]
PRESETS = [
    {"name": "greedy", "strategy": "greedy"},
    {"name": "sampling 0.7", "strategy": "sampling", "params": {"temperature": 0.7, "top_p": 0.9}},
    {"name": "sampling 1.0", "strategy": "sampling", "params": {"temperature": 1.0, "top_k": 20}},
    {"name": "beam 2", "strategy": "beam", "params": {"num_beams": 2}},
    {"name": "prompt lookup", "strategy": "speculative", "params": {"proposer": "prompt_lookup"}},
]


class Api:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url, self.token = base_url, token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Token {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def live(tokens: int, timeout_s: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="decodelab-bench-experiments-"))
    logs = ROOT / "test-artifacts" / "logs" / "bench-experiments"
    stack = new_stack(tmp, logs)
    try:
        stack.start("worker", commands.decode_worker(MODEL, "bench-decode"), {"DECODELAB_PRELOAD_MODELS": MODEL})
        stack.start("results", commands.result_writer("bench-results"))
        stack.start("reaper", commands.reaper(1))
        stack.start_web()
        worker_log = logs / "worker.log"
        start = worker_log.stat().st_size if worker_log.exists() else 0

        def worker_ready() -> bool:
            with worker_log.open() as f:
                f.seek(start)
                return " ready." in f.read()

        print("waiting for the decode worker to load the model…", flush=True)
        wait_for(worker_ready, 300, "the decode worker", interval=0.5)
        api = Api(stack.base_url, stack.token)
        prompt_set = api.call("POST", "/api/v1/prompt-sets/", {"name": "bench", "prompts": PROMPTS[:20]})
        presets = [
            api.call("POST", "/api/v1/presets/", {**p, "max_new_tokens": tokens, "chat": False}) for p in PRESETS
        ]
        started = time.monotonic()
        experiment = api.call(
            "POST",
            "/api/v1/experiments/",
            {"name": "bench", "prompt_set": prompt_set["id"], "presets": [p["id"] for p in presets]},
        )
        progress = experiment["progress"]
        last = None
        while not progress["done"]:
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"experiment not finished after {timeout_s} s: {progress}")
            time.sleep(1.0)
            progress = api.call("GET", f"/api/v1/experiments/{experiment['id']}/")["progress"]
            line = (progress["finished"], progress["running"])
            if line != last:
                eta = "—" if progress["eta_s"] is None else f"{progress['eta_s']:.0f} s"
                print(
                    f"  {progress['percent']:5.1f} %  {progress['finished']}/{progress['total']} finished, "
                    f"{progress['failed']} failed, ETA {eta}  ({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
                last = line
        wall = time.monotonic() - started
        grid_ms = []
        for _ in range(5):
            t = time.perf_counter()
            api.call("GET", f"/api/v1/experiments/{experiment['id']}/grid/?page_size=100")
            grid_ms.append((time.perf_counter() - t) * 1000)
        return {
            "prompts": 20,
            "presets": len(PRESETS),
            "runs": progress["total"],
            "succeeded": progress["succeeded"],
            "failed": progress["failed"],
            "max_new_tokens": tokens,
            "wall_s": round(wall, 1),
            "runs_per_s": round(progress["total"] / wall, 2),
            "api_grid_http_ms_median": round(statistics.median(grid_ms), 1),
        }
    finally:
        stack.stop_all()


def _output(i: int, sample_seed: int) -> dict[str, Any]:
    words = [f" word{(i * 7 + k * sample_seed) % 50}" for k in range(32)]
    trace = [
        {"id": 1000 + k, "text": w, "logprob": -0.1 * (k % 7), "entropy": 0.5 + (k % 5) / 5,
         "top": [[1000 + k + j, w, -0.1 * j] for j in range(5)]}
        for k, w in enumerate(words)
    ]  # fmt: skip
    return {
        "index": 0,
        "text": "".join(words).strip(),
        "token_ids": [1000 + k for k in range(32)],
        "finish_reason": "length",
        "score": None,
        "trace": trace,
    }


def render(renders: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="decodelab-bench-grid-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "decodelab.config.settings.test"
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'grid.sqlite3'}"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from decodelab.experiments import selectors, services
    from decodelab.runs import services as runs_services
    from decodelab.users.services import user_create

    setup_test_environment()
    settings.DECODELAB_MAX_RUNS_IN_FLIGHT = 100_000
    # No broker here: storing a result then fails to drop its run's lease in Redis, which is
    # harmless (leases expire) but would print 600 warnings.
    logging.getLogger("decodelab.runs.dispatch").disabled = True
    call_command("migrate", verbosity=0)
    user = user_create(username="bench", role="researcher").user
    prompts = [f"Prompt {i}: {PROMPTS[i % len(PROMPTS)]['prompt']}" for i in range(100)]
    prompt_set = services.prompt_set_create(owner=user, name="grid", prompts=prompts)
    presets = [
        services.preset_create(owner=user, strategy=p["strategy"], params=p.get("params"), max_new_tokens=32, name=n)
        for n, p in [
            ("greedy", {"strategy": "greedy"}),
            ("t=0.5", {"strategy": "sampling", "params": {"temperature": 0.5}}),
            ("t=0.7", {"strategy": "sampling", "params": {"temperature": 0.7}}),
            ("t=1.0", {"strategy": "sampling", "params": {"temperature": 1.0}}),
            ("beam 2", {"strategy": "beam", "params": {"num_beams": 2}}),
            ("beam 4", {"strategy": "beam", "params": {"num_beams": 4}}),
        ]
    ]
    experiment = services.experiment_create(owner=user, name="grid", prompt_set=prompt_set, presets=presets)
    print("writing 600 finished runs…", flush=True)
    metrics = {"queue_wait_ms": 3.0, "model_load_ms": 0.0, "model_cache_hit": True, "prefill_ms": 12.0,
               "decode_ms": 300.0, "new_tokens": 32, "tokens_per_s": 100.0, "total_ms": 320.0,
               "peak_memory_bytes": 1}  # fmt: skip
    environment = {"device": "cpu", "dtype": "float32", "seed": 0, "torch_version": "t",
                   "transformers_version": "x", "batch_size": 1, "worker": "bench"}  # fmt: skip
    for i, run in enumerate(selectors.experiment_runs(experiment)):
        runs_services.run_store_result(
            result={"run_id": str(run.id), "attempt": 1, "outputs": [_output(i, run.position + 1)],
                    "prompt_token_ids": [1, 2, 3], "metrics": metrics, "environment": environment}
        )  # fmt: skip
    client = Client()
    client.force_login(user)

    def timed(path: str, n: int, check: str) -> list[float]:
        client.get(path)  # warm-up: template loading and compilation
        times = []
        for _ in range(n):
            t = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, (path, response.status_code)
            assert check in response.content.decode()
        return times

    grid = timed(f"/experiments/{experiment.id}/grid/", renders, 'class="grid-cell"')
    page = client.get(f"/experiments/{experiment.id}/grid/").content.decode()
    cells = page.count('class="grid-cell"')
    assert cells == 600, f"the grid page shows {cells} cells, not 600"
    api_grid = timed(f"/api/v1/experiments/{experiment.id}/grid/?page_size=100", max(3, renders // 3), "rows")
    metrics_page = timed(f"/experiments/{experiment.id}/metrics/", 3, "chart-data")
    return {
        "prompts": 100,
        "presets": 6,
        "cells": cells,
        "renders": renders,
        "grid_page_ms_median": round(statistics.median(grid), 1),
        "grid_page_ms_p95": round(percentile(grid, 0.95), 1),
        "grid_page_ms_all": [round(t, 1) for t in grid],
        "api_grid_ms_median": round(statistics.median(api_grid), 1),
        "metrics_page_ms_median": round(statistics.median(metrics_page), 1),
        "target_ms": TARGET_MS,
        "pass": percentile(grid, 0.95) < TARGET_MS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=16, help="max_new_tokens of the live experiment")
    parser.add_argument("--renders", type=int, default=15, help="timed renders of the 100 x 6 grid")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds the live experiment may take")
    parser.add_argument("--skip-live", action="store_true", help="only the render measurement")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "experiments.json"))
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"machine": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    if not args.skip_live:
        print(f"live: 20 prompts x {len(PRESETS)} presets on {MODEL} (CPU), max_new_tokens {args.tokens}", flush=True)
        results["live"] = live(args.tokens, args.timeout)
        lv = results["live"]
        print(f"live: {lv['runs']} runs ({lv['failed']} failed) in {lv['wall_s']} s, {lv['runs_per_s']} runs/s")
    print("render: the 100-prompt x 6-preset grid page", flush=True)
    results["render"] = r = render(args.renders)
    verdict = "PASS" if r["pass"] else "FAIL"
    print(
        f"render: grid page (600 cells) median {r['grid_page_ms_median']} ms, p95 {r['grid_page_ms_p95']} ms "
        f"(target < {TARGET_MS:.0f} ms: {verdict}); API grid median {r['api_grid_ms_median']} ms; "
        f"metrics page median {r['metrics_page_ms_median']} ms"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {out}")
    live_ok = "live" not in results or results["live"]["failed"] == 0
    return 0 if r["pass"] and live_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
