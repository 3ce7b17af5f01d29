"""Decoding strategies' configurations: names, parameters, defaults and limits.

This module is torch-free on purpose: the web side imports it to validate a submission
before anything is stored or dispatched, and the worker imports it to build the very same
configuration, so both sides accept and reject exactly the same input.

Parameter names follow transformers' ``GenerationConfig`` so researchers need no new
vocabulary.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

MAX_NUM_BEAMS = 8
MAX_RETURN_SEQUENCES = 8
MAX_TOP_K = 1000
MAX_TEMPERATURE = 10.0


class ParamError(ValueError):
    """A parameter failed validation; ``field`` names it, ``message`` says the limit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _require_int(field: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ParamError(field, f"must be an integer between {lo} and {hi}")
    if not lo <= value <= hi:
        raise ParamError(field, f"must be between {lo} and {hi} (got {value})")
    return int(value)


def _require_float(field: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParamError(field, f"must be a number {'>' if lo_open else '>='} {lo} and <= {hi}")
    ok_lo = value > lo if lo_open else value >= lo
    if not ok_lo or value > hi:
        bound = f"{'>' if lo_open else '>='} {lo} and <= {hi}"
        raise ParamError(field, f"must be {bound} (got {value})")
    return float(value)


def _require_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParamError(field, "must be true or false")
    return value


@dataclass(frozen=True)
class StrategyConfig:
    """Base class: a frozen, validated set of parameters for one strategy."""

    strategy: ClassVar[str]
    description: ClassVar[str]

    @classmethod
    def param_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> StrategyConfig:
        """Build from a JSON params dict; unknown names are an error, not ignored."""
        params = dict(params or {})
        known = set(cls.param_names())
        unknown = sorted(set(params) - known)
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            raise ParamError(
                f"params.{unknown[0]}",
                f"unknown parameter for strategy '{cls.strategy}' (allowed: {allowed})",
            )
        try:
            return cls(**params)
        except TypeError as exc:  # pragma: no cover - guarded by the unknown-name check
            raise ParamError("params", str(exc)) from exc

    def to_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GreedyConfig(StrategyConfig):
    strategy: ClassVar[str] = "greedy"
    description: ClassVar[str] = "Pick the most likely token at every step."


@dataclass(frozen=True)
class SamplingConfig(StrategyConfig):
    """Ancestral sampling after temperature, top-k and top-p warping (in that order,
    as transformers applies them)."""

    strategy: ClassVar[str] = "sampling"
    description: ClassVar[str] = "Sample from the warped distribution (temperature, top-k, top-p)."

    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    num_return_sequences: int = 1

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(
            self,
            "temperature",
            _require_float("params.temperature", self.temperature, 0.0, MAX_TEMPERATURE, lo_open=True),
        )
        set_(self, "top_k", _require_int("params.top_k", self.top_k, 0, MAX_TOP_K))
        set_(self, "top_p", _require_float("params.top_p", self.top_p, 0.0, 1.0, lo_open=True))
        set_(
            self,
            "num_return_sequences",
            _require_int("params.num_return_sequences", self.num_return_sequences, 1, MAX_RETURN_SEQUENCES),
        )


@dataclass(frozen=True)
class BeamConfig(StrategyConfig):
    """Beam search with an n-best list (transformers' semantics for length_penalty and
    early_stopping)."""

    strategy: ClassVar[str] = "beam"
    description: ClassVar[str] = "Keep the num_beams best partial sequences; return the n-best."

    num_beams: int = 4
    num_return_sequences: int = 1
    length_penalty: float = 1.0
    early_stopping: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "num_beams", _require_int("params.num_beams", self.num_beams, 1, MAX_NUM_BEAMS))
        set_(
            self,
            "num_return_sequences",
            _require_int("params.num_return_sequences", self.num_return_sequences, 1, self.num_beams),
        )
        set_(self, "length_penalty", _require_float("params.length_penalty", self.length_penalty, -10.0, 10.0))
        set_(self, "early_stopping", _require_bool("params.early_stopping", self.early_stopping))


STRATEGIES: dict[str, type[StrategyConfig]] = {cls.strategy: cls for cls in (GreedyConfig, SamplingConfig, BeamConfig)}


def build_config(strategy: Any, params: dict[str, Any] | None) -> StrategyConfig:
    """Validate a strategy name and its params; raise ParamError naming the field."""
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ParamError("strategy", f"unknown strategy {strategy!r} (choose from: {', '.join(STRATEGIES)})")
    if params is not None and not isinstance(params, dict):
        raise ParamError("params", "must be an object of parameter names to values")
    return STRATEGIES[strategy].from_params(params)
