"""The contract every decoder module implements.

A decoder is a plain function, callable from a notebook with no Django and no Celery:

    decode(model, input_ids, config, *, max_new_tokens, eos_token_ids, generator,
           on_first_token, tokenizer=None, draft_model=None, stop=None) -> list[GeneratedSequence]

- ``model``: a transformers causal LM in eval mode (the caller holds ``torch.inference_mode``).
- ``input_ids``: ``[1, prompt_len]`` LongTensor on the model's device.
- ``config``: the strategy's validated config from ``workers.strategies``.
- ``generator``: a seeded ``torch.Generator`` on the model's device; decoders that draw
  random numbers draw them from it only, so the same seed gives the same output.
- ``on_first_token``: called once, right after the first new token is chosen, so the
  caller can time prefill (time to first token) separately from the decode phase.
- ``tokenizer``: the model's tokenizer, for decoders that need token text (constrained
  decoding builds its grammar matcher from it); others ignore it.
- ``draft_model``: the loaded draft model for speculative decoding with a draft proposer;
  others ignore it.
- ``stop``: a ``workers.decoders.stopping.StopStrings`` or None. Every decoder honours it: a
  sequence (row, beam, hypothesis) whose new tokens' text gains a stop string ends at the token
  that completed it, that token included, with finish reason ``"stop"``, exactly as if it had
  been an end-of-sequence token (beam searches score it as an eos hypothesis); eos wins when
  the same token is both. The text is cut before the stop string by the caller
  (``StopStrings.cut``), not here. With ``stop=None`` nothing changes.

Ranked strategies (greedy, beam) return sequences best first; sampling returns its samples in
draw order. ``token_ids`` holds the new tokens only (not the prompt), including the
end-of-sequence token when one was generated (or the token that completed a stop string).
``score`` depends on the strategy: greedy, the sum of the chosen tokens' log-probabilities;
sampling, that sum under the warped distribution sampled from; beam, transformers'
length-penalised ``sequences_scores``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from workers.decoders.stopping import StopStrings
from workers.strategies import StrategyConfig


@dataclass
class GeneratedSequence:
    token_ids: list[int]
    finish_reason: str  # "eos" | "length" | "stop" | "constraint"
    score: float | None = None
    group: int | None = None  # diverse beam search: the group this output came from
    # Strategy-specific measurements for this output (speculative acceptance counts,
    # constrained mask times and validity...), JSON-serialisable, names documented by the decoder.
    metrics: dict[str, Any] = field(default_factory=dict)
    # One dict per new token with what the decoder knows about it (speculative: "spec" is
    # "accepted" | "corrected" | "bonus"; constrained: "forced", "masked_mass"), or None.
    token_info: list[dict[str, Any]] | None = None
    # One dict per new token with its trace figures from the decode's own raw logits
    # (``workers.trace.step_stats``), or None when the decoder does not record them.
    stats: list[dict[str, Any]] | None = None


class DecodeFn(Protocol):
    def __call__(
        self,
        model: Any,
        input_ids: torch.Tensor,
        config: StrategyConfig,
        *,
        max_new_tokens: int,
        eos_token_ids: Sequence[int],
        generator: torch.Generator,
        on_first_token: Callable[[], None] = ...,
        tokenizer: Any = None,
        draft_model: Any = None,
        stop: StopStrings | None = None,
    ) -> list[GeneratedSequence]: ...


def no_op() -> None:
    """Default ``on_first_token``."""
