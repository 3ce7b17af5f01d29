"""Token traces: for each generated token, what the model thought of it.

Definition (the same for every strategy, so traces compare across strategies), for each new
token at position t, from the model's raw next-token logits at t:

- ``logprob``: log-probability of the chosen token under the model's raw next-token
  distribution at t (no temperature, top-k/p or grammar mask applied);
- ``entropy``: entropy of that raw distribution, in nats;
- ``top``: the 5 most likely tokens there, as ``[token_id, text, logprob]``.

Where the logits come from: decoders that keep them (greedy, sampling, speculative, constrained)
record these figures from the very logits they decoded with (``step_stats``; for speculative
decoding, the verify pass), which costs no extra forward pass. For the other strategies the
output is run once more through the model with the prompt, teacher-forced (``token_trace``,
one forward pass, not timed as decoding); that pass is also the oracle the recorded figures
are tested against (equal up to float rounding of a different batch shape).

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


def step_stats(logits: torch.Tensor, chosen: torch.Tensor, extra: torch.Tensor | None = None) -> list[dict[str, Any]]:
    """Trace figures of one step for ``n`` rows: ``[n, V]`` raw logits, ``[n]`` chosen tokens.

    Returns one dict per row: ``token`` (the chosen id), ``logprob``, ``entropy``, ``top``
    (``[[id, logprob], ...]``, no text yet; ``trace_from_stats`` adds it) and, when ``extra``
    (``[n]``) is given, ``extra``: its value for the row. Everything comes to the host in one
    transfer, so on a GPU a decoding step waits for the device once.
    """
    n = logits.shape[0]
    assert logits.dim() == 2 and chosen.shape == (n,), "expected [n, V] logits and [n] tokens"
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # [n, V]
    chosen = chosen.to(logprobs.device)
    chosen_lp = logprobs.gather(1, chosen[:, None])  # [n, 1]
    entropy = -(logprobs.exp() * logprobs).nan_to_num().sum(-1, keepdim=True)  # [n, 1]
    top_lp, top_ids = torch.topk(logprobs, TOP_N, dim=-1)  # [n, TOP_N] each
    columns = [chosen[:, None], chosen_lp, entropy, top_ids, top_lp]
    if extra is not None:
        columns.append(extra.reshape(n, 1))
    # float64 holds every token id and float32 value exactly.
    rows = torch.cat([c.to(torch.float64) for c in columns], dim=1).tolist()  # [n, 3 + 2 * TOP_N (+1)]
    out = []
    for row in rows:
        ids, lps = row[3 : 3 + TOP_N], row[3 + TOP_N : 3 + 2 * TOP_N]
        entry = {
            "token": int(row[0]),
            "logprob": row[1],
            "entropy": row[2],
            "top": [(int(i), lp) for i, lp in zip(ids, lps, strict=True)],
        }
        if extra is not None:
            entry["extra"] = row[-1]
        out.append(entry)
    return out


def _entry(tokenizer: Any, token_id: int, logprob: float, entropy: float, top: Any) -> dict[str, Any]:
    return {
        "id": token_id,
        "text": piece(tokenizer, token_id),
        "logprob": round(float(logprob), 5),
        "entropy": round(float(entropy), 5),
        "top": [[int(i), piece(tokenizer, int(i)), round(float(lp), 5)] for i, lp in top],
    }


def trace_from_stats(
    tokenizer: Any,
    output_ids: list[int],
    stats: list[dict[str, Any]],
    token_info: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The trace of an output from the figures its decoder recorded (``step_stats``)."""
    assert len(stats) == len(output_ids), f"{len(stats)} recorded steps for {len(output_ids)} tokens"
    trace = []
    for t, (token_id, s) in enumerate(zip(output_ids, stats, strict=True)):
        entry = _entry(tokenizer, token_id, s["logprob"], s["entropy"], s["top"])
        if token_info and t < len(token_info):
            entry.update(token_info[t])
        trace.append(entry)
    return trace


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
        top = zip(top_ids[t].tolist(), top_lp[t].tolist(), strict=True)
        entry = _entry(tokenizer, token_id, float(chosen_lp[t]), float(entropy[t]), top)
        if token_info and t < len(token_info):
            entry.update(token_info[t])
        trace.append(entry)
    return trace
