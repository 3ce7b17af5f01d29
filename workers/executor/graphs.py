"""Captured steps: CUDA graphs of fixed-shape decode steps, kept per model for the worker's life."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from workers.executor.shapes import as_model_mask, text_config
from workers.executor.slots import SlotCache


@dataclass
class _Captured:
    """One captured step: its static inputs, its graph and its output."""

    input_ids: torch.Tensor  # [B, w]
    position_ids: torch.Tensor  # [B, w]
    mask: torch.Tensor  # [B, 1, w, capacity]
    write_slots: torch.Tensor  # [w]
    graph: Any
    logits: torch.Tensor  # [B, keep, V] (the model's dtype)
    hidden: torch.Tensor | None  # [B, keep, H] when asked for


@dataclass
class GraphPool:
    """A model's slot caches and captured steps, keyed by shape, kept for the worker's life.

    Caches are keyed by (batch bucket, capacity); captures by (batch bucket, width, kept logits,
    hidden states, capacity). Only one executor uses a pool at a time (a worker decodes one
    batch at a time), which is what lets requests share the cache storage.
    """

    model: Any
    compile: bool = field(default_factory=lambda: os.environ.get("DECODELAB_COMPILE", "0") == "1")
    caches: dict[tuple[int, int], SlotCache] = field(default_factory=dict)
    captured: dict[tuple[int, int, int, bool, int], _Captured] = field(default_factory=dict)
    capture_s: float = 0.0
    _pool: Any = None
    _forward: Callable[..., Any] | None = None

    def cache(self, rows: int, capacity: int, device: torch.device) -> SlotCache:
        key = (rows, capacity)
        if key not in self.caches:
            self.caches[key] = SlotCache(text_config(self.model).num_hidden_layers, rows, capacity, device)
        return self.caches[key]

    def forward_fn(self) -> Callable[..., Any]:
        if self._forward is None:
            self._forward = self.model.forward
            if self.compile:
                # One compilation for every batch bucket and width (dynamic shapes), fused kernels
                # that the captured graph then replays.
                self._forward = torch.compile(self.model.forward, dynamic=True)
        return self._forward

    def get(self, key: tuple[int, int, int, bool, int]) -> _Captured | None:
        return self.captured.get(key)

    def capture(self, key: tuple[int, int, int, bool, int], cache: SlotCache, device: torch.device) -> _Captured:
        """Capture the fixed-shape step ``key`` on ``cache``. The warm-up runs write the step's
        slots with the current inputs, which the replay that follows writes again."""
        rows, width, keep, hidden, capacity = key
        t0 = time.perf_counter()
        input_ids = torch.zeros((rows, width), dtype=torch.long, device=device)
        position_ids = torch.zeros((rows, width), dtype=torch.long, device=device)
        mask = torch.ones((rows, 1, width, capacity), dtype=torch.bool, device=device)
        write_slots = torch.arange(width, dtype=torch.long, device=device)
        forward = self.forward_fn()

        def step() -> tuple[torch.Tensor, torch.Tensor | None]:
            cache.write_slots = write_slots
            cache.write_range = None
            cache.view_end = capacity
            out = forward(
                input_ids=input_ids,
                position_ids=position_ids,
                attention_mask=as_model_mask(self.model, mask),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=keep,
                output_hidden_states=hidden,
                return_dict=True,
            )
            return out.logits, (out.hidden_states[-1][:, -keep:] if hidden else None)

        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                step()
        torch.cuda.current_stream(device).wait_stream(stream)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            logits, hidden_out = step()
        captured = _Captured(input_ids, position_ids, mask, write_slots, graph, logits, hidden_out)
        self.captured[key] = captured
        self.capture_s += time.perf_counter() - t0
        return captured
