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

from workers.executor.core import (
    WARM_BATCHES,
    WARM_CAPACITY,
    WARM_WIDTHS,
    Execution,
    Executor,
    new_executor,
    warm_graphs,
)
from workers.executor.graphs import GraphPool
from workers.executor.shapes import (
    BATCH_BUCKETS,
    CAPACITY_BUCKETS,
    MODES,
    CapacityError,
    bucket,
    default_mode,
    text_config,
    to_device,
    unsupported_reason,
)
from workers.executor.slots import SlotCache, SlotLayer

__all__ = [
    "BATCH_BUCKETS",
    "CAPACITY_BUCKETS",
    "MODES",
    "WARM_BATCHES",
    "WARM_CAPACITY",
    "WARM_WIDTHS",
    "CapacityError",
    "Execution",
    "Executor",
    "GraphPool",
    "SlotCache",
    "SlotLayer",
    "bucket",
    "default_mode",
    "new_executor",
    "text_config",
    "to_device",
    "unsupported_reason",
    "warm_graphs",
]
