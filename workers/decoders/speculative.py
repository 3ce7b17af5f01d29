"""Speculative decoding: a proposer drafts tokens, the target model verifies them in one pass.

Algorithm (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative
Decoding"; Chen et al. 2023, "Accelerating Large Language Model Decoding with Speculative
Sampling"; transformers 5.23 ``GenerationMixin._assisted_decoding``):

1. Prefill: the prompt ``[1, prompt_len]`` runs once through the target (``model``), exactly
   as in greedy or sampling decoding; the first new token is chosen from those logits by the
   target alone (label ``"target"``), and ``on_first_token`` is called.
2. Loop while no eos was emitted and fewer than ``max_new_tokens`` tokens exist: the proposer
   (``workers.decoders.proposers``) drafts ``k`` tokens from the context, with
   ``k <= min(num_draft_tokens or prompt_lookup_num_tokens, remaining - 1)`` so that the
   verified tokens plus the target's own next token never exceed ``max_new_tokens``.
   - ``k == 0`` (prompt lookup found nothing, or one token is left): one ordinary target step
     (``[1, 1]``, ``logits_to_keep=1``), its token labelled ``"target"``.
   - ``k >= 1``: one target forward over ``[last token, d_1..d_k]`` (``[1, k+1]``,
     ``logits_to_keep=k+1``) gives the target's logits at all ``k+1`` positions; row ``i``
     scores the token after ``d_i`` (row 0: after the last token). Verification decides
     ``n`` accepted drafts plus one token of the target's, then the target's KV cache is
     cropped by ``k - n`` so it holds exactly the accepted tokens.
3. Tokens are emitted one by one: the loop stops at the first eos even inside an accepted
   draft (the rest of the step is dropped) and never emits more than ``max_new_tokens``.
   Likewise at the first token that completes one of the ``stop`` strings
   (``workers.decoders.stopping``; checked after every emitted token, the first one
   included): that token is kept, nothing after it is emitted, finish reason ``"stop"``
   (``"eos"`` if the token is also an eos id). With greedy verification the output is then
   greedy decoding's with the same stop strings.

Verification:

- Greedy (``do_sample=False``): ``d_i`` is accepted while it equals ``argmax`` of the target's
  raw logits at its position; the target's argmax at the first mismatch is appended
  (``"corrected"``), or, when all ``k`` are accepted, the argmax of the last row
  (``"bonus"``). Every emitted token is therefore the target's argmax given the tokens before
  it: the output is greedy decoding's (``workers.decoders.greedy``), token for token. The
  caveat is float rounding: a ``[1, k+1]`` forward does not round exactly like ``k+1``
  one-token forwards (about 1e-5 relative here), so a target whose two best logits are tied
  to within rounding may break the tie the other way, as in transformers' assisted decoding.
- Sampling (``do_sample=True``), rejection sampling: with ``p_i`` the target's warped
  distribution at row ``i`` (``logits.warp``: temperature, top-k, top-p, then softmax) and
  ``q_i`` the proposer's distribution (a point mass on ``d_i`` for prompt lookup), draw
  ``u ~ U[0, 1)`` and accept ``d_i`` iff ``u < p_i(d_i) / q_i(d_i)``; at the first rejection
  sample from ``norm(max(0, p_i - q_i))`` (``"corrected"``; from ``p_i`` itself if rounding
  makes that residual sum to 0); if all ``k`` are accepted, sample the bonus from ``p_k``.
  Each emitted token is then distributed exactly as under ``p``: the output has the target's
  warped distribution, whatever the proposer (the same as ``workers.decoders.sampling`` with
  the same temperature, top-k and top-p, though not the same draws). All random
  numbers come from ``generator`` (draft sampling, acceptance draws, corrections, bonus), in
  a fixed order, so a seed reproduces the output. ``k == 0`` steps (and the first token) draw
  exactly as ``workers.decoders.sampling`` does (``torch.multinomial`` on ``[1, vocab]``).

``score``: the sum of the emitted tokens' log-probabilities under the target, from the row
that scored each token: ``log_softmax`` of the raw logits (greedy verification) or of the
warped logits (sampling verification), as the greedy and sampling decoders report theirs.

Metrics (defined here, once; every output's ``metrics`` dict holds exactly these keys):

- ``drafted``: draft tokens proposed, in total over all verification steps.
- ``accepted``: draft tokens accepted (and emitted). ``accepted <= drafted``.
- ``acceptance_rate``: ``accepted / drafted``; ``None`` when ``drafted == 0``.
- ``verification_steps``: target forward passes over drafts (each verifies at least one).
- ``mean_accepted_length``: ``accepted / verification_steps``, the draft tokens accepted per
  verification step, NOT counting the corrected or bonus token that each step adds;
  ``None`` when there was no verification step.
- ``target_forwards``: every target forward pass: the prefill, the verification steps and the
  ordinary one-token steps.
- ``tokens_per_verification``: new tokens (bonus and corrected tokens included) /
  ``target_forwards``: how many tokens each target forward pass yielded. Greedy decoding
  needs one forward per token (1.0 by this measure), so this is the speed-up over it if
  drafting cost nothing and a ``[1, k+1]`` forward cost what a ``[1, 1]`` one does.
- ``draft_forwards``: draft-model forward passes (0 for prompt lookup).

``token_info`` holds one ``{"spec": label}`` per new token: ``"accepted"`` (a draft token the
target accepted), ``"corrected"`` (the target's token in place of a rejected draft),
``"bonus"`` (the target's extra token after a fully accepted draft) or ``"target"`` (a token
the target chose with no draft: the first token, and steps where the proposer had none). So
``len(token_ids) == accepted + #corrected + #bonus + #target``.

``draft_model`` (proposer ``draft_model``) is a loaded causal LM with the target's tokenizer;
it may be the very same object as ``model`` (each keeps its own KV cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from workers import trace
from workers.decoders import kv, logits
from workers.decoders.base import GeneratedSequence, no_op
from workers.decoders.proposers import DraftModelProposer, PromptLookupProposer
from workers.decoders.stopping import StopStrings
from workers.executor import Execution, Executor
from workers.strategies import SpeculativeConfig


@dataclass
class Verified:
    tokens: list[int]  # the accepted drafts, then the target's token: n + 1 tokens
    accepted: int  # n
    log_probs: list[float]  # each token's log-probability under the row that scored it


def _sample(probs: torch.Tensor, generator: torch.Generator) -> int:
    """One draw from ``probs`` (``[vocab]``), shaped ``[1, vocab]`` as the sampling decoder draws."""
    return int(torch.multinomial(probs[None, :], num_samples=1, generator=generator).item())


def verify_greedy(target_logits: torch.Tensor, draft: Sequence[int]) -> Verified:
    """``target_logits``: ``[k+1, vocab]`` raw float32 logits, row ``i`` scoring the token after
    draft ``i`` (row 0 the token after the last emitted one). Keep the drafts that equal the
    target's argmax, then the target's argmax at the first mismatch (or after the last draft)."""
    k = len(draft)
    assert target_logits.shape[0] == k + 1, f"need {k + 1} rows of logits, got {target_logits.shape[0]}"
    best = torch.argmax(target_logits, dim=-1).tolist()  # [k+1]
    n = 0
    while n < k and int(draft[n]) == best[n]:
        n += 1
    tokens = [int(t) for t in draft[:n]] + [best[n]]
    log_probs = torch.log_softmax(target_logits, dim=-1)  # [k+1, vocab]
    return Verified(tokens, n, [float(log_probs[i, t]) for i, t in enumerate(tokens)])


def verify_greedy_from_stats(stats: list[dict[str, Any]], draft: Sequence[int]) -> tuple[Verified, list[dict]]:
    """``verify_greedy`` from each position's recorded argmax (``trace.step_stats`` of the
    argmax): the emitted tokens are the argmaxes themselves, so their log-probabilities and
    trace figures are already in ``stats``. Returns the step and the emitted tokens' figures."""
    k = len(draft)
    assert len(stats) == k + 1, f"need {k + 1} positions, got {len(stats)}"
    n = 0
    while n < k and int(draft[n]) == stats[n]["token"]:
        n += 1
    emitted = stats[: n + 1]
    return Verified([s["token"] for s in emitted], n, [s["logprob"] for s in emitted]), emitted


def acceptance_ratio(p_token: float, q_token: float) -> float:
    """``p(x) / q(x)``: the probability of accepting draft token ``x`` is ``min(1, ratio)``."""
    return p_token / q_token


def residual_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``norm(max(0, p - q))`` over ``[vocab]``: what to sample after a rejection; ``p`` when that
    residual sums to 0 (``p <= q`` everywhere, which only float rounding allows, when ``p ~= q``)."""
    residual = torch.clamp(p - q, min=0.0)  # [vocab]
    total = residual.sum()
    return residual / total if float(total) > 0 else p


def verify_sampling(
    target_scores: torch.Tensor,
    draft: Sequence[int],
    q: torch.Tensor | None,
    generator: torch.Generator,
) -> Verified:
    """Rejection sampling. ``target_scores``: ``[k+1, vocab]`` *warped* target logits; ``q``:
    ``[k, vocab]`` the proposer's distributions, or ``None`` for point masses on the drafts."""
    k = len(draft)
    assert target_scores.shape[0] == k + 1, f"need {k + 1} rows of scores, got {target_scores.shape[0]}"
    assert q is None or q.shape == (k, target_scores.shape[1]), "q must be [k, vocab]"
    p = torch.softmax(target_scores, dim=-1)  # [k+1, vocab]
    log_p = torch.log_softmax(target_scores, dim=-1)  # [k+1, vocab]
    tokens: list[int] = []
    n = 0
    for i in range(k):
        x = int(draft[i])
        q_x = 1.0 if q is None else float(q[i, x])
        u = float(torch.rand(1, generator=generator, device=generator.device))
        if u < acceptance_ratio(float(p[i, x]), q_x):
            tokens.append(x)
            n += 1
            continue
        if q is None:
            q_row = torch.zeros_like(p[i])
            q_row[x] = 1.0
        else:
            q_row = q[i]
        tokens.append(_sample(residual_distribution(p[i], q_row), generator))
        break
    else:
        tokens.append(_sample(p[k], generator))
    return Verified(tokens, n, [float(log_p[i, t]) for i, t in enumerate(tokens)])


@dataclass
class SpecRun:
    """One speculative run in a batch: its prompt, seeded generator, budget and stop strings."""

    prompt: list[int]
    generator: torch.Generator
    max_new_tokens: int
    stop: StopStrings | None = None


@dataclass
class _RowState:
    """What one row has emitted so far, and its counters (see the module docstring)."""

    run: SpecRun
    tokens: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    score: float = 0.0
    stopped: bool = False
    drafted: int = 0
    accepted: int = 0
    verification_steps: int = 0
    target_forwards: int = 1  # the prefill

    def done(self, eos: set[int]) -> bool:
        return self.stopped or self.tokens[-1] in eos or len(self.tokens) >= self.run.max_new_tokens

    def emit(self, step: Verified, extra: str, raw_stats: list[dict[str, Any]], eos: set[int]) -> None:
        """Append the step's tokens one by one, stopping at the first eos or completed stop string."""
        for i, (token, log_prob) in enumerate(zip(step.tokens, step.log_probs, strict=True)):
            self.tokens.append(token)
            self.labels.append("accepted" if i < step.accepted else extra)
            self.stats.append(raw_stats[i])
            self.score += log_prob
            self.accepted += int(i < step.accepted)
            if token in eos:
                break
            if self.run.stop is not None and self.run.stop.hit(self.tokens):
                self.stopped = True
                break


def decode(
    model: Any,
    input_ids: torch.Tensor,
    config: SpeculativeConfig,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    generator: torch.Generator,
    on_first_token: Callable[[], None] = no_op,
    draft_model: Any = None,
    stop: StopStrings | None = None,
    execution: Execution | None = None,
    **_resources: Any,  # tokenizer: not used here
) -> list[GeneratedSequence]:
    """Speculatively decode one continuation of ``input_ids`` (``[1, prompt_len]``)."""
    assert isinstance(config, SpeculativeConfig), f"expected a SpeculativeConfig, got {type(config).__name__}"
    kv.check_prompt(input_ids, max_new_tokens)
    run = SpecRun(input_ids[0].tolist(), generator, max_new_tokens, stop)
    [out] = decode_batch(
        model,
        [run],
        config,
        eos_token_ids=eos_token_ids,
        on_first_token=on_first_token,
        draft_model=draft_model,
        execution=execution,
    )
    return out


def decode_batch(
    model: Any,
    runs: Sequence[SpecRun],
    config: SpeculativeConfig,
    *,
    eos_token_ids: Sequence[int],
    on_first_token: Callable[[], None] = no_op,
    draft_model: Any = None,
    execution: Execution | None = None,
) -> list[list[GeneratedSequence]]:
    """Speculatively decode several runs at once, one row each (``workers.executor``).

    Each step, every live row feeds its last token and its own draft (rows with shorter drafts
    are padded with dummies), all verified in one target forward; each row then rolls back its
    own rejected drafts. Row ``r``'s tokens are what it gets alone: verification reads only its
    own logits, and sampling draws only from its own run's generator, in the same order.
    """
    assert isinstance(config, SpeculativeConfig), f"expected a SpeculativeConfig, got {type(config).__name__}"
    assert runs and min(r.max_new_tokens for r in runs) >= 1, "runs with max_new_tokens >= 1"
    if config.proposer == "draft_model" and draft_model is None:
        raise ValueError(f"proposer draft_model needs the loaded draft model ({config.draft_model!r})")
    eos = {int(t) for t in eos_token_ids}
    execution = execution or Execution()
    num_tokens = config.num_draft_tokens if config.proposer == "draft_model" else config.prompt_lookup_num_tokens
    fixed_width = execution.mode == "graph" or (execution.mode is None and model.device.type == "cuda")

    def warp(rows: torch.Tensor) -> torch.Tensor:
        return logits.warp(rows, temperature=config.temperature, top_k=config.top_k, top_p=config.top_p)

    def choose_alone(rows: torch.Tensor, generator: torch.Generator) -> Verified:
        """The target's own token from ``[1, vocab]`` logits, no draft."""
        if config.do_sample:
            return verify_sampling(warp(rows), [], None, generator)
        return verify_greedy(rows, [])

    with torch.inference_mode():
        budget = max(r.max_new_tokens for r in runs)
        # Holes from uneven rollbacks use slots too: twice the tokens, then compaction.
        capacity = Executor.capacity_for([len(r.prompt) for r in runs], 2 * budget, 2 * (num_tokens + 1))
        ex = execution.executor(model, rows=len(runs), capacity=capacity, past_recording=True)
        first_rows = ex.prefill([r.prompt for r in runs])[:, -1]  # [n, vocab]
        states = [_RowState(run) for run in runs]
        for r, state in enumerate(states):
            first = choose_alone(first_rows[r : r + 1], state.run.generator)
            state.emit(first, "target", trace.step_stats(first_rows[r : r + 1], torch.tensor(first.tokens)), eos)
            state.labels[0] = "target"
        on_first_token()

        lookup: PromptLookupProposer | None = None
        drafter: DraftModelProposer | None = None
        if config.proposer == "prompt_lookup":
            lookup = PromptLookupProposer(
                num_tokens=config.prompt_lookup_num_tokens,
                max_matching_ngram_size=config.max_matching_ngram_size,
                eos_token_ids=eos_token_ids,
            )
        else:
            drafter = DraftModelProposer(
                draft_model,
                num_tokens=config.num_draft_tokens,
                vocab_size=first_rows.shape[-1],
                eos_token_ids=eos_token_ids,
                do_sample=config.do_sample,
                temperature=config.temperature,
                top_k=config.top_k,
                top_p=config.top_p,
                generator=runs[0].generator,
                execution=execution,
            )

        live = [r for r, state in enumerate(states) if not state.done(eos)]
        if live and len(live) != len(states):
            ex.reorder(live)
        draft_rows = list(live)  # the drafter's rows, by run
        while live:
            contexts = [states[r].run.prompt + states[r].tokens for r in live]
            limits = [states[r].run.max_new_tokens - len(states[r].tokens) - 1 for r in live]
            if drafter is not None:
                if draft_rows != live:
                    drafter.keep_rows([draft_rows.index(r) for r in live])
                    draft_rows = list(live)
                drafts = drafter.propose_batch(
                    contexts, limits, [states[r].run.generator for r in live], capacity=capacity
                )
            else:
                assert lookup is not None
                drafts = [lookup.propose(c, m) for c, m in zip(contexts, limits, strict=True)]
            ks = [len(d.tokens) for d in drafts]
            assert all(k <= max(m, 0) for k, m in zip(ks, limits, strict=True)), "a proposer drafted past its limit"
            width = max(ks) + 1
            if fixed_width and width > 1:
                width = num_tokens + 1  # one captured verify shape per configuration
            feed = torch.zeros((len(live), width), dtype=torch.long)
            for i, (r, d) in enumerate(zip(live, drafts, strict=True)):
                feed[i, : len(d.tokens) + 1] = torch.tensor([states[r].tokens[-1], *d.tokens])
            rows = ex.step(feed, real=[k + 1 for k in ks], keep=width)  # [live, width, vocab]
            greedy_stats = None
            if not config.do_sample and rows.device.type == "cuda":
                # Every position's argmax and trace figures in one transfer: one wait per step.
                flat = rows.reshape(-1, rows.shape[-1])  # [live * width, vocab]
                greedy_stats = trace.step_stats(flat, torch.argmax(flat, dim=-1))
            drops = []
            for i, (r, d, k) in enumerate(zip(live, drafts, ks, strict=True)):
                state = states[r]
                row = rows[i, : k + 1]  # [k+1, vocab]
                state.target_forwards += 1
                if config.do_sample:
                    q = None if d.q is None else d.q.to(row.device)
                    step = verify_sampling(warp(row), d.tokens, q, state.run.generator)
                    raw = trace.step_stats(row[: len(step.tokens)], torch.tensor(step.tokens, device=row.device))
                elif greedy_stats is not None:
                    step, raw = verify_greedy_from_stats(greedy_stats[i * width : i * width + k + 1], d.tokens)
                else:
                    step = verify_greedy(row, d.tokens)
                    raw = trace.step_stats(row[: len(step.tokens)], torch.tensor(step.tokens, device=row.device))
                drops.append(k - step.accepted)  # the cache then ends at the last accepted draft
                if k:
                    state.drafted += k
                    state.verification_steps += 1
                extra = "target" if k == 0 else ("bonus" if step.accepted == k else "corrected")
                state.emit(step, extra, raw, eos)
            ex.rollback(drops)
            still = [i for i, r in enumerate(live) if not states[r].done(eos)]
            if len(still) != len(live):
                if still:
                    ex.reorder(still)
                live = [live[i] for i in still]

    draft_forwards = drafter.forwards if drafter is not None else 0
    out = []
    for state in states:
        tokens = state.tokens
        finish_reason = "eos" if tokens[-1] in eos else ("stop" if state.stopped else "length")
        metrics = {
            "drafted": state.drafted,
            "accepted": state.accepted,
            "acceptance_rate": state.accepted / state.drafted if state.drafted else None,
            "verification_steps": state.verification_steps,
            "mean_accepted_length": state.accepted / state.verification_steps if state.verification_steps else None,
            "target_forwards": state.target_forwards,
            "tokens_per_verification": len(tokens) / state.target_forwards,
            "draft_forwards": draft_forwards,
        }
        out.append(
            [
                GeneratedSequence(
                    token_ids=tokens,
                    finish_reason=finish_reason,
                    score=state.score,
                    metrics=metrics,
                    token_info=[{"spec": label} for label in state.labels],
                    stats=state.stats,
                )
            ]
        )
    return out
