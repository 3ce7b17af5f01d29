"""Logits warpers: pure functions on ``[batch, vocab]`` score tensors.

Each function returns a new tensor and never modifies its input. The arithmetic is that of
transformers 5.23 (``generation/logits_process.py``), operation for operation, so a warped
row is bit-for-bit what ``generate(do_sample=True, ...)`` samples from:

- ``temperature``: ``TemperatureLogitsWarper`` -- ``scores / temperature``.
- ``top_k``: ``TopKLogitsWarper`` -- ``k = min(max(top_k, min_tokens_to_keep), vocab)``;
  every score strictly below the k-th largest is set to ``filter_value`` (ties with the
  k-th largest are kept, so more than k tokens may survive).
- ``top_p``: ``TopPLogitsWarper`` (nucleus) -- sort ascending, softmax, cumulative sum;
  remove the tokens whose cumulative probability is ``<= 1 - top_p`` (the low tail), but
  always keep the ``min_tokens_to_keep`` most likely ones.

``warp`` chains them in the order and with the on/off conditions of
``GenerationMixin._get_logits_processor``: temperature if ``!= 1.0``, then top-k if
``!= 0``, then top-p if ``< 1.0``. ``min_tokens_to_keep`` is 1 for plain sampling (transformers
raises it only for beam sampling).

Later strategies (min_p, typical_p, repetition_penalty) belong here too, as further pure
functions composed by ``warp``-like helpers.
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


def warp(
    scores: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_tokens_to_keep: int = 1,
) -> torch.Tensor:
    """``[batch, vocab] -> [batch, vocab]``: temperature, then top-k, then top-p, each applied
    only when it is active, as transformers builds its sampling processor list."""
    _check_scores(scores)
    if temperature != 1.0:
        scores = apply_temperature(scores, temperature)
    if top_k != 0:
        scores = apply_top_k(scores, top_k, min_tokens_to_keep=min_tokens_to_keep)
    if top_p < 1.0:
        scores = apply_top_p(scores, top_p, min_tokens_to_keep=min_tokens_to_keep)
    return scores
