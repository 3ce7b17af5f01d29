"""Token traces: for each generated token, what the model thought of it.

Definition (the same for every strategy, so traces compare across strategies): after
decoding, each output is run once through the model with the prompt, teacher-forced (one
forward pass, not timed as decoding). For each new token at position t:

- ``logprob``: log-probability of the chosen token under the model's raw next-token
  distribution at t (no temperature, top-k/p or grammar mask applied);
- ``entropy``: entropy of that raw distribution, in nats;
- ``top``: the 5 most likely tokens there, as ``[token_id, text, logprob]``.

Decoder-specific facts about the token (speculative: accepted/corrected/bonus; constrained:
forced, masked mass) are merged in from the decoder's ``token_info``.
"""

from __future__ import annotations

from typing import Any

import torch

TOP_N = 5


def piece(tokenizer: Any, token_id: int) -> str:
    """The text of one token as it reads in the output."""
    return tokenizer.decode([token_id], skip_special_tokens=False)


def token_trace(
    model: Any,
    tokenizer: Any,
    prompt_ids: list[int],
    output_ids: list[int],
    token_info: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    if not output_ids:
        return []
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids + output_ids], dtype=torch.long, device=device)  # [1, P + L]
    n_new = len(output_ids)
    with torch.inference_mode():
        # Positions P-1 .. P+L-2 predict the L new tokens; keep only those logits.
        logits = model(input_ids=ids, logits_to_keep=n_new + 1, use_cache=False).logits[0, :-1]  # [L, vocab]
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # [L, vocab]
        chosen = torch.tensor(output_ids, device=device)  # [L]
        chosen_lp = logprobs.gather(1, chosen[:, None])[:, 0]  # [L]
        entropy = -(logprobs.exp() * logprobs).nan_to_num().sum(-1)  # [L]
        top_lp, top_ids = torch.topk(logprobs, TOP_N, dim=-1)  # [L, TOP_N] each
    assert chosen_lp.shape == (n_new,)
    trace = []
    for t, token_id in enumerate(output_ids):
        entry: dict[str, Any] = {
            "id": token_id,
            "text": piece(tokenizer, token_id),
            "logprob": round(float(chosen_lp[t]), 5),
            "entropy": round(float(entropy[t]), 5),
            "top": [
                [int(i), piece(tokenizer, int(i)), round(float(lp), 5)]
                for i, lp in zip(top_ids[t].tolist(), top_lp[t].tolist(), strict=True)
            ],
        }
        if token_info and t < len(token_info):
            entry.update(token_info[t])
        trace.append(entry)
    return trace
