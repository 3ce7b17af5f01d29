"""Decoding strategies' configurations: names, parameters, defaults and limits.

This module is torch-free on purpose: the web side imports it to validate a submission
before anything is stored or dispatched, and the worker imports it to build the very same
configuration, so both sides accept and reject exactly the same input.

Parameter names follow transformers' ``GenerationConfig`` so researchers need no new
vocabulary.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

MAX_NUM_BEAMS = 8
MAX_RETURN_SEQUENCES = 8
MAX_TOP_K = 1000
MAX_TEMPERATURE = 10.0
MAX_DRAFT_TOKENS = 16
MAX_NGRAM_SIZE = 8
MAX_REGEX_CHARS = 512
MAX_GRAMMAR_BYTES = 32 * 1024
MAX_CHOICES = 64
MAX_CHOICE_CHARS = 256


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


def _require_choice(field: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ParamError(field, f"must be one of {', '.join(options)} (got {value!r})")
    return value


def _optional_text(field: str, value: Any, limit: int, unit: str = "characters") -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ParamError(field, "must be a string")
    size = len(value.encode()) if unit == "bytes" else len(value)
    if size > limit:
        raise ParamError(field, f"must be at most {limit} {unit} (got {size})")
    return value


def param(default: Any, kind: str, help: str = "", options: tuple[str, ...] = ()) -> Any:
    """A config field with the metadata forms need: its input kind, help text and options.

    kinds: int, float, bool, choice, model (a model name), text (one line), long_text,
    json (an object), lines (a list of strings, one per line in forms).
    """
    return field(default=default, metadata={"kind": kind, "help": help, "options": options})


@dataclass(frozen=True)
class StrategyConfig:
    """Base class: a frozen, validated set of parameters for one strategy."""

    strategy: ClassVar[str]
    description: ClassVar[str]

    @classmethod
    def param_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def param_specs(cls) -> list[dict[str, Any]]:
        """Each parameter's name, kind, default, help and options, for forms and the catalogue."""
        return [
            {
                "name": f.name,
                "kind": f.metadata.get("kind", type(f.default).__name__),
                "default": f.default,
                "help": f.metadata.get("help", ""),
                "options": list(f.metadata.get("options", ())),
            }
            for f in dataclasses.fields(cls)
        ]

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


# Shared parameter declarations (the same names, defaults and help everywhere).
def _temperature() -> Any:
    return param(1.0, "float", "divide the logits by this (> 0); lower is more deterministic")


def _top_k() -> Any:
    return param(50, "int", "keep the k most likely tokens (0 = off)")


def _top_p() -> Any:
    return param(1.0, "float", "nucleus: keep the smallest set of tokens with this much probability (1 = off)")


def _num_beams(default: int = 4) -> Any:
    return param(default, "int", f"beams kept at each step (1 to {MAX_NUM_BEAMS})")


def _num_return_sequences() -> Any:
    return param(1, "int", "how many outputs to return")


def _length_penalty() -> Any:
    return param(1.0, "float", "score = sum logprob / length ** length_penalty; > 0 favours longer outputs")


def _early_stopping() -> Any:
    return param(False, "bool", "stop as soon as num_beams finished candidates exist")


def _check_sampling(cfg: Any) -> None:
    set_ = object.__setattr__
    set_(cfg, "temperature", _require_float("params.temperature", cfg.temperature, 0.0, MAX_TEMPERATURE, lo_open=True))
    set_(cfg, "top_k", _require_int("params.top_k", cfg.top_k, 0, MAX_TOP_K))
    set_(cfg, "top_p", _require_float("params.top_p", cfg.top_p, 0.0, 1.0, lo_open=True))


def _check_beams(cfg: Any) -> None:
    set_ = object.__setattr__
    set_(cfg, "num_beams", _require_int("params.num_beams", cfg.num_beams, 1, MAX_NUM_BEAMS))
    set_(cfg, "length_penalty", _require_float("params.length_penalty", cfg.length_penalty, -10.0, 10.0))
    set_(cfg, "early_stopping", _require_bool("params.early_stopping", cfg.early_stopping))


@dataclass(frozen=True)
class GreedyConfig(StrategyConfig):
    strategy: ClassVar[str] = "greedy"
    description: ClassVar[str] = "Pick the most likely token at every step."


@dataclass(frozen=True)
class SamplingConfig(StrategyConfig):
    """Ancestral sampling after the logits processors and warpers, in transformers' order:
    repetition penalty, then temperature, top-k, top-p, min-p, typical-p."""

    strategy: ClassVar[str] = "sampling"
    description: ClassVar[str] = "Sample from the warped distribution (temperature, top-k, top-p, min-p, typical-p)."

    temperature: float = _temperature()
    top_k: int = _top_k()
    top_p: float = _top_p()
    min_p: float = param(0.0, "float", "drop tokens below min_p x the top token's probability (0 = off)")
    typical_p: float = param(1.0, "float", "locally typical sampling mass (1 = off)")
    repetition_penalty: float = param(1.0, "float", "divide the logits of tokens already present (1 = off)")
    num_return_sequences: int = _num_return_sequences()

    def __post_init__(self) -> None:
        _check_sampling(self)
        set_ = object.__setattr__
        set_(self, "min_p", _require_float("params.min_p", self.min_p, 0.0, 1.0))
        set_(self, "typical_p", _require_float("params.typical_p", self.typical_p, 0.0, 1.0, lo_open=True))
        set_(
            self,
            "repetition_penalty",
            _require_float("params.repetition_penalty", self.repetition_penalty, 0.0, 10.0, lo_open=True),
        )
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

    num_beams: int = _num_beams()
    num_return_sequences: int = _num_return_sequences()
    length_penalty: float = _length_penalty()
    early_stopping: bool = _early_stopping()

    def __post_init__(self) -> None:
        _check_beams(self)
        object.__setattr__(
            self,
            "num_return_sequences",
            _require_int("params.num_return_sequences", self.num_return_sequences, 1, self.num_beams),
        )


@dataclass(frozen=True)
class DiverseBeamConfig(StrategyConfig):
    """Diverse (group) beam search, Vijayakumar et al. 2016: the beams are split into
    num_beam_groups groups decoded in turn; a group's scores are lowered by
    diversity_penalty x (times each token was chosen by earlier groups at this step)."""

    strategy: ClassVar[str] = "diverse_beam"
    description: ClassVar[str] = "Beam search in groups with a Hamming diversity penalty between groups."

    num_beams: int = _num_beams()
    num_beam_groups: int = param(2, "int", "groups of num_beams / num_beam_groups beams; must divide num_beams")
    diversity_penalty: float = param(0.5, "float", "subtracted per earlier-group use of a token at the same step")
    num_return_sequences: int = _num_return_sequences()
    length_penalty: float = _length_penalty()
    early_stopping: bool = _early_stopping()

    def __post_init__(self) -> None:
        _check_beams(self)
        set_ = object.__setattr__
        set_(self, "num_beam_groups", _require_int("params.num_beam_groups", self.num_beam_groups, 1, self.num_beams))
        if self.num_beams % self.num_beam_groups:
            raise ParamError(
                "params.num_beam_groups",
                f"must divide num_beams ({self.num_beams}) evenly (got {self.num_beam_groups})",
            )
        set_(
            self,
            "diversity_penalty",
            _require_float("params.diversity_penalty", self.diversity_penalty, 0.0, 100.0),
        )
        set_(
            self,
            "num_return_sequences",
            _require_int("params.num_return_sequences", self.num_return_sequences, 1, self.num_beams),
        )


@dataclass(frozen=True)
class ContrastiveConfig(StrategyConfig):
    """Contrastive search, Su et al. 2022: among the top_k candidates pick the one that
    maximises (1 - penalty_alpha) x p(token) - penalty_alpha x max cosine similarity of its
    hidden state to the context's hidden states (the degeneration penalty)."""

    strategy: ClassVar[str] = "contrastive"
    description: ClassVar[str] = "Trade model confidence against a degeneration penalty (penalty_alpha, top_k)."

    penalty_alpha: float = param(0.6, "float", "weight of the degeneration penalty (0 = greedy)")
    top_k: int = param(4, "int", "candidates considered at each step (2 to 50)")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "penalty_alpha", _require_float("params.penalty_alpha", self.penalty_alpha, 0.0, 1.0))
        set_(self, "top_k", _require_int("params.top_k", self.top_k, 2, 50))


PROPOSERS = ("prompt_lookup", "draft_model")


@dataclass(frozen=True)
class SpeculativeConfig(StrategyConfig):
    """Speculative decoding: a proposer drafts tokens, the target verifies them in one forward
    pass. Greedy verification keeps a draft token while it equals the target's argmax;
    with do_sample, rejection sampling (Leviathan et al. 2023; Chen et al. 2023) keeps the
    output distribution equal to the target's."""

    strategy: ClassVar[str] = "speculative"
    description: ClassVar[str] = "Draft tokens (draft model or prompt lookup), verify them with the target in one pass."

    proposer: str = param("prompt_lookup", "choice", "where drafts come from", PROPOSERS)
    draft_model: str | None = param(None, "model", "draft model (same tokenizer as the target); proposer draft_model")
    num_draft_tokens: int = param(5, "int", f"tokens the draft model proposes per step (1 to {MAX_DRAFT_TOKENS})")
    prompt_lookup_num_tokens: int = param(10, "int", f"tokens copied per lookup match (1 to {MAX_DRAFT_TOKENS})")
    max_matching_ngram_size: int = param(2, "int", f"longest n-gram matched in the context (1 to {MAX_NGRAM_SIZE})")
    do_sample: bool = param(False, "bool", "sample (rejection sampling) instead of greedy verification")
    temperature: float = _temperature()
    top_k: int = _top_k()
    top_p: float = _top_p()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _require_choice("params.proposer", self.proposer, PROPOSERS)
        set_(
            self,
            "num_draft_tokens",
            _require_int("params.num_draft_tokens", self.num_draft_tokens, 1, MAX_DRAFT_TOKENS),
        )
        set_(
            self,
            "prompt_lookup_num_tokens",
            _require_int("params.prompt_lookup_num_tokens", self.prompt_lookup_num_tokens, 1, MAX_DRAFT_TOKENS),
        )
        set_(
            self,
            "max_matching_ngram_size",
            _require_int("params.max_matching_ngram_size", self.max_matching_ngram_size, 1, MAX_NGRAM_SIZE),
        )
        set_(self, "do_sample", _require_bool("params.do_sample", self.do_sample))
        _check_sampling(self)
        draft = self.draft_model or None
        if self.proposer == "draft_model":
            if not isinstance(draft, str):
                raise ParamError("params.draft_model", "name the draft model when proposer is draft_model")
        elif draft is not None:
            raise ParamError("params.draft_model", "is only used with proposer draft_model")
        set_(self, "draft_model", draft)


DECODINGS = ("greedy", "sampling", "beam")
CONSTRAINTS = ("regex", "json_schema", "grammar", "choices")


@dataclass(frozen=True)
class ConstrainedConfig(StrategyConfig):
    """Constrained decoding through the llguidance grammar engine: at each step the tokens
    that cannot continue a valid output are masked out, under greedy, sampling or beam
    search. Exactly one of regex, json_schema, grammar (Lark-style CFG) or choices."""

    strategy: ClassVar[str] = "constrained"
    description: ClassVar[str] = "Only outputs that match a regex, JSON schema, grammar or list of choices."

    regex: str | None = param(None, "text", f"the whole output must match (at most {MAX_REGEX_CHARS} characters)")
    json_schema: dict | None = param(None, "json", "the output is JSON valid under this schema (at most 32 KB)")
    grammar: str | None = param(None, "long_text", "a Lark-style context-free grammar (at most 32 KB)")
    choices: list | None = param(None, "lines", f"the output is exactly one of these (at most {MAX_CHOICES})")
    decoding: str = param("greedy", "choice", "the search run under the constraint", DECODINGS)
    temperature: float = _temperature()
    top_k: int = _top_k()
    top_p: float = _top_p()
    num_beams: int = _num_beams(1)
    num_return_sequences: int = _num_return_sequences()
    length_penalty: float = _length_penalty()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "regex", _optional_text("params.regex", self.regex, MAX_REGEX_CHARS))
        set_(self, "grammar", _optional_text("params.grammar", self.grammar, MAX_GRAMMAR_BYTES, "bytes"))
        schema = self.json_schema
        if isinstance(schema, str) and schema.strip():
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as exc:
                raise ParamError("params.json_schema", f"is not valid JSON: {exc}") from None
        if schema in (None, "", {}):
            schema = None
        elif not isinstance(schema, dict):
            raise ParamError("params.json_schema", "must be a JSON object (a JSON Schema)")
        elif len(json.dumps(schema).encode()) > MAX_GRAMMAR_BYTES:
            raise ParamError("params.json_schema", f"must be at most {MAX_GRAMMAR_BYTES} bytes")
        set_(self, "json_schema", schema)
        choices = self.choices
        if choices in (None, "", []):
            choices = None
        else:
            if isinstance(choices, str):
                choices = [c for c in choices.splitlines() if c.strip()]
            if not isinstance(choices, list) or not all(isinstance(c, str) and c for c in choices):
                raise ParamError("params.choices", "must be a list of non-empty strings")
            if len(choices) > MAX_CHOICES or any(len(c) > MAX_CHOICE_CHARS for c in choices):
                raise ParamError(
                    "params.choices", f"at most {MAX_CHOICES} choices of at most {MAX_CHOICE_CHARS} characters"
                )
        set_(self, "choices", choices)
        given = [name for name in CONSTRAINTS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ParamError("params.regex", f"give exactly one of {', '.join(CONSTRAINTS)} (got {len(given)})")
        _require_choice("params.decoding", self.decoding, DECODINGS)
        _check_sampling(self)
        set_(self, "num_beams", _require_int("params.num_beams", self.num_beams, 1, MAX_NUM_BEAMS))
        set_(self, "length_penalty", _require_float("params.length_penalty", self.length_penalty, -10.0, 10.0))
        if self.num_beams > 1 and self.decoding != "beam":
            raise ParamError("params.num_beams", "is only used with decoding beam")
        limit = {"beam": self.num_beams, "sampling": MAX_RETURN_SEQUENCES, "greedy": 1}[self.decoding]
        set_(
            self,
            "num_return_sequences",
            _require_int("params.num_return_sequences", self.num_return_sequences, 1, limit),
        )

    @property
    def constraint(self) -> str:
        """Which constraint is set: regex, json_schema, grammar or choices."""
        return next(name for name in CONSTRAINTS if getattr(self, name) is not None)


STRATEGIES: dict[str, type[StrategyConfig]] = {
    cls.strategy: cls
    for cls in (
        GreedyConfig,
        SamplingConfig,
        BeamConfig,
        DiverseBeamConfig,
        ContrastiveConfig,
        SpeculativeConfig,
        ConstrainedConfig,
    )
}


def build_config(strategy: Any, params: dict[str, Any] | None) -> StrategyConfig:
    """Validate a strategy name and its params; raise ParamError naming the field."""
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ParamError("strategy", f"unknown strategy {strategy!r} (choose from: {', '.join(STRATEGIES)})")
    if params is not None and not isinstance(params, dict):
        raise ParamError("params", "must be an object of parameter names to values")
    return STRATEGIES[strategy].from_params(params)
