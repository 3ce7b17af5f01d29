"""KV-cache helpers shared by the decoding loops: one model forward per step.

Every decoder keeps a transformers 5 ``DynamicCache`` and feeds the model only the tokens
the cache has not seen yet: the whole prompt once (prefill), then one token per row per
step. This mirrors what ``GenerationMixin.generate`` does in transformers 5.23
(``generation/utils.py``: ``_prepare_cache_for_generation`` builds
``DynamicCache(config=model.config.get_text_config(decoder=True))``, ``_prefill`` runs the
prompt, and the model is called with ``logits_to_keep=1`` when it supports it).

Asking for the last position's logits only (``logits_to_keep=1``) is not just a memory
saving: it makes the LM head see the same matrix shapes as inside ``generate``, so the
logits, and hence every argmax, top-k and sample, are bit-for-bit the ones ``generate``
computes.

No attention mask and no position ids are passed: the prompt is a single unpadded row (or
identical copies of it), so the model's defaults (all positions visible, positions counted
from the cache length) are exactly what ``generate`` computes from an all-ones mask.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
from transformers import DynamicCache


def new_cache(model: Any) -> DynamicCache:
    """An empty dynamic cache laid out for ``model`` (as ``generate`` builds it)."""
    config = model.config
    if hasattr(config, "get_text_config"):
        config = config.get_text_config(decoder=True)
    return DynamicCache(config=config)


@functools.cache
def _takes_logits_to_keep(forward_function: Any) -> bool:
    return "logits_to_keep" in inspect.signature(forward_function).parameters


def supports_logits_to_keep(model: Any) -> bool:
    """Whether the model's forward accepts ``logits_to_keep``. Cached per forward function,
    because this runs on every decoding step and ``inspect.signature`` is slow."""
    forward = model.forward
    return _takes_logits_to_keep(getattr(forward, "__func__", forward))


def forward_last_logits(model: Any, input_ids: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
    """Run the new tokens through the model, extend ``cache``, return the last logits.

    ``input_ids``: ``[rows, new_len]`` (the prompt on the first call, then ``new_len == 1``).
    Returns ``[rows, vocab]`` float32 logits of the last position, a fresh tensor.
    """
    assert input_ids.dim() == 2, f"input_ids must be [rows, new_len], got {tuple(input_ids.shape)}"
    kwargs: dict[str, Any] = {}
    if supports_logits_to_keep(model):
        kwargs["logits_to_keep"] = 1
    out = model(input_ids=input_ids, past_key_values=cache, use_cache=True, return_dict=True, **kwargs)
    # [rows, vocab]; copied to float32 exactly as generate does (`.to(copy=True, dtype=torch.float32)`).
    logits = out.logits[:, -1, :].to(copy=True, dtype=torch.float32)
    del out
    return logits


def check_prompt(input_ids: torch.Tensor, max_new_tokens: int) -> None:
    """The decoders' shared entry checks: one unpadded prompt row and a positive budget."""
    assert input_ids.dim() == 2 and input_ids.shape[0] == 1, (
        f"input_ids must be [1, prompt_len], got {tuple(input_ids.shape)}"
    )
    assert input_ids.shape[1] >= 1, "the prompt must hold at least one token"
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")


def reorder(cache: DynamicCache, beam_idx: torch.Tensor) -> None:
    """Make row ``i`` of every layer's cache a copy of row ``beam_idx[i]`` (in place).

    ``beam_idx``: ``[rows]`` LongTensor. transformers 5.23 exposes this as
    ``Cache.reorder_cache(beam_idx)`` (an ``index_select`` on dim 0 of every layer's keys and
    values), which is what ``_beam_search`` calls after each step.
    """
    assert beam_idx.dim() == 1, f"beam_idx must be [rows], got {tuple(beam_idx.shape)}"
    cache.reorder_cache(beam_idx)
