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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from workers.decoders import kv, logits
from workers.decoders.base import GeneratedSequence, no_op
from workers.decoders.stopping import StopStrings
from workers.strategies import SamplingConfig


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
    **_resources: Any,  # tokenizer, draft_model: not used here
) -> list[GeneratedSequence]:
    """Sample ``config.num_return_sequences`` continuations of ``input_ids`` (``[1, prompt_len]``)."""
    assert isinstance(config, SamplingConfig), f"expected a SamplingConfig, got {type(config).__name__}"
    kv.check_prompt(input_ids, max_new_tokens)
    n = config.num_return_sequences
    eos_list = [int(i) for i in eos_token_ids]
    device = input_ids.device

    with torch.inference_mode():
        eos_ids = torch.tensor(eos_list, dtype=torch.long, device=device)  # [n_eos]
        filler = eos_list[0] if eos_list else 0  # fed to finished rows only; never returned

        rows = input_ids.repeat_interleave(n, dim=0) if n > 1 else input_ids  # [n, prompt_len]
        cache = kv.new_cache(model)
        next_logits = kv.forward_last_logits(model, rows, cache)  # [n, vocab]

        # Every row's tokens so far, as generate's growing input_ids (finished rows get the filler,
        # as generate appends its pad token; their draws are discarded). Only the repetition
        # penalty reads it.
        prompt_len = rows.shape[1]
        history = torch.empty((n, prompt_len + max_new_tokens), dtype=torch.long, device=device)  # [n, P + T]
        history[:, :prompt_len] = rows

        generated = torch.empty((n, max_new_tokens), dtype=torch.long, device=device)  # [n, max_new_tokens]
        lengths = torch.zeros(n, dtype=torch.long, device=device)  # [n] tokens kept per row
        unfinished = torch.ones(n, dtype=torch.bool, device=device)  # [n]
        scores = torch.zeros(n, dtype=torch.float32, device=device)  # [n] sum of warped log-probs
        stopped = [False] * n  # rows ended by a stop string

        for step in range(max_new_tokens):
            warped = logits.process(
                next_logits,
                history[:, : prompt_len + step],  # [n, prompt_len + step]
                repetition_penalty=config.repetition_penalty,
                temperature=config.temperature,
                top_k=config.top_k,
                top_p=config.top_p,
                min_p=config.min_p,
                typical_p=config.typical_p,
            )  # [n, vocab]
            probs = torch.softmax(warped, dim=-1)  # [n, vocab]
            drawn = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)  # [n]
            chosen_logprob = torch.log_softmax(warped, dim=-1).gather(1, drawn[:, None]).squeeze(1)  # [n]

            generated[:, step] = drawn
            lengths += unfinished.long()
            scores += torch.where(unfinished, chosen_logprob, 0.0)
            if step == 0:
                on_first_token()
            unfinished &= ~torch.isin(drawn, eos_ids)
            if stop is not None:
                for row in torch.nonzero(unfinished).flatten().tolist():
                    if stop.hit(generated[row, : int(lengths[row])].tolist()):
                        stopped[row] = True
                        unfinished[row] = False
            if step + 1 == max_new_tokens or not bool(unfinished.any()):
                break
            feed = torch.where(unfinished, drawn, filler)  # [n]
            history[:, prompt_len + step] = feed
            next_logits = kv.forward_last_logits(model, feed[:, None], cache)  # [n, vocab]

    out: list[GeneratedSequence] = []
    for row in range(n):
        length = int(lengths[row])
        token_ids = generated[row, :length].tolist()
        ended_by_eos = bool(token_ids) and token_ids[-1] in eos_list
        finish_reason = "eos" if ended_by_eos else ("stop" if stopped[row] else "length")
        out.append(GeneratedSequence(token_ids=token_ids, finish_reason=finish_reason, score=float(scores[row])))
    return out
