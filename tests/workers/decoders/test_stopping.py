"""Stop strings: the ``StopStrings`` checker, and every decoder ending a sequence at the token
that completes a stop string, exactly as if that token were an end-of-sequence token.

Two kinds of decoder test:

- tiny model, fake tokenizer: one token id ``X`` decodes to ``"#"``; stopping on ``"#"`` must
  give exactly the output of the same decoder with ``X`` added to the eos ids (same tokens,
  same scores; finish reason ``"stop"`` instead of ``"eos"`` where ``X`` ended the sequence).
  This pins down "treated like eos", beam searches' hypothesis scoring included.
- SmolLM2: a stop string taken from the middle of an unstopped output; the stopped output ends
  exactly at the token that completes it and (deterministic strategies, sampling with the same
  seed) is a prefix of the unstopped one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from workers.decoders import beam, constrained, contrastive, diverse_beam, greedy, sampling, speculative
from workers.decoders.stopping import StopStrings
from workers.strategies import (
    BeamConfig,
    ConstrainedConfig,
    ContrastiveConfig,
    DiverseBeamConfig,
    GreedyConfig,
    SamplingConfig,
    SpeculativeConfig,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small forwards: one thread avoids oversubscribing a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class FakeTokenizer:
    """Token ``i`` decodes to ``pieces[i]``; ids in ``special`` decode to nothing."""

    def __init__(self, pieces: dict[int, str], default: str = "", special: frozenset[int] = frozenset()) -> None:
        self.pieces = pieces
        self.default = default
        self.special = special

    def decode(
        self, ids: list[int], skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool = True
    ) -> str:
        assert skip_special_tokens and not clean_up_tokenization_spaces
        return "".join(self.pieces.get(i, self.default) for i in ids if i not in self.special)


WORDS = FakeTokenizer({0: "<eos>", 1: "Hel", 2: "lo", 3: " wor", 4: "ld", 5: "!", 6: " hello", 7: "l"}, special={0})


# --- the checker -------------------------------------------------------------------------------


def test_a_stop_string_spanning_several_tokens_hits_at_the_token_that_completes_it() -> None:
    stop = StopStrings(WORDS, ["lo wor"])
    assert [stop.hit([1, 2, 3, 4][:t]) for t in range(1, 5)] == [False, False, True, False]


def test_no_false_stop_on_a_prefix_of_a_stop_string() -> None:
    stop = StopStrings(WORDS, ["Hello world!"])
    assert not any(stop.hit([1, 2, 3, 4][:t]) for t in range(1, 5))
    assert stop.hit([1, 2, 3, 4, 5])


def test_several_stop_strings_any_of_them_hits() -> None:
    stop = StopStrings(WORDS, ["xyz", "ld", "!"])
    assert [stop.hit([1, 2, 3, 4, 5][:t]) for t in range(1, 6)] == [False, False, False, True, True]


def test_only_an_occurrence_the_latest_token_completed_counts() -> None:
    stop = StopStrings(WORDS, ["lo"])
    assert stop.hit([1, 2])
    assert not stop.hit([1, 2, 3])  # "lo" was there before " wor"
    assert stop.hit([1, 2, 3, 7, 2])  # a second "lo" ("l" + "lo" completes "llo", which holds "lo")
    assert StopStrings(WORDS, ["ll"]).hit([1, 7, 7])  # "Hel"+"l": "ll" straddles the last two tokens


def test_special_tokens_are_skipped_and_the_prompt_is_not_seen() -> None:
    stop = StopStrings(WORDS, ["<eos>"])
    assert not stop.hit([1, 0])
    assert not StopStrings(WORDS, ["x"]).hit([])


def test_cut_is_the_text_before_the_earliest_stop_string() -> None:
    stop = StopStrings(WORDS, ["END", "STOP", "bc"])
    assert stop.cut("a STOP b END") == "a "
    assert stop.cut("xabcEND") == "xa"
    assert stop.cut("nothing here") == "nothing here"
    assert stop.cut("STOP") == ""
    assert StopStrings(WORDS, ["abcd", "cd"]).cut("xabcd") == "x"  # earliest start wins


def test_empty_stop_strings_are_refused() -> None:
    with pytest.raises(ValueError):
        StopStrings(WORDS, ["ok", ""])


def test_hit_agrees_with_a_naive_check_on_a_real_tokenizer(smollm: Any) -> None:
    """On every prefix of real tokenizations (multi-byte characters included), ``hit`` is
    "the text contains a stop string and did not one token earlier" (where it never did)."""
    tok = smollm.tokenizer
    texts = ["Hello world! The café costs 5€ — naïve 日本語 text.\n\nNext line.", "aaaa bbbb aaaa", "é€日"]
    strings = ["world", "é", "€ —", "\n\n", "aa", "日本", "t.", "€日"]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        for s in strings:
            stop = StopStrings(tok, [s])
            seen = False
            for t in range(1, len(ids) + 1):
                now = s in stop.text(ids[:t])
                expected = now and not seen
                assert stop.hit(ids[:t]) == expected, (text, s, t)
                if expected:
                    break  # a decoder stops here
                seen = now


# --- tiny model: a stop string on token X is eos X ------------------------------------------


def _decoders() -> dict[str, tuple[Any, Any]]:
    return {
        "greedy": (greedy.decode, GreedyConfig()),
        "sampling": (sampling.decode, SamplingConfig(num_return_sequences=3, temperature=1.0)),
        "beam": (beam.decode, BeamConfig(num_beams=3, num_return_sequences=3)),
        "beam_early": (beam.decode, BeamConfig(num_beams=4, num_return_sequences=2, early_stopping=True)),
        "diverse_beam": (
            diverse_beam.decode,
            DiverseBeamConfig(num_beams=4, num_beam_groups=2, diversity_penalty=0.5, num_return_sequences=4),
        ),
        "contrastive": (contrastive.decode, ContrastiveConfig(penalty_alpha=0.6, top_k=4)),
        "speculative": (speculative.decode, SpeculativeConfig(proposer="prompt_lookup", prompt_lookup_num_tokens=3)),
        "speculative_sampling": (
            speculative.decode,
            SpeculativeConfig(proposer="prompt_lookup", prompt_lookup_num_tokens=3, do_sample=True),
        ),
    }


def _run(fn: Any, model: Any, ids: torch.Tensor, config: Any, **kwargs: Any) -> list[Any]:
    return fn(model, ids, config, generator=torch.Generator().manual_seed(7), **kwargs)


@pytest.mark.parametrize("name", list(_decoders()))
def test_a_stop_string_ends_a_sequence_exactly_like_an_eos_token(name: str, tiny_model: Any) -> None:
    fn, config = _decoders()[name]
    model, eos = tiny_model.model, tiny_model.eos_token_id
    ids = tiny_model.prompt(seed=3, length=6)
    budget = 14
    free = _run(fn, model, ids, config, max_new_tokens=budget, eos_token_ids=[eos])
    # X: a token from the middle of the first output (not eos), so that it does occur.
    first = [t for t in free[0].token_ids if t != eos]
    x = first[len(first) // 2]
    tok = FakeTokenizer({x: "#"}, default="a", special=frozenset({eos}))
    stopped = _run(fn, model, ids, config, max_new_tokens=budget, eos_token_ids=[eos], stop=StopStrings(tok, ["#"]))
    as_eos = _run(fn, model, ids, config, max_new_tokens=budget, eos_token_ids=[eos, x])
    assert [s.token_ids for s in stopped] == [s.token_ids for s in as_eos]
    if not name.startswith("speculative"):  # the proposer also reads eos ids, so drafts (not tokens) differ
        assert [s.score for s in stopped] == [s.score for s in as_eos]
    assert [s.group for s in stopped] == [s.group for s in as_eos]
    for s, e in zip(stopped, as_eos, strict=True):
        ends_in_x = bool(s.token_ids) and s.token_ids[-1] == x
        assert s.finish_reason == ("stop" if ends_in_x else e.finish_reason)
    if "beam" not in name:  # a beam search may rank its X-ended hypotheses out of the n-best
        assert stopped[0].finish_reason == "stop"
    # Nothing changes without stop strings.
    again = _run(fn, model, ids, config, max_new_tokens=budget, eos_token_ids=[eos], stop=None)
    assert [(s.token_ids, s.finish_reason, s.score) for s in again] == [
        (s.token_ids, s.finish_reason, s.score) for s in free
    ]


@pytest.mark.parametrize("name", ["beam", "beam_early", "diverse_beam", "greedy", "sampling"])
def test_many_tokens_completing_stop_strings_still_behave_like_eos(name: str, tiny_model: Any) -> None:
    """A third of the vocabulary completes the stop string: beam searches must look past their
    usual ``K`` candidates to keep ``B`` beams running, as they do with that many eos ids."""
    fn, config = _decoders()[name]
    model, eos = tiny_model.model, tiny_model.eos_token_id
    ids = tiny_model.prompt(seed=5, length=6)
    hashes = [t for t in range(3, tiny_model.vocab_size) if t % 3 == 0]
    tok = FakeTokenizer(dict.fromkeys(hashes, "#"), default="a", special=frozenset({eos}))
    stopped = _run(fn, model, ids, config, max_new_tokens=10, eos_token_ids=[eos], stop=StopStrings(tok, ["#"]))
    as_eos = _run(fn, model, ids, config, max_new_tokens=10, eos_token_ids=[eos, *hashes])
    assert [(s.token_ids, s.score, s.group) for s in stopped] == [(s.token_ids, s.score, s.group) for s in as_eos]
    for s, e in zip(stopped, as_eos, strict=True):
        assert s.finish_reason == ("stop" if e.finish_reason == "eos" and s.token_ids[-1] != eos else e.finish_reason)


def test_eos_wins_over_a_stop_string_on_the_same_token(tiny_model: Any) -> None:
    model = tiny_model.model
    ids = tiny_model.prompt(seed=3, length=6)
    [free] = greedy.decode(model, ids, GreedyConfig(), max_new_tokens=10, eos_token_ids=[])
    x = free.token_ids[4]
    tok = FakeTokenizer({x: "#"}, default="a")  # X is not special here: it decodes to "#"
    [seq] = greedy.decode(
        model, ids, GreedyConfig(), max_new_tokens=10, eos_token_ids=[x], stop=StopStrings(tok, ["#"])
    )
    assert seq.token_ids == free.token_ids[: free.token_ids.index(x) + 1]
    assert seq.finish_reason == "eos"


# --- SmolLM2: a stop string from the middle of the unstopped output ----------------------------

BUDGET = 24


def _stop_string(tok: Any, token_ids: list[int]) -> str:
    """A stop string from the middle of the decoded text, of a few visible characters."""
    text = tok.decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    mid = len(text) // 2
    s = text[mid : mid + 5]
    assert s.strip(), f"no usable stop string in {text!r}"
    return s


def _expected_len(tok: Any, token_ids: list[int], s: str) -> int:
    """The number of tokens up to the one whose text first contains ``s`` (naively)."""
    for t in range(1, len(token_ids) + 1):
        if s in tok.decode(token_ids[:t], skip_special_tokens=True, clean_up_tokenization_spaces=False):
            return t
    raise AssertionError(f"{s!r} not in the output")


def _check_stopped(tok: Any, seq: Any, free_ids: list[int], s: str) -> None:
    n = _expected_len(tok, free_ids, s)
    assert seq.finish_reason == "stop"
    assert seq.token_ids == free_ids[:n]
    text = tok.decode(seq.token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert s in text and s not in tok.decode(seq.token_ids[:-1], skip_special_tokens=True)
    assert StopStrings(tok, [s]).cut(text) == text[: text.index(s)]


def _smol(fn: Any, smollm: Any, ids: torch.Tensor, config: Any, stop: StopStrings | None = None) -> list[Any]:
    return fn(
        smollm.model,
        ids,
        config,
        max_new_tokens=BUDGET,
        eos_token_ids=smollm.eos_token_ids,
        generator=torch.Generator().manual_seed(11),
        tokenizer=smollm.tokenizer,
        stop=stop,
    )


@pytest.mark.parametrize(
    "name, config",
    [
        ("greedy", GreedyConfig()),
        ("contrastive", ContrastiveConfig(penalty_alpha=0.6, top_k=4)),
        ("speculative", SpeculativeConfig(proposer="prompt_lookup")),
        ("constrained", ConstrainedConfig(regex="[A-Za-z ,.'\n]{1,400}")),
        ("sampling", SamplingConfig(num_return_sequences=2, temperature=0.9)),
    ],
)
def test_smollm_stops_at_a_stop_string_from_the_unstopped_output(
    name: str, config: Any, smollm: Any, smollm_prompts: Any
) -> None:
    fn = {
        "greedy": greedy.decode,
        "contrastive": contrastive.decode,
        "speculative": speculative.decode,
        "constrained": constrained.decode,
        "sampling": sampling.decode,
    }[name]
    tok = smollm.tokenizer
    ids = smollm_prompts["chat_poem"]
    free = _smol(fn, smollm, ids, config)
    s = _stop_string(tok, free[0].token_ids)
    stopped = _smol(fn, smollm, ids, config, StopStrings(tok, [s]))
    _check_stopped(tok, stopped[0], free[0].token_ids, s)
    for seq, ref in zip(stopped[1:], free[1:], strict=True):  # the other samples: stopped only if they hold s
        text = tok.decode(ref.token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if s in text:
            _check_stopped(tok, seq, ref.token_ids, s)
        else:
            assert (seq.token_ids, seq.finish_reason) == (ref.token_ids, ref.finish_reason)
    if name == "speculative":
        [reference] = _smol(greedy.decode, smollm, ids, GreedyConfig(), StopStrings(tok, [s]))
        assert stopped[0].token_ids == reference.token_ids and stopped[0].finish_reason == "stop"


@pytest.mark.parametrize(
    "fn, config",
    [
        (beam.decode, BeamConfig(num_beams=3, num_return_sequences=2)),
        (diverse_beam.decode, DiverseBeamConfig(num_beams=4, num_beam_groups=2, num_return_sequences=2)),
        (constrained.decode, ConstrainedConfig(regex="[A-Za-z ,.'\n]{1,400}", decoding="beam", num_beams=3)),
    ],
    ids=["beam", "diverse_beam", "constrained_beam"],
)
def test_smollm_beam_searches_finish_hypotheses_at_a_stop_string(
    fn: Any, config: Any, smollm: Any, smollm_prompts: Any
) -> None:
    """Stopping changes which hypotheses a beam search finishes, so the best output need not be a
    prefix of the unstopped best in general; every "stop" output must end exactly at the token
    completing the string, and here (checked) the best one is the unstopped best's prefix."""
    tok = smollm.tokenizer
    ids = smollm_prompts["chat_poem"]
    free = _smol(fn, smollm, ids, config)
    s = _stop_string(tok, free[0].token_ids)
    stopped = _smol(fn, smollm, ids, config, StopStrings(tok, [s]))
    _check_stopped(tok, stopped[0], free[0].token_ids, s)
    for seq in stopped:
        if seq.finish_reason == "stop":
            assert _expected_len(tok, seq.token_ids, s) == len(seq.token_ids)
        else:
            text = tok.decode(seq.token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            assert s not in text
