"""Finished comparisons straight in the database (no worker): succeeded runs with one output each.

Output texts are plain sentences that contain none of the strategy, parameter, model or timing
names, so the leak scans can search for those words without false alarms.
"""

from __future__ import annotations

from decodelab.runs.models import Comparison, Output, Run, RunStatus

# Three configurations with realistic labels, parameters and timings (what must never leak).
CONFIGS = [
    {"strategy": "greedy", "params": {}, "label": "greedy", "hash": "aaaa1111bbbb2222"},
    {
        "strategy": "beam",
        "params": {"num_beams": 4, "length_penalty": 1.0},
        "label": "beam (num_beams=4)",
        "hash": "cccc3333dddd4444",
    },
    {
        "strategy": "sampling",
        "params": {"temperature": 0.7, "top_p": 0.9},
        "label": "sampling (temperature=0.7, top_p=0.9)",
        "hash": "eeee5555ffff6666",
    },
]
WORDS = ["river", "mountain", "harbour", "orchard", "lantern", "meadow", "violin", "compass"]


def metrics(decode_ms: float, new_tokens: int) -> dict:
    return {
        "queue_wait_ms": 3.0,
        "model_load_ms": 0.0,
        "model_cache_hit": True,
        "prefill_ms": 12.5,
        "decode_ms": decode_ms,
        "new_tokens": new_tokens,
        "tokens_per_s": 1000 * (new_tokens - 1) / decode_ms,
        "total_ms": decode_ms + 12.5,
        "peak_memory_bytes": None,
    }


def finished_comparison(owner, n: int, *, configs=CONFIGS, status: str = RunStatus.SUCCEEDED) -> Comparison:
    """Prompt number n, one succeeded run per configuration, output lengths differing by configuration."""
    word = WORDS[n % len(WORDS)]
    comparison = Comparison.objects.create(
        owner=owner, prompt=f"Write one line about a {word} (prompt {n}).", max_new_tokens=32, model="smollm2-135m"
    )
    for position, config in enumerate(configs):
        length = 5 + 3 * position
        run = Run.objects.create(
            comparison=comparison,
            position=position,
            label=config["label"],
            strategy=config["strategy"],
            params=config["params"],
            config_hash=config["hash"],
            status=status,
            metrics=metrics(decode_ms=10.0 * (position + 1) * length, new_tokens=length)
            if status == RunStatus.SUCCEEDED
            else None,
        )
        if status == RunStatus.SUCCEEDED:
            text = f"The {word} text number {n}, variant {'xyzuvwst'[position]}: " + " ".join(["calm"] * length) + "."
            Output.objects.create(run=run, index=0, text=text, token_ids=list(range(length)), finish_reason="length")
    return comparison


def finished_comparisons(owner, count: int, **kwargs) -> list[Comparison]:
    return [finished_comparison(owner, n, **kwargs) for n in range(count)]
