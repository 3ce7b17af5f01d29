"""Shapes, buckets, modes and small helpers shared by the executor's modules."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

MODES = ("eager", "static", "graph")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# Captured steps attend over the whole capacity; 1024 slots cost a 135M model at batch 16 about
# 0.1 ms of memory traffic per step, and one bucket for most runs means one set of captures.
CAPACITY_BUCKETS = (1024, 2048, 4096, 8192, 16384)


class CapacityError(ValueError):
    """The rows cannot fit in the executor's capacity (more tokens than it was sized for)."""


def to_device(values: Any, device: torch.device, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """A host list or CPU tensor on ``device`` without waiting for the device: a plain copy from
    pageable memory to a GPU waits for all queued work; from pinned memory it is queued too."""
    tensor = values if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=dtype)
    if device.type != "cuda" or tensor.device.type == "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def default_mode(device: torch.device) -> str:
    """``DECODELAB_EXECUTOR`` or, by default, ``graph`` on CUDA and ``static`` elsewhere."""
    mode = os.environ.get("DECODELAB_EXECUTOR", "auto")
    if mode == "auto":
        return "graph" if device.type == "cuda" else "static"
    if mode not in MODES:
        raise ValueError(f"DECODELAB_EXECUTOR must be one of auto, {', '.join(MODES)} (got {mode!r})")
    return mode


def bucket(n: int, buckets: Sequence[int]) -> int:
    """The smallest bucket >= n (n itself when past the largest)."""
    return next((b for b in buckets if b >= n), n)


def text_config(model: Any) -> Any:
    config = model.config
    return config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config


def unsupported_reason(model: Any, capacity: int) -> str | None:
    """Why the slot cache cannot serve ``model`` at ``capacity`` (None when it can): it writes
    one full-attention cache per layer and builds sdpa or eager masks itself."""
    config = text_config(model)
    impl = getattr(config, "_attn_implementation", None) or "eager"
    if impl not in ("sdpa", "eager"):
        return f"attention implementation {impl!r}"
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or []
    if any(t not in ("full_attention", "sliding_attention") for t in layer_types):
        return "layer types other than attention"
    sliding = any(t == "sliding_attention" for t in layer_types) or (
        window is not None and getattr(config, "use_sliding_window", True) and not layer_types
    )
    if sliding and window is not None and window < capacity:
        return f"sliding-window attention ({window}) shorter than the cache ({capacity})"
    return None


def as_model_mask(model: Any, mask: torch.Tensor) -> torch.Tensor:
    """A bool ``[B, 1, q, kv]`` mask in the form the model's attention adds or uses: sdpa takes
    the bool mask; eager attention adds a float mask (0 where allowed, the dtype's minimum
    elsewhere), as transformers' own ``eager_mask`` builds it."""
    if getattr(text_config(model), "_attn_implementation", "sdpa") == "sdpa":
        return mask
    dtype = model.dtype
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
