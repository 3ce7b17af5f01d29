"""Constrained decoding (workers.decoders.constrained).

Two models:

- SmolLM2-135M-Instruct over the corpus (``data/constraints_corpus.json``): greedy on every
  entry, sampling and beam search on a few; every output that finished (eos or constraint)
  must pass ``check_valid``, an independent check, and the metrics must be sane.
- A tiny random Llama that uses SmolLM2's tokenizer but has 64 more output rows than it has
  tokens (a padded embedding), fast enough to check the decoder step by step: every token,
  score, masked mass and forced flag is recomputed by a teacher-forced replay without KV cache
  and with a fresh matcher, masks applied with llguidance's own NumPy helper. A beam's
  matcher that did not follow the beam reordering would show up as a disallowed token or a
  different score.

Every test runs torch single-threaded (restored afterwards): on this 2-core machine shared
with other work, two intra-op threads make a 135M model ~5x slower.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from llguidance import numpy as llnp
from transformers import LlamaConfig, LlamaForCausalLM

from workers import grammar
from workers.decoders import DECODERS, constrained
from workers.decoders.base import GeneratedSequence
from workers.grammar import GrammarError
from workers.strategies import ConstrainedConfig, ParamError

CORPUS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "constraints_corpus.json").read_text())[
    "entries"
]
BY_ID = {entry["id"]: entry for entry in CORPUS}
METRICS = {
    "constraint",
    "decoding",
    "compile_ms",
    "tokenizer_ms",
    "mask_ms_mean",
    "mask_ms_p99",
    "forced_tokens",
    "masked_mass_mean",
    "masked_mass_max",
    "valid",
}
PAD_ROWS = 64  # the tiny model's output rows beyond the tokenizer


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def chat_ids(tokenizer: Any, content: str) -> torch.Tensor:
    enc = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, return_tensors="pt"
    )
    return enc["input_ids"] if hasattr(enc, "keys") else enc  # [1, prompt_len]


def run(model: Any, tokenizer: Any, input_ids: torch.Tensor, config: ConstrainedConfig, **kwargs: Any) -> Any:
    kwargs.setdefault("eos_token_ids", [tokenizer.eos_token_id])
    kwargs.setdefault("generator", torch.Generator().manual_seed(0))
    return constrained.decode(model, input_ids, config, tokenizer=tokenizer, **kwargs)


def text_of(tokenizer: Any, seq: GeneratedSequence, eos: list[int]) -> str:
    body = seq.token_ids[:-1] if seq.finish_reason == "eos" else seq.token_ids
    assert not set(body) & set(eos), "eos only ever ends an output"
    return tokenizer.decode(body, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def check_output(seq: GeneratedSequence, config: ConstrainedConfig, tokenizer: Any, eos: list[int], budget: int) -> str:
    """The properties every constrained output has; returns its text."""
    n = len(seq.token_ids)
    assert 1 <= n <= budget
    assert seq.finish_reason in ("eos", "constraint", "length")
    if seq.finish_reason == "eos":
        assert seq.token_ids[-1] in eos
    if seq.finish_reason == "length":
        assert n == budget
    assert all(0 <= t < len(tokenizer) for t in seq.token_ids), "never a padded or out-of-tokenizer id"
    text = text_of(tokenizer, seq, eos)

    m = seq.metrics
    assert set(m) >= METRICS
    assert m["constraint"] == config.constraint and m["decoding"] == config.decoding
    assert m["compile_ms"] > 0 and m["tokenizer_ms"] >= 0
    assert m["mask_ms_mean"] >= 0 and m["mask_ms_p99"] >= 0
    assert 0 <= m["masked_mass_mean"] <= m["masked_mass_max"] + 1e-9 <= 1 + 1e-9
    assert 0 <= m["forced_tokens"] <= n
    assert seq.token_info is not None and len(seq.token_info) == n
    assert sum(info["forced"] for info in seq.token_info) == m["forced_tokens"]
    assert all(0.0 <= info["masked_mass"] <= 1.0 for info in seq.token_info)
    assert max(info["masked_mass"] for info in seq.token_info) == pytest.approx(m["masked_mass_max"], abs=1e-6)
    assert seq.score is not None and math.isfinite(seq.score) and seq.score <= 1e-6

    assert m["valid"] == grammar.check_valid(config, text, tokenizer=tokenizer)
    if seq.finish_reason in ("eos", "constraint"):
        assert m["valid"] is True, f"{config.constraint} output {text!r} is invalid"
    if config.constraint == "choices" and seq.finish_reason != "length":
        assert text in config.choices
    return text


# ---------------------------------------------------------------------------------------------
# SmolLM2 over the corpus.


@pytest.fixture(scope="module")
def corpus_greedy(smollm: Any) -> dict[str, tuple[GeneratedSequence, float]]:
    """Greedy outputs (and seconds) for every corpus entry, decoded once for the module."""
    tok = smollm.tokenizer
    out: dict[str, tuple[GeneratedSequence, float]] = {}
    for entry in CORPUS:
        config = ConstrainedConfig(**entry["params"])
        t0 = time.perf_counter()
        [seq] = run(
            smollm.model,
            tok,
            chat_ids(tok, entry["prompt"]),
            config,
            max_new_tokens=entry["max_new_tokens"],
            eos_token_ids=smollm.eos_token_ids,
        )
        out[entry["id"]] = (seq, time.perf_counter() - t0)
    return out


@pytest.mark.parametrize("entry_id", list(BY_ID))
def test_corpus_greedy_outputs_are_valid(entry_id: str, corpus_greedy: Any, smollm: Any) -> None:
    entry = BY_ID[entry_id]
    seq, _ = corpus_greedy[entry_id]
    config = ConstrainedConfig(**entry["params"])
    check_output(seq, config, smollm.tokenizer, smollm.eos_token_ids, entry["max_new_tokens"])


def test_corpus_budgets_let_greedy_complete(corpus_greedy: Any) -> None:
    """The budgets are chosen so outputs can complete: nearly all must (all do on CPU float32)."""
    cut = [entry_id for entry_id, (seq, _) in corpus_greedy.items() if seq.finish_reason == "length"]
    assert len(cut) <= len(CORPUS) // 10, f"cut by the length limit: {cut}"
    kinds = {BY_ID[i]["id"]: ConstrainedConfig(**BY_ID[i]["params"]).constraint for i in BY_ID}
    choices = [i for i, k in kinds.items() if k == "choices"]
    assert all(corpus_greedy[i][0].finish_reason == "constraint" for i in choices), "a choice ends the output"


SAMPLED = ["regex-phone", "json-sentiment-enum", "grammar-word-list", "choices-capital"]


@pytest.mark.parametrize("entry_id", SAMPLED)
def test_sampling_outputs_are_valid(entry_id: str, smollm: Any) -> None:
    entry = BY_ID[entry_id]
    config = ConstrainedConfig(**entry["params"], decoding="sampling", num_return_sequences=2, temperature=0.8)
    seqs = run(
        smollm.model,
        smollm.tokenizer,
        chat_ids(smollm.tokenizer, entry["prompt"]),
        config,
        max_new_tokens=entry["max_new_tokens"],
        eos_token_ids=smollm.eos_token_ids,
        generator=torch.Generator().manual_seed(1234),
    )
    assert len(seqs) == 2
    for seq in seqs:
        check_output(seq, config, smollm.tokenizer, smollm.eos_token_ids, entry["max_new_tokens"])


BEAMED = ["regex-time", "json-boolean", "choices-colour"]


@pytest.mark.parametrize("entry_id", BEAMED)
def test_beam_outputs_are_valid_and_ranked(entry_id: str, smollm: Any) -> None:
    entry = BY_ID[entry_id]
    config = ConstrainedConfig(**entry["params"], decoding="beam", num_beams=3, num_return_sequences=2)
    seqs = run(
        smollm.model,
        smollm.tokenizer,
        chat_ids(smollm.tokenizer, entry["prompt"]),
        config,
        max_new_tokens=entry["max_new_tokens"],
        eos_token_ids=smollm.eos_token_ids,
    )
    assert len(seqs) == 2
    assert seqs[0].score >= seqs[1].score
    assert seqs[0].token_ids != seqs[1].token_ids
    for seq in seqs:
        check_output(seq, config, smollm.tokenizer, smollm.eos_token_ids, entry["max_new_tokens"])


def test_engine_registry() -> None:
    assert DECODERS["constrained"] is constrained.decode


# ---------------------------------------------------------------------------------------------
# A tiny model with SmolLM2's tokenizer and a padded output layer: exact step-by-step checks.


class Biased:
    """A model whose logits get ``bias`` added: steers the tiny model towards or away from tokens."""

    def __init__(self, model: Any, bias: torch.Tensor) -> None:
        self._model = model
        self.bias = bias  # [vocab]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def forward(self, *args: Any, logits_to_keep: int = 0, **kwargs: Any) -> Any:  # the signature kv inspects
        return self(*args, logits_to_keep=logits_to_keep, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self._model(*args, **kwargs)
        out.logits = out.logits + self.bias
        return out


class Tiny:
    """A 2-layer random Llama with SmolLM2's tokenizer and PAD_ROWS extra output rows."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.vocab = len(tokenizer) + PAD_ROWS
        self.eos = [int(tokenizer.eos_token_id)]
        config = LlamaConfig(
            vocab_size=self.vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            bos_token_id=1,
            eos_token_id=self.eos[0],
            pad_token_id=0,
            initializer_range=0.3,
            tie_word_embeddings=False,
        )
        torch.manual_seed(0)
        self.model = Biased(LlamaForCausalLM(config).eval(), torch.zeros(self.vocab))
        self.prompt = tokenizer("Answer:", return_tensors="pt")["input_ids"]  # [1, prompt_len]

    def boost(self, token_ids: list[int] | slice, amount: float) -> None:
        """Add ``amount`` to the logits of ``token_ids`` at every step."""
        self.model.bias[token_ids] += amount


@pytest.fixture(scope="module")
def tiny(smollm: Any) -> Tiny:
    return Tiny(smollm.tokenizer)


def replay(tiny: Tiny, config: ConstrainedConfig, seq: GeneratedSequence) -> dict[str, Any]:
    """Teacher-force ``seq`` without a KV cache; recompute every step's mask with a fresh matcher.

    Returns the per-step allowed counts, masked masses, constrained log-probabilities and
    whether each token was the masked argmax.
    """
    compiled = grammar.compile_grammar(config, tiny.tokenizer, n_vocab=tiny.vocab, eos_token_ids=tiny.eos)
    matcher = compiled.new_matcher()
    bitmask = llnp.allocate_token_bitmask(1, compiled.n_vocab)  # [1, words]
    steps: dict[str, list[Any]] = {"n_allowed": [], "masked_mass": [], "logprob": [], "warped": [], "argmax": []}
    ids = tiny.prompt
    for token in seq.token_ids:
        with torch.inference_mode():
            raw = tiny.model(input_ids=ids).logits[0, -1].float().numpy()  # [V]
        llnp.fill_next_token_bitmask(matcher, bitmask)
        masked = raw.copy()[None, :]  # [1, V]
        llnp.apply_token_bitmask_inplace(masked, bitmask)
        masked = masked[0]
        allowed = np.isfinite(masked)  # [V]
        assert allowed[token], f"token {token} was not allowed at this step"
        probs = np.exp(raw.astype(np.float64) - raw.max())
        probs /= probs.sum()
        steps["n_allowed"].append(int(allowed.sum()))
        steps["masked_mass"].append(float(probs[~allowed].sum()))
        steps["logprob"].append(float(torch.log_softmax(torch.from_numpy(masked), -1)[token]))
        warped = torch.from_numpy(masked) / config.temperature
        steps["warped"].append(float(torch.log_softmax(warped, -1)[token]))
        steps["argmax"].append(int(np.argmax(masked)) == token)
        if token not in tiny.eos:
            assert matcher.consume_token(token)
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    steps["stopped"] = matcher.is_stopped()
    return steps


def check_replay(
    tiny: Tiny, config: ConstrainedConfig, seq: GeneratedSequence, score_kind: str, budget: int
) -> dict[str, Any]:
    steps = replay(tiny, config, seq)
    assert [info["forced"] for info in seq.token_info] == [n == 1 for n in steps["n_allowed"]]
    assert [info["masked_mass"] for info in seq.token_info] == pytest.approx(steps["masked_mass"], abs=1e-4)
    if seq.finish_reason == "constraint":
        assert steps["stopped"]
    else:
        assert not steps["stopped"]
    if score_kind == "greedy":
        assert all(steps["argmax"])
        assert seq.score == pytest.approx(sum(steps["logprob"]), abs=1e-3)
    elif score_kind == "sampling":
        assert seq.score == pytest.approx(sum(steps["warped"]), abs=1e-3)
    else:
        penalty = len(seq.token_ids) ** config.length_penalty
        assert seq.score == pytest.approx(sum(steps["logprob"]) / penalty, abs=1e-3)
    check_output(seq, config, tiny.tokenizer, tiny.eos, budget)
    return steps


TINY_BUDGET = 16
TINY_CONSTRAINTS = {
    "regex": {"regex": "[a-d]{1,3}(-[a-d]{1,3}){0,2}"},
    "json": {
        "json_schema": {
            "type": "object",
            "properties": {"k": {"enum": ["ab", "abc", "b"]}, "n": {"type": "integer", "minimum": 0, "maximum": 99}},
            "required": ["k", "n"],
            "additionalProperties": False,
        }
    },
    "grammar": {"grammar": 'start: item ("," item)?\nitem: "x" | "xy" | "(" DIGIT ")"\nDIGIT: /[0-9]/\n'},
    "choices": {"choices": ["alpha", "alphabet", "beta", "gamma ray"]},
}


@pytest.mark.parametrize("kind", list(TINY_CONSTRAINTS))
def test_tiny_greedy_matches_replay(kind: str, tiny: Tiny) -> None:
    config = ConstrainedConfig(**TINY_CONSTRAINTS[kind])
    [seq] = run(tiny.model, tiny.tokenizer, tiny.prompt, config, max_new_tokens=TINY_BUDGET, eos_token_ids=tiny.eos)
    check_replay(tiny, config, seq, "greedy", TINY_BUDGET)


@pytest.mark.parametrize("kind", list(TINY_CONSTRAINTS))
def test_tiny_beam_matches_replay(kind: str, tiny: Tiny) -> None:
    """Per-beam matchers follow reordering: every returned beam replays exactly."""
    config = ConstrainedConfig(**TINY_CONSTRAINTS[kind], decoding="beam", num_beams=4, num_return_sequences=4)
    seqs = run(tiny.model, tiny.tokenizer, tiny.prompt, config, max_new_tokens=TINY_BUDGET, eos_token_ids=tiny.eos)
    assert 1 <= len(seqs) <= 4
    assert [s.score for s in seqs] == sorted((s.score for s in seqs), reverse=True)
    assert len({tuple(s.token_ids) for s in seqs}) == len(seqs)
    for seq in seqs:
        check_replay(tiny, config, seq, "beam", TINY_BUDGET)


@pytest.mark.parametrize("kind", list(TINY_CONSTRAINTS))
def test_tiny_sampling_matches_replay(kind: str, tiny: Tiny) -> None:
    config = ConstrainedConfig(
        **TINY_CONSTRAINTS[kind], decoding="sampling", num_return_sequences=3, temperature=1.5, top_k=0
    )
    seqs = run(tiny.model, tiny.tokenizer, tiny.prompt, config, max_new_tokens=TINY_BUDGET, eos_token_ids=tiny.eos)
    assert len(seqs) == 3
    for seq in seqs:
        check_replay(tiny, config, seq, "sampling", TINY_BUDGET)


def test_tiny_sampling_is_seeded(tiny: Tiny) -> None:
    config = ConstrainedConfig(regex="[a-z]{2,8}", decoding="sampling", num_return_sequences=4, temperature=2.0)

    def draw(seed: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(seed)
        seqs = run(tiny.model, tiny.tokenizer, tiny.prompt, config, max_new_tokens=8, generator=gen)
        return [s.token_ids for s in seqs]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_padded_rows_are_masked_even_when_the_model_wants_them(smollm: Any) -> None:
    """The model puts nearly all its mass on the 64 ids past the tokenizer: they stay masked."""
    model = Tiny(smollm.tokenizer)
    model.boost(slice(len(model.tokenizer), None), 50.0)
    with torch.inference_mode():
        top = int(model.model(input_ids=model.prompt).logits[0, -1].argmax())
    assert top >= len(model.tokenizer)
    config = ConstrainedConfig(regex="[0-9]{3}")
    [seq] = run(model.model, model.tokenizer, model.prompt, config, max_new_tokens=5, eos_token_ids=model.eos)
    text = check_output(seq, config, model.tokenizer, model.eos, 5)
    assert seq.finish_reason == "constraint" and len(text) == 3
    assert seq.metrics["masked_mass_max"] > 0.99


def test_finish_reasons(smollm: Any) -> None:
    tiny_eos = Tiny(smollm.tokenizer)
    tiny_eos.boost(tiny_eos.eos, 50.0)  # the model wants to stop at once
    # eos is disallowed until the output is complete, then the model takes it.
    [seq] = run(
        tiny_eos.model, tiny_eos.tokenizer, tiny_eos.prompt, ConstrainedConfig(regex="[0-9]{1,3}"), max_new_tokens=5
    )
    assert seq.finish_reason == "eos" and len(seq.token_ids) == 2 and seq.token_ids[-1] in tiny_eos.eos
    assert seq.token_info[0]["masked_mass"] > 0.99 and seq.metrics["valid"] is True

    tiny_no_eos = Tiny(smollm.tokenizer)
    tiny_no_eos.boost(tiny_no_eos.eos, -50.0)
    config = ConstrainedConfig(regex="[a-z]+")
    [seq] = run(tiny_no_eos.model, tiny_no_eos.tokenizer, tiny_no_eos.prompt, config, max_new_tokens=3)
    assert seq.finish_reason == "length" and len(seq.token_ids) == 3
    assert seq.metrics["valid"] is True  # any prefix of [a-z]+ is already a match

    [seq] = run(
        tiny_no_eos.model,
        tiny_no_eos.tokenizer,
        tiny_no_eos.prompt,
        ConstrainedConfig(regex="[a-z]{40}"),
        max_new_tokens=3,
    )
    assert seq.finish_reason == "length" and seq.metrics["valid"] is False


def test_forced_tokens_are_counted(tiny: Tiny) -> None:
    config = ConstrainedConfig(choices=["x"])  # "x" is one token: the only choice at step 0
    [seq] = run(tiny.model, tiny.tokenizer, tiny.prompt, config, max_new_tokens=4)
    assert seq.finish_reason == "constraint" and tiny.tokenizer.decode(seq.token_ids) == "x"
    assert seq.token_info == [{"forced": True, "masked_mass": seq.token_info[0]["masked_mass"]}]
    assert seq.metrics["forced_tokens"] == 1


def test_beam_with_fewer_outputs_than_beams(tiny: Tiny) -> None:
    config = ConstrainedConfig(choices=["x", "z"], decoding="beam", num_beams=4, num_return_sequences=4)
    seqs = run(tiny.model, tiny.tokenizer, tiny.prompt, config, max_new_tokens=4)
    texts = [tiny.tokenizer.decode(s.token_ids) for s in seqs]
    assert len(seqs) == 2 and set(texts) == {"x", "z"}  # one token each: only two outputs exist
    assert all(s.finish_reason == "constraint" for s in seqs)


def test_on_first_token_called_once(tiny: Tiny) -> None:
    for decoding, extra in [("greedy", {}), ("sampling", {"num_return_sequences": 2}), ("beam", {"num_beams": 2})]:
        calls: list[int] = []
        config = ConstrainedConfig(regex="[a-z]{2,5}", decoding=decoding, **extra)
        run(tiny.model, tiny.tokenizer, tiny.prompt, config, max_new_tokens=6, on_first_token=partial(calls.append, 1))
        assert calls == [1], decoding


def test_compile_error_before_any_forward(tiny: Tiny, counting_model: Any) -> None:
    model = counting_model(tiny.model)
    with pytest.raises(GrammarError) as info:
        run(model, tiny.tokenizer, tiny.prompt, ConstrainedConfig(grammar="start: nope\n"), max_new_tokens=4)
    assert info.value.field == "params.grammar" and "nope" in info.value.message
    assert model.calls == []


def test_hostile_regex_decodes_in_bounded_time(tiny: Tiny) -> None:
    config = ConstrainedConfig(regex="[ab]*a[ab]{13}")
    t0 = time.perf_counter()
    [seq] = run(tiny.model, tiny.tokenizer, tiny.prompt, config, max_new_tokens=20)
    assert time.perf_counter() - t0 < 10
    check_output(seq, config, tiny.tokenizer, tiny.eos, 20)
    assert seq.metrics["mask_ms_p99"] < 100


def test_entry_checks(tiny: Tiny) -> None:
    with pytest.raises(ValueError, match="tokenizer"):
        constrained.decode(
            tiny.model,
            tiny.prompt,
            ConstrainedConfig(regex="a"),
            max_new_tokens=2,
            eos_token_ids=tiny.eos,
            generator=torch.Generator(),
            tokenizer=None,
        )
    with pytest.raises(ParamError) as info:
        run(
            tiny.model,
            tiny.tokenizer,
            tiny.prompt,
            ConstrainedConfig(regex="a", num_return_sequences=2),
            max_new_tokens=2,
        )
    assert info.value.field == "params.num_return_sequences"
    with pytest.raises(ValueError, match="max_new_tokens"):
        run(tiny.model, tiny.tokenizer, tiny.prompt, ConstrainedConfig(regex="a"), max_new_tokens=0)


def test_valid_is_null_when_python_cannot_check(tiny: Tiny) -> None:
    """\\x{41} is "A" to llguidance (Rust syntax) but not a Python regex: valid is unknown."""
    config = ConstrainedConfig(regex=r"\x{41}{2}")
    [seq] = run(tiny.model, tiny.tokenizer, tiny.prompt, config, max_new_tokens=4)
    assert seq.finish_reason == "constraint" and tiny.tokenizer.decode(seq.token_ids) == "AA"
    assert seq.metrics["valid"] is None


def test_engine_limit_hit_while_decoding_is_a_grammar_error(tiny: Tiny) -> None:
    """((a{100}){100}){100} compiles, but its lexer runs out of room after the first token."""
    config = ConstrainedConfig(regex="((a{100}){100}){100}")
    with pytest.raises(GrammarError) as info:
        run(tiny.model, tiny.tokenizer, tiny.prompt, config, max_new_tokens=4)
    assert info.value.field == "params.regex" and "while decoding" in info.value.message


def test_accelerator_mask_path_matches_numpy_path(tiny: Tiny) -> None:
    """The torch path used off-CPU (run here on CPU tensors) masks exactly as the NumPy path."""
    config = ConstrainedConfig(regex="[a-d]{1,3}")
    compiled = grammar.compile_grammar(config, tiny.tokenizer, n_vocab=tiny.vocab, eos_token_ids=tiny.eos)
    raw = torch.randn(tiny.vocab, generator=torch.Generator().manual_seed(0))  # [V]
    numpy_path = constrained._Masker(compiled, tiny.vocab, torch.device("cpu"))
    torch_path = constrained._Masker(compiled, tiny.vocab, torch.device("cpu"))
    torch_path.on_cpu = False
    row = constrained._Row(compiled.new_matcher())
    a, b = numpy_path.step(row, raw), torch_path.step(row, raw)
    assert torch.equal(a.masked, b.masked)
    assert a.n_allowed == b.n_allowed > 1
    assert a.masked_mass == pytest.approx(b.masked_mass, abs=1e-9)
    assert torch.isinf(a.masked[len(tiny.tokenizer) :]).all()  # padded rows
