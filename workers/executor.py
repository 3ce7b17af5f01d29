"""The step executor: every decoder's KV cache and model forward, one layer under the decoders.

A decoder asks the executor for the logits of its rows and tells it which rows to keep,
reorder or roll back; it never touches a cache itself. So a decoder reads the same whether it
serves one prompt or thirty-two, and the way a step runs (eager, static, captured) is chosen
here, once.

Rows and slots. The cache holds ``rows`` sequences side by side in ``slots`` (positions along
the cache's sequence axis). All rows write each step's tokens to the same slots
``[c, c + w)``, where ``c`` is the shared write pointer. What a row may attend to is kept in
``valid`` (``[rows, capacity]`` bool), and each row's own position ids in ``positions``
(``[rows]``: how many valid slots it has). Three things make a slot invalid:

- left padding: prompts of different lengths are right-aligned at prefill;
- dummy tokens: a step ``[rows, w]`` where a row has fewer than ``w`` real tokens (ragged
  speculative drafts) pads that row at the end; the dummies are never valid;
- rollback: a row drops its last ``n`` tokens (rejected drafts). The shared pointer moves back
  by what every row dropped (for one row: exactly ``n``, a pointer move, no copy); a row that
  dropped more keeps a hole. RoPE is applied before keys are cached, so a key's slot does not
  matter, only its validity: holes change nothing but the mask.

When the pointer would pass the capacity, the rows are compacted (each row's valid slots are
gathered to the right end of ``[0, c')``), a copy paid only then.

Modes (``DECODELAB_EXECUTOR``):

- ``eager``: transformers' ``DynamicCache`` (a ``torch.cat`` per step and layer), the model's
  own masks for unpadded rows. The oracle: for one unpadded row the calls are exactly those
  of ``generate``.
- ``static``: a preallocated ``SlotCache``; each step writes its keys and values in place
  and attends over the used slots ``[0, c + w)`` only, so for unpadded rows the attention has
  the same shapes, masks and bits as ``eager``, without the per-step concatenation.
- ``graph``: fixed shapes. Rows are padded to a batch bucket, every step attends over the
  whole capacity through an explicit mask, and the step for each (batch bucket, width, kept
  logits, capacity) is a separate fixed-shape function. On CUDA each is captured once as a
  CUDA graph (``torch.cuda.CUDAGraph``) and replayed; captures and their caches belong to
  the model's ``GraphPool`` and live as long as the worker. On the CPU the same fixed-shape
  step runs uncaptured, so its logic (masks, buckets, padding rows) is tested without a GPU.

Why capture by hand rather than ``torch.compile(mode="reduce-overhead")``: capture alone
removes the per-kernel launch and Python cost that dominates small-batch decoding (43 -> ~290
tok/s for SmolLM2 on an H200, issue #11) and takes well under a second per shape, where
compilation took 43 s per model; ``DECODELAB_COMPILE=1`` compiles the step before capture
(fused kernels inside the graph) for those who want to pay that start-up. ``bench/gpu.py``
measures both.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, CacheLayerMixin

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------------------------
# The slot cache: preallocated keys and values, written in place at the executor's slots.


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
        keys, values = self.keys[:rows], self.values[:rows]  # views: index_copy_ writes the storage
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


# --------------------------------------------------------------------------------------------
# Captured steps, kept per model for the worker's life.


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
            cache.view_end = capacity
            out = forward(
                input_ids=input_ids,
                position_ids=position_ids,
                attention_mask=_as_model_mask(self.model, mask),
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


def _as_model_mask(model: Any, mask: torch.Tensor) -> torch.Tensor:
    """A bool ``[B, 1, q, kv]`` mask in the form the model's attention adds or uses: sdpa takes
    the bool mask; eager attention adds a float mask (0 where allowed, the dtype's minimum
    elsewhere), as transformers' own ``eager_mask`` builds it."""
    if getattr(text_config(model), "_attn_implementation", "sdpa") == "sdpa":
        return mask
    dtype = model.dtype
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


# --------------------------------------------------------------------------------------------
# The executor.


class Executor:
    """The rows of one decode (or one batch of decodes), their cache and their steps.

    ``rows``: how many rows the decode starts with (prompts, or copies of one prompt);
    ``max_rows``: the most rows it will hold at once (beams, samples, contrastive candidates);
    ``capacity``: slots needed, at least the longest prompt plus the new tokens plus the widest
    step (``Executor.capacity_for``). ``pool``: the model's ``GraphPool`` (graph mode).
    """

    def __init__(
        self,
        model: Any,
        *,
        rows: int,
        capacity: int,
        mode: str | None = None,
        pool: GraphPool | None = None,
        max_rows: int | None = None,
        past_recording: bool = False,
    ) -> None:
        self.model = model
        self.device = model.device
        mode = mode or default_mode(self.device)
        if mode not in MODES:
            raise ValueError(f"executor mode must be one of {', '.join(MODES)} (got {mode!r})")
        if mode != "eager" and unsupported_reason(model, capacity) is not None:
            log.info("executor: %s for %s; using eager", unsupported_reason(model, capacity), type(model).__name__)
            mode = "eager"
        self.mode = mode
        self.captured_steps = 0  # steps replayed from a CUDA graph
        self.compactions = 0  # times the rows were gathered to free the slots of their holes
        self.rows = rows
        self.c = 0  # shared write pointer: slots [0, c) are written
        widest = max(rows, max_rows or rows)
        if mode == "graph":
            capacity = bucket(capacity, CAPACITY_BUCKETS)
            self.storage_rows = bucket(widest, BATCH_BUCKETS)
        else:
            self.storage_rows = widest
        self.capacity = capacity
        self.valid = torch.zeros((self.storage_rows, capacity), dtype=torch.bool, device=self.device)
        self.positions = torch.zeros(self.storage_rows, dtype=torch.long, device=self.device)
        # The same bookkeeping on the host, so that moving the pointer never waits for the device:
        # each row's valid slots, in order.
        self.slots: list[list[int]] = [[] for _ in range(rows)]
        self.ragged = False  # some row has a padding slot or a hole below c
        # While rows are dense (no padding, holes or dummies) the model needs neither masks nor
        # position ids, so ``valid`` and ``positions`` are left behind and rebuilt from ``slots``
        # when first needed (``_refresh``): fewer small operations per step.
        self._stale = False
        self.use_graphs = mode == "graph" and self.device.type == "cuda"
        if mode == "eager":
            self.cache: Any = DynamicCache(config=text_config(model))
            if past_recording and hasattr(self.cache, "activate_past_recording"):
                self.cache.activate_past_recording()
        elif mode == "graph":
            self.pool = pool or GraphPool(model)
            self.cache = self.pool.cache(self.storage_rows, capacity, self.device)
        else:
            self.cache = SlotCache(text_config(model).num_hidden_layers, widest, capacity, self.device)

    @staticmethod
    def capacity_for(prompt_lengths: Sequence[int], max_new_tokens: int, width: int = 1) -> int:
        return max(prompt_lengths) + max_new_tokens + width + 1

    # ---- steps ------------------------------------------------------------------------------

    def prefill(self, prompts: Sequence[Sequence[int]], *, keep: int = 1, hidden: bool = False) -> Any:
        """Run the prompts (one per row, right-aligned) through the model.

        Returns float32 logits ``[rows, keep, V]`` of the last ``keep`` positions (and the last
        layer's hidden states ``[rows, P, H]`` of all prompt positions if ``hidden``).
        """
        assert len(prompts) == self.rows, f"{len(prompts)} prompts for {self.rows} rows"
        assert self.c == 0, "prefill runs once"
        lengths = [len(p) for p in prompts]
        assert min(lengths) >= 1, "every prompt holds at least one token"
        width = max(lengths)
        self.slots = [list(range(width - n, width)) for n in lengths]
        if width + 1 > self.capacity:
            raise CapacityError(f"a prompt of {width} tokens does not fit a cache of {self.capacity} slots")
        ids = torch.zeros((self.rows, width), dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
        real = torch.tensor(lengths)
        self.ragged = len(set(lengths)) > 1
        # Prefill always runs uncaptured (its width varies); the slots are left-padded.
        pad = width - real  # [rows]
        slot = torch.arange(width)
        valid = slot[None, :] >= pad[:, None]  # [rows, width]
        positions = (slot[None, :] - pad[:, None]).clamp(min=0)  # [rows, width]
        return self._forward(
            to_device(ids, self.device), to_device(valid, self.device), to_device(positions, self.device), keep=keep,
            hidden=hidden, hidden_all=hidden, real=lengths, capture=False,
        )  # fmt: skip

    def step(
        self,
        tokens: torch.Tensor,
        *,
        real: Sequence[int] | None = None,
        keep: int = 1,
        hidden: bool = False,
    ) -> Any:
        """Feed ``tokens`` (``[rows, w]``; row ``r``'s first ``real[r]`` are real, the rest
        dummies) and return float32 logits ``[rows, keep, V]`` of the last ``keep`` positions
        (and hidden states ``[rows, keep, H]`` if ``hidden``)."""
        assert tokens.dim() == 2 and tokens.shape[0] == self.rows, (
            f"tokens must be [rows={self.rows}, w], got {tuple(tokens.shape)}"
        )
        w = tokens.shape[1]
        real = [w] * self.rows if real is None else [int(n) for n in real]
        assert all(1 <= n <= w for n in real), f"each row feeds 1 to {w} real tokens, got {real}"
        if self.c + w > self.capacity:
            self._compact(w)
        ids = to_device(tokens, self.device)
        if self.mode != "graph" and not self.ragged and min(real) == w:
            return self._forward(ids, None, None, keep=keep, hidden=hidden, real=real)
        self._refresh()
        slot = torch.arange(w, device=self.device)
        if min(real) == w:
            valid = torch.ones((self.rows, w), dtype=torch.bool, device=self.device)  # [rows, w]
        else:
            valid = slot[None, :] < to_device(real, self.device)[:, None]  # [rows, w]
        positions = self.positions[: self.rows, None] + slot[None, :]  # [rows, w]
        return self._forward(ids, valid, positions, keep=keep, hidden=hidden, real=real)

    def _refresh(self) -> None:
        """Bring ``valid`` and ``positions`` up to date with ``slots`` (see ``_stale``)."""
        if not self._stale:
            return
        valid = torch.zeros((self.storage_rows, self.capacity), dtype=torch.bool)
        for r, slots in enumerate(self.slots):
            valid[r, slots] = True
        self.valid.copy_(to_device(valid, self.device))
        self.positions[: self.rows] = to_device([len(s) for s in self.slots], self.device)
        self._stale = False

    def _forward(
        self,
        ids: torch.Tensor,
        valid_new: torch.Tensor | None,
        positions: torch.Tensor | None,
        *,
        keep: int,
        hidden: bool,
        real: list[int],
        hidden_all: bool = False,
        capture: bool = True,
    ) -> Any:
        rows, w = ids.shape
        start = self.c
        end = start + w
        if valid_new is None:
            self._stale = True
        else:
            self.valid[:rows, start:end] = valid_new
        if start:  # prefill set its (right-aligned) slots itself
            for r, n in enumerate(real):
                self.slots[r].extend(range(start, start + n))
        self.ragged = self.ragged or any(n != w for n in real)
        if self.mode == "graph" and not hidden_all:
            logits, hid = self._fixed_step(ids, positions, keep=keep, hidden=hidden, capture=capture)
        else:
            logits, hid = self._plain_step(ids, positions, keep=keep, hidden=hidden or hidden_all)
        self.c = end
        if valid_new is not None:
            self.positions[:rows] += valid_new.sum(dim=1)
        if hidden or hidden_all:
            return logits, hid
        return logits

    def _plain_step(
        self, ids: torch.Tensor, positions: torch.Tensor, *, keep: int, hidden: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        rows, w = ids.shape
        start, end = self.c, self.c + w
        kwargs: dict[str, Any] = {}
        if self.ragged:
            # Padding, holes or dummies: say what each row attends to, and where each token sits.
            slot = torch.arange(end, device=self.device)
            query_slot = torch.arange(start, end, device=self.device)
            mask = self.valid[:rows, None, None, :end] & (slot[None, None, None, :] <= query_slot[None, None, :, None])
            kwargs["attention_mask"] = _as_model_mask(self.model, mask)
            kwargs["position_ids"] = positions
        if self.mode != "eager":
            self.cache.write_slots = torch.arange(start, end, device=self.device)
            self.cache.view_end = end
            self.cache.seq_length = start
        if keep_supported(self.model):
            kwargs["logits_to_keep"] = keep
        out = self.model(
            input_ids=ids, past_key_values=self.cache, use_cache=True, output_hidden_states=hidden, return_dict=True,
            **kwargs,
        )  # fmt: skip
        # float32 copies, as generate takes them (`.to(copy=True, dtype=torch.float32)`).
        logits = out.logits[:, -keep:, :].to(copy=True, dtype=torch.float32)
        hid = out.hidden_states[-1] if hidden else None
        del out
        return logits, hid

    def _fixed_step(
        self, ids: torch.Tensor, positions: torch.Tensor, *, keep: int, hidden: bool, capture: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A step over the whole storage (batch bucket) and capacity: fixed shapes."""
        rows, w = ids.shape
        b, start, end = self.storage_rows, self.c, self.c + w
        if rows < b:  # padding rows attend to their slot 0 only (no row may see nothing)
            self.valid[rows:] = False
            self.valid[rows:, 0] = True
            ids = torch.cat([ids, ids.new_zeros((b - rows, w))])
            positions = torch.cat([positions, positions.new_zeros((b - rows, w))])
        slot = torch.arange(self.capacity, device=self.device)
        query_slot = torch.arange(start, end, device=self.device)
        mask = self.valid[:, None, None, :] & (slot[None, None, None, :] <= query_slot[None, None, :, None])
        write_slots = torch.arange(start, end, device=self.device)
        key = (b, w, keep, hidden, self.capacity)
        if self.use_graphs and capture:
            graphs = self.pool.get(key) or self.pool.capture(key, self.cache, self.device)
            graphs.input_ids.copy_(ids)
            graphs.position_ids.copy_(positions)
            graphs.mask.copy_(mask)
            graphs.write_slots.copy_(write_slots)
            graphs.graph.replay()
            self.captured_steps += 1
            logits = graphs.logits[:rows].to(copy=True, dtype=torch.float32)
            hid = graphs.hidden[:rows].clone() if graphs.hidden is not None else None
            return logits, hid
        self.cache.write_slots = write_slots
        self.cache.view_end = self.capacity
        self.cache.seq_length = start
        out = self.model(
            input_ids=ids, position_ids=positions, attention_mask=_as_model_mask(self.model, mask),
            past_key_values=self.cache, use_cache=True, logits_to_keep=keep, output_hidden_states=hidden,
            return_dict=True,
        )  # fmt: skip
        logits = out.logits[:rows, -keep:, :].to(copy=True, dtype=torch.float32)
        hid = out.hidden_states[-1][:rows, -keep:] if hidden else None
        return logits, hid

    # ---- row management ---------------------------------------------------------------------

    def rollback(self, drop: Sequence[int]) -> None:
        """Row ``r`` forgets its last ``drop[r]`` tokens (rejected drafts, a draft model's
        unused guesses), however many steps ago they were fed.

        The write pointer moves back past the slots no row keeps (for one row: exactly
        ``drop[0]`` slots, no copy); a row that dropped more than another keeps a hole.
        """
        drop = [int(d) for d in drop]
        assert len(drop) == self.rows and min(drop) >= 0, f"rollback {drop} for {self.rows} rows"
        assert all(d <= len(s) for d, s in zip(drop, self.slots, strict=True)), f"cannot drop {drop}: too few tokens"
        if not any(drop):
            if self.mode == "eager":
                self.cache.crop(0)  # sliding-window layers recording their past trim themselves
            return
        for r, d in enumerate(drop):
            if d:
                del self.slots[r][-d:]
        new_c = max((s[-1] + 1 if s else 0) for s in self.slots)
        if self._stale:
            pass  # ``valid`` and ``positions`` are rebuilt from ``slots`` when next needed
        elif self.rows == 1 and not self.ragged:
            self.valid[0, new_c : self.c] = False
            self.positions[0] -= drop[0]
        else:
            drop_t = to_device(drop, self.device)  # [rows]
            valid = self.valid[: self.rows, : self.c]  # [rows, c]
            after = valid.flip(1).cumsum(1).flip(1)  # valid slots at or after each slot, per row
            valid &= ~(after <= drop_t[:, None])
            self.positions[: self.rows] -= drop_t
            self.ragged = True
        if not self._stale:
            self.valid[:, new_c:] = False
        if self.mode == "eager":
            self.cache.crop(new_c - self.c)  # transformers takes the (negative) number of slots to remove
        self.c = new_c

    def reorder(self, idx: torch.Tensor | Sequence[int]) -> None:
        """Row ``i`` becomes a copy of row ``idx[i]``; the number of rows becomes ``len(idx)``
        (beam search's parents, contrastive search's candidates, dropping finished rows)."""
        order = idx.tolist() if isinstance(idx, torch.Tensor) else [int(i) for i in idx]
        assert order, "reorder to at least one row"
        n = len(order)
        idx = to_device(order, self.device)
        if self.mode == "eager":
            if order == list(range(self.rows)):
                return
            self.cache.reorder_cache(idx)
        else:
            if n > self.storage_rows:
                self._grow(n)
            self.cache.copy_rows(idx, self.c)
        if not self._stale:
            self.valid[:n] = self.valid.index_select(0, idx)
            self.positions[:n] = self.positions.index_select(0, idx)
        self.slots = [list(self.slots[i]) for i in order]
        self.rows = n

    def _grow(self, rows: int) -> None:
        """More rows than the storage holds (static contrastive search's k candidates): a bigger
        storage, the used slots copied over."""
        assert self.mode != "graph" or rows <= self.storage_rows, "graph executors are sized for their widest step"
        old = self.cache
        self.cache = SlotCache(len(old.layers), rows, self.capacity, self.device)
        for new_layer, old_layer in zip(self.cache.layers, old.layers, strict=True):
            if old_layer.keys is None:
                continue
            shape_k = (rows, *old_layer.keys.shape[1:])
            shape_v = (rows, *old_layer.values.shape[1:])
            new_layer.keys = old_layer.keys.new_zeros(shape_k)
            new_layer.values = old_layer.values.new_zeros(shape_v)
            new_layer.keys[: old.storage_rows] = old_layer.keys
            new_layer.values[: old.storage_rows] = old_layer.values
            new_layer.dtype, new_layer.device = old_layer.dtype, old_layer.device
            new_layer.is_initialized = True
        valid = torch.zeros((rows, self.capacity), dtype=torch.bool, device=self.device)
        valid[: self.storage_rows] = self.valid
        positions = torch.zeros(rows, dtype=torch.long, device=self.device)
        positions[: self.storage_rows] = self.positions
        self.valid, self.positions, self.storage_rows = valid, positions, rows

    def _compact(self, width: int) -> None:
        """Gather each row's valid slots to the right end of ``[0, c')``; raise when even then
        ``width`` more slots do not fit."""
        end = max(len(s) for s in self.slots)
        if end + width > self.capacity or self.mode == "eager":  # a dynamic cache keeps its holes
            raise CapacityError(f"{end + width} slots needed, the cache holds {self.capacity}")
        index = [[s[0] if s else 0] * (end - len(s)) + s for s in self.slots]  # [rows, end]
        self.cache.gather_slots(to_device(index, self.device), end)
        self.slots = [list(range(end - len(s), end)) for s in self.slots]
        self._stale = True
        self._refresh()
        self.c = end
        self.ragged = True
        self.compactions += 1

    def describe(self) -> dict[str, Any]:
        """What the run's ``environment`` records about how its steps ran."""
        return {
            "executor": self.mode,
            "captured": self.use_graphs and self.captured_steps > 0,
            "captured_steps": self.captured_steps,
        }


def keep_supported(model: Any) -> bool:
    from workers.decoders.kv import supports_logits_to_keep  # the decoders package imports this module

    return supports_logits_to_keep(model)


@dataclass
class Execution:
    """How one decode's steps run: the mode, the models' graph pools, and what its executors
    did (for the run's ``environment``). Decoders receive it as ``execution=``; ``None`` means
    the device's default mode with no pool kept between decodes."""

    mode: str | None = None
    pools: dict[int, GraphPool] = field(default_factory=dict)  # by id(model)
    executors: list[Executor] = field(default_factory=list)

    def executor(self, model: Any, **kwargs: Any) -> Executor:
        mode = self.mode or default_mode(model.device)
        pool = None
        if mode == "graph":
            pool = self.pools.setdefault(id(model), GraphPool(model))
        ex = Executor(model, mode=mode, pool=pool, **kwargs)
        self.executors.append(ex)
        return ex

    def summary(self) -> dict[str, Any]:
        modes = sorted({ex.mode for ex in self.executors}) or [self.mode or "eager"]
        return {
            "executor": "+".join(modes),
            "captured": any(ex.use_graphs and ex.captured_steps > 0 for ex in self.executors),
        }


def new_executor(execution: Execution | None, model: Any, **kwargs: Any) -> Executor:
    """An executor for ``model`` under ``execution`` (the default one when None)."""
    return (execution or Execution()).executor(model, **kwargs)


WARM_BATCHES = (1, 2, 4, 8, 16)
WARM_WIDTHS = (1, 6, 11)  # one token; the default draft-model (5) and prompt-lookup (10) verify widths
WARM_CAPACITY = 1024


def warm_graphs(model: Any, pool: GraphPool) -> None:
    """Capture the common fixed-shape steps of ``model`` into ``pool``: each batch bucket with
    one-token steps and the default speculative verify widths, at the default capacity."""
    with torch.inference_mode():
        for rows in WARM_BATCHES:
            ex = Executor(model, rows=rows, capacity=WARM_CAPACITY, mode="graph", pool=pool)
            ex.prefill([[0]] * rows)
            for width in WARM_WIDTHS:
                ex.step(torch.zeros((rows, width), dtype=torch.long), keep=width)
