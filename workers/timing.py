"""Clocks that synchronise CUDA before reading the time, and peak memory."""

from __future__ import annotations

import resource
import sys
import time

import torch


class DecodeClock:
    """Marks start, first new token and end of decoding on one device.

    On CUDA, kernels run asynchronously: without a synchronise, the clock would read the
    time the work was queued, not when it finished.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.started = 0.0
        self.first_token: float | None = None
        self.ended = 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.started = self._now()

    def mark_first_token(self) -> None:
        if self.first_token is None:
            self.first_token = self._now()

    def stop(self) -> None:
        self.ended = self._now()
        if self.first_token is None:
            self.first_token = self.ended

    @property
    def prefill_ms(self) -> float:
        return ((self.first_token or self.ended) - self.started) * 1000

    @property
    def decode_ms(self) -> float:
        return (self.ended - (self.first_token or self.ended)) * 1000


def tokens_per_second(new_tokens: int, decode_ms: float) -> float | None:
    """Decode phase only: the first token is counted in prefill, so new_tokens - 1 tokens."""
    if new_tokens < 2 or decode_ms <= 0:
        return None
    return (new_tokens - 1) / (decode_ms / 1000)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak allocated accelerator memory on CUDA; else the process's peak RSS (weights included)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)
