"""Grammars for constrained decoding: compile a ``ConstrainedConfig`` with llguidance, and
check an output's validity without it.

Compilation (``compile_grammar``)
    The config's one constraint becomes an llguidance grammar:

    - ``regex``: ``LLMatcher.grammar_from_regex`` -- the whole output must match (the regex is
      anchored at both ends; Rust ``regex`` crate syntax, see "Regex dialects" below).
    - ``json_schema``: ``LLMatcher.grammar_from_json_schema`` with ``JSON_DEFAULTS`` (compact
      JSON with ``json.dumps``' separators ``", "`` and ``": "``, no other whitespace; the
      schema's own ``"x-guidance"`` options override them). Properties come in the schema's
      order. Unimplemented keywords are an error, not ignored.
    - ``grammar``: ``LLMatcher.grammar_from_lark`` -- llguidance's Lark dialect (``start`` is
      the start rule; ``%import common.X``, ``%ignore``, ``/regex/`` terminals, plus llguidance
      extensions such as ``%json {...}``).
    - ``choices``: the Lark grammar ``start: "c1" | "c2" | ...`` (JSON-escaped literals, as
      ``llguidance.grammar_from("choice", ...)`` builds it).

    An ``LLMatcher`` is then built over the model's tokenizer (``tokenizer_info``: built once
    per tokenizer, vocabulary size and eos ids, and cached) and its first token mask is
    computed, because llguidance builds its lexer lazily: a hostile regex such as
    ``((a{100}){100}){100}`` compiles in a millisecond and costs its seconds at the first mask.

Bounds (hostile grammars)
    Two mechanisms, because user input can be adversarial:

    1. Work limits: every matcher gets ``LIMITS`` (``LLParserLimits``): lexer "fuel" for the
       initial build and for each mask step, a cap on Earley items per step, on lexer (DFA)
       states and on grammar size. Past a limit llguidance puts the matcher in its error
       state ("too many expressions constructed", "Unable to determine if regex is empty",
       "recursion limit exceeded", ...), which becomes a ``GrammarError``. The classic
       DFA blow-up ``[ab]*a[ab]{13}`` never explodes: llguidance determinises lazily (about
       a dozen states are built per token), so it just works.
    2. A wall-clock limit, ``COMPILE_TIMEOUT_S`` (5 s): compilation (grammar construction,
       matcher construction, first mask) runs in a daemon thread that the caller waits for
       with ``Thread.join(timeout)``. llguidance drops the GIL while it builds a matcher
       and computes masks, so the wait returns on time; past it a ``GrammarError`` is raised.
       A thread cannot be killed: the abandoned one still finishes its (fuel-bounded) work
       in the background and its result is dropped.

Independent validity (``check_valid``)
    Masking guarantees validity only if the engine is right, so outputs are re-checked with
    other code:

    - ``regex``: ``regex.fullmatch`` (the ``regex`` package, a transformers dependency, in its
      ``re``-compatible VERSION0 mode) with a timeout, because Python regexes backtrack: a
      pattern like ``(a|aa)*b`` against a long run of ``a`` (an output cut by the length
      limit) would hang ``re.fullmatch`` for ever.
    - ``json_schema``: ``json.loads`` (NaN/Infinity rejected: not JSON) then ``jsonschema`` with the
      validator class the schema's ``$schema`` names and its format checker; its ``pattern``
      and ``patternProperties`` keywords are re-implemented with the same timed search.
    - ``choices``: membership.
    - ``grammar``: Lark (the ``lark`` package, Earley parser with the dynamic lexer, which
      accepts every string of the context-free language -- llguidance's greedy lexer accepts a
      subset of it -- and terminals matched with the ``regex`` package) when it is installed
      and understands the grammar; otherwise llguidance
      itself: the text is tokenised afresh and fed to a new matcher, which checks the *text*
      rather than the token path that was generated (weaker, not independent).

    When the check cannot decide (a pattern Python cannot compile, a time limit, no fallback)
    ``Uncheckable`` is raised; the decoder reports ``valid: null`` then.

Regex dialects (llguidance = Rust ``regex`` crate syntax; check = Python ``regex`` VERSION0)
    Same meaning in both: classes, ``\\d \\w \\s`` (Unicode-aware in both), ``\\p{L}``,
    POSIX classes ``[[:alpha:]]``, ``(?i)``, ``(?s)``, ``\\A``, ``\\z``, ``^``/``$``, ``\\uXXXX``.
    Differences: llguidance rejects look-around, back-references, ``\\b``, ``\\Z`` and
    ``x{,n}`` (compile error); Rust's class set operations ``[a-z&&[^aeiou]]``, ``--``, ``~~``
    and ``\\x{...}`` are accepted by llguidance but read differently or rejected by the Python
    check (then the check may call a valid output invalid, or raise ``Uncheckable``).
    Case-insensitive matching uses simple case folding in Rust; Python's is close but not
    identical for a few characters (e.g. the Kelvin sign). Plain Python ``re`` would
    additionally misread POSIX classes and reject ``\\p{..}`` and ``\\z``: hence ``regex``.

References: llguidance (https://github.com/guidance-ai/llguidance, docs/syntax.md,
docs/json_schema.md); grammar-constrained decoding: Willard & Louf 2023, "Efficient Guided
Generation for Large Language Models" (arXiv:2307.09702); Geng et al. 2023, "Grammar-Constrained
Decoding for Structured NLP Tasks without Finetuning" (arXiv:2305.13971).
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import jsonschema
import llguidance
import llguidance.hf
import regex
import torch
from llguidance import LLMatcher, LLParserLimits, LLTokenizer

from workers.strategies import ConstrainedConfig, ParamError

COMPILE_TIMEOUT_S = 5.0  # wall clock for grammar + matcher construction + first mask
CHECK_TIMEOUT_S = 2.0  # wall clock for one independent validity check
MAX_ERROR_CHARS = 2000  # llguidance's messages can quote a whole grammar

# llguidance's work limits (speeds from its docs: lexer fuel ~50k/ms initial, ~14k/ms per step;
# Earley items ~20k/ms). Its defaults, except max_lexer_states (250k at 1-2 kB each could take
# 500 MB) and verbose_errors (parser state dumps are noise in a run error).
LIMITS = LLParserLimits(
    max_items_in_row=2000,
    initial_lexer_fuel=1_000_000,  # ~20 ms of regex analysis at build time
    step_lexer_fuel=200_000,  # ~15 ms of lexer work per mask
    step_max_items=50_000,  # ~2.5 ms of Earley items per mask
    max_lexer_states=50_000,  # <= ~100 MB of lexer states
    max_grammar_size=500_000,
    verbose_errors=False,
)

# Compact JSON as json.dumps writes it; a schema's "x-guidance" object overrides these.
JSON_DEFAULTS: dict[str, Any] = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class GrammarError(ParamError):
    """The constraint cannot be used: llguidance rejected it, or it exceeded a limit.

    ``field`` names the parameter (``params.regex``, ``params.json_schema``, ``params.grammar``,
    ``params.choices``); ``message`` is llguidance's explanation. A ``ParamError``, so callers
    that turn parameter errors into run errors handle it too.
    """


class Uncheckable(ValueError):
    """``check_valid`` could not decide (unsupported pattern, time limit, no checker)."""


def field_name(config: ConstrainedConfig) -> str:
    """The parameter that holds the constraint, as errors name it: ``params.<kind>``."""
    return f"params.{config.constraint}"


# ---------------------------------------------------------------------------------------------
# Tokenizer info (expensive: ~0.5 s for a 49k vocabulary), cached per tokenizer object.


@dataclass(frozen=True)
class TokenizerInfo:
    tokenizer: LLTokenizer
    n_vocab: int  # the mask's width in tokens: max(logits width, tokenizer size)
    build_ms: float  # time it took to build (0.0 when it came from the cache)


_TOKENIZERS: dict[tuple[int, int, tuple[int, ...]], tuple[Any, LLTokenizer]] = {}
_TOKENIZERS_LOCK = threading.Lock()


def tokenizer_info(hf_tokenizer: Any, *, n_vocab: int, eos_token_ids: Sequence[int] = ()) -> TokenizerInfo:
    """llguidance's view of ``hf_tokenizer`` (a transformers fast tokenizer), cached.

    ``n_vocab``: the model's logits width. Ids the tokenizer does not know (a model's padded
    embedding rows) are never allowed by a mask. ``eos_token_ids``: the ids that end an
    output (the decoder's); the tokenizer's own eos when empty. The cache holds a weak
    reference to the tokenizer (a strong one when it cannot be weakly referenced), keyed by
    its identity, vocabulary width and eos ids.
    """
    assert n_vocab > 0, f"n_vocab must be positive (got {n_vocab})"
    eos = tuple(int(i) for i in eos_token_ids)
    # llguidance refuses an n_vocab below the tokenizer's own size; the mask is then wider
    # than the logits and the decoder keeps its first n_vocab columns.
    width = max(int(n_vocab), len(hf_tokenizer))
    key = (id(hf_tokenizer), width, eos)
    with _TOKENIZERS_LOCK:
        hit = _TOKENIZERS.get(key)
        if hit is not None:
            ref, cached = hit
            if (ref() if isinstance(ref, weakref.ref) else ref) is hf_tokenizer:
                return TokenizerInfo(cached, width, 0.0)
        t0 = time.perf_counter()
        ll_tok = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=width, eos_token=list(eos) or None)
        build_ms = (time.perf_counter() - t0) * 1000
        try:
            ref: Any = weakref.ref(hf_tokenizer, lambda _r, key=key: _TOKENIZERS.pop(key, None))
        except TypeError:  # not weakly referenceable: keep it alive with the cache
            ref = hf_tokenizer
        _TOKENIZERS[key] = (ref, ll_tok)
    return TokenizerInfo(ll_tok, width, build_ms)


# ---------------------------------------------------------------------------------------------
# Compilation.


def grammar_source(config: ConstrainedConfig) -> str:
    """The llguidance grammar (its JSON grammar format) for the config's constraint; no checks.

    Malformed input is not detected here but by ``LLMatcher`` (``compile_grammar``).
    """
    kind = config.constraint
    if kind == "regex":
        return LLMatcher.grammar_from_regex(config.regex)
    if kind == "json_schema":
        try:
            return LLMatcher.grammar_from_json_schema(config.json_schema, defaults=JSON_DEFAULTS)
        except ValueError as exc:
            raise GrammarError(field_name(config), str(exc)) from None
    if kind == "grammar":
        return LLMatcher.grammar_from_lark(config.grammar)
    assert kind == "choices"
    return LLMatcher.grammar_from_lark(choices_lark(config.choices))


def choices_lark(choices: Sequence[str]) -> str:
    """``start: "a" | "b"``: JSON string literals are valid llguidance Lark literals."""
    assert choices, "at least one choice"
    return "start: " + " | ".join(json.dumps(c) for c in choices)


@dataclass
class CompiledGrammar:
    """A constraint ready to decode with: a matcher at the start state (its first mask
    already computed once, so the lexer's start-up cost is paid inside the time limit).

    ``matcher`` is the template; every output takes its own ``new_matcher()`` (a deep copy,
    ~1 us). ``n_vocab`` is the bitmask's width in tokens (``ceil(n_vocab / 32)`` int32 words,
    bit ``i % 32`` of word ``i // 32`` set when token ``i`` is allowed).
    """

    kind: str
    field: str
    tokenizer: LLTokenizer
    n_vocab: int
    matcher: LLMatcher
    compile_ms: float
    tokenizer_ms: float

    def new_matcher(self) -> LLMatcher:
        return self.matcher.deep_copy()


T = TypeVar("T")


def run_with_deadline(fn: Callable[[], T], timeout_s: float, on_timeout: Callable[[], Exception]) -> T:
    """Run ``fn`` in a daemon thread; return its result, re-raise its exception, or raise
    ``on_timeout()`` if it has not finished after ``timeout_s`` seconds (it is then abandoned:
    threads cannot be killed, so it runs to its own end in the background)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="decodelab-grammar", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise on_timeout()
    if "error" in box:
        raise box["error"]
    return box["result"]


def error_text(message: str) -> str:
    """llguidance's message, trimmed to ``MAX_ERROR_CHARS``."""
    message = message.strip()
    return message if len(message) <= MAX_ERROR_CHARS else message[:MAX_ERROR_CHARS] + " [...]"


def compile_grammar(
    config: ConstrainedConfig,
    hf_tokenizer: Any,
    *,
    n_vocab: int,
    eos_token_ids: Sequence[int] = (),
    timeout_s: float = COMPILE_TIMEOUT_S,
) -> CompiledGrammar:
    """Compile the config's constraint for ``hf_tokenizer`` and a ``n_vocab``-wide model.

    Raises ``GrammarError(field, message)`` when llguidance rejects the constraint, when it
    hits a work limit, or when compiling takes longer than ``timeout_s``. ``compile_ms``
    covers grammar construction, matcher construction and the first mask, not the (cached)
    tokenizer build, which ``tokenizer_ms`` reports.
    """
    assert isinstance(config, ConstrainedConfig), f"expected a ConstrainedConfig, got {type(config).__name__}"
    field = field_name(config)
    info = tokenizer_info(hf_tokenizer, n_vocab=n_vocab, eos_token_ids=eos_token_ids)
    words = (info.n_vocab + 31) // 32

    def build() -> LLMatcher:
        source = grammar_source(config)
        matcher = LLMatcher(info.tokenizer, source, log_level=0, limits=LIMITS)
        if matcher.is_error():
            raise GrammarError(field, error_text(matcher.get_error()))
        bitmask = torch.zeros(words, dtype=torch.int32)  # [words]
        matcher.unsafe_compute_mask_ptr(bitmask.data_ptr(), words * 4)
        if matcher.is_error():
            raise GrammarError(field, error_text(matcher.get_error()))
        return matcher

    t0 = time.perf_counter()
    matcher = run_with_deadline(
        build,
        timeout_s,
        lambda: GrammarError(field, f"took longer than {timeout_s:g} s to compile; simplify it"),
    )
    compile_ms = (time.perf_counter() - t0) * 1000
    return CompiledGrammar(
        kind=config.constraint,
        field=field,
        tokenizer=info.tokenizer,
        n_vocab=info.n_vocab,
        matcher=matcher,
        compile_ms=compile_ms,
        tokenizer_ms=info.build_ms,
    )


# ---------------------------------------------------------------------------------------------
# Independent validity checks.


class _Deadline:
    def __init__(self, timeout_s: float) -> None:
        self.end = time.monotonic() + timeout_s

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise Uncheckable("the validity check ran out of time")
        return left


def _search(pattern: str, text: str, deadline: _Deadline, *, full: bool = False) -> bool:
    """``regex`` (VERSION0, ``re``-compatible) search or fullmatch under the deadline."""
    try:
        compiled = regex.compile(pattern, flags=regex.VERSION0)
    except regex.error as exc:
        raise Uncheckable(f"Python cannot compile the pattern {pattern!r}: {exc}") from None
    try:
        match = (compiled.fullmatch if full else compiled.search)(text, timeout=deadline.left())
    except TimeoutError:
        raise Uncheckable(f"matching {pattern!r} ran out of time") from None
    return match is not None


def _json_validator(schema: dict[str, Any], deadline: _Deadline) -> Any:
    """The schema's validator class with ``pattern``/``patternProperties`` under the deadline."""

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
        if validator.is_type(instance, "string") and not _search(patrn, instance, deadline):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Any:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            for key, value in instance.items():
                if _search(patrn, key, deadline):
                    yield from validator.descend(value, subschema, path=key, schema_path=patrn)

    base = jsonschema.validators.validator_for(schema)
    cls = jsonschema.validators.extend(base, {"pattern": pattern, "patternProperties": pattern_properties})
    return cls(schema, format_checker=base.FORMAT_CHECKER)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_json(schema: dict[str, Any], text: str, deadline: _Deadline) -> bool:
    try:
        instance = json.loads(text, parse_constant=_reject_constant)
    except ValueError:  # JSONDecodeError, NaN/Infinity
        return False
    try:
        validator = _json_validator(schema, deadline)
    except jsonschema.SchemaError as exc:  # pragma: no cover - llguidance accepted it
        raise Uncheckable(f"jsonschema rejects the schema: {exc.message}") from None
    return validator.is_valid(instance)


_LARK_PARSERS: dict[str, Any] = {}


def _lark_parser(grammar: str) -> Any | None:
    """A Lark Earley parser for ``grammar``, or None when Lark is absent or cannot read it."""
    if grammar in _LARK_PARSERS:
        return _LARK_PARSERS[grammar]
    try:
        import lark
    except ImportError:
        return None
    try:
        parser = lark.Lark(grammar, parser="earley", lexer="dynamic", start="start", regex=True)
    except Exception:  # any Lark failure means: not its dialect; fall back to llguidance
        parser = None
    if len(_LARK_PARSERS) > 64:
        _LARK_PARSERS.clear()
    _LARK_PARSERS[grammar] = parser
    return parser


def _check_grammar(grammar: str, text: str, tokenizer: Any, deadline: _Deadline) -> bool:
    def check() -> bool:
        parser = _lark_parser(grammar)
        if parser is not None:
            import lark

            try:
                parser.parse(text)
            except lark.exceptions.LarkError:
                return False
            return True
        if tokenizer is None:
            raise Uncheckable("Lark cannot read this grammar and no tokenizer was given for llguidance")
        if isinstance(tokenizer, LLTokenizer):
            ll_tok = tokenizer
        else:
            ll_tok = tokenizer_info(tokenizer, n_vocab=len(tokenizer)).tokenizer
        matcher = LLMatcher(ll_tok, LLMatcher.grammar_from_lark(grammar), log_level=0, limits=LIMITS)
        if matcher.is_error():
            raise Uncheckable(f"llguidance rejects the grammar: {error_text(matcher.get_error())}")
        return matcher.consume_tokens(ll_tok.tokenize_str(text)) and matcher.is_accepting()

    return run_with_deadline(check, deadline.left(), lambda: Uncheckable("the grammar check ran out of time"))


def check_valid(
    config: ConstrainedConfig, text: str, *, tokenizer: Any = None, timeout_s: float = CHECK_TIMEOUT_S
) -> bool:
    """Whether ``text`` satisfies the config's constraint, decided without llguidance where
    possible (see the module docstring). ``tokenizer`` (an ``LLTokenizer`` or a transformers
    fast tokenizer) is only used for grammars Lark cannot read. Raises ``Uncheckable`` when it
    cannot decide within ``timeout_s``."""
    assert isinstance(config, ConstrainedConfig), f"expected a ConstrainedConfig, got {type(config).__name__}"
    assert isinstance(text, str), f"text must be a str, got {type(text).__name__}"
    deadline = _Deadline(timeout_s)
    kind = config.constraint
    if kind == "choices":
        return text in config.choices
    if kind == "regex":
        return _search(config.regex, text, deadline, full=True)
    if kind == "json_schema":
        return _check_json(config.json_schema, text, deadline)
    assert kind == "grammar"
    return _check_grammar(config.grammar, text, tokenizer, deadline)
