"""The GPU benchmark of the step executor (issue #11), one script that runs in a few minutes.

Everything is measured in this one process, side by side, on the same prompts:

- baselines: transformers ``generate`` eager (dynamic cache) and ``generate`` with
  ``cache_implementation="static"`` compiled (transformers' own fast path);
- DecodeLab greedy on each executor mode (eager, static, graph = captured CUDA graphs), batch 1;
- one-at-a-time vs a 16-row batch (greedy, graph mode): throughput ratio;
- beam search (4 beams) and prompt lookup, eager vs graph;
- graph capture time per model (the worker's warm-up) and, optionally, the graph with
  ``torch.compile`` fusion inside (``--compile``);
- draft/target step-time ratio ``c`` for the Qwen2.5-Coder 0.5B/1.5B shapes (random weights:
  step time does not depend on the values), and the speedup it projects for speculative
  greedy decoding with the CPU-measured acceptance, ``(1 - a^(g+1)) / ((1 - a)(g c + 1))``
  (Leviathan et al. 2023). That last figure is a projection, and the output says so.

Tokens per second: new tokens / wall time of the whole decode (prefill included), CUDA
synchronised before each clock read. Outputs are compared token for token with the eager path.

    python -m bench.gpu --gguf /path/SmolLM2-135M-Instruct.Q4_1.gguf [--dtype bfloat16] [--tokens 128]
        [--out bench-results/gpu.json] [--compile] [--budget-s 420]

On a machine without CUDA it runs on the CPU with small settings (``--quick``), to check the
script itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers.decoders import beam, greedy, speculative  # noqa: E402
from workers.executor import Execution, Executor, GraphPool, warm_graphs  # noqa: E402
from workers.strategies import BeamConfig, SpeculativeConfig  # noqa: E402

PROMPTS = [json.loads(line) for line in (ROOT / "samples" / "prompts.jsonl").read_text().splitlines() if line]
QWEN_SHAPES = {
    "qwen2.5-coder-0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                           "num_attention_heads": 14, "num_key_value_heads": 2},
    "qwen2.5-coder-1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                           "num_attention_heads": 12, "num_key_value_heads": 2},
}  # fmt: skip
CPU_ACCEPTANCE = 0.905  # Qwen 0.5B drafting for 1.5B, greedy, code prompts (issue #11, measured on the CPU)


class Report:
    def __init__(self, budget_s: float) -> None:
        self.t0 = time.perf_counter()
        self.budget_s = budget_s
        self.rows: list[dict[str, Any]] = []

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def add(self, **row: Any) -> None:
        self.rows.append(row)
        print(json.dumps(row), flush=True)

    def section(self, name: str, fn: Callable[[], None], need_s: float = 0.0) -> None:
        if self.left() < need_s:
            self.add(section=name, skipped=f"{self.left():.0f} s left of the budget, {need_s:.0f} s needed")
            return
        t = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # one failed section must not lose the others' figures
            self.add(section=name, error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc(limit=6))
        print(f"# {name}: {time.perf_counter() - t:.1f} s", flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def chat_ids(tok: Any, text: str) -> list[int]:
    enc = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True)
    ids = enc["input_ids"] if hasattr(enc, "keys") else enc
    return [int(i) for i in ids]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", help="the SmolLM2 GGUF file (real weights); else random weights of its shapes")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--compile", action="store_true", help="also the captured graph with torch.compile inside")
    parser.add_argument("--hf-compile", action="store_true", help="also generate(static cache, compiled)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip sections once this much time is spent")
    parser.add_argument("--modes", default="eager,static,graph", help="executor modes for the greedy comparison")
    parser.add_argument("--quick", action="store_true", help="small settings, to check the script on a CPU")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "gpu.json"))
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype)
    if args.quick:
        args.tokens, args.batch = 12, 4
    report = Report(args.budget_s)
    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": args.dtype,
        "max_new_tokens": args.tokens,
        "weights": "SmolLM2-135M-Instruct (GGUF, dequantised)" if args.gguf else "random, SmolLM2-135M shapes",
        "date": time.strftime("%Y-%m-%d"),
    }
    report.add(environment=env)

    t0 = time.perf_counter()
    if args.gguf:
        path = Path(args.gguf)
        tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        # Dequantised, as the worker prepares it (workers.runtime.prepare): plain bf16 matmuls.
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=dtype,
            quantization_config=transformers.GgufConfig(dequantize=True),
        )  # fmt: skip
    else:
        tok = None
        config = transformers.LlamaConfig(
            vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
            num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0, tie_word_embeddings=True,
        )  # fmt: skip
        with torch.device(device):
            model = transformers.LlamaForCausalLM(config).to(dtype)
    model = model.to(device).eval()
    model.generation_config.pad_token_id = model.generation_config.eos_token_id
    report.add(section="load", seconds=round(time.perf_counter() - t0, 1))
    eos = model.generation_config.eos_token_id
    eos_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos])]

    def prompts(tag: str, n: int) -> list[list[int]]:
        texts = [p["prompt"] for p in PROMPTS if tag in p["tags"]]
        texts = (texts * n)[:n]
        if tok is None:  # random weights: random prompts of realistic lengths
            gen = torch.Generator().manual_seed(len(tag))
            return [torch.randint(10, 49000, (20 + 7 * i,), generator=gen).tolist() for i in range(n)]
        return [chat_ids(tok, t) for t in texts]

    open_prompts = prompts("open", 2)
    copy_prompts = prompts("copy", 2)
    batch_prompts = prompts("open", args.batch // 2) + prompts("fact", args.batch - args.batch // 2)
    T = args.tokens
    pool = GraphPool(model)

    def ours(strategy: str, mode: str, prompt_list: list[list[int]], config: Any = None) -> tuple[float, list]:
        execution = Execution(mode=mode, pools={id(model): pool})
        outs: list[list[int]] = []
        total = 0.0
        for ids in prompt_list:
            input_ids = torch.tensor([ids], device=device)

            def run(input_ids: torch.Tensor = input_ids) -> Any:
                with torch.inference_mode():
                    if strategy == "greedy":
                        return greedy.decode(model, input_ids, None, max_new_tokens=T, eos_token_ids=eos_ids,
                                             execution=execution)  # fmt: skip
                    if strategy == "beam":
                        return beam.decode(model, input_ids, config, max_new_tokens=T, eos_token_ids=eos_ids,
                                           execution=execution)  # fmt: skip
                    gen = torch.Generator(device).manual_seed(0)
                    return speculative.decode(model, input_ids, config, max_new_tokens=T, eos_token_ids=eos_ids,
                                              generator=gen, execution=execution)  # fmt: skip

            s, seqs = timed(device, run)
            total += s
            outs.append(seqs[0].token_ids)
        return total, outs

    def tok_s(seconds: float, outs: list[list[int]]) -> float:
        return round(sum(len(o) for o in outs) / seconds, 2)

    def same(a: list[list[int]], b: list[list[int]]) -> float:
        return round(sum(x == y for x, y in zip(a, b, strict=True)) / len(a), 3)

    results: dict[str, Any] = {}

    def hf_eager() -> None:
        def run() -> float:
            n = 0
            for ids in open_prompts:
                with torch.inference_mode():
                    out = model.generate(torch.tensor([ids], device=device), max_new_tokens=T, do_sample=False,
                                         min_new_tokens=T)  # fmt: skip
                n += out.shape[1] - len(ids)
            return n

        run()
        s, n = timed(device, run)
        results["hf_eager"] = n / s
        report.add(case="transformers generate, eager (dynamic cache)", tok_s=round(n / s, 2))

    def capture() -> None:
        s, _ = timed(device, lambda: warm_graphs(model, pool))
        results["capture_s"] = s
        report.add(case="graph capture at worker start (warm_graphs)", seconds=round(s, 2), graphs=len(pool.captured),
                   target="<= 30 s", met=s <= 30)  # fmt: skip

    def greedy_modes() -> None:
        base = None
        for mode in args.modes.split(","):
            ours("greedy", mode, open_prompts[:1])  # warm-up
            s, outs = ours("greedy", mode, open_prompts)
            results[f"greedy_{mode}"] = tok_s(s, outs)
            base = base or outs
            row = {"case": f"DecodeLab greedy, batch 1, executor {mode}", "tok_s": tok_s(s, outs),
                   "same_as_eager": same(outs, base)}  # fmt: skip
            if "hf_eager" in results:
                row["vs_generate_eager"] = round(tok_s(s, outs) / results["hf_eager"], 2)
            report.add(**row)

    def replay_only() -> None:
        """The captured one-token step replayed back to back: the device's time per step, against
        the whole decode loop's (host work, synchronisation and trace figures included)."""
        if device.type != "cuda":
            return
        ex = Executor(model, rows=1, capacity=1024, mode="graph", pool=pool)
        with torch.inference_mode():
            ex.prefill([open_prompts[0]])
            ex.step(torch.zeros((1, 1), dtype=torch.long, device=device))
            graphs = pool.get((1, 1, 1, False, 1024))
            n = 200
            s, _ = timed(device, lambda: [graphs.graph.replay() for _ in range(n)])
        loop_ms = 1000 / results["greedy_graph"] if "greedy_graph" in results else None
        report.add(case="captured one-token step, replayed back to back (device time per step)",
                   step_ms=round(s / n * 1000, 3), decode_loop_ms_per_token=loop_ms and round(loop_ms, 3))  # fmt: skip

    def batched_lookup() -> None:
        cfg = SpeculativeConfig(proposer="prompt_lookup", prompt_lookup_num_tokens=10)
        lookup_prompts = prompts("copy", args.batch // 2) + prompts("summary", args.batch - args.batch // 2)
        execution = Execution(mode="graph", pools={id(model): pool})
        runs = [speculative.SpecRun(ids, torch.Generator(device).manual_seed(0), T) for ids in lookup_prompts]
        with torch.inference_mode():
            speculative.decode_batch(model, runs[:2], cfg, eos_token_ids=eos_ids, execution=execution)
            s, outs = timed(device, lambda: speculative.decode_batch(model, runs, cfg, eos_token_ids=eos_ids,
                                                                     execution=execution))  # fmt: skip
        n = sum(len(o[0].token_ids) for o in outs)
        s1, singles = ours("spec", "graph", lookup_prompts, cfg)
        report.add(case=f"prompt lookup, {len(runs)} rows in one batch (copy and summary prompts)",
                   tok_s=round(n / s, 2), one_at_a_time_tok_s=tok_s(s1, singles),
                   ratio=round((n / s) / tok_s(s1, singles), 2),
                   rows_same_as_alone=same([o[0].token_ids for o in outs], singles))  # fmt: skip

    def batched() -> None:
        execution = Execution(mode="graph", pools={id(model): pool})
        with torch.inference_mode():
            greedy.decode_batch(model, batch_prompts, max_new_tokens=[T] * len(batch_prompts), eos_token_ids=eos_ids,
                                execution=execution)  # fmt: skip
            s, outs = timed(device, lambda: greedy.decode_batch(
                model, batch_prompts, max_new_tokens=[T] * len(batch_prompts), eos_token_ids=eos_ids,
                execution=execution))  # fmt: skip
        n = sum(len(o[0].token_ids) for o in outs)
        one = results.get("greedy_graph")
        s1, singles = ours("greedy", "graph", batch_prompts)
        report.add(case=f"greedy graph, {len(batch_prompts)} prompts in one batch", tok_s=round(n / s, 2),
                   one_at_a_time_tok_s=tok_s(s1, singles), ratio=round((n / s) / tok_s(s1, singles), 2),
                   target=">= 10x", met=(n / s) >= 10 * tok_s(s1, singles),
                   rows_same_as_alone=same([o[0].token_ids for o in outs], singles), batch1_tok_s=one)  # fmt: skip

    def beams() -> None:
        cfg = BeamConfig(num_beams=4)
        ours("beam", "graph", open_prompts[:1], cfg)
        se, oe = ours("beam", "eager", open_prompts, cfg)
        sg, og = ours("beam", "graph", open_prompts, cfg)
        report.add(case="beam 4, graph vs eager", tok_s=tok_s(sg, og), eager_tok_s=tok_s(se, oe),
                   ratio=round(tok_s(sg, og) / tok_s(se, oe), 2), target=">= 5x",
                   met=tok_s(sg, og) >= 5 * tok_s(se, oe), same_as_eager=same(og, oe))  # fmt: skip

    def lookup() -> None:
        cfg = SpeculativeConfig(proposer="prompt_lookup", prompt_lookup_num_tokens=10)
        ours("spec", "graph", copy_prompts[:1], cfg)
        se, oe = ours("spec", "eager", copy_prompts, cfg)
        sg, og = ours("spec", "graph", copy_prompts, cfg)
        sgr, ogr = ours("greedy", "graph", copy_prompts)
        report.add(case="prompt lookup (copy prompts), graph vs eager", tok_s=tok_s(sg, og),
                   eager_tok_s=tok_s(se, oe), ratio=round(tok_s(sg, og) / tok_s(se, oe), 2), target=">= 5x",
                   met=tok_s(sg, og) >= 5 * tok_s(se, oe), vs_graph_greedy=round(tok_s(sg, og) / tok_s(sgr, ogr), 2),
                   same_as_greedy=same(og, ogr))  # fmt: skip

    def hf_compiled() -> None:
        def run() -> float:
            n = 0
            for ids in open_prompts:
                with torch.inference_mode():
                    out = model.generate(torch.tensor([ids], device=device), max_new_tokens=T, do_sample=False,
                                         min_new_tokens=T, cache_implementation="static")  # fmt: skip
                n += out.shape[1] - len(ids)
            return n

        c, _ = timed(device, run)  # compiles
        s, n = timed(device, run)
        results["hf_static_compiled"] = n / s
        row = {"case": "transformers generate, static cache, compiled", "tok_s": round(n / s, 2),
               "first_call_s": round(c, 1)}  # fmt: skip
        if "greedy_graph" in results:
            row["decodelab_graph_ratio"] = round(results["greedy_graph"] / (n / s), 2)
            row["target"], row["met"] = ">= 1.2x", results["greedy_graph"] >= 1.2 * n / s
        report.add(**row)

    def compiled_graph() -> None:
        cpool = GraphPool(model, compile=True)
        execution = Execution(mode="graph", pools={id(model): cpool})
        t = time.perf_counter()
        with torch.inference_mode():
            greedy.decode(model, torch.tensor([open_prompts[0]], device=device), None, max_new_tokens=4,
                          eos_token_ids=eos_ids, execution=execution)  # fmt: skip
        compile_s = time.perf_counter() - t
        total, outs = 0.0, []
        for ids in open_prompts:
            s, seqs = timed(device, lambda ids=ids: greedy.decode(
                model, torch.tensor([ids], device=device), None, max_new_tokens=T, eos_token_ids=eos_ids,
                execution=execution))  # fmt: skip
            total += s
            outs.append(seqs[0].token_ids)
        report.add(case="DecodeLab greedy, graph with torch.compile inside", tok_s=tok_s(total, outs),
                   compile_and_capture_s=round(compile_s, 1))  # fmt: skip

    def qwen_ratio() -> None:
        step_ms = {}
        for name, shape in QWEN_SHAPES.items():
            config = transformers.Qwen2Config(
                vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=False, **shape
            )
            with torch.device(device):
                m = transformers.Qwen2ForCausalLM(config).to(dtype).eval()
            qpool = GraphPool(m)
            with torch.inference_mode():
                ex = Executor(m, rows=1, capacity=1024, mode="graph", pool=qpool)
                ex.prefill([list(range(100, 140))])
                tokens = torch.tensor([[5]], device=device)
                for _ in range(3):
                    ex.step(tokens)
                n = 200 if not args.quick else 3

                def one_token_steps(ex: Executor = ex, tokens: torch.Tensor = tokens, n: int = n) -> None:
                    for _ in range(n):
                        ex.step(tokens)

                s, _ = timed(device, one_token_steps)
                ex2 = Executor(m, rows=1, capacity=1024, mode="graph", pool=qpool)
                ex2.prefill([list(range(100, 140))])
                verify = torch.zeros((1, 6), dtype=torch.long, device=device)
                ex2.step(verify, keep=6)

                def verify_steps(ex: Executor = ex2, verify: torch.Tensor = verify, n: int = n) -> None:
                    for _ in range(n):
                        ex.step(verify, keep=6)
                        ex.rollback([5])

                sv, _ = timed(device, verify_steps)
            step_ms[name] = (s / n * 1000, sv / n * 1000)
            del m, qpool
            if device.type == "cuda":
                torch.cuda.empty_cache()
        draft_ms, _ = step_ms["qwen2.5-coder-0.5b"]
        target_ms, verify_ms = step_ms["qwen2.5-coder-1.5b"]
        c, a, g = draft_ms / target_ms, CPU_ACCEPTANCE, 5
        projected = (1 - a ** (g + 1)) / ((1 - a) * (g * c + 1))
        # With the verify pass's own cost: g draft steps + one (g+1)-wide target pass per round.
        per_round = g * draft_ms + verify_ms
        expected_tokens = (1 - a ** (g + 1)) / (1 - a)
        measured_projection = expected_tokens * target_ms / per_round
        report.add(case="draft/target step time (Qwen2.5-Coder 0.5B/1.5B shapes, random weights, captured)",
                   draft_ms=round(draft_ms, 3), target_ms=round(target_ms, 3), verify6_ms=round(verify_ms, 3),
                   c=round(c, 3), acceptance=a, draft_tokens=g, projected_speedup=round(projected, 2),
                   projected_with_verify_cost=round(measured_projection, 2), target=">= 1.5x",
                   note="a projection from step times and the CPU-measured acceptance, not a decode")  # fmt: skip

    report.section("generate eager", hf_eager, 20)
    report.section("capture", capture, 20)
    report.section("greedy modes", greedy_modes, 40)
    report.section("replay", replay_only, 10)
    report.section("batch", batched, 30)
    report.section("batched prompt lookup", batched_lookup, 30)
    report.section("beam", beams, 40)
    report.section("prompt lookup", lookup, 30)
    if args.hf_compile or device.type == "cuda":
        report.section("generate static compiled", hf_compiled, 90)
    report.section("qwen step ratio", qwen_ratio, 40)
    if args.compile:
        report.section("graph + torch.compile", compiled_graph, 120)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "rows": report.rows}, indent=2))
    print(f"\nsaved {out}")
    print(f"{'case':<78} {'tok/s':>9} {'ratio':>7}  met")
    for row in report.rows:
        if "case" in row:
            ratio = row.get("ratio", row.get("decodelab_graph_ratio", row.get("vs_generate_eager", "")))
            print(f"{row['case'][:78]:<78} {row.get('tok_s', row.get('seconds', '')):>9} {ratio!s:>7}  "
                  f"{row.get('met', '-')}")  # fmt: skip
        elif "error" in row or "skipped" in row:
            print(f"{row.get('section')}: {row.get('error') or row.get('skipped')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
