"""The slot cache: preallocated keys and values, written in place at the executor's slots."""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class SlotLayer(CacheLayerMixin):
    """One layer's keys and values, ``[rows, kv_heads, capacity, head_dim]``, allocated at the
    first write and then only written in place (CUDA graphs need fixed addresses)."""

    is_sliding = False
    # False: transformers then skips the mask where it may (is_causal), exactly as for a DynamicCache,
    # so unpadded static steps compute the same bits as eager ones. Fixed-shape steps pass their own mask.
    is_compileable = False

    def __init__(self, owner: SlotCache) -> None:
        super().__init__()
        self.owner = owner

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        rows, heads = self.owner.storage_rows, key_states.shape[1]
        shape_k = (rows, heads, self.owner.capacity, key_states.shape[-1])
        shape_v = (rows, heads, self.owner.capacity, value_states.shape[-1])
        self.keys = torch.zeros(shape_k, dtype=key_states.dtype, device=key_states.device)
        self.values = torch.zeros(shape_v, dtype=value_states.dtype, device=value_states.device)
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self.keys is not None and self.values is not None
        rows, end = key_states.shape[0], self.owner.view_end
        keys, values = self.keys[:rows], self.values[:rows]  # views: writing them writes the storage
        span = self.owner.write_range
        if span is not None:  # uncaptured steps write a contiguous range: a plain slice copy
            keys[:, :, span[0] : span[1]] = key_states
            values[:, :, span[0] : span[1]] = value_states
        else:  # captured steps read their slots from a tensor, whose values change between replays
            keys.index_copy_(2, self.owner.write_slots, key_states)
            values.index_copy_(2, self.owner.write_slots, value_states)
        return keys[:, :, :end], values[:, :, :end]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.owner.view_end, 0

    def get_seq_length(self) -> int:
        return self.owner.seq_length

    def get_max_length(self) -> int:
        return self.owner.capacity

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        raise NotImplementedError("the executor reorders slot caches (Executor.reorder)")


class SlotCache(Cache):
    """A transformers ``Cache`` whose layers write at ``write_slots`` and show ``[0, view_end)``.

    The executor sets ``write_slots`` (``[w]`` LongTensor), ``view_end`` and ``seq_length``
    before each forward; the model only calls ``update``.
    """

    def __init__(self, num_layers: int, storage_rows: int, capacity: int, device: torch.device) -> None:
        super().__init__(layers=[])
        self.layers = [SlotLayer(self) for _ in range(num_layers)]
        self.storage_rows = storage_rows
        self.capacity = capacity
        self.write_slots = torch.zeros(1, dtype=torch.long, device=device)
        self.write_range: tuple[int, int] | None = None  # when set, the slots are [start, end)
        self.view_end = 0
        self.seq_length = 0

    def copy_rows(self, idx: torch.Tensor, used: int) -> None:
        """Row ``i`` becomes a copy of row ``idx[i]`` (slots ``[0, used)``), in place."""
        for layer in self.layers:
            if layer.keys is None:
                continue
            n = idx.shape[0]
            layer.keys[:n, :, :used] = layer.keys[:, :, :used].index_select(0, idx)
            layer.values[:n, :, :used] = layer.values[:, :, :used].index_select(0, idx)

    def gather_slots(self, index: torch.Tensor, end: int) -> None:
        """Row ``r``'s slot ``j < end`` becomes its slot ``index[r, j]`` (compaction), in place."""
        rows = index.shape[0]
        for layer in self.layers:
            if layer.keys is None:
                continue
            for buf in (layer.keys, layer.values):
                idx = index[:, None, :, None].expand(rows, buf.shape[1], end, buf.shape[3])
                buf[:rows, :, :end] = torch.gather(buf[:rows], 2, idx)
