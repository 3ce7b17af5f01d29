"""Metrics per configuration of an experiment: median and spread across prompts and samples.

Pure: takes plain dictionaries of runs and outputs (loaded by selectors.experiment_metrics).

Per run (one prompt x one configuration x one sample): ``tokens_per_s`` and time to first
token (``prefill_ms``) from Run.metrics, as the worker measured them (README, "Metrics").
Per output: ``output_tokens`` (its token count), ``repetition`` (seq-rep-2, textmetrics),
``mean_logprob`` (mean over its tokens of the raw model logprob in its trace).
Per cell (one prompt x one configuration, all samples and returned sequences pooled):
``distinct_1``, ``distinct_2`` and ``self_bleu`` (textmetrics).
Each is summarised as median, 25th and 75th percentile (linear interpolation) and n.

Rates over the configuration's outputs: ``empty_rate`` (text blank after stripping spaces),
``nonterminating_rate`` (finish_reason "length": max_new_tokens reached before an end),
``validity_rate`` (constrained runs only: share of outputs the independent check found valid).
``quality`` is where human ratings go (null until rated).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from decodelab.experiments import textmetrics
from decodelab.runs.metrics_table import COMPARABLE_KEYS

SUMMARISED = (
    "tokens_per_s",
    "ttft_ms",
    "output_tokens",
    "distinct_1",
    "distinct_2",
    "self_bleu",
    "repetition",
    "mean_logprob",
)


def summary(values: list[float | None]) -> dict[str, Any]:
    clean = [float(v) for v in values if v is not None]
    if not clean:
        return {"median": None, "p25": None, "p75": None, "n": 0}
    p25, median, p75 = np.percentile(clean, [25, 50, 75])
    return {"median": float(median), "p25": float(p25), "p75": float(p75), "n": len(clean)}


def _rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


def mean_logprob(trace: list[dict[str, Any]] | None) -> float | None:
    values = [t["logprob"] for t in trace or [] if t.get("logprob") is not None]
    return sum(values) / len(values) if values else None


def environment_check(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Distinct (device, dtype, torch, transformers) among finished runs: more than one means
    timings are not comparable as they stand."""
    counts: dict[tuple, int] = defaultdict(int)
    for run in runs:
        env = run.get("environment")
        if env:
            counts[tuple(env.get(k) for k in COMPARABLE_KEYS)] += 1
    environments = [{**dict(zip(COMPARABLE_KEYS, key, strict=True)), "runs": n} for key, n in counts.items()]
    return {"mismatch": len(environments) > 1, "environments": environments}


def configuration_metrics(
    configs: list[dict[str, Any]], runs: list[dict[str, Any]], outputs: list[dict[str, Any]]
) -> dict[str, Any]:
    """``configs``: config_hash, label, strategy, model (in display order). ``runs``: id,
    config_hash, item_id, status, metrics, environment. ``outputs``: run_id, text, token_ids,
    finish_reason, metrics, trace."""
    runs_by_config: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        runs_by_config[run["config_hash"]].append(run)
    run_index = {run["id"]: run for run in runs}
    outs_by_config: dict[str, list[dict]] = defaultdict(list)
    cells: dict[tuple, list[str]] = defaultdict(list)
    for out in outputs:
        run = run_index.get(out["run_id"])
        if run is None:
            continue
        outs_by_config[run["config_hash"]].append(out)
        cells[(run["config_hash"], run["item_id"])].append(out["text"])

    rows = []
    for config in configs:
        h = config["config_hash"]
        config_runs = runs_by_config.get(h, [])
        outs = outs_by_config.get(h, [])
        cell_texts = [texts for (ch, _item), texts in cells.items() if ch == h]
        statuses = defaultdict(int)
        for run in config_runs:
            statuses[run["status"]] += 1
        succeeded = [r for r in config_runs if r["status"] == "succeeded"]
        validity = [o["metrics"].get("valid") for o in outs if (o.get("metrics") or {}).get("valid") is not None]
        values = {
            "tokens_per_s": [(r["metrics"] or {}).get("tokens_per_s") for r in succeeded],
            "ttft_ms": [(r["metrics"] or {}).get("prefill_ms") for r in succeeded],
            "output_tokens": [len(o["token_ids"] or []) for o in outs],
            "distinct_1": [textmetrics.distinct_n(t, 1) for t in cell_texts],
            "distinct_2": [textmetrics.distinct_n(t, 2) for t in cell_texts],
            "self_bleu": [textmetrics.self_bleu(t) for t in cell_texts],
            "repetition": [textmetrics.repetition_rate(o["text"]) for o in outs],
            "mean_logprob": [mean_logprob(o.get("trace")) for o in outs],
        }
        rows.append(
            {
                **config,
                "runs": {
                    "total": len(config_runs),
                    "succeeded": statuses["succeeded"],
                    "failed": statuses["failed"],
                    "cancelled": statuses["cancelled"],
                    "unfinished": statuses["queued"] + statuses["running"],
                },
                "outputs": len(outs),
                **{key: summary(values[key]) for key in SUMMARISED},
                "empty_rate": _rate(sum(1 for o in outs if not o["text"].strip()), len(outs)),
                "nonterminating_rate": _rate(sum(1 for o in outs if o["finish_reason"] == "length"), len(outs)),
                "validity_rate": _rate(sum(1 for v in validity if v), len(validity)) if validity else None,
                "quality": None,
            }
        )
    return {"configurations": rows, "environment": environment_check(runs)}
