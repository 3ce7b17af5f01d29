"""Display data for the comparison page, computed from stored runs (no queries of its own).

Token views use the stored trace (workers/trace.py): ``p`` is the chosen token's probability
under the model's raw distribution, ``h`` its entropy scaled so 4 nats or more is full colour.
"""

from __future__ import annotations

import math
from typing import Any

ENTROPY_FULL_SCALE = 4.0  # nats

METRIC_LABELS = {
    "drafted": "drafted",
    "accepted": "accepted",
    "acceptance_rate": "acceptance rate",
    "mean_accepted_length": "accepted / verification",
    "verification_steps": "verifications",
    "tokens_per_verification": "tokens / target pass",
    "target_forwards": "target passes",
    "draft_forwards": "draft passes",
    "compile_ms": "grammar compile ms",
    "mask_ms_mean": "mask ms (mean)",
    "mask_ms_p99": "mask ms (p99)",
    "forced_tokens": "forced tokens",
    "masked_mass_mean": "masked mass (mean)",
    "masked_mass_max": "masked mass (max)",
    "constraint": "constraint",
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def token_spans(trace: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    spans = []
    for t in trace or []:
        p = math.exp(t["logprob"]) if t.get("logprob") is not None else 1.0
        h = min(1.0, (t.get("entropy") or 0.0) / ENTROPY_FULL_SCALE)
        top = ", ".join(f"{alt[1]!r} {alt[2]:.2f}" for alt in t.get("top", [])[:5])
        title = f"{t['text']!r}  logprob {t['logprob']:.3f}  entropy {t['entropy']:.2f}"
        if t.get("spec"):
            title += f"  draft: {t['spec']}"
        if t.get("forced"):
            title += "  forced by the constraint"
        spans.append(
            {
                "text": t["text"],
                "p": f"{p:.3f}",
                "h": f"{h:.3f}",
                "spec": t.get("spec") or "",
                "forced": bool(t.get("forced")),
                "title": f"{title}\ntop: {top}",
            }
        )
    return spans


def output_metric_items(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    return [(METRIC_LABELS.get(k, k), _fmt(v)) for k, v in metrics.items() if k != "valid" and v is not None]


def annotate(runs: list) -> None:
    """Attach display attributes to each run's outputs (the page's template reads them)."""
    greedy = next((r for r in runs if r.strategy == "greedy" and r.status == "succeeded"), None)
    greedy_ids = greedy.outputs.all()[0].token_ids if greedy and greedy.outputs.all() else None
    for run in runs:
        outputs = list(run.outputs.all())
        for out in outputs:
            out.spans = token_spans(out.trace)
            out.metric_items = output_metric_items(out.metrics or {})
            out.valid = (out.metrics or {}).get("valid")
        run.has_trace = any(out.trace for out in outputs)
        lossless = run.strategy == "speculative" and not run.params.get("do_sample")
        run.matches_greedy = None
        if lossless and greedy_ids is not None and outputs:
            run.matches_greedy = outputs[0].token_ids == greedy_ids
