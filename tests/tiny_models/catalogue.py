"""Which tiny models exist and what each is made of (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TinyModelSpec:
    """One generated model: its name and whether it has a projector (mmproj)."""

    name: str
    multimodal: bool
    description: str


SPECS = {
    spec.name: spec
    for spec in (
        TinyModelSpec("gemma3-vision", True, "Gemma 3 text decoder + SigLIP vision projector"),
        TinyModelSpec("gemma4-multimodal", True, "Gemma 4 text decoder + vision and audio"),
        TinyModelSpec("gemma4-text", False, "Gemma 4 text decoder, the real Gemma 4 template"),
    )
}


def packaged_gemma3_gguf() -> Path:
    """The packaged Gemma 3 270M GGUF, whose vocabulary the tiny Gemma 3 takes."""
    from gemma_service.config import ServiceSettings
    from gemma_service.model_files import prepare_default_model

    return prepare_default_model(ServiceSettings().model_cache_dir, progress=False)
