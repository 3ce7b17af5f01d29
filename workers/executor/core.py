"""The executor: the rows of a decode, their cache, their steps (see the package docstring)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from workers.executor.graphs import GraphPool
from workers.executor.shapes import (
    BATCH_BUCKETS,
    CAPACITY_BUCKETS,
    MODES,
    CapacityError,
    as_model_mask,
    bucket,
    default_mode,
    text_config,
    to_device,
    unsupported_reason,
)
from workers.executor.slots import SlotCache

log = logging.getLogger(__name__)


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
            kwargs["attention_mask"] = as_model_mask(self.model, mask)
            kwargs["position_ids"] = positions
        if self.mode != "eager":
            self.cache.write_range = (start, end)
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
        self.cache.write_range = None
        self.cache.view_end = self.capacity
        self.cache.seq_length = start
        out = self.model(
            input_ids=ids, position_ids=positions, attention_mask=as_model_mask(self.model, mask),
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
