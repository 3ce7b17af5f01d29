"""The logits processors and warpers against transformers' own classes, bit for bit.

Each function of ``workers.decoders.logits`` must return exactly (``torch.equal``) what the
corresponding transformers 5.23 class returns on the same scores, and ``process`` exactly what
the processor list that ``generate`` itself builds (``_get_logits_processor``) returns: the
same processors, in the same order, switched on and off under the same conditions.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from workers.decoders import logits


def random_logits(seed: int, rows: int, vocab: int, quantise: bool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(rows, vocab, generator=gen) * 3
    if quantise:  # many exact ties, the hard case for top-k, top-p and typical-p
        scores = torch.round(scores)
    return scores


def random_sequences(seed: int, rows: int, length: int, vocab: int) -> torch.Tensor:
    """Token ids, a few of them past the end of the vocabulary (as with an embedding table
    larger than the LM head), with repeats."""
    gen = torch.Generator().manual_seed(seed + 1)
    return torch.randint(0, vocab + 3, (rows, length), generator=gen)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 4),
    vocab=st.integers(2, 300),
    quantise=st.booleans(),
    temperature=st.floats(0.05, 5.0),
    top_k=st.integers(1, 400),
    top_p=st.floats(0.0, 1.0),
    min_tokens_to_keep=st.integers(1, 3),
)
def test_warpers_equal_transformers_logits_warpers_exactly(
    seed, rows, vocab, quantise, temperature, top_k, top_p, min_tokens_to_keep
):
    scores = random_logits(seed, rows, vocab, quantise)
    before = scores.clone()
    dummy_ids = torch.zeros((rows, 1), dtype=torch.long)

    assert torch.equal(
        logits.apply_temperature(scores, temperature), TemperatureLogitsWarper(temperature)(dummy_ids, scores)
    )
    assert torch.equal(
        logits.apply_top_k(scores, top_k, min_tokens_to_keep=min_tokens_to_keep),
        TopKLogitsWarper(top_k, min_tokens_to_keep=min_tokens_to_keep)(dummy_ids, scores),
    )
    assert torch.equal(
        logits.apply_top_p(scores, top_p, min_tokens_to_keep=min_tokens_to_keep),
        TopPLogitsWarper(top_p, min_tokens_to_keep=min_tokens_to_keep)(dummy_ids, scores),
    )
    chained = TopPLogitsWarper(top_p)(
        dummy_ids, TopKLogitsWarper(top_k)(dummy_ids, TemperatureLogitsWarper(temperature)(dummy_ids, scores))
    )
    assert torch.equal(logits.warp(scores, temperature=temperature, top_k=top_k, top_p=top_p), chained)
    assert torch.equal(scores, before)  # pure: the input is untouched


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 4),
    vocab=st.integers(2, 300),
    seq_len=st.integers(1, 24),
    quantise=st.booleans(),
    penalty=st.floats(0.05, 10.0),
    min_p=st.floats(0.0, 1.0),
    typical_p=st.floats(0.001, 0.999),
    min_tokens_to_keep=st.integers(1, 3),
)
def test_new_processors_equal_transformers_classes_exactly(
    seed, rows, vocab, seq_len, quantise, penalty, min_p, typical_p, min_tokens_to_keep
):
    scores = random_logits(seed, rows, vocab, quantise)
    before = scores.clone()
    sequences = random_sequences(seed, rows, seq_len, vocab)

    assert torch.equal(
        logits.apply_repetition_penalty(scores, sequences, penalty),
        RepetitionPenaltyLogitsProcessor(penalty)(sequences, scores.clone()),
    )
    # generate passes the prompt's padding lengths (zeros for an unpadded prompt): same result.
    with_ignore = RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=torch.zeros(rows, dtype=torch.long))
    assert torch.equal(logits.apply_repetition_penalty(scores, sequences, penalty), with_ignore(sequences, scores))
    assert torch.equal(
        logits.apply_min_p(scores, min_p, min_tokens_to_keep=min_tokens_to_keep),
        MinPLogitsWarper(min_p, min_tokens_to_keep=min_tokens_to_keep)(sequences, scores),
    )
    assert torch.equal(
        logits.apply_typical_p(scores, typical_p, min_tokens_to_keep=min_tokens_to_keep),
        TypicalLogitsWarper(typical_p, min_tokens_to_keep=min_tokens_to_keep)(sequences, scores),
    )
    assert torch.equal(scores, before)  # pure: the input is untouched


@pytest.fixture(scope="module")
def processor_builder():
    """``generate``'s own processor list for a generation config (``_get_logits_processor`` of
    transformers 5.23, called as ``generate`` calls it for an unpadded decoder-only prompt)."""
    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2)
    ).eval()

    def build(sequences: torch.Tensor, **settings) -> LogitsProcessorList:
        return model._get_logits_processor(
            generation_config=GenerationConfig(do_sample=True, **settings),
            input_ids_seq_length=sequences.shape[1],
            encoder_input_ids=sequences,
            prefix_allowed_tokens_fn=None,
            logits_processor=LogitsProcessorList(),
            device="cpu",
            model_kwargs={"attention_mask": torch.ones_like(sequences)},
        )

    return build


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 4),
    vocab=st.integers(2, 300),
    seq_len=st.integers(1, 24),
    quantise=st.booleans(),
    repetition_penalty=st.sampled_from([1.0, 0.5, 1.2, 2.0]) | st.floats(0.05, 10.0),
    temperature=st.sampled_from([1.0]) | st.floats(0.05, 5.0),
    top_k=st.sampled_from([0]) | st.integers(1, 400),
    top_p=st.sampled_from([1.0]) | st.floats(0.01, 1.0),
    min_p=st.sampled_from([0.0]) | st.floats(0.0, 1.0),
    typical_p=st.sampled_from([1.0]) | st.floats(0.001, 1.0),
)
def test_process_equals_the_processor_list_generate_builds(
    processor_builder,
    seed,
    rows,
    vocab,
    seq_len,
    quantise,
    repetition_penalty,
    temperature,
    top_k,
    top_p,
    min_p,
    typical_p,
):
    """Order and on/off conditions: repetition penalty, temperature, top-k, top-p, min-p,
    typical-p. (transformers runs ``MinPLogitsWarper(0.0)`` for ``min_p=0``; we skip it: the
    same bits.)"""
    scores = random_logits(seed, rows, vocab, quantise)
    sequences = random_sequences(seed, rows, seq_len, vocab)
    settings_ = {
        "repetition_penalty": repetition_penalty,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "min_p": min_p,
        "typical_p": typical_p,
    }
    expected = processor_builder(sequences, **settings_)(sequences, scores.clone())
    assert torch.equal(logits.process(scores, sequences, **settings_), expected)


def test_warp_skips_inactive_warpers_as_transformers_does():
    scores = random_logits(0, 2, 50, quantise=False)
    assert torch.equal(logits.warp(scores, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0), scores)
    assert torch.equal(logits.process(scores, torch.zeros((2, 3), dtype=torch.long), repetition_penalty=1.0), scores)
    kept = torch.isfinite(logits.warp(scores, top_k=5))
    assert kept.sum(dim=-1).tolist() == [5, 5]
    kept = torch.isfinite(logits.warp(scores, top_p=1e-9))
    assert kept.sum(dim=-1).tolist() == [1, 1]  # min_tokens_to_keep=1: the argmax survives
    assert torch.equal(kept.float().argmax(-1), scores.argmax(-1))
    kept = torch.isfinite(logits.warp(scores, min_p=1.0))
    assert kept.sum(dim=-1).tolist() == [1, 1]  # only the most likely token reaches 1.0 x itself
    kept = torch.isfinite(logits.warp(scores, typical_p=1e-6))
    assert kept.sum(dim=-1).tolist() == [1, 1]


def test_repetition_penalty_counts_each_token_once_and_respects_the_sign():
    scores = torch.tensor([[2.0, -2.0, 0.5, 3.0, -1.0]])  # [1, 5]
    sequences = torch.tensor([[0, 1, 0, 0, 1, 7]])  # ids 0 and 1 (repeated), 7 past the vocabulary
    out = logits.apply_repetition_penalty(scores, sequences, 2.0)
    assert out.tolist() == [[1.0, -4.0, 0.5, 3.0, -1.0]]  # positive / 2, negative * 2, once each
    out = logits.apply_repetition_penalty(scores, sequences, 0.5)  # < 1 rewards repetition
    assert out.tolist() == [[4.0, -1.0, 0.5, 3.0, -1.0]]


def test_min_p_and_typical_p_keep_the_documented_tokens():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    scores = probs.log()
    # min_p=0.2: threshold 0.2 * 0.5 = 0.1, so 0.05 goes.
    assert torch.isfinite(logits.apply_min_p(scores, 0.2)).tolist() == [[True, True, True, False]]
    # typical: entropy 1.14 nats; surprisals 0.69, 1.20, 1.90, 3.00 nats, so the most typical
    # token is the 0.3 one, then 0.5, 0.15, 0.05; they are kept in that order until their mass
    # reaches typical_p, the token that crosses it included.
    kept = torch.isfinite(logits.apply_typical_p(scores, 0.2))
    assert kept.tolist() == [[False, True, False, False]]
    kept = torch.isfinite(logits.apply_typical_p(scores, 0.5))
    assert kept.tolist() == [[True, True, False, False]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: logits.apply_repetition_penalty(s, torch.zeros((1, 2), dtype=torch.long), 0.0), "> 0"),
        (lambda s: logits.apply_min_p(s, 1.5), "between 0 and 1"),
        (lambda s: logits.apply_typical_p(s, 1.0), "< 1"),
        (lambda s: logits.apply_typical_p(s, 0.0), "> 0"),
    ],
)
def test_invalid_parameters_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call(torch.zeros((1, 4)))


def test_processors_assert_the_score_shape():
    with pytest.raises(AssertionError):
        logits.apply_min_p(torch.zeros(4), 0.1)
    with pytest.raises(AssertionError):
        logits.apply_repetition_penalty(torch.zeros((2, 4)), torch.zeros((1, 3), dtype=torch.long), 1.2)
