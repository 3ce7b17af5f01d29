"""Locust users for `make loadtest` (bench/loadtest.py sets the rates through the environment).

- Submitter: POST /api/v1/comparisons/ (one greedy run), ``LOAD_SUBMIT_RATE`` users at one
  request per second each, so the offered rate is fixed whatever the latency.
- Poller: GET /api/v1/comparisons/{id}/status/ on comparisons made before the test,
  ``LOAD_POLL_RATE`` users at one request per second each.
"""

from __future__ import annotations

import itertools
import json
import os
import random

from locust import HttpUser, constant_throughput, task

TOKEN = os.environ["LOAD_TOKEN"]
POLL_IDS = json.loads(os.environ.get("LOAD_POLL_IDS", "[]"))
HEADERS = {"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"}
_counter = itertools.count()


class Submitter(HttpUser):
    fixed_count = int(os.environ.get("LOAD_SUBMIT_RATE", "20"))
    wait_time = constant_throughput(1)

    @task
    def submit(self) -> None:
        body = {"prompt": f"load test prompt {next(_counter)}", "presets": [{"strategy": "greedy"}],
                "max_new_tokens": 8, "chat": False}  # fmt: skip
        self.client.post("/api/v1/comparisons/", json=body, headers=HEADERS, name="POST comparisons")


class Poller(HttpUser):
    fixed_count = int(os.environ.get("LOAD_POLL_RATE", "100"))
    wait_time = constant_throughput(1)

    @task
    def poll(self) -> None:
        comparison_id = random.choice(POLL_IDS)
        self.client.get(f"/api/v1/comparisons/{comparison_id}/status/", headers=HEADERS, name="GET status")
