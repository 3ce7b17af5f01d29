"""`make bench`: DecodeLab's decoders against a named baseline, measured in one process.

Each case runs DecodeLab's decoder and its baseline on the same prompts, alternating
(ours, baseline, ours, baseline...) so drift on the machine hits both alike, and prints
tokens per second and the ratio ours / baseline. Baselines:

- greedy, sampling, beam: transformers ``generate`` with the same config (and, for
  sampling, the same seed), so the ratio is DecodeLab's loop overhead; outputs must be
  identical;
- prompt lookup: DecodeLab greedy on the copy-heavy prompts (target >= 3x), with
  transformers' own prompt-lookup ``generate`` shown for reference; output identical to greedy;
- diverse beam: DecodeLab beam search with the same num_beams (transformers 5 has no
  diverse beam search);
- contrastive: DecodeLab greedy (transformers 5 has no contrastive search in core);
- constrained: the same prompts decoded greedily without the constraint; the figure is the
  time per token, and the overhead per token = constrained / unconstrained - 1 (target <= 5 %);
- draft speculation (Qwen2.5-Coder 0.5B drafting for 1.5B, when installed): DecodeLab greedy
  on the 1.5B; target >= 2x on a GPU with identical output.

Tokens per second here is end to end (new tokens / wall time of the whole decode, prefill
included), the same measure on both sides. Results are printed and saved as JSON.

    python -m bench.decoders [--tokens 64] [--reps 3] [--out bench-results/decoders.json] [--only greedy,beam]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers

from workers import runtime
from workers.decoders import DECODERS
from workers.models import CATALOG
from workers.strategies import build_config

QWEN_PAIR = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [json.loads(line) for line in (ROOT / "samples" / "prompts.jsonl").read_text().splitlines() if line]


def prompts_tagged(tag: str, n: int) -> list[dict[str, Any]]:
    return [p for p in PROMPTS if tag in p["tags"]][:n]


@dataclass
class Measure:
    seconds: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    outputs: list[list[int]] = field(default_factory=list)

    @property
    def tok_s(self) -> float:
        return sum(self.tokens) / sum(self.seconds)

    @property
    def s_per_token(self) -> float:
        return sum(self.seconds) / max(1, sum(self.tokens))


def timed(device: torch.device, fn: Callable[[], list[int]]) -> tuple[float, list[int]]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


class Bench:
    def __init__(self, model_name: str, tokens: int, reps: int) -> None:
        self.loaded, _ = runtime.load(model_name)
        self.model, self.tok = self.loaded.model, self.loaded.tokenizer
        self.device = self.loaded.device
        self.tokens = tokens
        self.reps = reps

    def ids(self, prompt: dict[str, Any]) -> torch.Tensor:
        enc = self.tok.apply_chat_template(
            [{"role": "user", "content": prompt["prompt"]}], add_generation_prompt=True, tokenize=True
        )
        ids = enc["input_ids"] if hasattr(enc, "keys") else enc
        return torch.tensor([ids], device=self.device)  # [1, prompt_len]

    def ours(self, strategy: str, params: dict[str, Any], seed: int = 0, model: Any = None, **resources: Any):
        config = build_config(strategy, params)

        def run(input_ids: torch.Tensor) -> list[int]:
            with torch.inference_mode():
                seqs = DECODERS[strategy](
                    model or self.model,
                    input_ids,
                    config,
                    max_new_tokens=self.tokens,
                    eos_token_ids=self.loaded.eos_token_ids,
                    generator=runtime.seeded_generator(seed, self.device),
                    tokenizer=self.tok,
                    **resources,
                )
            return seqs[0].token_ids

        return run

    def hf(self, seed: int = 0, model: Any = None, **kwargs: Any):
        def run(input_ids: torch.Tensor) -> list[int]:
            torch.manual_seed(seed)
            with torch.inference_mode():
                out = (model or self.model).generate(
                    input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    max_new_tokens=self.tokens,
                    eos_token_id=self.loaded.eos_token_ids,
                    pad_token_id=self.tok.pad_token_id or self.loaded.eos_token_ids[0],
                    **kwargs,
                )
            new = out[0, input_ids.shape[1] :].tolist()
            eos = set(self.loaded.eos_token_ids)
            cut = next((i + 1 for i, t in enumerate(new) if t in eos), len(new))
            return new[:cut]

        return run

    def compare(self, prompts: list[dict[str, Any]], ours, baseline) -> tuple[Measure, Measure]:
        a, b = Measure(), Measure()
        for p in prompts:
            ids = self.ids(p)
            ours(ids), baseline(ids)  # warm-up (allocations, first-call overheads)
            for _ in range(self.reps):
                for m, fn in ((a, ours), (b, baseline)):
                    s, out = timed(self.device, lambda fn=fn, ids=ids: fn(ids))
                    m.seconds.append(s)
                    m.tokens.append(len(out))
                    m.outputs.append(out)
        return a, b


def row(name, baseline_name, a: Measure, b: Measure, target: str, met: bool | None, identical: bool | None, **extra):
    return {
        "case": name,
        "baseline": baseline_name,
        "ours_tok_s": round(a.tok_s, 2),
        "baseline_tok_s": round(b.tok_s, 2),
        "ratio": round(a.tok_s / b.tok_s, 3),
        "target": target,
        "met": met,
        "identical_output": identical,
        **extra,
    }


def run_cases(bench: Bench, only: set[str] | None, qwen: bool) -> list[dict[str, Any]]:
    results = []
    open_prompts = prompts_tagged("open", 2)
    copy_prompts = prompts_tagged("copy", 2)

    def want(name: str) -> bool:
        if only is not None and name not in only:
            return False
        print(f"[{len(results) + 1}] {name}…", file=sys.stderr, flush=True)
        return True

    if want("greedy"):
        a, b = bench.compare(open_prompts, bench.ours("greedy", {}), bench.hf(do_sample=False, num_beams=1))
        results.append(
            row("greedy", "transformers generate", a, b, ">= 1.0", a.tok_s >= b.tok_s, a.outputs == b.outputs)
        )
    if want("sampling"):
        params = {"temperature": 0.7, "top_k": 50, "top_p": 0.9}
        a, b = bench.compare(
            open_prompts, bench.ours("sampling", params, seed=7), bench.hf(seed=7, do_sample=True, **params)
        )
        results.append(
            row(
                "sampling",
                "transformers generate (same seed)",
                a,
                b,
                ">= 1.0",
                a.tok_s >= b.tok_s,
                a.outputs == b.outputs,
            )
        )
    if want("beam"):
        a, b = bench.compare(
            open_prompts,
            bench.ours("beam", {"num_beams": 4}),
            bench.hf(do_sample=False, num_beams=4, length_penalty=1.0, early_stopping=False),
        )
        results.append(
            row("beam (4 beams)", "transformers generate", a, b, ">= 1.0", a.tok_s >= b.tok_s, a.outputs == b.outputs)
        )
    if want("prompt_lookup") and "speculative" in DECODERS:
        spec = bench.ours("speculative", {"proposer": "prompt_lookup", "prompt_lookup_num_tokens": 10})
        a, b = bench.compare(copy_prompts, spec, bench.ours("greedy", {}))
        hf_pl, _ = bench.compare(
            copy_prompts[:1], bench.hf(do_sample=False, prompt_lookup_num_tokens=10), bench.ours("greedy", {})
        )
        results.append(
            row(
                "prompt lookup (copy prompts)",
                "DecodeLab greedy",
                a,
                b,
                ">= 3x",
                a.tok_s >= 3 * b.tok_s,
                a.outputs == b.outputs,
                transformers_prompt_lookup_tok_s=round(hf_pl.tok_s, 2),
            )
        )
    if want("diverse_beam") and "diverse_beam" in DECODERS:
        a, b = bench.compare(
            open_prompts,
            bench.ours("diverse_beam", {"num_beams": 4, "num_beam_groups": 2, "diversity_penalty": 0.5}),
            bench.ours("beam", {"num_beams": 4}),
        )
        results.append(row("diverse beam (4 beams, 2 groups)", "DecodeLab beam (4 beams)", a, b, "report", None, None))
    if want("contrastive") and "contrastive" in DECODERS:
        a, b = bench.compare(
            open_prompts, bench.ours("contrastive", {"penalty_alpha": 0.6, "top_k": 4}), bench.ours("greedy", {})
        )
        results.append(row("contrastive (alpha 0.6, k 4)", "DecodeLab greedy", a, b, "report", None, None))
    if want("constrained") and "constrained" in DECODERS:
        a, b = Measure(), Measure()
        for p in prompts_tagged("json", 2) + prompts_tagged("regex", 1):
            params = {"json_schema": p["json_schema"]} if "json_schema" in p else {"regex": p["regex"]}
            x, y = bench.compare([p], bench.ours("constrained", params), bench.ours("greedy", {}))
            for src, dst in ((x, a), (y, b)):
                dst.seconds += src.seconds
                dst.tokens += src.tokens
        overhead = a.s_per_token / b.s_per_token - 1
        results.append(
            row(
                "constrained (JSON schema, regex)",
                "DecodeLab greedy, unconstrained",
                a,
                b,
                "overhead <= 5 % per token",
                overhead <= 0.05,
                None,
                overhead_per_token=round(overhead, 4),
            )
        )
    if qwen and want("qwen"):
        target, _ = runtime.load("qwen2.5-coder-1.5b")
        draft, _ = runtime.load("qwen2.5-coder-0.5b")
        qbench = Bench("qwen2.5-coder-1.5b", bench.tokens, bench.reps)
        spec = qbench.ours(
            "speculative",
            {"proposer": "draft_model", "draft_model": "qwen2.5-coder-0.5b", "num_draft_tokens": 5},
            draft_model=draft.model,
        )
        prompts = prompts_tagged("code", 2)
        a, b = qbench.compare(prompts, spec, qbench.ours("greedy", {}))
        on_gpu = bench.device.type == "cuda"
        results.append(
            row(
                "draft speculation (Qwen 0.5B -> 1.5B, code prompts)",
                "DecodeLab greedy on Qwen 1.5B",
                a,
                b,
                ">= 2x on a GPU",
                (a.tok_s >= 2 * b.tok_s) if on_gpu else None,
                a.outputs == b.outputs,
            )
        )
        del target
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated: greedy, sampling, beam, prompt_lookup, diverse_beam, contrastive, constrained, qwen",
    )
    parser.add_argument("--qwen", action="store_true", help="also the Qwen draft/target pair (make models first)")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "decoders.json"))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    bench = Bench(args.model, args.tokens, args.reps)
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    qwen = args.qwen or (bench.device.type == "cuda" and all(CATALOG[m].is_installed() for m in QWEN_PAIR))
    results = run_cases(bench, only, qwen)
    env = {
        "device": str(bench.device) + (f" ({torch.cuda.get_device_name()})" if bench.device.type == "cuda" else ""),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "dtype": bench.loaded.dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": args.model,
        "max_new_tokens": args.tokens,
        "reps": args.reps,
    }
    print(f"\nDecodeLab decoder benchmark: {env}\n")
    header = f"{'case':<48} {'ours tok/s':>10} {'baseline tok/s':>15} {'ratio':>7}  {'target':<26} {'met':<5}"
    print(f"{header} identical  baseline")
    for r in results:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        same = "-" if r["identical_output"] is None else ("yes" if r["identical_output"] else "NO")
        extra = f"  overhead/token {r['overhead_per_token']:+.1%}" if "overhead_per_token" in r else ""
        print(
            f"{r['case']:<48} {r['ours_tok_s']:>10.2f} {r['baseline_tok_s']:>15.2f} {r['ratio']:>7.2f}  "
            f"{r['target']:<26} {met:<5} {same:<10} {r['baseline']}{extra}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "results": results}, indent=2))
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
