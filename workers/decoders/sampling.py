"""Ancestral sampling from the warped next-token distribution.

Algorithm (transformers 5.23 ``GenerationMixin._sample`` with ``do_sample=True``):

1. The prompt ``[1, prompt_len]`` is repeated to ``n = num_return_sequences`` identical rows
   (``repeat_interleave`` on dim 0, as ``_expand_inputs_for_generation`` does), and the
   ``[n, prompt_len]`` batch is prefilled once into a KV cache.
2. Each step, for all ``n`` rows at once: float32 logits of the last position, processed by
   ``logits.process``: the repetition penalty over each row's tokens so far (prompt and
   generated), then temperature, top-k, top-p, min-p and typical-p, each only when active
   (``_get_logits_processor``'s order and conditions; see ``workers.decoders.logits``);
   ``softmax``, then ``torch.multinomial(probs, 1, generator=generator)``.
3. A row that has emitted one of ``eos_token_ids`` is finished: from then on it is fed a
   filler token (the first eos id, as ``generate`` feeds its pad token) and its draws are
   discarded, but it stays in the batch so that every step consumes the generator exactly
   as ``generate`` consumes the global RNG. The loop ends when every row is finished or after
   ``max_new_tokens`` steps. A row whose new token completes one of the ``stop`` strings
   (``workers.decoders.stopping``) is finished the same way, with finish reason ``"stop"``
   (eos wins when the token is both).

Consequence: with ``torch.manual_seed(s)`` before ``model.generate(do_sample=True,
num_return_sequences=n, ...)`` and ``generator=torch.Generator().manual_seed(s)`` here, the
sampled tokens are identical (on CPU the default generator and a fresh generator seeded
alike produce the same stream).

Sequences are returned in draw order (row 0 first): samples are not ranked. Each one's
``token_ids`` stops at, and includes, its eos token. ``score`` is the sum of the chosen
tokens' log-probabilities under the processed distribution that was sampled from
(``log_softmax`` of the penalised and warped scores), so it is always finite.

Batches: ``decode_batch`` samples several runs at once (one prompt, its ``n`` rows and its own
seeded generator each). Each run draws from its own generator, for its own rows only, in the
order above, so a run's tokens do not depend on what it was batched with (except where a
different batch shape rounds a probability differently at a draw's boundary). A run leaves the
batch when all its rows are finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from workers import trace
from workers.decoders import kv, logits
from workers.decoders.base import GeneratedSequence, no_op
from workers.decoders.stopping import StopStrings
from workers.executor import Execution, Executor, new_executor, to_device
from workers.strategies import SamplingConfig


@dataclass
class SampleRun:
    """One sampling run in a batch: its prompt, seeded generator, budget and stop strings."""

    prompt: list[int]
    generator: torch.Generator
    max_new_tokens: int
    stop: StopStrings | None = None


def decode(
    model: Any,
    input_ids: torch.Tensor,
    config: SamplingConfig,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    generator: torch.Generator,
    on_first_token: Callable[[], None] = no_op,
    stop: StopStrings | None = None,
    execution: Execution | None = None,
    **_resources: Any,  # tokenizer, draft_model: not used here
) -> list[GeneratedSequence]:
    """Sample ``config.num_return_sequences`` continuations of ``input_ids`` (``[1, prompt_len]``)."""
    assert isinstance(config, SamplingConfig), f"expected a SamplingConfig, got {type(config).__name__}"
    kv.check_prompt(input_ids, max_new_tokens)
    run = SampleRun(input_ids[0].tolist(), generator, max_new_tokens, stop)
    [out] = decode_batch(
        model, [run], config, eos_token_ids=eos_token_ids, on_first_token=on_first_token, execution=execution
    )
    return out


def decode_batch(
    model: Any,
    runs: Sequence[SampleRun],
    config: SamplingConfig,
    *,
    eos_token_ids: Sequence[int],
    on_first_token: Callable[[], None] = no_op,
    execution: Execution | None = None,
) -> list[list[GeneratedSequence]]:
    """Sample every run; one list of ``config.num_return_sequences`` sequences per run."""
    assert isinstance(config, SamplingConfig), f"expected a SamplingConfig, got {type(config).__name__}"
    assert runs and min(r.max_new_tokens for r in runs) >= 1, "runs with max_new_tokens >= 1"
    n = config.num_return_sequences
    eos_list = [int(i) for i in eos_token_ids]
    filler = eos_list[0] if eos_list else 0  # fed to finished rows only; never returned
    longest = max(len(r.prompt) for r in runs)
    budget = max(r.max_new_tokens for r in runs)

    with torch.inference_mode():
        # Rows: n per run, run j owning rows j*n .. j*n+n-1 (repeated as generate expands its inputs).
        prompts = [r.prompt for r in runs for _ in range(n)]
        ex = new_executor(execution, model, rows=len(prompts), capacity=Executor.capacity_for([longest], budget))
        next_logits = ex.prefill(prompts)[:, -1]  # [rows, vocab]
        device = next_logits.device

        # Every row's tokens so far, as generate's growing input_ids (finished rows get the filler,
        # as generate appends its pad token). Only the repetition penalty reads it; a shorter prompt
        # is left-padded with its own first token, which changes nothing (each id counts once).
        history = torch.empty((len(prompts), longest + budget), dtype=torch.long, device=device)  # [rows, P + T]
        for i, p in enumerate(prompts):
            history[i, : longest - len(p)] = p[0]
            history[i, longest - len(p) : longest] = torch.tensor(p, dtype=torch.long)

        total = len(runs) * n
        generated = [[0] * runs[i // n].max_new_tokens for i in range(total)]
        lengths = [0] * total
        unfinished = [True] * total
        stopped = [False] * total
        scores = [0.0] * total
        stats: list[list[dict[str, Any]]] = [[] for _ in range(total)]
        live_runs = list(range(len(runs)))  # run of each block of n executor rows

        for step in range(budget):
            warped = logits.process(
                next_logits,
                history[:, : longest + step],  # [rows, P + step]
                repetition_penalty=config.repetition_penalty,
                temperature=config.temperature,
                top_k=config.top_k,
                top_p=config.top_p,
                min_p=config.min_p,
                typical_p=config.typical_p,
            )  # [rows, vocab]
            probs = torch.softmax(warped, dim=-1)  # [rows, vocab]
            # Each run draws for its own rows from its own generator, as it would alone.
            drawn = torch.cat(
                [
                    torch.multinomial(probs[b * n : (b + 1) * n], 1, generator=runs[j].generator).squeeze(1)
                    for b, j in enumerate(live_runs)
                ]
            )  # [rows]
            chosen_logprob = torch.log_softmax(warped, dim=-1).gather(1, drawn[:, None]).squeeze(1)  # [rows]
            row_stats = trace.step_stats(next_logits, drawn, extra=chosen_logprob)  # one transfer per step
            drawn_list = [s["token"] for s in row_stats]
            feed = list(drawn_list)
            for b, j in enumerate(live_runs):
                for k in range(n):
                    i, row = j * n + k, b * n + k
                    token = drawn_list[row]
                    if unfinished[i]:
                        generated[i][step] = token
                        lengths[i] += 1
                        scores[i] += row_stats[row].pop("extra")
                        stats[i].append(row_stats[row])
                        if token in eos_list:
                            unfinished[i] = False
                        elif runs[j].stop is not None and runs[j].stop.hit(generated[i][: lengths[i]]):
                            stopped[i] = True
                            unfinished[i] = False
                        if step + 1 == runs[j].max_new_tokens:
                            unfinished[i] = False
                    else:
                        feed[row] = filler
            if step == 0:
                on_first_token()
            keep_runs = [b for b, j in enumerate(live_runs) if any(unfinished[j * n : (j + 1) * n])]
            if not keep_runs:
                break
            feed_t = to_device(feed, device)  # [rows]
            history[:, longest + step] = feed_t
            if len(keep_runs) != len(live_runs):
                rows_kept = [b * n + k for b in keep_runs for k in range(n)]
                ex.reorder(rows_kept)
                history = history[rows_kept]
                feed_t = feed_t[rows_kept]
                live_runs = [live_runs[b] for b in keep_runs]
            next_logits = ex.step(feed_t[:, None])[:, -1]  # [rows, vocab]

    out: list[list[GeneratedSequence]] = []
    for j in range(len(runs)):
        seqs = []
        for k in range(n):
            i = j * n + k
            token_ids = generated[i][: lengths[i]]
            ended_by_eos = bool(token_ids) and token_ids[-1] in eos_list
            finish_reason = "eos" if ended_by_eos else ("stop" if stopped[i] else "length")
            seqs.append(GeneratedSequence(token_ids, finish_reason, score=scores[i], stats=stats[i]))
        out.append(seqs)
    return out
