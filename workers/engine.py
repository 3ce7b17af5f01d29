"""Execute one DecodeRequest end to end: model, prompt, decoder, metrics.

Shared by the Celery task and by `python -m workers.decode`, so both produce the same result
for the same request.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import torch
import transformers

from workers.decoders import DECODERS
from workers.decoders.stopping import StopStrings
from workers.protocol import DecodeRequest, DecodeResult, Environment, Metrics, Output, ParamError
from workers.reliability import worker_name
from workers.runtime import LoadedModel, load, seeded_generator
from workers.strategies import SpeculativeConfig, build_config
from workers.timing import DecodeClock, peak_memory_bytes, tokens_per_second
from workers.trace import token_trace


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
    t_start = time.perf_counter()
    started_at = started_at or time.time()
    fail = partial(DecodeResult.failure, run_id=request.run_id, attempt=request.attempt)
    try:
        config = build_config(request.strategy, request.params)
        loaded, cache_hit = load(request.model)
        ids = prompt_ids(loaded, request)
        resources = {
            "tokenizer": loaded.tokenizer,
            "draft_model": None,
            "stop": StopStrings(loaded.tokenizer, request.stop) if request.stop else None,
        }
        if isinstance(config, SpeculativeConfig) and config.draft_model:
            resources["draft_model"] = load(config.draft_model, loaded.dtype, loaded.device)[0].model
    except ParamError as exc:
        return fail(error=str(exc), error_field=exc.field)
    except KeyError as exc:
        return fail(error=f"model: {exc.args[0]}", error_field="model")

    device = loaded.device
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)  # [1, prompt_len]
    clock = DecodeClock(device)
    generator = seeded_generator(request.seed, device)
    decode_fn = DECODERS[config.strategy]
    try:
        with torch.inference_mode():
            clock.start()
            sequences = decode_fn(
                loaded.model,
                input_ids,
                config,
                max_new_tokens=request.max_new_tokens,
                eos_token_ids=loaded.eos_token_ids,
                generator=generator,
                on_first_token=clock.mark_first_token,
                **resources,
            )
            clock.stop()
    except ParamError as exc:  # found while decoding, e.g. a grammar that does not compile
        return fail(error=str(exc), error_field=exc.field)

    t_trace = time.perf_counter()
    outputs = [
        Output(
            index=i,
            text=output_text(loaded.tokenizer, seq.token_ids, seq.finish_reason, resources["stop"]),
            token_ids=[int(t) for t in seq.token_ids],
            finish_reason=seq.finish_reason,
            score=None if seq.score is None else float(seq.score),
            group=seq.group,
            metrics=dict(seq.metrics),
            trace=(
                token_trace(loaded.model, loaded.tokenizer, ids, list(seq.token_ids), seq.token_info)
                if request.trace
                else None
            ),
        )
        for i, seq in enumerate(sequences)
    ]
    trace_ms = (time.perf_counter() - t_trace) * 1000 if request.trace else 0.0
    new_tokens = max((len(o.token_ids) for o in outputs), default=0)
    metrics = Metrics(
        queue_wait_ms=None if request.enqueued_at is None else max(0.0, (started_at - request.enqueued_at) * 1000),
        model_load_ms=0.0 if cache_hit else round(loaded.load_ms, 3),
        model_cache_hit=cache_hit,
        prefill_ms=round(clock.prefill_ms, 3),
        decode_ms=round(clock.decode_ms, 3),
        new_tokens=new_tokens,
        tokens_per_s=tokens_per_second(new_tokens, clock.decode_ms),
        total_ms=round((time.perf_counter() - t_start) * 1000, 3),
        peak_memory_bytes=peak_memory_bytes(device),
        trace_ms=round(trace_ms, 3),
    )
    return DecodeResult(
        run_id=request.run_id,
        attempt=request.attempt,
        outputs=outputs,
        prompt_token_ids=ids,
        metrics=metrics,
        environment=environment(loaded, request.seed),
    )


def environment(loaded: LoadedModel, seed: int) -> Environment:
    device = loaded.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return Environment(
        device=f"{device.type}:{name}" if device.type == "cuda" else "cpu",
        dtype=loaded.dtype,
        seed=seed,
        torch_version=torch.__version__,
        transformers_version=transformers.__version__,
        batch_size=1,
        worker=worker_name(),
    )


def execute_dict(data: Any) -> dict[str, Any]:
    """JSON in, JSON out; a malformed request is answered with an error, not an exception."""
    run_id = data.get("run_id") if isinstance(data, dict) else None
    attempt = data.get("attempt", 1) if isinstance(data, dict) else 1
    try:
        request = DecodeRequest.from_dict(data)
    except ParamError as exc:
        return DecodeResult.failure(run_id=run_id, attempt=attempt, error=str(exc), error_field=exc.field).to_dict()
    except TypeError as exc:
        return DecodeResult.failure(
            run_id=run_id, attempt=attempt, error=f"request: {exc}", error_field="request"
        ).to_dict()
    return execute(request).to_dict()
