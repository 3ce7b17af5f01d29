"""Load each model and tokenizer once per process, on the right device and dtype.

A worker process serves one model queue; the loaded model is cached here for the life of
the process so that only the first request pays the load.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

from workers.executor import Execution, GraphPool, default_mode, warm_graphs
from workers.models import ModelSpec, cache_dir, get_spec

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    spec: ModelSpec
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: str
    load_ms: float

    @property
    def eos_token_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        ids = eos if isinstance(eos, list) else [eos]
        return [int(i) for i in ids if i is not None]


_lock = threading.Lock()
_loaded: dict[tuple[str, str, str], LoadedModel] = {}


def default_device() -> torch.device:
    wanted = os.environ.get("DECODELAB_DEVICE", "auto")
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(wanted)


def default_dtype() -> str:
    # fp32 keeps speculative and prompt-lookup output token-identical to greedy on CPU.
    dtype = os.environ.get("DECODELAB_DTYPE", "float32")
    if dtype not in DTYPES:
        raise ValueError(f"DECODELAB_DTYPE must be one of {', '.join(DTYPES)} (got {dtype!r})")
    return dtype


def prepare(name: str, dtype: str = "float32", *, progress: bool = True) -> Path:
    """Convert the model's GGUF file into a safetensors folder once; return the folder.

    Written to a temporary folder and renamed into place, so an interrupted preparation
    never leaves a half-written cache behind.
    """
    spec = get_spec(name)
    target = cache_dir(spec, dtype, transformers.__version__)
    if (target / "config.json").is_file():
        return target
    if not spec.is_installed():
        raise FileNotFoundError(
            f"model {name!r} is not installed: run `make models` (packages: {', '.join(spec.requirements)})"
        )
    gguf = spec.assemble(progress=_bar(f"Assembling {spec.gguf_file}") if progress else None)
    if progress:
        print(f"Preparing {spec.display_name} ({dtype}) from {gguf.name}: one time only", flush=True)
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # dequantize=True: plain weights even where a GGUF matmul kernel is installed (transformers
    # would otherwise keep them packed and compute every matmul through that kernel).
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=DTYPES[dtype], quantization_config=GgufConfig(dequantize=True)
    )
    # The weights are dequantised now; drop the GGUF quantiser so the model can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    if progress:
        print(f"Prepared {spec.display_name} in {time.perf_counter() - t0:.1f} s -> {target}", flush=True)
    return target


def _bar(title: str):
    """A progress callback (done, total) drawing a tqdm bar in bytes."""
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if "b" not in bar:
            bar["b"] = tqdm(total=total, desc=title, unit="B", unit_scale=True)
        bar["b"].update(done - bar["b"].n)
        if done >= total:
            bar["b"].close()

    return update


def load(name: str, dtype: str | None = None, device: torch.device | None = None) -> tuple[LoadedModel, bool]:
    """Return (the loaded model, whether it came from this process's cache)."""
    dtype = dtype or default_dtype()
    device = device or default_device()
    key = (name, dtype, str(device))
    with _lock:
        if key in _loaded:
            return _loaded[key], True
        t0 = time.perf_counter()
        folder = prepare(name, dtype, progress=False)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=DTYPES[dtype]).to(device)
        model.eval()
        loaded = LoadedModel(
            spec=get_spec(name),
            model=model,
            tokenizer=tokenizer,
            device=device,
            dtype=dtype,
            load_ms=(time.perf_counter() - t0) * 1000,
        )
        _loaded[key] = loaded
        log.info("loaded %s (%s, %s) in %.0f ms", name, dtype, device, loaded.load_ms)
        return loaded, False


_pools: dict[int, GraphPool] = {}


def execution_for(loaded: LoadedModel, draft_model: Any = None) -> Execution:
    """How this process runs a decode on ``loaded``: ``DECODELAB_EXECUTOR``'s mode, with the
    model's graph pool (captured steps, kept for the process's life)."""
    execution = Execution(mode=default_mode(loaded.device))
    for model in (loaded.model, draft_model):
        if model is not None:
            execution.pools[id(model)] = _pools.setdefault(id(model), GraphPool(model))
    return execution


def warm_up(loaded: LoadedModel) -> float:
    """Capture the common steps of ``loaded`` now (graph mode on CUDA), so no user's run pays
    for it; returns the seconds spent. Called when a worker preloads its model."""
    execution = execution_for(loaded)
    if execution.mode != "graph" or loaded.device.type != "cuda":
        return 0.0
    pool = execution.pools[id(loaded.model)]
    t0 = time.perf_counter()
    warm_graphs(loaded.model, pool)
    took = time.perf_counter() - t0
    log.info("captured %d steps of %s in %.1f s", len(pool.captured), loaded.spec.name, took)
    return took


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen
