"""Draft proposers: prompt lookup's n-gram matching (against transformers 5.23's
``PromptLookupCandidateGenerator``) and the draft model's drafts and KV-cache rollback."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.generation.candidate_generator import PromptLookupCandidateGenerator

from workers.decoders import greedy
from workers.decoders.proposers import DraftModelProposer, PromptLookupProposer
from workers.strategies import GreedyConfig

EOS = 2


def lookup(context, *, num_tokens=10, ngram=2, max_tokens=16, eos=(EOS,)):
    proposer = PromptLookupProposer(num_tokens=num_tokens, max_matching_ngram_size=ngram, eos_token_ids=eos)
    return proposer.propose(context, max_tokens).tokens


# --- prompt lookup -----------------------------------------------------------------------


def test_prompt_lookup_copies_what_followed_the_last_bigram():
    context = [10, 11, 12, 13, 14, 20, 11, 12]
    assert lookup(context, num_tokens=3) == [13, 14, 20]


def test_prompt_lookup_takes_the_leftmost_match_like_transformers():
    # The bigram (11, 12) occurs at 0 and at 4; transformers scans left to right.
    context = [11, 12, 30, 31, 11, 12, 40, 41, 11, 12]
    assert lookup(context, num_tokens=2) == [30, 31]


def test_prompt_lookup_prefers_the_longest_ngram_that_matches():
    # Unigram 12 first occurs at 1 (followed by 50), the trigram (5, 6, 12) only at 5.
    context = [7, 12, 50, 51, 3, 5, 6, 12, 60, 61, 5, 6, 12]
    assert lookup(context, ngram=3, num_tokens=2) == [60, 61]
    assert lookup(context, ngram=2, num_tokens=2) == [60, 61]  # (6, 12) too
    assert lookup(context, ngram=1, num_tokens=2) == [50, 51]


def test_prompt_lookup_falls_back_to_shorter_ngrams():
    context = [9, 4, 8, 1, 3, 4]  # bigram (3, 4) never occurred before; unigram 4 did
    assert lookup(context, ngram=2, num_tokens=2) == [8, 1]


def test_prompt_lookup_without_a_match_proposes_nothing():
    assert lookup([5, 6, 7, 8]) == []
    assert lookup([5]) == []  # a one-token context has no earlier n-gram


def test_prompt_lookup_stops_at_the_end_of_the_context():
    # The match's continuation runs into the last n-gram itself: only what exists is copied.
    assert lookup([4, 5, 4], ngram=1, num_tokens=10) == [5, 4]


@pytest.mark.parametrize(("num_tokens", "max_tokens", "expected"), [(5, 2, [11, 12]), (2, 5, [11, 12]), (5, 0, [])])
def test_prompt_lookup_never_proposes_more_than_asked(num_tokens, max_tokens, expected):
    context = [9, 11, 12, 13, 14, 15, 16, 9]
    assert lookup(context, ngram=1, num_tokens=num_tokens, max_tokens=max_tokens) == expected


def test_prompt_lookup_cuts_the_proposal_before_eos():
    assert lookup([8, 9, 7, EOS, 6, 8, 9], num_tokens=5) == [7]
    # The bigram's continuation starts with eos: no draft, and no retry with the unigram 9
    # (whose leftmost match would propose 6, 8, 9, ...).
    assert lookup([4, 9, 6, 8, 9, EOS, 8, 9], num_tokens=5) == []
    assert lookup([4, 9, 6, 8, 9, EOS, 8, 9], ngram=1, num_tokens=3) == [6, 8, 9]
    assert lookup([8, 9, EOS, 5, 8, 9], num_tokens=5, eos=()) == [EOS, 5, 8, 9]


def transformers_lookup(context, *, num_tokens, ngram, eos):
    generator = PromptLookupCandidateGenerator(
        eos_token_id=torch.tensor(eos, dtype=torch.long),
        num_output_tokens=num_tokens,
        max_matching_ngram_size=ngram,
        max_length=len(context) + 100,
    )
    ids = torch.tensor([context], dtype=torch.long)
    candidates, _ = generator.get_candidates(ids)
    return candidates[0, len(context) :].tolist()


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    context=st.lists(st.integers(2, 7), min_size=1, max_size=40),  # a small alphabet: many repeats
    num_tokens=st.integers(1, 16),
    ngram=st.integers(1, 8),
    with_eos=st.booleans(),
)
def test_prompt_lookup_equals_transformers_prompt_lookup(context, num_tokens, ngram, with_eos):
    eos = [EOS] if with_eos else []
    ours = lookup(context, num_tokens=num_tokens, ngram=ngram, max_tokens=16, eos=eos)
    assert ours == transformers_lookup(context, num_tokens=num_tokens, ngram=ngram, eos=eos)


# --- draft model -------------------------------------------------------------------------


def tiny_llama(vocab_size: int, seed: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=EOS,
        pad_token_id=0,
        initializer_range=0.3,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def draft() -> LlamaForCausalLM:
    return tiny_llama(384, seed=3)


def own_greedy(model, context, n):
    [seq] = greedy.decode(
        model,
        torch.tensor([context]),
        GreedyConfig(),
        max_new_tokens=n,
        eos_token_ids=[],
        generator=torch.Generator().manual_seed(0),
    )
    return seq.token_ids


def test_draft_model_drafts_its_own_greedy_continuation(draft):
    context = [5, 17, 99, 230, 41]
    proposer = DraftModelProposer(draft, num_tokens=4, vocab_size=384)
    result = proposer.propose(context, max_tokens=10)
    assert result.q is None
    assert result.tokens == own_greedy(draft, context, 4)
    assert proposer.forwards == 4
    assert proposer.propose(context, max_tokens=2).tokens == result.tokens[:2]
    assert proposer.propose(context, max_tokens=0).tokens == []


def test_draft_model_rolls_its_cache_back_to_the_shared_prefix(draft, counting_model):
    model = counting_model(draft)
    context = [5, 17, 99, 230, 41]
    proposer = DraftModelProposer(model, num_tokens=4, vocab_size=384)
    first = proposer.propose(context, max_tokens=4).tokens
    assert model.calls == [(1, 5), (1, 1), (1, 1), (1, 1)]  # the prompt once, then one token a step

    # Two drafts accepted, the third replaced: the cache keeps context + first[:2] and runs
    # only the replacement token.
    replaced = (first[2] + 1) % 384
    context_b = [*context, *first[:2], replaced]
    model.calls.clear()
    second = proposer.propose(context_b, max_tokens=4).tokens
    assert model.calls[0] == (1, 1)
    assert second == own_greedy(draft, context_b, 4)

    # All drafts accepted plus a bonus token: the last draft and the bonus are fed together.
    context_c = [*context_b, *second, 7]
    model.calls.clear()
    third = proposer.propose(context_c, max_tokens=3).tokens
    assert model.calls[0] == (1, 2)
    assert third == own_greedy(draft, context_c, 3)

    # A context that shares nothing with the cache starts over.
    model.calls.clear()
    fresh = [8, 9, 10]
    assert proposer.propose(fresh, max_tokens=2).tokens == own_greedy(draft, fresh, 2)
    assert model.calls[0] == (1, 3)


def test_draft_model_stops_drafting_after_eos(draft):
    context = [5, 17, 99, 230, 41]
    free = own_greedy(draft, context, 4)
    proposer = DraftModelProposer(draft, num_tokens=4, vocab_size=384, eos_token_ids=[free[1]])
    assert proposer.propose(context, max_tokens=4).tokens == free[: free.index(free[1]) + 1]


def test_draft_model_sampling_returns_its_distribution(draft):
    proposer = DraftModelProposer(
        draft,
        num_tokens=3,
        vocab_size=384,
        do_sample=True,
        temperature=1.5,
        top_k=20,
        generator=torch.Generator().manual_seed(1),
    )
    result = proposer.propose([5, 17, 99], max_tokens=3)
    assert result.q is not None and result.q.shape == (3, 384)
    assert torch.allclose(result.q.sum(-1), torch.ones(3))
    assert all(float(result.q[i, t]) > 0 for i, t in enumerate(result.tokens))
    assert all(int((row > 0).sum()) <= 20 for row in result.q)  # top-k warping applied
    again = DraftModelProposer(
        draft,
        num_tokens=3,
        vocab_size=384,
        do_sample=True,
        temperature=1.5,
        top_k=20,
        generator=torch.Generator().manual_seed(1),
    ).propose([5, 17, 99], max_tokens=3)
    assert again.tokens == result.tokens  # the generator alone decides


@pytest.mark.parametrize("draft_vocab", [380, 400])
def test_draft_model_distribution_is_aligned_to_the_target_vocabulary(draft_vocab):
    model = tiny_llama(draft_vocab, seed=4)
    proposer = DraftModelProposer(
        model, num_tokens=4, vocab_size=384, do_sample=True, generator=torch.Generator().manual_seed(0)
    )
    result = proposer.propose([5, 17, 99], max_tokens=4)
    assert result.q is not None and result.q.shape == (4, 384)
    assert all(t < min(draft_vocab, 384) for t in result.tokens)
    assert float(result.q[:, min(draft_vocab, 384) :].sum()) == 0.0
