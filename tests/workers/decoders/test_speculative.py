"""Speculative decoding: greedy verification gives greedy decoding's output token for token,
rejection sampling keeps the target's distribution, and the metrics and token labels add up.

The distribution tests compare empirical counts with the exact distribution (enumerated with
full forwards of the tiny target) by a chi-square test whose p-value comes from
``torch.special.gammaincc`` (no scipy). Each one also runs the same statistic on the output of
a deliberately wrong verifier, to show the test would catch it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM

from workers.decoders import DECODERS, greedy, logits, sampling, speculative
from workers.strategies import GreedyConfig, SamplingConfig, SpeculativeConfig

LABELS = {"accepted", "corrected", "bonus", "target"}
HYPOTHESIS = settings(max_examples=25, deadline=None, derandomize=True)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run many small forwards: one thread avoids oversubscribing a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lookup_config(**params) -> SpeculativeConfig:
    return SpeculativeConfig(proposer="prompt_lookup", **params)


def draft_config(**params) -> SpeculativeConfig:
    return SpeculativeConfig(proposer="draft_model", draft_model="draft", **params)


def run_spec(model, input_ids, config, *, max_new_tokens, eos_token_ids, seed=0, draft_model=None, **kwargs):
    [seq] = speculative.decode(
        model,
        input_ids,
        config,
        max_new_tokens=max_new_tokens,
        eos_token_ids=eos_token_ids,
        generator=torch.Generator().manual_seed(seed),
        draft_model=draft_model,
        **kwargs,
    )
    return seq


def run_greedy(model, input_ids, *, max_new_tokens, eos_token_ids):
    [seq] = greedy.decode(
        model,
        input_ids,
        GreedyConfig(),
        max_new_tokens=max_new_tokens,
        eos_token_ids=eos_token_ids,
        generator=torch.Generator().manual_seed(0),
    )
    return seq


def check_bookkeeping(seq, *, max_new_tokens, eos_token_ids) -> Counter:
    """The invariants tying tokens, labels and metrics together; returns the label counts."""
    m = seq.metrics
    assert set(m) == {
        "drafted",
        "accepted",
        "acceptance_rate",
        "verification_steps",
        "mean_accepted_length",
        "target_forwards",
        "tokens_per_verification",
        "draft_forwards",
    }
    assert 1 <= len(seq.token_ids) <= max_new_tokens
    assert seq.token_info is not None and len(seq.token_info) == len(seq.token_ids)
    labels = Counter(info["spec"] for info in seq.token_info)
    assert set(labels) <= LABELS
    assert seq.token_info[0] == {"spec": "target"}  # the prefill's token: no draft yet
    assert labels["accepted"] == m["accepted"] <= m["drafted"]
    assert len(seq.token_ids) == labels["accepted"] + labels["corrected"] + labels["bonus"] + labels["target"]
    # Each verification step ends with one corrected or bonus token, unless an eos inside its
    # accepted drafts ended the output; each other forward (prefill, plain steps) gives one token.
    cut_by_eos = seq.finish_reason == "eos" and seq.token_info[-1]["spec"] == "accepted"
    assert m["verification_steps"] == labels["corrected"] + labels["bonus"] + cut_by_eos
    assert m["target_forwards"] == m["verification_steps"] + labels["target"]
    assert m["drafted"] >= m["verification_steps"]
    assert m["acceptance_rate"] == (m["accepted"] / m["drafted"] if m["drafted"] else None)
    expected_mean = m["accepted"] / m["verification_steps"] if m["verification_steps"] else None
    assert m["mean_accepted_length"] == expected_mean
    assert m["tokens_per_verification"] == len(seq.token_ids) / m["target_forwards"]
    eos = set(eos_token_ids)
    assert not eos.intersection(seq.token_ids[:-1])
    if seq.finish_reason == "eos":
        assert seq.token_ids[-1] in eos
    else:
        assert seq.finish_reason == "length" and len(seq.token_ids) == max_new_tokens
    return labels


def test_registry_maps_speculative_to_its_decoder():
    assert DECODERS["speculative"] is speculative.decode


# --- models ------------------------------------------------------------------------------


def smaller_draft(target, *, seed: int, share_target_weights: bool) -> LlamaForCausalLM:
    """A 1-layer Llama with the target's vocabulary, random; or, with ``share_target_weights``,
    holding the target's embeddings, first layer and head (a draft that agrees with the target
    part of the time, so that steps accept some drafts and reject others)."""
    config = LlamaConfig(**{**target.config.to_dict(), "num_hidden_layers": 1})
    torch.manual_seed(seed)
    draft = LlamaForCausalLM(config).eval()
    if share_target_weights:
        draft.load_state_dict(target.state_dict(), strict=False)
    return draft


@pytest.fixture(scope="module")
def drafts(tiny_model) -> dict[str, LlamaForCausalLM]:
    target = tiny_model.model
    return {
        "same": target,
        "random": smaller_draft(target, seed=11, share_target_weights=False),
        "truncated": smaller_draft(target, seed=12, share_target_weights=True),
    }


def prompt_ids(tokens: list[int]) -> torch.Tensor:
    return torch.tensor([tokens], dtype=torch.long)


def choose_eos(free_run: list[int], pick: int, default: int) -> list[int]:
    """An eos id that the free run emits at position ``pick`` (so decoding stops there, often
    in the middle of an accepted draft), or the model's own eos."""
    return [free_run[pick]] if pick < len(free_run) else [default]


def assert_speculative_greedy_equals_greedy(tiny_model, draft_model, config, tokens, max_new_tokens, pick):
    ids = prompt_ids(tokens)
    free_run = run_greedy(tiny_model.model, ids, max_new_tokens=max_new_tokens, eos_token_ids=[]).token_ids
    eos = choose_eos(free_run, pick, tiny_model.eos_token_id)
    expected = run_greedy(tiny_model.model, ids, max_new_tokens=max_new_tokens, eos_token_ids=eos)
    seq = run_spec(
        tiny_model.model, ids, config, max_new_tokens=max_new_tokens, eos_token_ids=eos, draft_model=draft_model
    )
    assert seq.token_ids == expected.token_ids
    assert seq.finish_reason == expected.finish_reason
    assert seq.score is not None and math.isclose(seq.score, expected.score, abs_tol=1e-3)
    check_bookkeeping(seq, max_new_tokens=max_new_tokens, eos_token_ids=eos)
    return seq


# --- greedy verification == greedy decoding ------------------------------------------------


@pytest.mark.parametrize("draft", ["same", "random", "truncated"])
def test_speculative_greedy_with_a_draft_model_equals_greedy(tiny_model, drafts, draft):
    draft_model = drafts[draft]
    rates: list[float] = []

    @HYPOTHESIS
    @given(
        tokens=st.lists(st.integers(3, tiny_model.vocab_size - 1), min_size=1, max_size=12),
        max_new_tokens=st.integers(1, 16),
        num_draft_tokens=st.integers(1, 6),
        pick=st.integers(0, 24),
    )
    def check(tokens, max_new_tokens, num_draft_tokens, pick):
        config = draft_config(num_draft_tokens=num_draft_tokens)
        seq = assert_speculative_greedy_equals_greedy(tiny_model, draft_model, config, tokens, max_new_tokens, pick)
        if seq.metrics["drafted"]:
            rates.append(seq.metrics["acceptance_rate"])
        if draft == "same":  # the target agrees with itself on every draft
            assert seq.metrics["accepted"] == seq.metrics["drafted"]

    check()
    assert rates, "no example drafted anything"
    if draft == "truncated":  # both paths taken: some drafts accepted, some rejected
        assert 0 < sum(rates) < len(rates)


def test_speculative_greedy_with_prompt_lookup_equals_greedy(tiny_model):
    accepted: list[int] = []

    @HYPOTHESIS
    @given(
        base=st.lists(st.integers(3, 40), min_size=1, max_size=6),
        repeats=st.integers(2, 4),
        tail=st.integers(0, 6),
        max_new_tokens=st.integers(1, 20),
        lookup_tokens=st.integers(1, 10),
        ngram=st.integers(1, 3),
        pick=st.integers(0, 30),
    )
    def check(base, repeats, tail, max_new_tokens, lookup_tokens, ngram, pick):
        tokens = base * repeats + base[:tail]  # repeats, so that lookups find matches
        config = lookup_config(prompt_lookup_num_tokens=lookup_tokens, max_matching_ngram_size=ngram)
        seq = assert_speculative_greedy_equals_greedy(tiny_model, None, config, tokens, max_new_tokens, pick)
        assert seq.metrics["draft_forwards"] == 0
        accepted.append(seq.metrics["accepted"])

    check()
    assert sum(accepted) > 0, "prompt lookup never had a draft accepted"


def test_verification_crops_the_target_cache_to_the_accepted_tokens(tiny_model, drafts):
    """The score, summed from the verification rows, equals the log-probabilities of one
    uncached forward over prompt + output: every row was computed on the right context."""
    ids = tiny_model.prompt(21, 7)
    for draft in ("random", "truncated"):
        seq = run_spec(
            tiny_model.model,
            ids,
            draft_config(num_draft_tokens=4),
            max_new_tokens=24,
            eos_token_ids=[],
            draft_model=drafts[draft],
        )
        assert seq.metrics["verification_steps"] > 0
        full = torch.cat([ids, prompt_ids(seq.token_ids)], dim=1)
        with torch.inference_mode():
            log_probs = torch.log_softmax(tiny_model.model(full).logits[0].float(), dim=-1)
        start = ids.shape[1] - 1
        expected = sum(float(log_probs[start + i, t]) for i, t in enumerate(seq.token_ids))
        assert math.isclose(seq.score, expected, abs_tol=1e-3)
        assert seq.token_ids == log_probs[start:-1].argmax(-1).tolist()


def test_prefill_once_then_one_target_forward_per_verification(tiny_model, drafts, counting_model):
    target = counting_model(tiny_model.model)
    draft = counting_model(drafts["truncated"])
    ids = tiny_model.prompt(22, 9)
    calls_at_first_token: list[int] = []
    seq = run_spec(
        target,
        ids,
        draft_config(num_draft_tokens=3),
        max_new_tokens=20,
        eos_token_ids=[],
        draft_model=draft,
        on_first_token=lambda: calls_at_first_token.append(len(target.calls)),
    )
    assert calls_at_first_token == [1]  # once, right after the target's prefill
    assert target.calls[0] == (1, 9)
    assert all(rows == 1 and 1 <= m <= 4 for rows, m in target.calls[1:])  # last token + up to 3 drafts
    assert len(target.calls) == seq.metrics["target_forwards"]
    # The draft model sees the prompt once (with the first token), then 1 or 2 new tokens a call.
    assert draft.calls[0] == (1, 10)
    assert all(rows == 1 and m <= 2 for rows, m in draft.calls[1:])
    assert len(draft.calls) == seq.metrics["draft_forwards"]


def test_draft_model_proposer_needs_the_draft_model(tiny_model):
    with pytest.raises(ValueError, match="draft"):
        run_spec(tiny_model.model, tiny_model.prompt(1, 4), draft_config(), max_new_tokens=4, eos_token_ids=[])


COPY_PROMPT = "Repeat exactly: The quick brown fox jumps over the lazy dog while the old cat sleeps by the fire."


@pytest.fixture(scope="module")
def copy_prompt(smollm) -> torch.Tensor:
    enc = smollm.tokenizer.apply_chat_template(
        [{"role": "user", "content": COPY_PROMPT}], add_generation_prompt=True, return_tensors="pt"
    )
    return enc["input_ids"] if hasattr(enc, "keys") else enc


@pytest.mark.parametrize("proposer", ["prompt_lookup", "draft_model"])
def test_speculative_greedy_equals_greedy_on_smollm2(smollm, copy_prompt, proposer):
    eos = smollm.eos_token_ids
    expected = run_greedy(smollm.model, copy_prompt, max_new_tokens=24, eos_token_ids=eos)
    if proposer == "prompt_lookup":
        config, draft_model = lookup_config(), None
    else:
        config, draft_model = draft_config(num_draft_tokens=5), smollm.model  # the target drafts for itself
    seq = run_spec(smollm.model, copy_prompt, config, max_new_tokens=24, eos_token_ids=eos, draft_model=draft_model)
    assert seq.token_ids == expected.token_ids
    assert seq.finish_reason == expected.finish_reason
    check_bookkeeping(seq, max_new_tokens=24, eos_token_ids=eos)
    assert seq.metrics["accepted"] > 0
    assert seq.metrics["target_forwards"] < len(seq.token_ids)  # fewer target passes than tokens
    if proposer == "draft_model":
        assert seq.metrics["acceptance_rate"] == 1.0


# --- sampling verification keeps the target's distribution -------------------------------


def chi_square_p_value(counts: Counter, probs: dict, n: int) -> float:
    """Pearson's chi-square goodness of fit of ``counts`` (``n`` samples) to ``probs``; cells
    expected fewer than 5 times are pooled. A sample outside the support gives 0."""
    if any(key not in probs for key in counts):
        return 0.0
    cells = sorted(probs, key=probs.get, reverse=True)
    big = [c for c in cells if n * probs[c] >= 5]
    small = [c for c in cells if n * probs[c] < 5]
    observed = [float(counts[c]) for c in big]
    expected = [n * probs[c] for c in big]
    pooled_expected = n * sum(probs[c] for c in small)
    if pooled_expected > 0:
        pooled_observed = float(sum(counts[c] for c in small))
        if pooled_expected < 5 and observed:  # too small alone: merge into the last big cell
            observed[-1] += pooled_observed
            expected[-1] += pooled_expected
        else:
            observed.append(pooled_observed)
            expected.append(pooled_expected)
    stat = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    df = len(observed) - 1
    if df < 1:
        return 1.0
    p = torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64), torch.tensor(stat / 2, dtype=torch.float64))
    return float(p)


def exact_target_distribution(model, prompt: list[int], steps: int, **warp) -> list[dict[tuple, float]]:
    """For each ``s < steps``, the exact probability of every sequence of ``s + 1`` new tokens
    under the target's warped distribution (enumerated, full uncached forwards)."""
    out: list[dict[tuple, float]] = []
    prefixes: dict[tuple, float] = {(): 1.0}
    with torch.inference_mode():
        for _ in range(steps):
            keys = list(prefixes)
            batch = torch.tensor([prompt + list(key) for key in keys], dtype=torch.long)
            last = model(batch).logits[:, -1, :].float()
            probs = torch.softmax(logits.warp(last, **warp), dim=-1).double()
            grown: dict[tuple, float] = {}
            for row, key in enumerate(keys):
                for token in probs[row].nonzero().flatten().tolist():
                    grown[(*key, token)] = prefixes[key] * float(probs[row, token])
            prefixes = grown
            out.append(prefixes)
    return out


def marginal(joint: dict[tuple, float], position: int) -> dict[int, float]:
    result: dict[int, float] = {}
    for key, p in joint.items():
        result[key[position]] = result.get(key[position], 0.0) + p
    return result


@dataclass
class SamplingSetup:
    target: LlamaForCausalLM
    draft: LlamaForCausalLM | None
    config: SpeculativeConfig
    prompt: list[int]
    joint3: dict[tuple, float]  # exact P(t1, t2, t3) under the target's warped distribution
    marginal4: dict[int, float]  # exact P(t4)


WARP = {"temperature": 1.5, "top_k": 4, "top_p": 1.0}  # 4 tokens a step: 64 cells for (t1, t2, t3)


def tiny_target(initializer_range: float) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=384,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        initializer_range=initializer_range,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def make_setup(target, draft, config, prompt) -> SamplingSetup:
    by_length = exact_target_distribution(target, prompt, 4, **WARP)
    return SamplingSetup(target, draft, config, prompt, by_length[2], marginal(by_length[3], 3))


@pytest.fixture(scope="module")
def draft_model_setup() -> SamplingSetup:
    """A peaked tiny target and a 1-layer draft holding part of its weights: the draft agrees
    with the target some of the time, so steps both accept and reject."""
    target = tiny_target(0.3)
    draft = smaller_draft(target, seed=5, share_target_weights=True)
    config = draft_config(num_draft_tokens=2, do_sample=True, **WARP)
    return make_setup(target, draft, config, [5, 17, 99, 230, 17, 99])


@pytest.fixture(scope="module")
def prompt_lookup_setup() -> SamplingSetup:
    """A flat tiny target, whose greedy output falls into short cycles; the prompt ends with
    such a cycle, so that looked-up drafts are often among the target's top-4 tokens."""
    target = tiny_target(0.02)
    start = [40, 41, 42]
    prompt = start + run_greedy(target, prompt_ids(start), max_new_tokens=16, eos_token_ids=[]).token_ids
    config = lookup_config(prompt_lookup_num_tokens=2, max_matching_ngram_size=1, do_sample=True, **WARP)
    return make_setup(target, None, config, prompt)


def sample_outputs(setup: SamplingSetup, runs: int) -> tuple[Counter, Counter, int]:
    """``runs`` seeds of 4 new tokens: counts of (t1, t2, t3), counts of t4, drafts accepted.
    The first token is the target's alone; t2 and t3 come out of a 2-draft verification
    (accepted or corrected) or of a following 1-draft one; t4 may be a bonus token."""
    firsts: Counter = Counter()
    fourths: Counter = Counter()
    accepted = 0
    for seed in range(runs):
        seq = run_spec(
            setup.target,
            prompt_ids(setup.prompt),
            setup.config,
            max_new_tokens=4,
            eos_token_ids=[],
            seed=seed,
            draft_model=setup.draft,
        )
        check_bookkeeping(seq, max_new_tokens=4, eos_token_ids=[])
        firsts[tuple(seq.token_ids[:3])] += 1
        fourths[seq.token_ids[3]] += 1
        accepted += seq.metrics["accepted"]
    return firsts, fourths, accepted


@pytest.mark.parametrize(("proposer", "runs"), [("draft_model", 600), ("prompt_lookup", 500)])
def test_speculative_sampling_has_the_target_distribution(request, proposer, runs):
    setup: SamplingSetup = request.getfixturevalue(f"{proposer}_setup")
    firsts, fourths, accepted = sample_outputs(setup, runs)
    assert 0.05 * runs < accepted < 1.5 * runs  # drafts both accepted and rejected
    assert chi_square_p_value(firsts, setup.joint3, runs) > 1e-3
    assert chi_square_p_value(fourths, setup.marginal4, runs) > 1e-3


@pytest.mark.parametrize(("bug", "runs"), [("always_accept", 100), ("resample_from_target", 400)])
def test_the_distribution_test_catches_a_wrong_verifier(draft_model_setup, monkeypatch, bug, runs):
    """Sanity check of the test itself: with fewer runs, the same statistic rejects a verifier
    that keeps every draft (its drafted positions are then draft-model samples, some of them
    outside the target's top-k), and one that resamples from ``p`` instead of
    ``norm(max(0, p - q))`` after a rejection (a subtler bias: it takes 400 runs here)."""
    if bug == "always_accept":
        monkeypatch.setattr(speculative, "acceptance_ratio", lambda p, q: math.inf)
    else:
        monkeypatch.setattr(speculative, "residual_distribution", lambda p, q: p)
    firsts, _, _ = sample_outputs(draft_model_setup, runs)
    assert chi_square_p_value(firsts, draft_model_setup.joint3, runs) < 1e-6


def synthetic_rows(seed: int, k: int, vocab: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target_scores = torch.randn(k + 1, vocab, generator=gen) * 1.5  # [k+1, vocab]
    q = torch.softmax(torch.randn(k, vocab, generator=gen) * 1.5, dim=-1)  # [k, vocab]
    return target_scores, q


@pytest.mark.parametrize("proposal", ["distribution", "point_mass"])
def test_rejection_sampling_step_emits_the_target_distribution(proposal):
    """One verification step with fixed rows: the first token is distributed as ``p_0``, and
    the second, given that the first draft was accepted, as ``p_1``."""
    target_scores, q = synthetic_rows(7, k=2)
    p = torch.softmax(target_scores, dim=-1).double()
    generator = torch.Generator().manual_seed(3)
    trials = 6000
    first: Counter = Counter()
    second: Counter = Counter()
    accepted_first = 0
    fixed_draft = [int(q[0].argmin()), int(q[1].argmin())]  # drafts the target finds unlikely-ish
    for _ in range(trials):
        if proposal == "distribution":
            draft = [int(torch.multinomial(q[i], 1, generator=generator)) for i in range(2)]
            step = speculative.verify_sampling(target_scores, draft, q, generator)
        else:
            draft = fixed_draft
            step = speculative.verify_sampling(target_scores, draft, None, generator)
        assert len(step.tokens) == step.accepted + 1
        assert step.tokens[: step.accepted] == draft[: step.accepted]
        first[step.tokens[0]] += 1
        if step.accepted >= 1:
            accepted_first += 1
            second[step.tokens[1]] += 1
    p0 = {t: float(p[0, t]) for t in range(p.shape[1])}
    p1 = {t: float(p[1, t]) for t in range(p.shape[1])}
    assert chi_square_p_value(first, p0, trials) > 1e-3
    assert accepted_first > 500
    assert chi_square_p_value(second, p1, accepted_first) > 1e-3
    # Against the proposal instead of the target, the same counts fail.
    q0 = {t: float(q[0, t]) for t in range(q.shape[1])}
    if proposal == "distribution":
        assert chi_square_p_value(first, q0, trials) < 1e-6


def test_speculative_sampling_is_reproducible_and_uses_only_the_generator(tiny_model, drafts):
    ids = tiny_model.prompt(31, 6)
    config = draft_config(num_draft_tokens=3, do_sample=True, temperature=1.2, top_k=30, top_p=0.95)
    kwargs = {"max_new_tokens": 16, "eos_token_ids": [tiny_model.eos_token_id], "draft_model": drafts["truncated"]}
    torch.manual_seed(0)
    first = run_spec(tiny_model.model, ids, config, seed=5, **kwargs)
    torch.manual_seed(1)  # the global RNG must not matter
    second = run_spec(tiny_model.model, ids, config, seed=5, **kwargs)
    assert first.token_ids == second.token_ids and first.metrics == second.metrics
    check_bookkeeping(first, max_new_tokens=16, eos_token_ids=kwargs["eos_token_ids"])
    others = {tuple(run_spec(tiny_model.model, ids, config, seed=s, **kwargs).token_ids) for s in range(6, 10)}
    assert len(others | {tuple(first.token_ids)}) > 1


def test_speculative_sampling_with_the_target_as_draft_accepts_almost_everything(tiny_model):
    ids = tiny_model.prompt(32, 6)
    config = draft_config(num_draft_tokens=4, do_sample=True, temperature=1.5)
    seq = run_spec(tiny_model.model, ids, config, max_new_tokens=20, eos_token_ids=[], draft_model=tiny_model.model)
    check_bookkeeping(seq, max_new_tokens=20, eos_token_ids=[])
    assert seq.metrics["acceptance_rate"] > 0.9  # p == q up to float rounding


@pytest.mark.parametrize("seed", range(8))
def test_speculative_sampling_without_drafts_draws_like_the_sampling_decoder(tiny_model, seed):
    """With at most 2 new tokens nothing is drafted (one token must be left for the target), so
    both tokens are plain target draws, consuming the generator as ``sampling.decode`` does."""
    ids = tiny_model.prompt(33 + seed, 5)
    params = {"temperature": 1.3, "top_k": 40, "top_p": 0.9}
    seq = run_spec(tiny_model.model, ids, lookup_config(do_sample=True, **params), max_new_tokens=2, eos_token_ids=[])
    [expected] = sampling.decode(
        tiny_model.model,
        ids,
        SamplingConfig(**params),
        max_new_tokens=2,
        eos_token_ids=[],
        generator=torch.Generator().manual_seed(0),
    )
    assert seq.token_ids == expected.token_ids
    assert seq.metrics["drafted"] == 0 and [i["spec"] for i in seq.token_info] == ["target", "target"]
    assert seq.score is not None and math.isclose(seq.score, expected.score, abs_tol=1e-4)
