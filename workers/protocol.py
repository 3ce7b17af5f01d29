"""The wire format between the web side and the decode workers (JSON, no torch).

Both halves import only this module (and ``workers.strategies``) to talk to each other:
the web side builds a ``DecodeRequest`` and sends ``to_dict()`` to the Celery task
``workers.decode``; the worker answers with ``DecodeResult.to_dict()``. The same
request/result shapes are read and written by ``python -m workers.decode`` as JSON lines.

Metric definitions (every number DecodeLab shows is one of these, measured by the worker):

- ``queue_wait_ms``: from the web side's dispatch (``enqueued_at``) to the worker starting
  the request. Both clocks are wall clocks, so across hosts it includes their skew.
- ``model_load_ms``: time spent loading the model for this request; 0 with
  ``model_cache_hit`` true when the worker process already held it.
- ``prefill_ms`` (time to first token): from the start of decoding to the first new token
  being chosen (the prompt's forward pass plus one selection step).
- ``decode_ms``: from the first new token to the last one (the decode phase).
- ``new_tokens``: decoding steps taken, i.e. the length of the longest returned output.
- ``tokens_per_s``: decode phase only: ``(new_tokens - 1) / decode_ms``; the first token
  belongs to the prefill. ``null`` when only one token was generated.
- ``total_ms``: the whole request on the worker: load, tokenise, decode, detokenise.
- ``peak_memory_bytes``: peak accelerator memory allocated during decoding on CUDA; on CPU,
  the process's peak resident set size (ru_maxrss), which includes the model weights.
- ``trace_ms``: the teacher-forced pass that computes token traces (workers/trace.py), after
  decoding; part of ``total_ms``, not of ``decode_ms``.

Each output also carries its strategy's own measurements in ``Output.metrics`` (speculative
acceptance, constrained mask time and validity...), defined in that decoder's module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from workers.models import CATALOG
from workers.strategies import ParamError, SpeculativeConfig, StrategyConfig, build_config

MAX_PROMPT_CHARS = 8000
MAX_PROMPT_TOKENS = 4096
MAX_NEW_TOKENS = 1024
MAX_SEED = 2**32 - 1
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 64
DEFAULT_MODEL = "smollm2-135m"
FINISH_REASONS = ("eos", "length", "stop", "constraint")

__all__ = [
    "DEFAULT_MODEL",
    "MAX_NEW_TOKENS",
    "MAX_PROMPT_CHARS",
    "DecodeRequest",
    "DecodeResult",
    "Environment",
    "Metrics",
    "Output",
    "ParamError",
    "queue_name",
]


def queue_name(model: str) -> str:
    """One Celery queue per model, so a worker only ever receives work for the model it holds."""
    return f"decode.{model}"


@dataclass(frozen=True)
class DecodeRequest:
    model: str
    strategy: str
    prompt: str | None = None
    prompt_token_ids: list[int] | None = None
    chat: bool = False
    max_new_tokens: int = 64
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    stop: list[str] = field(default_factory=list)  # stop strings: finish_reason "stop"
    trace: bool = True  # compute per-token traces (logprob, entropy, top-5) after decoding
    # Correlation and timing, set by the web side; absent when run from the command line.
    run_id: str | None = None
    attempt: int = 1
    enqueued_at: float | None = None

    def __post_init__(self) -> None:
        validate_request_fields(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> DecodeRequest:
        """Parse untrusted JSON; raise ParamError naming the first bad field."""
        if not isinstance(data, dict):
            raise ParamError("request", "must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ParamError(unknown[0], f"unknown field (allowed: {', '.join(sorted(names))})")
        for required in ("model", "strategy"):
            if required not in data:
                raise ParamError(required, "is required")
        return cls(**data)


def validate_request_fields(req: DecodeRequest) -> None:
    if not isinstance(req.model, str) or not req.model:
        raise ParamError("model", "must be a non-empty model name")
    has_text = req.prompt is not None
    has_ids = req.prompt_token_ids is not None
    if has_text == has_ids:
        raise ParamError("prompt", "give exactly one of prompt or prompt_token_ids")
    if has_text:
        validate_prompt(req.prompt)
    else:
        ids = req.prompt_token_ids
        if not isinstance(ids, list) or not ids or len(ids) > MAX_PROMPT_TOKENS:
            raise ParamError("prompt_token_ids", f"must be a list of 1 to {MAX_PROMPT_TOKENS} token ids")
        if any(isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in ids):
            raise ParamError("prompt_token_ids", "must contain non-negative integers only")
    if not isinstance(req.chat, bool):
        raise ParamError("chat", "must be true or false")
    validate_max_new_tokens(req.max_new_tokens)
    validate_seed(req.seed)
    validate_stop(req.stop)
    if not isinstance(req.trace, bool):
        raise ParamError("trace", "must be true or false")
    check_model_config(req.model, build_config(req.strategy, req.params))


def check_model_config(model: str, config: StrategyConfig) -> None:
    """Checks that need the model: a draft model must exist and share the target's tokenizer."""
    if isinstance(config, SpeculativeConfig) and config.proposer == "draft_model":
        target, draft = CATALOG.get(model), CATALOG.get(config.draft_model or "")
        if draft is None:
            raise ParamError(
                "params.draft_model", f"unknown model {config.draft_model!r} (known: {', '.join(CATALOG)})"
            )
        if target is not None and draft.tokenizer_family != target.tokenizer_family:
            raise ParamError(
                "params.draft_model",
                f"{draft.name} does not share {target.name}'s tokenizer ({draft.tokenizer_family} vs "
                f"{target.tokenizer_family}); a draft model must use the target's tokenizer",
            )


def validate_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ParamError("prompt", "must not be empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ParamError("prompt", f"must be at most {MAX_PROMPT_CHARS} characters (got {len(prompt)})")
    return prompt


def validate_max_new_tokens(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NEW_TOKENS:
        raise ParamError("max_new_tokens", f"must be an integer between 1 and {MAX_NEW_TOKENS} (got {value!r})")
    return value


def validate_stop(value: Any) -> list[str]:
    """Stop strings: an output ends once its text contains one (finish_reason "stop")."""
    if not isinstance(value, list) or len(value) > MAX_STOP_STRINGS:
        raise ParamError("stop", f"must be a list of at most {MAX_STOP_STRINGS} strings")
    for s in value:
        if not isinstance(s, str) or not 1 <= len(s) <= MAX_STOP_CHARS:
            raise ParamError("stop", f"each stop string must be 1 to {MAX_STOP_CHARS} characters (got {s!r})")
    return value


def validate_seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ParamError("seed", f"must be an integer between 0 and {MAX_SEED} (got {value!r})")
    return value


@dataclass(frozen=True)
class Output:
    text: str
    token_ids: list[int]
    finish_reason: str
    score: float | None = None
    index: int = 0
    group: int | None = None  # diverse beam search group
    metrics: dict[str, Any] = field(default_factory=dict)  # strategy-specific, per output
    trace: list[dict[str, Any]] | None = None  # per token; see workers/trace.py


@dataclass(frozen=True)
class Metrics:
    queue_wait_ms: float | None
    model_load_ms: float
    model_cache_hit: bool
    prefill_ms: float
    decode_ms: float
    new_tokens: int
    tokens_per_s: float | None
    total_ms: float
    peak_memory_bytes: int | None
    trace_ms: float = 0.0


@dataclass(frozen=True)
class Environment:
    device: str
    dtype: str
    seed: int
    torch_version: str
    transformers_version: str
    batch_size: int
    worker: str
    executor: str = "eager"  # how the steps ran (workers/executor.py): eager, static or graph
    captured: bool = False  # whether steps were replayed from captured CUDA graphs


@dataclass(frozen=True)
class DecodeResult:
    run_id: str | None
    attempt: int
    outputs: list[Output] = field(default_factory=list)
    prompt_token_ids: list[int] = field(default_factory=list)
    metrics: Metrics | None = None
    environment: Environment | None = None
    error: str | None = None
    error_field: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecodeResult:
        return cls(
            run_id=data.get("run_id"),
            attempt=int(data.get("attempt", 1)),
            outputs=[Output(**o) for o in data.get("outputs") or []],
            prompt_token_ids=list(data.get("prompt_token_ids") or []),
            metrics=Metrics(**data["metrics"]) if data.get("metrics") else None,
            environment=Environment(**data["environment"]) if data.get("environment") else None,
            error=data.get("error"),
            error_field=data.get("error_field"),
        )

    @classmethod
    def failure(cls, *, run_id: str | None, attempt: int, error: str, error_field: str | None = None) -> DecodeResult:
        return cls(run_id=run_id, attempt=attempt, error=error, error_field=error_field)
