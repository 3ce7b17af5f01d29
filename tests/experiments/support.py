"""Helpers for workbench tests: results written through the real result path
(runs.services.run_mark_running / run_store_result), as the result writer does."""

from __future__ import annotations

import time
from typing import Any

from decodelab.experiments import services
from decodelab.runs import services as runs_services


def prompt_set(user, prompts=("Hello", "Name a colour."), name="set"):
    return services.prompt_set_create(owner=user, name=name, prompts=list(prompts))


def preset(user, strategy="greedy", **kwargs):
    kwargs.setdefault("max_new_tokens", 8)
    return services.preset_create(owner=user, strategy=strategy, **kwargs)


def trace_for(texts: list[str], spec: list[str] | None = None) -> list[dict[str, Any]]:
    trace = []
    for i, text in enumerate(texts):
        entry = {"id": 100 + i, "text": text, "logprob": -0.5 * (i + 1), "entropy": 1.0, "top": [[100 + i, text, -0.5]]}
        if spec:
            entry["spec"] = spec[i]
        trace.append(entry)
    return trace


def finish(
    run,
    *,
    text: str = "Paris.",
    token_ids: list[int] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    finish_reason: str = "eos",
    metrics: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
    duration_s: float = 2.0,
    error: str | None = None,
) -> None:
    """Mark the run started ``duration_s`` ago on worker w1, then store its result."""
    runs_services.run_mark_running(run_id=str(run.id), attempt=1, worker="w1", started_at=time.time() - duration_s)
    result: dict[str, Any] = {"run_id": str(run.id), "attempt": 1}
    if error:
        result.update(error=error, error_field="params")
    else:
        ids = token_ids if token_ids is not None else list(range(1, len(text.split()) + 2))
        result["outputs"] = outputs or [
            {"index": 0, "text": text, "token_ids": ids, "finish_reason": finish_reason, "score": None}
        ]
        result["prompt_token_ids"] = [5, 6]
    result["metrics"] = {
        "queue_wait_ms": 3.0,
        "model_load_ms": 0.0,
        "model_cache_hit": True,
        "prefill_ms": 10.0,
        "decode_ms": 20.0,
        "new_tokens": 2,
        "tokens_per_s": 50.0,
        "total_ms": 35.0,
        "peak_memory_bytes": 1,
        **(metrics or {}),
    }
    result["environment"] = {
        "device": "cpu",
        "dtype": "float32",
        "seed": run.seed,
        "torch_version": "2.13.0",
        "transformers_version": "5.0.0",
        "batch_size": 1,
        "worker": "w1",
        **(environment or {}),
    }
    runs_services.run_store_result(result=result)
