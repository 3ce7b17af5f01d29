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
  longest prefix it shares with the next context (``Executor.rollback``), so rejected drafts
  leave no trace; the prompt is run through the draft model once, on the first ``propose``.
  It drafts for several rows at once (``propose_batch``: one context, limit and generator per
  row, the draft model's steps batched on its own executor); a row's draft is what it would
  get alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from workers.decoders import logits
from workers.executor import Execution, Executor, new_executor


@dataclass
class Draft:
    tokens: list[int]
    q: torch.Tensor | None = None  # [len(tokens), vocab] proposal distribution; None = point masses


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
        execution: Execution | None = None,
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
        self.execution = execution
        self.executor: Executor | None = None
        self.cached: list[list[int]] = []  # per row: the tokens whose keys and values are cached
        self.forwards = 0  # draft-model forward passes so far (one per batched step)

    def _aligned(self, scores: torch.Tensor) -> torch.Tensor:
        """``[n, draft_vocab] -> [n, vocab_size]``: the draft never proposes a token the target
        cannot emit (padded vocabularies differ in size between models of one family)."""
        width = scores.shape[-1]
        if width > self.vocab_size:
            return scores[:, : self.vocab_size]
        if width < self.vocab_size:
            pad = scores.new_full((scores.shape[0], self.vocab_size - width), logits.FILTER_VALUE)
            return torch.cat([scores, pad], dim=-1)
        return scores

    def propose(self, context: Sequence[int], max_tokens: int) -> Draft:
        return self.propose_batch([context], [max_tokens], [self.generator])[0]

    def propose_batch(
        self,
        contexts: Sequence[Sequence[int]],
        max_tokens: Sequence[int],
        generators: Sequence[torch.Generator | None] | None = None,
        *,
        capacity: int | None = None,
    ) -> list[Draft]:
        """One draft per row. The rows are fixed by the first call (``capacity``: the slots a
        row may need, by default its context plus 1024); later calls keep that order, and
        ``keep_rows`` drops finished rows."""
        limits = [min(self.num_tokens, int(m)) for m in max_tokens]
        generators = list(generators) if generators is not None else [self.generator] * len(contexts)
        if max(limits) < 1:
            return [Draft([]) for _ in contexts]
        with torch.inference_mode():
            return self._draft([[int(t) for t in c] for c in contexts], limits, generators, capacity)

    def keep_rows(self, rows: Sequence[int]) -> None:
        """Only these rows (indices into the current rows) go on drafting."""
        if self.executor is not None:
            self.executor.reorder(list(rows))
            self.cached = [self.cached[r] for r in rows]

    def _draft(
        self, contexts: list[list[int]], limits: list[int], generators: list[Any], capacity: int | None
    ) -> list[Draft]:
        n = len(contexts)
        if self.executor is None:
            cap = capacity or Executor.capacity_for([len(c) for c in contexts], 1024, self.num_tokens + 1)
            self.executor = new_executor(self.execution, self.model, rows=n, capacity=cap, past_recording=True)
            scores = self.executor.prefill(contexts)[:, -1]  # [n, vocab]
            self.cached = [list(c) for c in contexts]
        else:
            assert n == self.executor.rows, f"{n} contexts for {self.executor.rows} drafting rows"
            # Keep each row's longest cached prefix of its new context, but feed at least one token.
            drops, feeds = [], []
            for r, context in enumerate(contexts):
                keep = 0
                for a, b in zip(self.cached[r], context, strict=False):
                    if a != b:
                        break
                    keep += 1
                keep = min(keep, len(context) - 1)
                drops.append(len(self.cached[r]) - keep)
                feeds.append(context[keep:])
                self.cached[r] = context[:keep]
            self.executor.rollback(drops)
            width = max(len(f) for f in feeds)
            feed = torch.zeros((n, width), dtype=torch.long)
            for r, f in enumerate(feeds):
                feed[r, : len(f)] = torch.tensor(f, dtype=torch.long)
            real = [len(f) for f in feeds]
            rows = self.executor.step(feed, real=real, keep=width)  # [n, width, vocab]
            scores = rows[torch.arange(n), torch.tensor(real) - 1]  # each row's last real position
            for r, f in enumerate(feeds):
                self.cached[r].extend(f)
        self.forwards += 1

        tokens: list[list[int]] = [[] for _ in range(n)]
        q_rows: list[list[torch.Tensor]] = [[] for _ in range(n)]
        drafting = [limits[r] >= 1 for r in range(n)]
        while True:
            scores = self._aligned(scores)  # [n, vocab]
            if self.do_sample:
                warped = logits.warp(scores, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
                q = torch.softmax(warped, dim=-1)  # [n, vocab]
                chosen = [
                    int(torch.multinomial(q[r : r + 1], num_samples=1, generator=generators[r]).item())
                    if drafting[r]
                    else 0
                    for r in range(n)
                ]
            else:
                chosen = torch.argmax(scores, dim=-1).tolist()
            for r in range(n):
                if not drafting[r]:
                    continue
                tokens[r].append(int(chosen[r]))
                if self.do_sample:
                    q_rows[r].append(q[r])
                if len(tokens[r]) == limits[r] or chosen[r] in self.eos:
                    drafting[r] = False
            if not any(drafting):
                break
            # Every row steps (a row done drafting feeds its last token; the next call rolls it back).
            feed = torch.tensor([[t[-1] if t else c[-1]] for t, c in zip(tokens, contexts, strict=True)])  # [n, 1]
            scores = self.executor.step(feed)[:, -1]  # [n, vocab]
            self.forwards += 1
            for r in range(n):
                self.cached[r].append(int(feed[r, 0]))
        return [Draft(tokens[r], torch.stack(q_rows[r]) if self.do_sample else None) for r in range(n)]
