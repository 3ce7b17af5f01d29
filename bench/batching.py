"""`make bench`: batched execution against one run at a time, measured side by side in one process.

1. Batch-1 greedy on the static executor against the eager one (the oracle): tokens per second,
   alternating runs, and whether the tokens are identical. Target: >= 1.0x, identical.
2. An experiment's runs: ``--prompts`` prompts x greedy and the same prompts x sampling
   (temperature 0.7, N=4 samples per run), ``--tokens`` new tokens each, decoded one run at a time
   (``workers.engine.execute`` per run, as a worker did before batching) and then as batches
   (``workers.engine.execute_batch``, as a worker now does with the runs it takes together).
   Runs per second, the ratio, and how many runs gave identical tokens both ways.
   Target: >= 4x.

    python -m bench.batching [--prompts 32] [--tokens 64] [--out bench-results/batching.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
import transformers

from workers.engine import execute, execute_batch
from workers.protocol import DecodeRequest

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [json.loads(line) for line in (ROOT / "samples" / "prompts.jsonl").read_text().splitlines() if line]
MODEL = "smollm2-135m"


def requests(n: int, tokens: int) -> list[DecodeRequest]:
    texts = [p["prompt"] for p in PROMPTS if {"open", "fact", "reasoning", "code", "summary"} & set(p["tags"])]
    texts = (texts * (n // len(texts) + 1))[:n]
    greedy = [DecodeRequest(model=MODEL, strategy="greedy", prompt=t, chat=True, max_new_tokens=tokens) for t in texts]
    sampling = [
        DecodeRequest(
            model=MODEL,
            strategy="sampling",
            prompt=t,
            chat=True,
            max_new_tokens=tokens,
            seed=i,
            params={"temperature": 0.7, "num_return_sequences": 4},
        )
        for i, t in enumerate(texts)
    ]
    return greedy + sampling


def tokens_of(results: list[Any]) -> list[list[list[int]]]:
    return [[o.token_ids for o in r.outputs] for r in results]


def static_vs_eager(tokens: int) -> dict[str, Any]:
    texts = [p["prompt"] for p in PROMPTS if "open" in p["tags"]][:3]
    reqs = [DecodeRequest(model=MODEL, strategy="greedy", prompt=t, chat=True, max_new_tokens=tokens) for t in texts]
    seconds = {"eager": 0.0, "static": 0.0}
    outs: dict[str, list] = {"eager": [], "static": []}
    n_tokens = 0
    execute(reqs[0])  # load and warm up
    for req in reqs * 2:
        for mode in ("eager", "static", "static", "eager"):  # alternating: drift hits both alike
            os.environ["DECODELAB_EXECUTOR"] = mode
            t0 = time.perf_counter()
            result = execute(req)
            seconds[mode] += time.perf_counter() - t0
            outs[mode].append(result.outputs[0].token_ids)
            n_tokens += len(result.outputs[0].token_ids) if mode == "eager" else 0
    os.environ.pop("DECODELAB_EXECUTOR")
    ratio = seconds["eager"] / seconds["static"]
    return {
        "case": "greedy batch 1: static executor vs eager (the oracle)",
        "eager_tok_s": round(n_tokens / seconds["eager"], 2),
        "static_tok_s": round(n_tokens / seconds["static"], 2),
        "ratio": round(ratio, 3),
        "target": ">= 1.0x, identical tokens",
        "identical": outs["eager"] == outs["static"],
        "met": ratio >= 1.0 and outs["eager"] == outs["static"],
    }


def experiment(n: int, tokens: int) -> dict[str, Any]:
    reqs = requests(n, tokens)
    t0 = time.perf_counter()
    alone = [execute(r) for r in reqs]
    t_alone = time.perf_counter() - t0
    t0 = time.perf_counter()
    together = execute_batch(reqs)
    t_batched = time.perf_counter() - t0
    assert all(r.error is None for r in alone + together), "every run succeeded"
    same = sum(a == b for a, b in zip(tokens_of(alone), tokens_of(together), strict=True))
    ratio = t_alone / t_batched
    return {
        "case": f"experiment: {n} prompts x greedy + {n} prompts x sampling (N=4), {tokens} tokens",
        "runs": len(reqs),
        "one_at_a_time_runs_s": round(len(reqs) / t_alone, 3),
        "batched_runs_s": round(len(reqs) / t_batched, 3),
        "ratio": round(ratio, 2),
        "batch_sizes": sorted({r.environment.batch_size for r in together}),
        "identical_runs": f"{same}/{len(reqs)}",
        "target": ">= 4x",
        "met": ratio >= 4,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "batching.json"))
    args = parser.parse_args(argv)
    env = {
        "device": "cuda" if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": MODEL,
        "dtype": os.environ.get("DECODELAB_DTYPE", "float32"),
        "max_batch": os.environ.get("DECODELAB_MAX_BATCH", "16"),
    }
    rows = []
    for fn in (lambda: static_vs_eager(args.tokens), lambda: experiment(args.prompts, args.tokens)):
        row = fn()
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\nDecodeLab batching benchmark: {env}\n")
    for r in rows:
        print(f"{r['case']:<80} ratio {r['ratio']:>6}  target {r['target']:<26} met {'yes' if r['met'] else 'NO'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "results": rows}, indent=2))
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
