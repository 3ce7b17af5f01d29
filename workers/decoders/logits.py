"""Logits processors and warpers: pure functions on ``[batch, vocab]`` score tensors.

Each function returns a new tensor and never modifies its input. The arithmetic is that of
transformers 5.23 (``generation/logits_process.py``), operation for operation, so a processed
row is bit-for-bit what ``generate(do_sample=True, ...)`` samples from:

- ``repetition_penalty``: ``RepetitionPenaltyLogitsProcessor`` (Keskar et al. 2019, CTRL) --
  every token id present in the row's sequence so far (prompt and generated tokens, each
  counted once) has its score divided by the penalty if positive, multiplied by it if
  negative. It works on the raw logits, before any warper.
- ``temperature``: ``TemperatureLogitsWarper`` -- ``scores / temperature``.
- ``top_k``: ``TopKLogitsWarper`` -- ``k = min(max(top_k, min_tokens_to_keep), vocab)``;
  every score strictly below the k-th largest is set to ``filter_value`` (ties with the
  k-th largest are kept, so more than k tokens may survive).
- ``top_p``: ``TopPLogitsWarper`` (nucleus, Holtzman et al. 2020) -- sort ascending, softmax,
  cumulative sum; remove the tokens whose cumulative probability is ``<= 1 - top_p`` (the
  low tail), but always keep the ``min_tokens_to_keep`` most likely ones.
- ``min_p``: ``MinPLogitsWarper`` (Nguyen et al. 2024) -- remove the tokens whose probability
  is below ``min_p`` times the most likely token's probability, keeping the
  ``min_tokens_to_keep`` most likely ones.
- ``typical_p``: ``TypicalLogitsWarper`` (locally typical sampling, Meister et al. 2022) --
  rank tokens by how far their surprisal ``-log p`` is from the entropy of the distribution,
  keep the closest ones until their probability mass reaches ``typical_p`` (the token that
  crosses the threshold is kept, and so is every token tied with it).

``process`` chains them in the order and with the on/off conditions of
``GenerationMixin._get_logits_processor`` (transformers 5.23): the repetition penalty if
``!= 1.0`` (a logits *processor*, applied to all strategies), then the sampling warpers:
temperature if ``!= 1.0``, top-k if ``!= 0``, top-p if ``< 1.0``, min-p if set, typical-p if
``< 1.0``. transformers appends ``MinPLogitsWarper`` whenever ``min_p is not None``, so
``min_p=0.0`` there runs a warper that removes nothing; here 0 skips it, which gives the same
bits. ``min_tokens_to_keep`` is 1 for plain sampling (transformers raises it only for beam
sampling).
"""

from __future__ import annotations

import torch

FILTER_VALUE = -float("inf")


def _check_scores(scores: torch.Tensor) -> None:
    assert scores.dim() == 2, f"scores must be [batch, vocab], got {tuple(scores.shape)}"


def apply_temperature(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """``[batch, vocab] -> [batch, vocab]``: divide by a strictly positive temperature."""
    _check_scores(scores)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (got {temperature})")
    return scores / temperature


def apply_top_k(
    scores: torch.Tensor, top_k: int, *, min_tokens_to_keep: int = 1, filter_value: float = FILTER_VALUE
) -> torch.Tensor:
    """``[batch, vocab] -> [batch, vocab]``: keep the ``top_k`` highest scores per row (and ties)."""
    _check_scores(scores)
    if top_k <= 0:
        raise ValueError(f"top_k must be a positive integer (got {top_k})")
    k = min(max(top_k, min_tokens_to_keep), scores.size(-1))
    kth_best = torch.topk(scores, k)[0][..., -1, None]  # [batch, 1]
    indices_to_remove = scores < kth_best  # [batch, vocab]
    return scores.masked_fill(indices_to_remove, filter_value)


def apply_top_p(
    scores: torch.Tensor, top_p: float, *, min_tokens_to_keep: int = 1, filter_value: float = FILTER_VALUE
) -> torch.Tensor:
    """``[batch, vocab] -> [batch, vocab]``: keep the smallest set of most likely tokens whose
    probability mass reaches ``top_p``."""
    _check_scores(scores)
    if not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be between 0 and 1 (got {top_p})")
    sorted_logits, sorted_indices = torch.sort(scores, descending=False)  # [batch, vocab] ascending
    cumulative_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # [batch, vocab]
    sorted_to_remove = cumulative_probs <= (1 - top_p)  # [batch, vocab], in sorted order
    sorted_to_remove[..., -min_tokens_to_keep:] = False  # the most likely tokens always stay
    indices_to_remove = sorted_to_remove.scatter(1, sorted_indices, sorted_to_remove)  # back to vocab order
    return scores.masked_fill(indices_to_remove, filter_value)


def apply_repetition_penalty(scores: torch.Tensor, sequences: torch.Tensor, penalty: float) -> torch.Tensor:
    """``[batch, vocab], [batch, seq_len] -> [batch, vocab]``: penalise every token id present in
    ``sequences`` (each row's prompt and generated tokens so far; a repeated id is penalised
    once): a positive score is divided by ``penalty``, a negative one multiplied by it.

    Ids ``>= vocab`` (an embedding table larger than the LM head) are routed to a padding
    column that is dropped, exactly as transformers does.
    """
    _check_scores(scores)
    assert sequences.dim() == 2 and sequences.shape[0] == scores.shape[0], (
        f"sequences must be [batch, seq_len] with batch {scores.shape[0]}, got {tuple(sequences.shape)}"
    )
    if not penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0 (got {penalty})")
    vocab_size = scores.shape[-1]
    ids = sequences.clamp(max=vocab_size)  # [batch, seq_len]
    padded = torch.nn.functional.pad(scores, (0, 1))  # [batch, vocab + 1]
    seen = torch.gather(padded, 1, ids)  # [batch, seq_len]
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return padded.scatter(1, ids, seen)[..., :vocab_size]  # [batch, vocab]


def apply_min_p(
    scores: torch.Tensor, min_p: float, *, min_tokens_to_keep: int = 1, filter_value: float = FILTER_VALUE
) -> torch.Tensor:
    """``[batch, vocab] -> [batch, vocab]``: drop the tokens less likely than ``min_p`` times the
    most likely token (always keeping the ``min_tokens_to_keep`` most likely)."""
    _check_scores(scores)
    if not 0.0 <= min_p <= 1.0:
        raise ValueError(f"min_p must be between 0 and 1 (got {min_p})")
    probs = torch.softmax(scores, dim=-1)  # [batch, vocab]
    top_probs = probs.amax(dim=-1, keepdim=True)  # [batch, 1]
    tokens_to_remove = probs < min_p * top_probs  # [batch, vocab]
    k = min(min_tokens_to_keep, probs.shape[-1])
    kept = torch.topk(probs, k, dim=-1).indices  # [batch, k]
    tokens_to_remove.scatter_(-1, kept, False)
    return scores.masked_fill(tokens_to_remove, filter_value)


def apply_typical_p(
    scores: torch.Tensor, typical_p: float, *, min_tokens_to_keep: int = 1, filter_value: float = FILTER_VALUE
) -> torch.Tensor:
    """``[batch, vocab] -> [batch, vocab]``: locally typical sampling: keep the tokens whose
    surprisal is closest to the entropy until their mass reaches ``typical_p``."""
    _check_scores(scores)
    if not 0.0 < typical_p < 1.0:
        raise ValueError(f"typical_p must be > 0 and < 1 (got {typical_p})")
    normalized = torch.nn.functional.log_softmax(scores, dim=-1)  # [batch, vocab] log p
    p = torch.exp(normalized)
    entropy = -(normalized * p).nansum(-1, keepdim=True)  # [batch, 1]
    shifted = torch.abs((-normalized) - entropy)  # [batch, vocab] |surprisal - entropy|
    sorted_shifted, sorted_indices = torch.sort(shifted, descending=False)  # most typical first
    sorted_logits = scores.gather(-1, sorted_indices)  # [batch, vocab]
    cumulative_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # [batch, vocab]
    last_ind = (cumulative_probs < typical_p).sum(dim=1)  # [batch] index of the token crossing the mass
    last_ind.clamp_(max=sorted_shifted.shape[-1] - 1)
    sorted_to_remove = sorted_shifted > sorted_shifted.gather(1, last_ind.view(-1, 1))  # [batch, vocab]
    sorted_to_remove[..., :min_tokens_to_keep] = False
    indices_to_remove = sorted_to_remove.scatter(1, sorted_indices, sorted_to_remove)  # back to vocab order
    return scores.masked_fill(indices_to_remove, filter_value)


def warp(
    scores: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    typical_p: float = 1.0,
    min_tokens_to_keep: int = 1,
) -> torch.Tensor:
    """``[batch, vocab] -> [batch, vocab]``: temperature, then top-k, top-p, min-p and typical-p,
    each applied only when it is active, as transformers builds its sampling warper list."""
    _check_scores(scores)
    if temperature != 1.0:
        scores = apply_temperature(scores, temperature)
    if top_k != 0:
        scores = apply_top_k(scores, top_k, min_tokens_to_keep=min_tokens_to_keep)
    if top_p < 1.0:
        scores = apply_top_p(scores, top_p, min_tokens_to_keep=min_tokens_to_keep)
    if min_p > 0.0:
        scores = apply_min_p(scores, min_p, min_tokens_to_keep=min_tokens_to_keep)
    if typical_p < 1.0:
        scores = apply_typical_p(scores, typical_p, min_tokens_to_keep=min_tokens_to_keep)
    return scores


def process(
    scores: torch.Tensor,
    sequences: torch.Tensor,
    *,
    repetition_penalty: float = 1.0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    typical_p: float = 1.0,
    min_tokens_to_keep: int = 1,
) -> torch.Tensor:
    """``[batch, vocab], [batch, seq_len] -> [batch, vocab]``: the whole sampling pipeline of
    ``generate(do_sample=True)``: the repetition penalty over ``sequences`` (prompt and
    generated tokens) if ``!= 1.0``, then ``warp``."""
    _check_scores(scores)
    if repetition_penalty != 1.0:
        scores = apply_repetition_penalty(scores, sequences, repetition_penalty)
    return warp(
        scores,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        typical_p=typical_p,
        min_tokens_to_keep=min_tokens_to_keep,
    )
