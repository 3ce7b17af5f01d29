"""workers.grammar: compile errors name their field, hostile constraints are bounded in time,
and check_valid decides validity independently of llguidance (and agrees with it)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from llguidance import LLMatcher

from workers import grammar
from workers.grammar import COMPILE_TIMEOUT_S, GrammarError, Uncheckable, check_valid, compile_grammar
from workers.strategies import CONSTRAINTS, ConstrainedConfig, ParamError

CORPUS = Path(__file__).parent / "decoders" / "data" / "constraints_corpus.json"
ENTRIES: list[dict[str, Any]] = json.loads(CORPUS.read_text())["entries"]
EOS = [2]  # SmolLM2-135M-Instruct's <|im_end|>


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    """SmolLM2's transformers tokenizer (loaded through workers.runtime, shared with the decoder tests)."""
    from workers import runtime

    try:
        loaded, _ = runtime.load("smollm2-135m", dtype="float32", device=torch.device("cpu"))
    except (FileNotFoundError, OSError) as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"SmolLM2-135M is not installed here: {exc}")
    return loaded.tokenizer


@pytest.fixture(scope="module")
def ll_tokenizer(tokenizer: Any) -> Any:
    return grammar.tokenizer_info(tokenizer, n_vocab=len(tokenizer), eos_token_ids=EOS).tokenizer


def llguidance_accepts(ll_tokenizer: Any, config: ConstrainedConfig, text: str) -> bool:
    """Whether a fresh llguidance matcher accepts ``text`` as a complete output."""
    matcher = LLMatcher(ll_tokenizer, grammar.grammar_source(config), log_level=0, limits=grammar.LIMITS)
    assert not matcher.is_error(), matcher.get_error()
    return matcher.consume_tokens(ll_tokenizer.tokenize_str(text)) and matcher.is_accepting()


# ---------------------------------------------------------------------------------------------
# The corpus: check_valid and llguidance agree on its valid and invalid texts.


def test_corpus_covers_every_constraint_kind() -> None:
    assert len(ENTRIES) >= 20
    kinds = [ConstrainedConfig(**entry["params"]).constraint for entry in ENTRIES]
    for kind in CONSTRAINTS:
        assert kinds.count(kind) >= 4, kind
    assert len({entry["id"] for entry in ENTRIES}) == len(ENTRIES)
    for entry in ENTRIES:
        assert entry["valid"] and entry["invalid"] and entry["prompt"] and entry["max_new_tokens"] >= 1


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_check_valid_on_corpus_examples(entry: dict[str, Any], ll_tokenizer: Any) -> None:
    config = ConstrainedConfig(**entry["params"])
    for text in entry["valid"]:
        assert check_valid(config, text, tokenizer=ll_tokenizer) is True, text
    for text in entry["invalid"]:
        assert check_valid(config, text, tokenizer=ll_tokenizer) is False, text


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_llguidance_agrees_on_corpus_examples(entry: dict[str, Any], ll_tokenizer: Any) -> None:
    config = ConstrainedConfig(**entry["params"])
    for text in entry["valid"]:
        assert llguidance_accepts(ll_tokenizer, config, text), text
    for text in entry["invalid"]:
        assert not llguidance_accepts(ll_tokenizer, config, text), text


# Simple patterns whose meaning is the same in Rust's regex crate and Python's regex module.
AGREEING_PATTERNS = ["[ab]+", "a*b?", "(ab|ba){1,2}", "[0-9]{2}-[0-9]", "a.b", "(a|b)*a", "[^a]{0,3}", r"\d\.\d"]


@settings(max_examples=80, deadline=None)
@given(pattern=st.sampled_from(AGREEING_PATTERNS), text=st.text(alphabet="ab01-. ", max_size=6))
def test_regex_check_agrees_with_llguidance(pattern: str, text: str, ll_tokenizer: Any) -> None:
    config = ConstrainedConfig(regex=pattern)
    assert check_valid(config, text) == llguidance_accepts(ll_tokenizer, config, text)


# ---------------------------------------------------------------------------------------------
# check_valid unit tests.


def test_regex_must_match_the_whole_text() -> None:
    config = ConstrainedConfig(regex="[0-9]{3}-[0-9]{4}")
    assert check_valid(config, "555-0123")
    assert not check_valid(config, "555-01234")  # re.search would accept these two
    assert not check_valid(config, "x555-0123")
    assert not check_valid(config, "555-0123\n")  # unlike re.match(...$)


def test_regex_rust_syntax_that_plain_re_would_misread() -> None:
    assert check_valid(ConstrainedConfig(regex=r"\p{Lu}\p{Ll}+"), "Éclair")
    assert not check_valid(ConstrainedConfig(regex=r"\p{Lu}\p{Ll}+"), "éclair")
    assert check_valid(ConstrainedConfig(regex="[[:alpha:]]+"), "abc")
    assert check_valid(ConstrainedConfig(regex=r"\Aabc\z"), "abc")


def test_regex_python_cannot_compile_is_uncheckable() -> None:
    with pytest.raises(Uncheckable, match="cannot compile"):
        check_valid(ConstrainedConfig(regex=r"\x{41}"), "A")  # fine in Rust, not in Python


def test_regex_catastrophic_backtracking_is_bounded() -> None:
    config = ConstrainedConfig(regex="(a|aa)+b")
    t0 = time.perf_counter()
    with pytest.raises(Uncheckable, match="out of time"):
        check_valid(config, "a" * 60 + "bc", timeout_s=0.2)
    assert time.perf_counter() - t0 < 3.0


def test_json_checks() -> None:
    config = ConstrainedConfig(
        json_schema={
            "type": "object",
            "properties": {"n": {"type": "number"}, "d": {"type": "string", "format": "date"}},
            "required": ["n"],
            "additionalProperties": False,
        }
    )
    assert check_valid(config, '{"n": 1}')
    assert check_valid(config, '{ "n" :1.5 ,"d":"2024-02-29"}')  # any JSON whitespace
    assert not check_valid(config, '{"n": NaN}')
    assert not check_valid(config, '{"n": Infinity}')
    assert not check_valid(config, '{"n": 1} trailing')
    assert not check_valid(config, '{"n": 1, "d": "2023-02-29"}')  # formats are checked
    assert not check_valid(config, "")


def test_json_hostile_pattern_is_bounded() -> None:
    config = ConstrainedConfig(json_schema={"type": "string", "pattern": "^(a|aa)+b$"})
    with pytest.raises(Uncheckable):
        check_valid(config, json.dumps("a" * 60 + "bc"), timeout_s=0.2)


def test_choices_are_exact_membership() -> None:
    config = ConstrainedConfig(choices=["yes", "no"])
    assert check_valid(config, "yes")
    for text in ["Yes", " yes", "yes ", "yesno", ""]:
        assert not check_valid(config, text)


def test_grammar_checked_by_lark_when_installed() -> None:
    pytest.importorskip("lark")
    config = ConstrainedConfig(grammar='start: NUMBER ("+" NUMBER)*\nNUMBER: /[0-9]+/\n')
    assert check_valid(config, "1+22+3")  # no tokenizer: Lark alone decides
    assert not check_valid(config, "1+")


def test_grammar_lark_cannot_read_falls_back_to_llguidance(ll_tokenizer: Any) -> None:
    config = ConstrainedConfig(grammar='start: "n=" %json {"type": "integer"}\n')  # llguidance's extension
    with pytest.raises(Uncheckable, match="no tokenizer"):
        check_valid(config, "n=5")
    assert check_valid(config, "n=5", tokenizer=ll_tokenizer)
    assert not check_valid(config, "n=five", tokenizer=ll_tokenizer)


# ---------------------------------------------------------------------------------------------
# Compilation: errors name their field; hostile input is bounded.

BAD = [
    ({"regex": "[0-9"}, "params.regex", "unclosed character class"),
    ({"regex": r"(a)\1"}, "params.regex", "backreferences are not supported"),
    ({"regex": "(?=a)a"}, "params.regex", "look-around"),
    ({"json_schema": {"type": "foo"}}, "params.json_schema", "foo"),
    ({"json_schema": {"$ref": "#/definitions/nope"}}, "params.json_schema", "nope"),
    ({"json_schema": {"type": "string", "minLength": 5, "maxLength": 2}}, "params.json_schema", ""),
    ({"grammar": "start: foo\n"}, "params.grammar", "unknown name"),
    ({"grammar": 'start: ("a"\n'}, "params.grammar", ""),
]


@pytest.mark.parametrize(("params", "field", "message"), BAD, ids=[b[0].__repr__()[:40] for b in BAD])
def test_compile_errors_name_the_field(params: dict[str, Any], field: str, message: str, tokenizer: Any) -> None:
    config = ConstrainedConfig(**params)
    with pytest.raises(GrammarError) as info:
        compile_grammar(config, tokenizer, n_vocab=len(tokenizer), eos_token_ids=EOS)
    assert info.value.field == field
    assert message in info.value.message
    assert info.value.message.strip()
    assert isinstance(info.value, ParamError)  # handled wherever parameter errors are
    assert str(info.value).startswith(f"{field}: ")


def _nested_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


HOSTILE = {
    "regex-dfa-blowup": {"regex": "[ab]*a[ab]{13}"},
    "regex-dfa-blowup-20": {"regex": "[ab]*a[ab]{20}"},
    "regex-nested-counts": {"regex": "((a{100}){100}){100}"},
    "json-nested-100": {"json_schema": _nested_schema(100)},
    "json-pattern-intersection": {
        "json_schema": {"allOf": [{"type": "string", "pattern": f"[ab]*a[ab]{{{n}}}"} for n in range(3, 12)]}
    },
    "grammar-deep-parens": {"grammar": "start: " + "(" * 200 + '"a"' + ")" * 200 + "\n"},
    "choices-many-long": {"choices": [f"{i:02d}" + "x" * 250 for i in range(64)]},
}


@pytest.mark.parametrize("params", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_constraints_compile_or_fail_in_time(params: dict[str, Any], tokenizer: Any) -> None:
    config = ConstrainedConfig(**params)
    grammar.tokenizer_info(tokenizer, n_vocab=len(tokenizer), eos_token_ids=EOS)  # cached: not timed
    t0 = time.perf_counter()
    try:
        compiled = compile_grammar(config, tokenizer, n_vocab=len(tokenizer), eos_token_ids=EOS)
    except GrammarError as exc:
        assert exc.field == f"params.{config.constraint}"
    else:
        matcher = compiled.new_matcher()
        assert not matcher.is_error()
        assert compiled.compile_ms < (COMPILE_TIMEOUT_S + 1) * 1000
    assert time.perf_counter() - t0 < COMPILE_TIMEOUT_S + 1.5


def test_dfa_blowup_regex_still_constrains(tokenizer: Any) -> None:
    config = ConstrainedConfig(regex="[ab]*a[ab]{13}")
    compiled = compile_grammar(config, tokenizer, n_vocab=len(tokenizer), eos_token_ids=EOS)
    matcher = compiled.new_matcher()
    text = "ab" * 3 + "a" + "b" * 13
    assert matcher.consume_tokens(compiled.tokenizer.tokenize_str(text))
    assert matcher.is_accepting()
    assert check_valid(config, text)
    assert not check_valid(config, "ab" * 3 + "b" * 14)


def test_compile_time_limit(tokenizer: Any) -> None:
    """The first mask of ((a{100}){100}){100} takes about a second: a 50 ms limit stops it."""
    config = ConstrainedConfig(regex="((a{100}){100}){100}")
    grammar.tokenizer_info(tokenizer, n_vocab=len(tokenizer), eos_token_ids=EOS)
    t0 = time.perf_counter()
    with pytest.raises(GrammarError, match=r"longer than 0\.05 s") as info:
        compile_grammar(config, tokenizer, n_vocab=len(tokenizer), eos_token_ids=EOS, timeout_s=0.05)
    assert time.perf_counter() - t0 < 0.5
    assert info.value.field == "params.regex"


def test_run_with_deadline() -> None:
    assert grammar.run_with_deadline(lambda: 7, 1.0, lambda: AssertionError("no timeout expected")) == 7
    with pytest.raises(ZeroDivisionError):
        grammar.run_with_deadline(lambda: 1 // 0, 1.0, lambda: AssertionError("no timeout expected"))
    release = threading.Event()
    with pytest.raises(TimeoutError):
        grammar.run_with_deadline(lambda: release.wait(5), 0.05, lambda: TimeoutError("late"))
    release.set()


def test_compiled_grammar_metadata(tokenizer: Any) -> None:
    config = ConstrainedConfig(choices=["yes", "no"])
    compiled = compile_grammar(config, tokenizer, n_vocab=len(tokenizer) + 64, eos_token_ids=EOS)
    assert compiled.kind == "choices" and compiled.field == "params.choices"
    assert compiled.n_vocab == len(tokenizer) + 64
    assert compiled.compile_ms > 0
    first, second = compiled.new_matcher(), compiled.new_matcher()
    assert first.consume_tokens(compiled.tokenizer.tokenize_str("yes")) and first.is_stopped()
    assert not second.is_stopped()  # independent copies


def test_tokenizer_info_is_cached(tokenizer: Any) -> None:
    n = len(tokenizer)
    first = grammar.tokenizer_info(tokenizer, n_vocab=n + 64, eos_token_ids=EOS)
    again = grammar.tokenizer_info(tokenizer, n_vocab=n + 64, eos_token_ids=EOS)
    assert again.tokenizer is first.tokenizer and again.build_ms == 0.0
    assert first.n_vocab == n + 64 and first.tokenizer.vocab_size == n + 64
    assert first.tokenizer.eos_tokens == EOS
    # A model narrower than its tokenizer: the mask keeps the tokenizer's width.
    assert grammar.tokenizer_info(tokenizer, n_vocab=n - 100, eos_token_ids=EOS).n_vocab == n


def test_choices_grammar_escapes_literals(ll_tokenizer: Any) -> None:
    choices = ['say "hi"', "back\\slash", "new\nline", "café", "x/y"]
    config = ConstrainedConfig(choices=choices)
    for choice in choices:
        assert llguidance_accepts(ll_tokenizer, config, choice), choice
    assert not llguidance_accepts(ll_tokenizer, config, "cafe")
