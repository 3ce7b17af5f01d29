"""Execute DecodeRequests end to end: model, prompt, decoder, metrics.

Shared by the Celery task and by `python -m workers.decode`, so both produce the same result
for the same request. ``execute_batch`` decodes compatible requests together (the same model,
strategy and parameters: greedy, sampling and speculative decoding batch their runs); in a batch,
``prefill_ms`` and ``decode_ms`` are the batch's, which each of its runs waited for, and
``environment.batch_size`` says how many runs shared them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import transformers

from workers import batching
from workers.decoders import DECODERS, greedy, sampling, speculative
from workers.decoders.base import GeneratedSequence
from workers.decoders.stopping import StopStrings
from workers.executor import CapacityError, Execution
from workers.protocol import DecodeRequest, DecodeResult, Environment, Metrics, Output, ParamError
from workers.reliability import worker_name
from workers.runtime import LoadedModel, execution_for, load, seeded_generator
from workers.strategies import GreedyConfig, SamplingConfig, SpeculativeConfig, StrategyConfig, build_config
from workers.timing import DecodeClock, peak_memory_bytes, tokens_per_second
from workers.trace import token_trace, trace_from_stats


def prompt_ids(loaded: LoadedModel, request: DecodeRequest) -> list[int]:
    if request.prompt_token_ids is not None:
        vocab = loaded.model.config.vocab_size
        if max(request.prompt_token_ids) >= vocab:
            raise ParamError("prompt_token_ids", f"token ids must be below the vocabulary size {vocab}")
        return list(request.prompt_token_ids)
    tok = loaded.tokenizer
    if request.chat:
        if not tok.chat_template:
            raise ParamError("chat", f"model {request.model!r} has no chat template; send chat=false")
        enc = tok.apply_chat_template(
            [{"role": "user", "content": request.prompt}], add_generation_prompt=True, tokenize=True
        )
        ids = enc["input_ids"] if hasattr(enc, "keys") else enc
        return [int(i) for i in ids]
    return [int(i) for i in tok(request.prompt).input_ids]


def output_text(tokenizer: Any, token_ids: list[int], finish_reason: str, stop: StopStrings | None) -> str:
    """The output's text; a stopped output ends before its stop string (its tokens keep it)."""
    text = tokenizer.decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return stop.cut(text) if stop is not None and finish_reason == "stop" else text


def execute(request: DecodeRequest, *, started_at: float | None = None) -> DecodeResult:
    """Decode one request; invalid input becomes a result with ``error``, never an exception."""
    return execute_batch([request], started_at=started_at)[0]


@dataclass
class _Prepared:
    """A valid request, ready to decode: its config, model, prompt ids and resources."""

    index: int
    request: DecodeRequest
    config: StrategyConfig
    loaded: LoadedModel
    cache_hit: bool
    ids: list[int]
    stop: StopStrings | None
    draft_model: Any


def batch_key(request: DecodeRequest) -> tuple[str, str, str] | None:
    """Requests with the same key may be decoded together (``workers.batching.batch_key``)."""
    return batching.batch_key(request.to_dict())


def request_tokens(p: _Prepared) -> int:
    """The KV-cache slots one request's rows hold at most: what DECODELAB_MAX_BATCH_TOKENS bounds."""
    rows = getattr(p.config, "num_return_sequences", 1)
    width = 2 * (getattr(p.config, "num_draft_tokens", 0) + getattr(p.config, "prompt_lookup_num_tokens", 0) + 1)
    return rows * (len(p.ids) + p.request.max_new_tokens + width)


def split_batches(items: list[_Prepared]) -> list[list[_Prepared]]:
    """Compatible requests in chunks of at most DECODELAB_MAX_BATCH requests and
    DECODELAB_MAX_BATCH_TOKENS cache slots, in arrival order."""
    rows, tokens = batching.max_batch_rows(), batching.max_batch_tokens()
    chunks: list[list[_Prepared]] = []
    for item in items:
        last = chunks[-1] if chunks else None
        if (
            last is not None
            and batch_key(item.request) is not None
            and batch_key(item.request) == batch_key(last[0].request)
            and len(last) < rows
            and sum(request_tokens(p) for p in last) + request_tokens(item) <= tokens
        ):
            last.append(item)
        else:
            chunks.append([item])
    return chunks


def execute_batch(requests: list[DecodeRequest], *, started_at: float | None = None) -> list[DecodeResult]:
    """Decode several requests; compatible ones (``batch_key``) are decoded together, in
    batches bounded by DECODELAB_MAX_BATCH and DECODELAB_MAX_BATCH_TOKENS. One result per
    request, in order; a request's failure never fails its neighbours."""
    t_start = time.perf_counter()
    started_at = started_at or time.time()
    results: list[DecodeResult | None] = [None] * len(requests)
    prepared: list[_Prepared] = []
    for i, request in enumerate(requests):
        item = _prepare(i, request)
        if isinstance(item, DecodeResult):
            results[i] = item
        elif request_tokens(item) > batching.max_batch_tokens():
            results[i] = DecodeResult.failure(
                run_id=request.run_id,
                attempt=request.attempt,
                error=f"max_new_tokens: the run needs {request_tokens(item)} cache slots, more than this worker's "
                f"DECODELAB_MAX_BATCH_TOKENS ({batching.max_batch_tokens()}); shorten the prompt or max_new_tokens",
                error_field="max_new_tokens",
            )
        else:
            prepared.append(item)
    groups: dict[Any, list[_Prepared]] = {}
    for item in prepared:
        key = batch_key(item.request) or ("alone", item.index)
        groups.setdefault(key, []).append(item)
    for group in groups.values():
        for chunk in split_batches(group):
            for item, result in zip(chunk, _run_chunk(chunk, t_start, started_at), strict=True):
                results[item.index] = result
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def _prepare(index: int, request: DecodeRequest) -> _Prepared | DecodeResult:
    fail = partial(DecodeResult.failure, run_id=request.run_id, attempt=request.attempt)
    try:
        config = build_config(request.strategy, request.params)
        loaded, cache_hit = load(request.model)
        ids = prompt_ids(loaded, request)
        stop = StopStrings(loaded.tokenizer, request.stop) if request.stop else None
        draft_model = None
        if isinstance(config, SpeculativeConfig) and config.draft_model:
            draft_model = load(config.draft_model, loaded.dtype, loaded.device)[0].model
    except ParamError as exc:
        return fail(error=str(exc), error_field=exc.field)
    except KeyError as exc:
        return fail(error=f"model: {exc.args[0]}", error_field="model")
    return _Prepared(index, request, config, loaded, cache_hit, ids, stop, draft_model)


def _decode_chunk(chunk: list[_Prepared], execution: Execution, clock: DecodeClock) -> list[list[GeneratedSequence]]:
    """Run one chunk through its strategy's batched decoder (or, alone, its plain decoder)."""
    first = chunk[0]
    model, config, device = first.loaded.model, first.config, first.loaded.device
    eos = first.loaded.eos_token_ids
    if isinstance(config, GreedyConfig):
        return greedy.decode_batch(
            model,
            [p.ids for p in chunk],
            max_new_tokens=[p.request.max_new_tokens for p in chunk],
            eos_token_ids=eos,
            stops=[p.stop for p in chunk],
            on_first_token=clock.mark_first_token,
            execution=execution,
        )
    if isinstance(config, SamplingConfig):
        runs = [
            sampling.SampleRun(p.ids, seeded_generator(p.request.seed, device), p.request.max_new_tokens, p.stop)
            for p in chunk
        ]
        return sampling.decode_batch(
            model, runs, config, eos_token_ids=eos, on_first_token=clock.mark_first_token, execution=execution
        )
    if isinstance(config, SpeculativeConfig):
        spec_runs = [
            speculative.SpecRun(p.ids, seeded_generator(p.request.seed, device), p.request.max_new_tokens, p.stop)
            for p in chunk
        ]
        return speculative.decode_batch(
            model,
            spec_runs,
            config,
            eos_token_ids=eos,
            on_first_token=clock.mark_first_token,
            draft_model=first.draft_model,
            execution=execution,
        )
    assert len(chunk) == 1, f"strategy {first.request.strategy} decodes one run at a time"
    return [
        DECODERS[config.strategy](
            model,
            torch.tensor([first.ids], dtype=torch.long, device=device),
            config,
            max_new_tokens=first.request.max_new_tokens,
            eos_token_ids=eos,
            generator=seeded_generator(first.request.seed, device),
            on_first_token=clock.mark_first_token,
            tokenizer=first.loaded.tokenizer,
            draft_model=first.draft_model,
            stop=first.stop,
            execution=execution,
        )
    ]


def _run_chunk(chunk: list[_Prepared], t_start: float, started_at: float) -> list[DecodeResult]:
    first = chunk[0]
    loaded = first.loaded
    execution = execution_for(loaded, first.draft_model)
    clock = DecodeClock(loaded.device)
    try:
        with torch.inference_mode():
            clock.start()
            outs = _decode_chunk(chunk, execution, clock)
            clock.stop()
    except ParamError as exc:  # found while decoding, e.g. a grammar that does not compile
        return [_failed(p, str(exc), exc.field) for p in chunk]
    except CapacityError as exc:
        return [_failed(p, f"max_new_tokens: {exc}", "max_new_tokens") for p in chunk]
    steps = max((len(seq.token_ids) for seqs in outs for seq in seqs), default=0)
    rows = sum(batching.request_rows(p.request.to_dict()) for p in chunk)
    batching.STEP_TIMES.record(first.request.model, rows, steps, (clock.ended - clock.started))
    summary = execution.summary()
    return [
        _result(p, sequences, clock, summary, len(chunk), t_start, started_at)
        for p, sequences in zip(chunk, outs, strict=True)
    ]


def _failed(p: _Prepared, error: str, field: str | None) -> DecodeResult:
    return DecodeResult.failure(run_id=p.request.run_id, attempt=p.request.attempt, error=error, error_field=field)


def _failed(p: _Prepared, error: str, field: str | None) -> DecodeResult:
    return DecodeResult.failure(run_id=p.request.run_id, attempt=p.request.attempt, error=error, error_field=field)


def _result(
    p: _Prepared,
    sequences: list[GeneratedSequence],
    clock: DecodeClock,
    summary: dict[str, Any],
    batch_size: int,
    t_start: float,
    started_at: float,
) -> DecodeResult:
    request, loaded = p.request, p.loaded
    t_trace = time.perf_counter()
    outputs = [
        Output(
            index=i,
            text=output_text(loaded.tokenizer, seq.token_ids, seq.finish_reason, p.stop),
            token_ids=[int(t) for t in seq.token_ids],
            finish_reason=seq.finish_reason,
            score=None if seq.score is None else float(seq.score),
            group=seq.group,
            metrics=dict(seq.metrics),
            trace=_trace(loaded, p.ids, seq) if request.trace else None,
        )
        for i, seq in enumerate(sequences)
    ]
    trace_ms = (time.perf_counter() - t_trace) * 1000 if request.trace else 0.0
    new_tokens = max((len(o.token_ids) for o in outputs), default=0)
    metrics = Metrics(
        queue_wait_ms=None if request.enqueued_at is None else max(0.0, (started_at - request.enqueued_at) * 1000),
        model_load_ms=0.0 if p.cache_hit else round(loaded.load_ms, 3),
        model_cache_hit=p.cache_hit,
        prefill_ms=round(clock.prefill_ms, 3),
        decode_ms=round(clock.decode_ms, 3),
        new_tokens=new_tokens,
        tokens_per_s=tokens_per_second(new_tokens, clock.decode_ms),
        total_ms=round((time.perf_counter() - t_start) * 1000, 3),
        peak_memory_bytes=peak_memory_bytes(loaded.device),
        trace_ms=round(trace_ms, 3),
    )
    return DecodeResult(
        run_id=request.run_id,
        attempt=request.attempt,
        outputs=outputs,
        prompt_token_ids=p.ids,
        metrics=metrics,
        environment=environment(loaded, request.seed, batch_size=batch_size, **summary),
    )


def _trace(loaded: LoadedModel, ids: list[int], seq: GeneratedSequence) -> list[dict[str, Any]]:
    """From the decode's own logits when the decoder recorded them; else one teacher-forced pass."""
    if seq.stats is not None and len(seq.stats) == len(seq.token_ids):
        return trace_from_stats(loaded.tokenizer, list(seq.token_ids), seq.stats, seq.token_info)
    return token_trace(loaded.model, loaded.tokenizer, ids, list(seq.token_ids), seq.token_info)


def environment(
    loaded: LoadedModel, seed: int, *, batch_size: int = 1, executor: str = "eager", captured: bool = False
) -> Environment:
    device = loaded.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return Environment(
        device=f"{device.type}:{name}" if device.type == "cuda" else "cpu",
        dtype=loaded.dtype,
        seed=seed,
        torch_version=torch.__version__,
        transformers_version=transformers.__version__,
        batch_size=batch_size,
        worker=worker_name(),
        executor=executor,
        captured=captured,
    )


def _request_or_failure(data: Any) -> DecodeRequest | DecodeResult:
    run_id = data.get("run_id") if isinstance(data, dict) else None
    attempt = data.get("attempt", 1) if isinstance(data, dict) else 1
    try:
        return DecodeRequest.from_dict(data)
    except ParamError as exc:
        return DecodeResult.failure(run_id=run_id, attempt=attempt, error=str(exc), error_field=exc.field)
    except TypeError as exc:
        return DecodeResult.failure(run_id=run_id, attempt=attempt, error=f"request: {exc}", error_field="request")


def execute_dict(data: Any) -> dict[str, Any]:
    """JSON in, JSON out; a malformed request is answered with an error, not an exception."""
    return execute_batch_dicts([data])[0]


def execute_batch_dicts(items: list[Any]) -> list[dict[str, Any]]:
    """``execute_dict`` for several requests, compatible ones decoded together."""
    parsed = [_request_or_failure(d) for d in items]
    requests = [p for p in parsed if isinstance(p, DecodeRequest)]
    decoded = execute_batch(requests) if requests else []
    return [(p if isinstance(p, DecodeResult) else decoded.pop(0)).to_dict() for p in parsed]
