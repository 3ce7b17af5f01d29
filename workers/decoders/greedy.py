"""Greedy decoding: pick the most likely next token at every step.

Algorithm (transformers 5.23 ``GenerationMixin._sample`` with ``do_sample=False``, the
``GREEDY_SEARCH`` mode that ``generate`` picks for ``num_beams=1, do_sample=False``):

1. Prefill: run the prompt ``[1, prompt_len]`` once through the model, filling a KV cache;
   keep the float32 logits of the last position.
2. Choose ``torch.argmax(logits, dim=-1)`` (the first index on ties, as in transformers).
3. Stop if the token is one of ``eos_token_ids`` (it is kept, finish reason ``"eos"``), if
   it completed one of the ``stop`` strings (kept, ``"stop"``; see
   ``workers.decoders.stopping``) or ``max_new_tokens`` tokens have been produced (finish
   reason ``"length"``); otherwise feed the token alone (one forward, KV cache) and go to 2.

No logits processor is applied: with the settings DecodeLab passes, ``generate``'s processor
list for greedy search is empty.

``score`` is the sum of the chosen tokens' log-probabilities, ``log_softmax`` of the raw
logits (transformers' greedy search reports no sequence score; this one is computed on
the side and does not influence the choice).

Batches: ``decode_batch`` greedy-decodes several prompts at once, one row each (left-padded,
``workers.executor``); a row leaves the batch when it finishes. Each row's tokens are those it
gets alone, except where a different batch shape rounds the logits differently at a near-tie.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from workers import trace
from workers.decoders import kv
from workers.decoders.base import GeneratedSequence, no_op
from workers.decoders.stopping import StopStrings
from workers.executor import Execution, Executor, new_executor
from workers.strategies import StrategyConfig


def decode(
    model: Any,
    input_ids: torch.Tensor,
    config: StrategyConfig,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    generator: torch.Generator | None = None,
    on_first_token: Callable[[], None] = no_op,
    stop: StopStrings | None = None,
    execution: Execution | None = None,
    **_resources: Any,  # tokenizer, draft_model: not used here
) -> list[GeneratedSequence]:
    """Greedy-decode one continuation of ``input_ids`` (``[1, prompt_len]``)."""
    del config, generator  # greedy has no parameters and draws no random numbers
    kv.check_prompt(input_ids, max_new_tokens)
    [out] = decode_batch(
        model,
        [input_ids[0].tolist()],
        max_new_tokens=[max_new_tokens],
        eos_token_ids=eos_token_ids,
        stops=[stop],
        on_first_token=on_first_token,
        execution=execution,
    )
    return out


def decode_batch(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: Sequence[int],
    eos_token_ids: Sequence[int],
    stops: Sequence[StopStrings | None] | None = None,
    on_first_token: Callable[[], None] = no_op,
    execution: Execution | None = None,
) -> list[list[GeneratedSequence]]:
    """Greedy-decode each prompt (a list of token ids); one ``[GeneratedSequence]`` per prompt."""
    n = len(prompts)
    assert n >= 1 and len(max_new_tokens) == n, "one max_new_tokens per prompt"
    assert min(max_new_tokens) >= 1, "max_new_tokens must be >= 1"
    stops = list(stops) if stops is not None else [None] * n
    eos = {int(i) for i in eos_token_ids}
    tokens: list[list[int]] = [[] for _ in range(n)]
    stats: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    scores = [0.0] * n
    finish: list[str | None] = [None] * n

    with torch.inference_mode():
        capacity = Executor.capacity_for([len(p) for p in prompts], max(max_new_tokens))
        ex = new_executor(execution, model, rows=n, capacity=capacity)
        logits = ex.prefill(prompts)[:, -1]  # [live, vocab]
        live = list(range(n))  # the prompt of each executor row
        step = 0
        while True:
            chosen = torch.argmax(logits, dim=-1)  # [live]
            for r, s in zip(live, trace.step_stats(logits, chosen), strict=True):  # one transfer per step
                token = s["token"]
                tokens[r].append(token)
                stats[r].append(s)
                scores[r] += s["logprob"]
                stop = stops[r]
                if token in eos:
                    finish[r] = "eos"
                elif stop is not None and stop.hit(tokens[r]):
                    finish[r] = "stop"
                elif len(tokens[r]) == max_new_tokens[r]:
                    finish[r] = "length"
            if step == 0:
                on_first_token()
            still = [i for i, r in enumerate(live) if finish[r] is None]
            if not still:
                break
            if len(still) != len(live):
                ex.reorder(still)
                live = [live[i] for i in still]
                chosen = chosen[still]
            logits = ex.step(chosen[:, None])[:, -1]  # [live, vocab]
            step += 1

    return [
        [GeneratedSequence(token_ids=tokens[r], finish_reason=finish[r] or "length", score=scores[r], stats=stats[r])]
        for r in range(n)
    ]
