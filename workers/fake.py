"""A fast stand-in for the model, for fault and load tests (``DECODELAB_FAKE_DECODER=1``).

Only the decoding is faked: the Celery task, leases, attempts, heartbeats, time limits and
the result path around it are the real ones. The prompt can ask for a failure mode:

- ``fault:die``: the process kills itself with SIGKILL (a poison job: out-of-memory, segfault);
- ``fault:sleep=<s>``: decoding takes ``s`` seconds (interruptible, so the soft limit fires);
- ``fault:hang=<s>``: like sleep, but deaf to the soft limit, so only the hard limit stops it.

Otherwise decoding takes ``DECODELAB_FAKE_DELAY_S`` seconds (default 0.05) and echoes a
deterministic text derived from the prompt and seed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from typing import Any

from workers.protocol import DecodeRequest, DecodeResult, Environment, Metrics, Output, ParamError

ENABLED_ENV = "DECODELAB_FAKE_DECODER"


def enabled() -> bool:
    return os.environ.get(ENABLED_ENV, "") not in ("", "0", "false")


def _fault(prompt: str) -> tuple[str, float]:
    for line in prompt.splitlines():
        if line.startswith("fault:"):
            kind, _, arg = line[len("fault:") :].partition("=")
            return kind, float(arg or 0)
    return "", 0.0


def execute_dict(data: Any, *, worker: str) -> dict[str, Any]:
    run_id = data.get("run_id") if isinstance(data, dict) else None
    attempt = data.get("attempt", 1) if isinstance(data, dict) else 1
    try:
        request = DecodeRequest.from_dict(data)
    except (ParamError, TypeError) as exc:
        return DecodeResult.failure(run_id=run_id, attempt=attempt, error=str(exc), error_field="request").to_dict()
    kind, seconds = _fault(request.prompt or "")
    t0 = time.perf_counter()
    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "hang":
        # Block the soft-limit signal (Celery uses SIGUSR1) so only the hard limit can stop us.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        time.sleep(seconds)
    elif kind == "sleep":
        time.sleep(seconds)
    else:
        time.sleep(float(os.environ.get("DECODELAB_FAKE_DELAY_S", "0.05")))
    digest = hashlib.sha256(f"{request.prompt}|{request.strategy}|{request.seed}".encode()).hexdigest()
    n = min(request.max_new_tokens, 8)
    tokens = [int(digest[i * 4 : i * 4 + 4], 16) for i in range(n)]
    elapsed_ms = (time.perf_counter() - t0) * 1000
    result = DecodeResult(
        run_id=run_id,
        attempt=attempt,
        outputs=[
            Output(text=f"fake {request.strategy} output {digest[:12]}", token_ids=tokens, finish_reason="length")
        ],
        prompt_token_ids=[1, 2, 3],
        metrics=Metrics(
            queue_wait_ms=(time.time() - request.enqueued_at) * 1000 if request.enqueued_at else None,
            model_load_ms=0.0,
            model_cache_hit=True,
            prefill_ms=0.0,
            decode_ms=elapsed_ms,
            new_tokens=n,
            tokens_per_s=None,
            total_ms=elapsed_ms,
            peak_memory_bytes=None,
        ),
        environment=Environment(
            device="fake",
            dtype="none",
            seed=request.seed,
            torch_version="",
            transformers_version="",
            batch_size=1,
            worker=worker,
        ),
    )
    return result.to_dict()
