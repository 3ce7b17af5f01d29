"""Hostile constraints through the whole path: API -> the dispatcher's request -> the worker.

Each entry of hostile_grammars.json is submitted with POST /api/v1/comparisons/ (strategy
constrained). It is either refused with 4xx naming the field (nothing stored), or accepted; an
accepted run's request, built by the dispatcher (decodelab.runs.dispatch.build_request), goes to
one long-lived ``python -m workers.decode`` process (SmolLM2-135M, CPU, one thread), which must
answer within the compile limit (ok with ``compile_ms`` under 6 s, or an error naming the
parameter), and must then serve a normal greedy request. The result is stored through the
result writer's service, so the run's state and ``Output.metrics`` are checked as the web side
sees them. A table goes to test-artifacts/security/hostile-grammars.txt.

tests/workers/test_grammar.py bounds compilation at the unit level; this corpus adds the API
limits (size, nesting, body) and the worker process staying healthy.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from decodelab.runs import dispatch, services
from decodelab.runs.models import Comparison, Run, RunStatus
from tests.support.servers import ROOT

CORPUS = Path(__file__).with_name("hostile_grammars.json")
ENTRIES: list[dict[str, Any]] = json.loads(CORPUS.read_text())["entries"]
COMPILE_LIMIT_S = 6.0
MODEL = "smollm2-135m"
GREEDY = {"model": MODEL, "strategy": "greedy", "prompt": "The capital of France", "chat": False, "max_new_tokens": 4}


def generate(spec: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(params, raw body) for a generated entry; a raw body replaces the JSON encoding."""
    kind = spec["kind"]
    if kind == "long_regex":
        return {"regex": "a" * spec["chars"]}, None
    if kind == "nested_schema":
        schema: dict[str, Any] = {"type": "integer"}
        for _ in range(spec["depth"]):
            schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
        return {"json_schema": schema}, None
    if kind == "ref_chain":
        depth = spec["depth"]
        defs = {
            f"d{i}": {"type": "object", "properties": {"a": {"$ref": f"#/$defs/d{i + 1}"}}, "required": ["a"]}
            for i in range(depth - 1)
        }
        defs[f"d{depth - 1}"] = {"type": "integer"}
        return {"json_schema": {"$defs": defs, "$ref": "#/$defs/d0"}}, None
    if kind == "wide_schema":
        props = {f"p{i}": {"type": "integer"} for i in range(spec["properties"])}
        return {"json_schema": {"type": "object", "properties": props, "required": list(props)}}, None
    if kind == "enum_schema":
        return {"json_schema": {"enum": [f"v{i}" for i in range(spec["size"])]}}, None
    if kind == "deep_parens":
        depth = spec["depth"]
        return {"grammar": "start: " + "(" * depth + '"a"' + ")" * depth + "\n"}, None
    if kind == "many_rules":
        n = spec["rules"]
        rules = [f'r{i}: r{i + 1} "x" | "y"' for i in range(n - 1)] + [f'r{n - 1}: "z"']
        return {"grammar": "start: r0\n" + "\n".join(rules) + "\n"}, None
    if kind == "big_grammar":
        return {"grammar": 'start: "' + "a" * spec["bytes"] + '"\n'}, None
    if kind == "raw_nesting":
        depth = spec["depth"]
        nested = "[" * depth + "]" * depth
        body = (
            '{"prompt": "Hi", "chat": false, "max_new_tokens": 4, '
            f'"presets": [{{"strategy": "constrained", "params": {{"json_schema": {nested}}}}}]}}'
        )
        return None, body
    raise AssertionError(f"unknown generator {kind}")


class Worker:
    """One ``python -m workers.decode`` process: a request line in, a result line out, timed."""

    def __init__(self) -> None:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "DECODELAB_DEVICE": "cpu",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.decode"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def ask(self, request: dict[str, Any], timeout: float = 120.0) -> tuple[dict[str, Any], float]:
        assert self.proc.stdin is not None and self.proc.poll() is None, "the worker process died"
        t0 = time.perf_counter()
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.lines.get(timeout=timeout)
        return json.loads(line), time.perf_counter() - t0

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def worker():
    worker = Worker()
    try:
        first, _ = worker.ask(GREEDY, timeout=300)  # loads the model
        assert first["error"] is None, first
        # Pays the tokenizer's one-time llguidance set-up (~0.5 s) outside any measured compile.
        warm, _ = worker.ask({**GREEDY, "strategy": "constrained", "params": {"choices": ["yes", "no"]}})
        assert warm["error"] is None, warm
        yield worker
    finally:
        worker.close()


@pytest.fixture(scope="module")
def table():
    rows: list[str] = []
    yield rows
    out = ROOT / "test-artifacts" / "security"
    out.mkdir(parents=True, exist_ok=True)
    head = f"{'entry':30} {'API':>5}  {'worker':8} {'compile ms':>10} {'wall s':>7}  next greedy  detail"
    (out / "hostile-grammars.txt").write_text("\n".join([head, "-" * len(head), *rows]) + "\n")


def test_the_corpus_covers_the_hostile_kinds():
    ids = {e["id"] for e in ENTRIES}
    assert len(ENTRIES) >= 12 and len(ids) == len(ENTRIES)
    text = json.dumps(ENTRIES)
    for needle in ("[ab]*a[ab]{13}", "(a|aa)*b", "(.*){1,32000}", "[\\\\s\\\\S]{0,100000}", "start: start"):
        assert needle in text, needle
    kinds = {e.get("generate", {}).get("kind") for e in ENTRIES}
    assert {"nested_schema", "ref_chain", "wide_schema", "enum_schema", "big_grammar"} <= kinds


@pytest.mark.django_db
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_hostile_constraint_is_refused_or_compiled_in_time(entry, worker, table, researcher, broker):
    params, raw = generate(entry["generate"]) if "generate" in entry else (entry["params"], None)
    body = raw or json.dumps(
        {
            "prompt": "Answer:",
            "chat": False,
            "max_new_tokens": 4,
            "presets": [{"strategy": "constrained", "params": params}],
        }
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {researcher.token}")
    response = api.generic("POST", "/api/v1/comparisons/", body, content_type="application/json")

    if entry["expect"] == "rejected":
        assert response.status_code == entry["status"], response.content[:500]
        errors = response.json()["errors"]
        assert entry["field"] in errors, errors
        assert Comparison.objects.count() == 0 and broker.llen(f"decode.{MODEL}") == 0
        table.append(f"{entry['id']:30} {response.status_code:>5}  {'-':8} {'-':>10} {'-':>7}  {'-':11}  {errors}")
        return

    assert response.status_code == 201, response.content[:500]
    run = Run.objects.get(id=response.json()["runs"][0]["id"])
    request = dispatch.build_request(run).to_dict()  # exactly what the worker gets from the broker
    result, wall = worker.ask(request)
    assert result["run_id"] == str(run.id)
    compile_ms = None
    if result["error"] is None:
        compile_ms = result["outputs"][0]["metrics"]["compile_ms"]
        assert compile_ms < COMPILE_LIMIT_S * 1000, compile_ms
        outcome = "ok"
    else:
        field = next(k for k in params)
        assert result["error_field"] == f"params.{field}", result
        assert result["error"].strip()
        # An error comes back within the compile limit (plus the request's own overhead).
        assert wall < COMPILE_LIMIT_S + 1.0, wall
        outcome = "error"
    if entry["outcome"] != "either":
        assert outcome == entry["outcome"], result.get("error")

    assert services.run_store_result(result=result)
    run.refresh_from_db()
    if outcome == "ok":
        assert run.status == RunStatus.SUCCEEDED
        assert run.outputs.get(index=0).metrics["compile_ms"] == compile_ms
    else:
        assert run.status == RunStatus.FAILED and run.error_field == result["error_field"]

    greedy, greedy_wall = worker.ask(GREEDY)
    assert greedy["error"] is None and greedy["outputs"][0]["token_ids"], greedy
    detail = (result["error"] or "")[:70].replace("\n", " ")
    shown_ms = "-" if compile_ms is None else f"{compile_ms:.1f}"
    table.append(
        f"{entry['id']:30} {response.status_code:>5}  {outcome:8} {shown_ms:>10} {wall:>7.2f}  "
        f"ok {greedy_wall:5.2f} s  {detail}"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [100, 5000])
def test_the_comparison_form_refuses_deeply_nested_json_naming_the_field(client, researcher, depth):
    client.force_login(researcher.user)
    form = {
        "prompt": "Answer:",
        "max_new_tokens": "4",
        "model": MODEL,
        "presets-a-strategy": "constrained",
        "presets-a-json_schema": "[" * depth + "]" * depth,
        "presets-a-seed": "0",
    }
    response = client.post("/comparisons/new/", form)
    assert response.status_code == 400
    body = response.content.decode()
    assert "presets[0].params.json_schema" in body and "nested deeper than 64 levels" in body
    assert Comparison.objects.count() == 0
