"""Draft proposers for speculative decoding (``workers.decoders.speculative``).

A proposer guesses the next few tokens of a context cheaply; the target model then checks
them all in one forward pass. Each proposer keeps its own state between calls and is asked,
once per verification step, for at most ``max_tokens`` draft tokens:

    proposer.propose(context, max_tokens) -> Draft

``context`` is the whole sequence so far (prompt + every token generated, the newest last);
``max_tokens`` is what the verifier can still use (it never asks for tokens beyond
``max_new_tokens``). A proposer may return fewer tokens, or none.

``Draft.q`` is the proposer's distribution over the target's vocabulary at each drafted
position (``[len(tokens), vocab]``), which rejection sampling needs, or ``None`` when every
draft token is a point mass (prompt lookup, and a draft model drafting greedily).

Two proposers:

- ``PromptLookupProposer`` (Saxena 2023, "prompt lookup decoding"; transformers 5.23
  ``PromptLookupCandidateGenerator``): for ``n`` from ``max_matching_ngram_size`` down to 1,
  look for an earlier occurrence of the context's last ``n`` tokens; at the first ``n`` that
  has one, take the *leftmost* occurrence that has at least one token after it, and propose
  up to ``num_tokens`` tokens that followed it (never past the end of the context, never more
  than ``max_tokens``). As in transformers, ``n`` is at most ``len(context) - 1``, the search
  scans left to right (transformers' own TODO notes it picks the first match, not the
  longest or the most recent), and the proposal is cut *before* its first eos token (if that
  leaves nothing, there is no draft this step: transformers does not fall back to a shorter
  n-gram either). No model, no forward pass, no randomness.
- ``DraftModelProposer``: a smaller model with the target's vocabulary drafts autoregressively
  with its own KV cache: greedily (``argmax`` of its raw logits) when verifying greedily, or
  by sampling from its warped distribution ``q`` (the target's temperature, top-k and top-p,
  as transformers applies the target's logits processors to the assistant) drawn from the
  decode's ``generator``. Drafting stops after an eos token. Its cache is rolled back to the
  longest prefix it shares with the next context (``DynamicCache.crop``), so rejected drafts
  leave no trace; the prompt is run through the draft model once, on the first ``propose``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from workers.decoders import kv, logits


@dataclass
class Draft:
    tokens: list[int]
    q: torch.Tensor | None = None  # [len(tokens), vocab] proposal distribution; None = point masses


def rollback(cache: Any, tokens_to_remove: int) -> None:
    """Drop the last ``tokens_to_remove`` positions of ``cache`` (0 is allowed and is still a
    call: sliding-window layers recording their past trim themselves on every ``crop``)."""
    assert tokens_to_remove >= 0, f"cannot remove {tokens_to_remove} tokens"
    cache.crop(-tokens_to_remove)


def new_rollback_cache(model: Any) -> Any:
    """``kv.new_cache`` ready to be cropped: layers that forget their past (sliding windows)
    keep it until the next ``crop`` (transformers' assisted decoding does the same)."""
    cache = kv.new_cache(model)
    if hasattr(cache, "activate_past_recording"):
        cache.activate_past_recording()
    return cache


class PromptLookupProposer:
    """Copy the continuation of an earlier occurrence of the context's last n-gram."""

    def __init__(self, *, num_tokens: int, max_matching_ngram_size: int, eos_token_ids: Sequence[int] = ()) -> None:
        if num_tokens < 1 or max_matching_ngram_size < 1:
            raise ValueError("num_tokens and max_matching_ngram_size must be >= 1")
        self.num_tokens = num_tokens
        self.max_matching_ngram_size = max_matching_ngram_size
        self.eos = {int(t) for t in eos_token_ids}
        self.forwards = 0  # no model: never any forward pass

    def propose(self, context: Sequence[int], max_tokens: int) -> Draft:
        ctx = torch.as_tensor(list(context), dtype=torch.long)  # [length]
        length = int(ctx.shape[0])
        limit = min(self.num_tokens, max_tokens)
        if limit < 1:
            return Draft([])
        for n in range(min(self.max_matching_ngram_size, length - 1), 0, -1):
            windows = ctx.unfold(0, n, 1)  # [length - n + 1, n]
            starts = (windows == ctx[-n:]).all(dim=1).nonzero().flatten().tolist()  # ascending
            # The last window is the n-gram itself: nothing follows it, so it never matches.
            starts = [s for s in starts if s + n < length]
            if not starts:
                continue
            begin = starts[0] + n
            chosen = ctx[begin : min(begin + limit, length)].tolist()
            for i, token in enumerate(chosen):
                if token in self.eos:
                    chosen = chosen[:i]
                    break
            return Draft(chosen)
        return Draft([])


class DraftModelProposer:
    """Draft with a small model that shares the target's tokenizer, keeping its own KV cache."""

    def __init__(
        self,
        model: Any,
        *,
        num_tokens: int,
        vocab_size: int,
        eos_token_ids: Sequence[int] = (),
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        if num_tokens < 1:
            raise ValueError("num_tokens must be >= 1")
        if do_sample and generator is None:
            raise ValueError("sampling drafts needs a generator")
        self.model = model
        self.num_tokens = num_tokens
        self.vocab_size = vocab_size  # the target's logits width; draft logits are aligned to it
        self.eos = {int(t) for t in eos_token_ids}
        self.do_sample = do_sample
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.generator = generator
        self.cache: Any = None
        self.cached: list[int] = []  # the tokens whose keys and values are in self.cache
        self.forwards = 0  # draft-model forward passes so far

    def _aligned(self, scores: torch.Tensor) -> torch.Tensor:
        """``[1, draft_vocab] -> [1, vocab_size]``: the draft never proposes a token the target
        cannot emit (padded vocabularies differ in size between models of one family)."""
        width = scores.shape[-1]
        if width > self.vocab_size:
            return scores[:, : self.vocab_size]
        if width < self.vocab_size:
            pad = scores.new_full((scores.shape[0], self.vocab_size - width), logits.FILTER_VALUE)
            return torch.cat([scores, pad], dim=-1)
        return scores

    def propose(self, context: Sequence[int], max_tokens: int) -> Draft:
        limit = min(self.num_tokens, max_tokens)
        if limit < 1:
            return Draft([])
        with torch.inference_mode():
            return self._draft([int(t) for t in context], limit)

    def _draft(self, context: list[int], limit: int) -> Draft:
        device = self.model.device
        if self.cache is None:
            self.cache = new_rollback_cache(self.model)
        # Keep the longest cached prefix of the new context, but feed at least one token to get
        # the next-token logits.
        keep = 0
        for a, b in zip(self.cached, context, strict=False):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(context) - 1)
        rollback(self.cache, len(self.cached) - keep)
        self.cached = context[:keep]

        feed = torch.tensor([context[keep:]], dtype=torch.long, device=device)  # [1, new_len]
        tokens: list[int] = []
        q_rows: list[torch.Tensor] = []
        while True:
            scores = self._aligned(kv.forward_last_logits(self.model, feed, self.cache))  # [1, vocab]
            self.forwards += 1
            self.cached.extend(feed[0].tolist())
            if self.do_sample:
                warped = logits.warp(scores, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
                q = torch.softmax(warped, dim=-1)  # [1, vocab]
                token = int(torch.multinomial(q, num_samples=1, generator=self.generator).item())
                q_rows.append(q[0])
            else:
                token = int(torch.argmax(scores, dim=-1).item())
            tokens.append(token)
            if len(tokens) == limit or token in self.eos:
                break
            feed = torch.tensor([[token]], dtype=torch.long, device=device)  # [1, 1]
        return Draft(tokens, torch.stack(q_rows) if self.do_sample else None)
