"""Tiny, randomly initialised Gemma models for tests: built from configs, converted, cached.

No multimodal Gemma can be downloaded here, so tests make their own: a Gemma 3 with a SigLIP
vision projector, a Gemma 4 with vision and audio, and a text-only Gemma 4 carrying the real
Gemma 4 chat template. Each is built in transformers (torch, CPU), converted by the pinned
llama.cpp's converter into a text GGUF (+ an mmproj GGUF) and cached under
``~/.cache/gemma-service/test-models/<hash of this package's source>/``, so a change to the
generator builds afresh and an unchanged one costs nothing. About a minute per model on 2 cores.

    from tests.tiny_models import tiny_model
    paths = tiny_model("gemma4-multimodal")  # .model_path, .mmproj_path

``python -m tests.tiny_models`` builds all three ahead of a test run.
"""

from __future__ import annotations

from tests.tiny_models.cache import (
    TinyModel,
    TinyModelUnavailable,
    missing_dependencies,
    tiny_model,
)
from tests.tiny_models.catalogue import SPECS

__all__ = ["SPECS", "TinyModel", "TinyModelUnavailable", "missing_dependencies", "tiny_model"]
