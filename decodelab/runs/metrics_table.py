"""The metrics table under the side-by-side outputs: one row per measured quantity.

Definitions are those of workers.protocol (and the README's 'Metrics' section).
"""

from __future__ import annotations

from typing import Any


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v:,.1f} ms"


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:,.1f}"


def _bytes(v: Any) -> str:
    return "—" if v is None else f"{v / 2**20:,.0f} MiB"


METRIC_ROWS: list[tuple[str, str, str, Any]] = [
    ("metrics", "prefill_ms", "Time to first token", _ms),
    ("metrics", "decode_ms", "Decode time", _ms),
    ("metrics", "new_tokens", "New tokens", lambda v: "—" if v is None else str(v)),
    ("metrics", "tokens_per_s", "Tokens/s (decode)", _num),
    ("metrics", "queue_wait_ms", "Queue wait", _ms),
    ("metrics", "model_load_ms", "Model load", _ms),
    ("metrics", "model_cache_hit", "Model cached", lambda v: "—" if v is None else ("yes" if v else "no")),
    ("metrics", "total_ms", "Worker total", _ms),
    ("metrics", "peak_memory_bytes", "Peak memory", _bytes),
    ("environment", "device", "Device", str),
    ("environment", "dtype", "Dtype", str),
    ("environment", "seed", "Seed", str),
    ("environment", "torch_version", "torch", str),
    ("environment", "transformers_version", "transformers", str),
    ("environment", "batch_size", "Batch size", str),
]

DEFINITIONS = {
    "prefill_ms": "From the start of decoding to the first new token (prompt forward pass + one step).",
    "decode_ms": "From the first new token to the last one.",
    "new_tokens": "Decoding steps: the length of the longest returned output.",
    "tokens_per_s": "Decode phase only: (new tokens - 1) / decode time.",
    "queue_wait_ms": "From dispatch by the web side to the worker starting the run.",
    "model_load_ms": "Time this run spent loading the model (0 when the worker already held it).",
    "total_ms": "The whole run on the worker: load, tokenise, decode, detokenise.",
    "peak_memory_bytes": "Peak GPU memory allocated on CUDA; on CPU the worker process's peak RSS.",
}

COMPARABLE_KEYS = ("device", "dtype", "torch_version", "transformers_version")


def metrics_rows(runs: list) -> dict[str, Any]:
    rows = []
    for section, key, label, fmt in METRIC_ROWS:
        cells = []
        for run in runs:
            data = getattr(run, section) or {}
            cells.append(fmt(data.get(key)) if key in data else "—")
        rows.append({"key": key, "label": label, "cells": cells, "definition": DEFINITIONS.get(key, "")})
    envs = {tuple((r.environment or {}).get(k) for k in COMPARABLE_KEYS) for r in runs if r.environment}
    return {"rows": rows, "mismatch": len(envs) > 1}
