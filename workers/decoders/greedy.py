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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from workers.decoders import kv
from workers.decoders.base import GeneratedSequence, no_op
from workers.decoders.stopping import StopStrings
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
    **_resources: Any,  # tokenizer, draft_model: not used here
) -> list[GeneratedSequence]:
    """Greedy-decode one continuation of ``input_ids`` (``[1, prompt_len]``)."""
    del config, generator  # greedy has no parameters and draws no random numbers
    kv.check_prompt(input_ids, max_new_tokens)
    eos = {int(i) for i in eos_token_ids}

    with torch.inference_mode():
        cache = kv.new_cache(model)
        logits = kv.forward_last_logits(model, input_ids, cache)  # [1, vocab]
        tokens: list[int] = []
        score = 0.0
        finish_reason = "length"
        for step in range(max_new_tokens):
            next_token = torch.argmax(logits, dim=-1)  # [1]
            token = int(next_token.item())
            score += float(torch.log_softmax(logits, dim=-1)[0, token])
            tokens.append(token)
            if step == 0:
                on_first_token()
            if token in eos:
                finish_reason = "eos"
                break
            if stop is not None and stop.hit(tokens):
                finish_reason = "stop"
                break
            if step + 1 == max_new_tokens:
                break
            logits = kv.forward_last_logits(model, next_token[:, None], cache)  # [1, vocab]

    return [GeneratedSequence(token_ids=tokens, finish_reason=finish_reason, score=score)]
