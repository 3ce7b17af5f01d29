"""Helpers shared by the decoder tests."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def recorded_forwards(model):
    """The ``input_ids`` shape of every forward call of ``model`` (a forward pre-hook)."""
    calls: list[tuple[int, ...]] = []
    handle = model.register_forward_pre_hook(
        lambda _module, _args, kwargs: calls.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        yield calls
    finally:
        handle.remove()
