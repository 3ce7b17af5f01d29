"""Helpers shared by the decoding loops; the KV cache itself belongs to ``workers.executor``.

Asking the model for the last positions' logits only (``logits_to_keep``) is not just a memory
saving: it makes the LM head see the same matrix shapes as inside ``generate`` (transformers
5.23 calls the model with ``logits_to_keep=1`` when it supports it), so the logits, and hence
every argmax, top-k and sample, are bit-for-bit the ones ``generate`` computes.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch


@functools.cache
def _takes_logits_to_keep(forward_function: Any) -> bool:
    return "logits_to_keep" in inspect.signature(forward_function).parameters


def supports_logits_to_keep(model: Any) -> bool:
    """Whether the model's forward accepts ``logits_to_keep``. Cached per forward function,
    because this runs on every decoding step and ``inspect.signature`` is slow."""
    forward = model.forward
    return _takes_logits_to_keep(getattr(forward, "__func__", forward))


def check_prompt(input_ids: torch.Tensor, max_new_tokens: int) -> None:
    """The decoders' shared entry checks: one unpadded prompt row and a positive budget."""
    assert input_ids.dim() == 2 and input_ids.shape[0] == 1, (
        f"input_ids must be [1, prompt_len], got {tuple(input_ids.shape)}"
    )
    assert input_ids.shape[1] >= 1, "the prompt must hold at least one token"
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")
