"""Constrained decoding: only outputs that a regex, JSON schema, grammar or choice list allows.

Algorithm (grammar-constrained decoding by token masking, as in Outlines, llguidance,
XGrammar and transformers' own ``PrefixConstrainedLogitsProcessor``):

1. Compile the constraint with llguidance over the model's tokenizer
   (``workers.grammar.compile_grammar``, bounded to 5 s and by llguidance's work limits;
   failures raise ``GrammarError`` naming the parameter). The result is a matcher at the
   start state: an incremental parser that, given the tokens consumed so far, says which
   tokens of the vocabulary can extend the output towards a complete match.
2. Prefill the prompt ``[1, prompt_len]`` once (``workers.executor``).
3. Each step, for each live row (one output, sample or beam) with its own matcher:
   a. ``mask``: the matcher writes a bitmask of allowed tokens (``[ceil(V / 32)]`` int32,
      unpacked here with NumPy to ``[V]`` bool: the helper ``llguidance.torch`` ships is
      ``torch.compile``d, ~20 s on its first CPU call). Ids past the tokenizer (padded
      embedding rows) are never allowed; eos is allowed exactly when the output so far is
      complete (the matcher is accepting).
   b. ``masked_mass``: the probability the raw model distribution ``softmax(logits)`` puts on
      disallowed tokens, before anything else touches the logits.
   c. The disallowed logits are set to ``-inf`` in the raw float32 logits, *before*
      ``log_softmax`` or any warper, so every later stage sees the constrained distribution
      ``p(t) / sum_{allowed} p``: greedy takes its argmax; sampling applies
      ``logits.warp`` (temperature, top-k, top-p) and draws from ``generator``; beam search
      ranks ``running score + log_softmax(masked)``.
   d. The chosen token is consumed by the row's matcher. A step that allowed exactly one
      token is counted as ``forced`` (the forward pass is still run: the step's logits are
      needed for ``masked_mass`` and the next step; one forward per token).
4. A row finishes with
   - ``"eos"``: it chose an eos id (allowed only where the output is complete); the eos
     token is kept in ``token_ids`` as in the other decoders;
   - ``"constraint"``: after its last token the matcher is stopped -- the output is complete
     and nothing but eos could follow -- so decoding ends there without spending a forward
     pass on the forced eos (``token_ids`` then holds no eos);
   - ``"stop"``: its last token completed one of the ``stop`` strings
     (``workers.decoders.stopping``); the token is kept (and consumed by the matcher). A
     stop string wins over ``"constraint"`` when the same token does both (eos wins over
     both). ``valid`` is then checked on the text cut before the stop string
     (``StopStrings.cut``), the text the caller returns;
   - ``"length"``: ``max_new_tokens`` tokens without any of these (the output is usually
     incomplete and ``valid`` false).

Beam search (``decoding="beam"``, ``B = num_beams``): a plain beam search whose beams each
carry their matcher. Prefill one row; each step, every running beam's masked
``log_softmax`` is added to its score and the best ``2B`` candidates over all beams are
considered in order: a candidate ending in eos, or whose matcher stops, becomes a finished
hypothesis if it ranks among the first ``B`` (transformers' rule); the others become the next
running beams (at most ``B``), each with a deep copy of its parent's matcher (~1 us) that then
consumes the new token, so matcher states follow the beams' reordering exactly as the KV
cache rows do (``Executor.reorder`` with the parents' indices; the number of rows can shrink when the
constraint leaves fewer than ``B`` continuations). Finished hypotheses are scored
``sum_logprob / new_tokens ** length_penalty``; the search stops when no beam runs, at
``max_new_tokens`` (the running beams are then finished as ``"length"``), or when ``B``
hypotheses are finished and the best running beam's score, penalised at its current length
(transformers' ``early_stopping=False`` heuristic), cannot beat the worst of them. The
``num_return_sequences`` best are returned, best first (fewer when the constraint admits
fewer distinct outputs). transformers 5 has no constrained beam search to compare with.

Scores: greedy and beam use ``log_softmax`` of the masked logits (the constrained
distribution: a forced token costs 0); sampling, that of the masked-then-warped logits that
were sampled from, as ``workers.decoders.sampling`` does.

Why ``masked_mass``: masking then renormalising is not sampling from the model conditioned
on the constraint. The renormalised next-token distribution ignores how much probability
the model gives to *completions* behind each allowed token, so the outputs can be distorted
(a token with little mass on its own but leading mostly to invalid continuations gets
boosted); the more mass is masked, the further the decoded distribution is from what the
model wanted. Park et al. 2024, "Grammar-Aligned Decoding" (arXiv:2405.21047); Willard & Louf
2023 (arXiv:2307.09702); Geng et al. 2023 (arXiv:2305.13971); Beurer-Kellner et al. 2024,
"Guiding LLMs The Right Way" (arXiv:2403.06988) on token-boundary effects.

Per output ``metrics``:
    ``constraint`` (regex | json_schema | grammar | choices), ``decoding``,
    ``compile_ms`` (grammar + matcher + first mask), ``tokenizer_ms`` (building llguidance's
    tokenizer; 0 when cached), ``mask_ms_mean`` / ``mask_ms_p99`` (per step: computing the
    bitmask, unpacking it and applying it to the logits), ``forced_tokens`` (steps where one
    token was allowed), ``masked_mass_mean`` / ``masked_mass_max``, ``valid``
    (``workers.grammar.check_valid`` on the decoded text, independent of llguidance; null when
    it cannot decide).
Per token ``token_info``: ``{"forced": bool, "masked_mass": float}``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workers import grammar, trace
from workers.decoders import kv, logits
from workers.decoders.base import GeneratedSequence, no_op
from workers.decoders.stopping import StopStrings
from workers.executor import Execution, Executor, new_executor
from workers.grammar import CompiledGrammar, GrammarError, Uncheckable
from workers.strategies import ConstrainedConfig, ParamError

NEG_INF = -float("inf")


@dataclass
class _Row:
    """One output in progress: its matcher and what happened at each of its steps."""

    matcher: Any  # llguidance.LLMatcher
    tokens: list[int] = field(default_factory=list)
    score: float = 0.0  # sum of chosen tokens' log-probabilities (see the module docstring)
    info: list[dict[str, Any]] = field(default_factory=list)  # token_info
    stats: list[dict[str, Any]] = field(default_factory=list)  # trace figures from the raw logits
    mask_ms: list[float] = field(default_factory=list)
    finish_reason: str | None = None

    def fork(self) -> _Row:
        """A copy that can diverge (beam search): the matcher is deep-copied."""
        copy = [list(self.tokens), self.score, list(self.info), list(self.stats), list(self.mask_ms)]
        return _Row(self.matcher.deep_copy(), *copy)


@dataclass
class _Step:
    """The masking of one row at one step."""

    masked: torch.Tensor  # [V] float32 logits, -inf where disallowed
    n_allowed: int
    masked_mass: float
    mask_ms: float


class _Masker:
    """Computes a row's allowed-token mask and applies it to its logits.

    The bitmask is unpacked and, on CPU, applied with NumPy: these are single-threaded
    microsecond operations, whereas torch's elementwise kernels on a 49k-wide row go
    multi-threaded and, on a busy machine, wait tens of milliseconds for their threads.
    """

    def __init__(self, compiled: CompiledGrammar, width: int, device: torch.device) -> None:
        assert width <= compiled.n_vocab, f"logits width {width} exceeds the mask width {compiled.n_vocab}"
        self.compiled = compiled
        self.width = width
        self.device = device
        self.on_cpu = device.type == "cpu"
        self.words = (compiled.n_vocab + 31) // 32
        # [words] little-endian int32 that the matcher writes: bit j of word w is token 32 * w + j,
        # so its bytes unpacked least significant bit first are the tokens in order.
        self.bitmask = np.zeros(self.words, dtype="<i4")

    def allowed(self, matcher: Any) -> np.ndarray:
        """``[V]`` bool (NumPy, CPU): the tokens ``matcher`` allows next."""
        matcher.unsafe_compute_mask_ptr(self.bitmask.ctypes.data, self.words * 4)
        if matcher.is_error():
            raise GrammarError(self.compiled.field, f"while decoding: {grammar.error_text(matcher.get_error())}")
        bits = np.unpackbits(self.bitmask.view(np.uint8), bitorder="little")  # [words * 32] uint8
        return bits[: self.width].view(np.bool_)  # [V]

    def step(self, row: _Row, raw: torch.Tensor) -> _Step:
        """Mask ``raw`` (``[V]`` float32 logits of ``row``) by its matcher; measure the mass removed."""
        assert raw.dim() == 1 and raw.shape[0] == self.width, f"expected [{self.width}] logits, got {tuple(raw.shape)}"
        t0 = time.perf_counter()
        allowed = self.allowed(row.matcher)  # [V] bool, NumPy
        if self.on_cpu:
            raw_np = raw.numpy()  # [V] float32, shares memory with raw
            masked = torch.from_numpy(np.where(allowed, raw_np, np.float32(NEG_INF)))  # [V]
        else:
            allowed_t = torch.from_numpy(allowed).to(self.device, non_blocking=True)  # [V]
            masked = raw.masked_fill(~allowed_t, NEG_INF)  # [V]
        mask_ms = (time.perf_counter() - t0) * 1000
        n_allowed = int(np.count_nonzero(allowed))
        if n_allowed == 0:
            raise GrammarError(self.compiled.field, "no token of this model can continue the output")
        # Probability of the disallowed tokens under the raw model distribution softmax(raw).
        if self.on_cpu:
            exp = np.exp(raw_np - raw_np.max(), dtype=np.float64)  # [V]
            masked_mass = float(exp.sum(where=~allowed) / exp.sum())
        else:
            probs = torch.softmax(raw.double(), dim=-1)  # [V]
            masked_mass = float(probs.masked_fill(allowed_t, 0.0).sum())
        return _Step(masked, n_allowed, min(max(masked_mass, 0.0), 1.0), mask_ms)


def _record(row: _Row, token: int, step: _Step, logprob: float, stats: dict[str, Any]) -> None:
    row.stats.append(stats)
    row.tokens.append(token)
    row.score += logprob
    row.info.append({"forced": step.n_allowed == 1, "masked_mass": round(step.masked_mass, 6)})
    row.mask_ms.append(step.mask_ms)


def _consume(
    row: _Row, token: int, compiled: CompiledGrammar, eos: set[int], last_step: bool, stop: StopStrings | None
) -> None:
    """Advance ``row``'s matcher past ``token`` (already recorded) and set its finish reason if it is done."""
    if token in eos:
        row.finish_reason = "eos"
        return
    if not row.matcher.consume_token(token):
        raise GrammarError(compiled.field, f"while decoding: {grammar.error_text(row.matcher.get_error())}")
    if stop is not None and stop.hit(row.tokens):
        row.finish_reason = "stop"
    elif row.matcher.is_stopped():
        row.finish_reason = "constraint"
    elif last_step:
        row.finish_reason = "length"


def _logits_width(model: Any) -> int:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        return int(head.weight.shape[0])
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.vocab_size)


def decode(
    model: Any,
    input_ids: torch.Tensor,
    config: ConstrainedConfig,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    generator: torch.Generator | None = None,
    on_first_token: Callable[[], None] = no_op,
    tokenizer: Any = None,
    stop: StopStrings | None = None,
    execution: Execution | None = None,
    **_resources: Any,  # draft_model: not used here
) -> list[GeneratedSequence]:
    """Decode ``input_ids`` (``[1, prompt_len]``) under ``config``'s constraint.

    Raises ``GrammarError`` (a ``ParamError``) when the constraint does not compile, exceeds
    a limit, or leaves no token to continue with.
    """
    assert isinstance(config, ConstrainedConfig), f"expected a ConstrainedConfig, got {type(config).__name__}"
    kv.check_prompt(input_ids, max_new_tokens)
    if tokenizer is None:
        raise ValueError("constrained decoding needs the model's tokenizer (tokenizer=...)")
    if config.decoding == "greedy" and config.num_return_sequences != 1:
        raise ParamError("params.num_return_sequences", "greedy decoding returns one output; use sampling or beam")
    if config.decoding == "sampling" and generator is None:
        raise ValueError("sampling needs a seeded torch.Generator")
    eos_list = [int(i) for i in eos_token_ids]
    width = _logits_width(model)

    compiled = grammar.compile_grammar(config, tokenizer, n_vocab=width, eos_token_ids=eos_list)
    masker = _Masker(compiled, width, input_ids.device)
    eos = set(eos_list)

    with torch.inference_mode():
        prompt = input_ids[0].tolist()
        widest = config.num_beams if config.decoding == "beam" else config.num_return_sequences
        capacity = Executor.capacity_for([len(prompt)], max_new_tokens)
        ex = new_executor(execution, model, rows=1, max_rows=max(widest, 1), capacity=capacity)
        first_logits = ex.prefill([prompt])[:, -1]  # [1, V]
        assert first_logits.shape[-1] == width, f"logits width {first_logits.shape[-1]} != lm_head rows {width}"
        if config.decoding == "beam":
            rows = _beam(ex, first_logits, config, compiled, masker, eos, max_new_tokens, on_first_token, stop)
        else:
            rows = _ancestral(
                ex,
                first_logits,
                config,
                compiled,
                masker,
                eos,
                max_new_tokens,
                generator,
                on_first_token,
                stop,
            )
    return [_output(row, config, compiled, tokenizer, eos, stop) for row in rows]


def _ancestral(
    ex: Executor,
    first_logits: torch.Tensor,
    config: ConstrainedConfig,
    compiled: CompiledGrammar,
    masker: _Masker,
    eos: set[int],
    max_new_tokens: int,
    generator: torch.Generator | None,
    on_first_token: Callable[[], None],
    stop: StopStrings | None = None,
) -> list[_Row]:
    """Greedy (one row) or sampling (``num_return_sequences`` rows): one token per live row per step.

    Rows that finish leave the batch: the KV cache keeps only the live rows (``Executor.reorder``
    with the live rows' indices), so no forward is spent on finished ones.
    """
    sampling = config.decoding == "sampling"
    n = config.num_return_sequences if sampling else 1
    rows = [_Row(compiled.new_matcher()) for _ in range(n)]
    live = list(range(n))  # row index of each cache row
    if n > 1:
        ex.reorder([0] * n)  # [n] copies of the prompt
    next_logits = first_logits.expand(n, -1)  # [live, V]

    for step in range(max_new_tokens):
        last_step = step + 1 == max_new_tokens
        steps = [masker.step(rows[r], next_logits[i]) for i, r in enumerate(live)]
        masked = torch.stack([s.masked for s in steps])  # [live, V]
        if sampling:
            warped = logits.warp(masked, temperature=config.temperature, top_k=config.top_k, top_p=config.top_p)
            probs = torch.softmax(warped, dim=-1)  # [live, V]
            chosen = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)  # [live]
            logprobs = torch.log_softmax(warped, dim=-1)  # [live, V]
        else:
            chosen = torch.argmax(masked, dim=-1)  # [live]
            logprobs = torch.log_softmax(masked, dim=-1)  # [live, V]
        chosen_logprob = logprobs.gather(1, chosen[:, None]).squeeze(1)  # [live]

        raw_stats = trace.step_stats(next_logits, chosen)
        for i, r in enumerate(live):
            token = int(chosen[i])
            _record(rows[r], token, steps[i], float(chosen_logprob[i]), raw_stats[i])
            _consume(rows[r], token, compiled, eos, last_step, stop)
        if step == 0:
            on_first_token()

        still = [i for i, r in enumerate(live) if rows[r].finish_reason is None]
        if not still:
            break
        feed = chosen[still]  # [still]
        if len(still) != len(live):
            ex.reorder(still)
            live = [live[i] for i in still]
        next_logits = ex.step(feed[:, None])[:, -1]  # [live, V]
    return rows


def _beam(
    ex: Executor,
    first_logits: torch.Tensor,
    config: ConstrainedConfig,
    compiled: CompiledGrammar,
    masker: _Masker,
    eos: set[int],
    max_new_tokens: int,
    on_first_token: Callable[[], None],
    stop: StopStrings | None = None,
) -> list[_Row]:
    """Beam search with one matcher per beam (see the module docstring); best first."""
    num_beams = config.num_beams
    length_penalty = config.length_penalty
    running = [_Row(compiled.new_matcher())]  # one row until the first step branches
    next_logits = first_logits  # [running, V]
    finished: list[_Row] = []  # hypotheses; score is length-penalised once finished

    def penalised(row: _Row) -> float:
        return row.score / (len(row.tokens) ** length_penalty)

    for step in range(max_new_tokens):
        generated_len = step + 1
        last_step = generated_len == max_new_tokens
        steps = [masker.step(row, next_logits[b]) for b, row in enumerate(running)]
        logprobs = torch.stack([torch.log_softmax(s.masked, dim=-1) for s in steps])  # [running, V]
        totals = logprobs + torch.tensor([row.score for row in running])[:, None].to(logprobs)  # [running, V]
        flat = totals.reshape(-1)  # [running * V]
        k = min(2 * num_beams, sum(s.n_allowed for s in steps))
        top_idx = torch.topk(flat, k).indices  # [k], best first
        vocab = totals.shape[1]
        cand_parent = top_idx // vocab  # [k]
        cand_stats = trace.step_stats(next_logits[cand_parent], top_idx % vocab)  # raw figures per candidate

        new_running: list[_Row] = []
        parents: list[int] = []
        for rank in range(k):
            parent, token = divmod(int(top_idx[rank]), vocab)
            child = running[parent].fork()
            _record(child, token, steps[parent], float(logprobs[parent, token]), cand_stats[rank])
            _consume(child, token, compiled, eos, last_step, stop)
            if child.finish_reason is None:
                if len(new_running) < num_beams:
                    new_running.append(child)
                    parents.append(parent)
            elif rank < num_beams or last_step:
                child.score = penalised(child)
                finished.append(child)
            if len(new_running) == num_beams:
                break  # later candidates rank >= B: neither running nor admitted as finished
        if step == 0:
            on_first_token()

        finished.sort(key=lambda row: row.score, reverse=True)
        del finished[num_beams:]
        if not new_running:
            break
        if len(finished) >= num_beams:
            best_possible = new_running[0].score / (generated_len**length_penalty)
            if finished[-1].score >= best_possible:
                break
        idx = torch.tensor(parents, dtype=torch.long, device=next_logits.device)  # [new_running]
        ex.reorder(idx)
        feed = torch.tensor([row.tokens[-1] for row in new_running], dtype=torch.long, device=idx.device)
        running = new_running
        next_logits = ex.step(feed[:, None])[:, -1]  # [running, V]
    return finished[: config.num_return_sequences]


def _output(
    row: _Row,
    config: ConstrainedConfig,
    compiled: CompiledGrammar,
    tokenizer: Any,
    eos: set[int],
    stop: StopStrings | None = None,
) -> GeneratedSequence:
    assert row.finish_reason is not None, "every returned row is finished"
    body = row.tokens[:-1] if row.finish_reason == "eos" else row.tokens
    text = tokenizer.decode(body, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    if row.finish_reason == "stop" and stop is not None:
        text = stop.cut(text)  # what the caller returns
    try:
        valid: bool | None = grammar.check_valid(config, text, tokenizer=compiled.tokenizer)
    except Uncheckable:
        valid = None
    masses = [info["masked_mass"] for info in row.info]
    mask_ms = sorted(row.mask_ms)
    p99 = mask_ms[min(len(mask_ms) - 1, math.ceil(0.99 * len(mask_ms)) - 1)] if mask_ms else 0.0
    metrics = {
        "constraint": compiled.kind,
        "decoding": config.decoding,
        "compile_ms": round(compiled.compile_ms, 3),
        "tokenizer_ms": round(compiled.tokenizer_ms, 3),
        "mask_ms_mean": round(sum(mask_ms) / len(mask_ms), 4) if mask_ms else 0.0,
        "mask_ms_p99": round(p99, 4),
        "forced_tokens": sum(1 for info in row.info if info["forced"]),
        "masked_mass_mean": round(sum(masses) / len(masses), 6) if masses else 0.0,
        "masked_mass_max": round(max(masses), 6) if masses else 0.0,
        "valid": valid,
    }
    return GeneratedSequence(
        token_ids=list(row.tokens),
        finish_reason=row.finish_reason,
        score=row.score,
        metrics=metrics,
        token_info=list(row.info),
        stats=list(row.stats),
    )
