"""Memory settings: data directory, store location, embedders, retrieval and chunking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gemma_service.memory.owners import LOCAL_OWNER, check_owner
from gemma_service.settings_fields import default_data_dir, setting


class MemorySettings(BaseSettings):
    """Settings of the memory layer, declared once (env var + CLI flag) like ServiceSettings."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", populate_by_name=True, protected_namespaces=()
    )

    data_dir: Path = setting(
        default_data_dir(),
        "GEMMA_DATA_DIR",
        "memory database and conversations",
        flag="--data-dir",
    )
    rag_service_url: str | None = setting(
        None,
        "RAG_SERVICE_URL",
        "external retrieval service (default: embedded SQLite memory)",
        flag="--rag-service-url",
    )
    memory_url: str | None = setting(
        None,
        "GEMMA_MEMORY_URL",
        "memory store: postgresql://... for PostgreSQL + pgvector, sqlite:///FILE, or unset "
        "for memory.sqlite3 in GEMMA_DATA_DIR",
        flag="--memory-url",
    )
    legacy_owner: str = setting(
        LOCAL_OWNER,
        "GEMMA_LEGACY_OWNER",
        "owner given to memories and conversations stored before owners existed, when a store "
        f"is first opened by this version (default: '{LOCAL_OWNER}', the owner when auth is off)",
        flag="--legacy-owner",
    )
    embedding_model: str | None = setting(
        None,
        "GEMMA_EMBEDDING_MODEL",
        "sentence-transformers model directory (default: the packaged all-MiniLM-L6-v2; "
        "none: no sentence-transformers embedder)",
        flag="--embedding-model",
    )
    embedding_model_path: Path | None = setting(
        None,
        "GEMMA_EMBEDDING_MODEL_PATH",
        "GGUF embedding model for llama.cpp (e.g. EmbeddingGemma); memory uses it when set",
        flag="--embedding-model-path",
    )
    rag_top_k: int = setting(
        5,
        "GEMMA_RAG_TOP_K",
        "memories retrieved when a request sets no rag_top_k",
        flag="--rag-top-k",
        ge=1,
        le=100,
    )
    rag_candidates: int = setting(
        50,
        "GEMMA_RAG_CANDIDATES",
        "candidates each signal (lexical, vector) offers to fusion",
        flag="--rag-candidates",
        ge=1,
        le=1000,
    )
    rag_recency_half_life_days: float = setting(
        30.0,
        "GEMMA_RAG_RECENCY_HALF_LIFE_DAYS",
        "age at which a memory's recency boost halves (0: no recency bias)",
        flag="--rag-recency-half-life-days",
        ge=0,
    )
    rag_recency_weight: float = setting(
        0.2,
        "GEMMA_RAG_RECENCY_WEIGHT",
        "share of a memory's score that recency decides (0..1)",
        flag="--rag-recency-weight",
        ge=0,
        le=1,
    )
    rag_timeout_s: float = setting(
        5.0,
        "GEMMA_RAG_TIMEOUT_S",
        "timeout for RAG_SERVICE_URL requests, in seconds",
        flag="--rag-timeout",
        gt=0,
    )
    memory_chunk_chars: int = setting(
        1000,
        "GEMMA_MEMORY_CHUNK_CHARS",
        "longest chunk a long memory is split into, in characters (1000 fits MiniLM's 256 tokens)",
        flag="--memory-chunk-chars",
        ge=100,
    )
    memory_chunk_overlap: int = setting(
        150,
        "GEMMA_MEMORY_CHUNK_OVERLAP",
        "characters shared by consecutive chunks",
        flag="--memory-chunk-overlap",
        ge=0,
    )

    @field_validator("memory_url", "embedding_model", "embedding_model_path", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("legacy_owner")
    @classmethod
    def _owner_can_own(cls, value: str) -> str:
        return check_owner(value)

    @field_validator("memory_chunk_overlap")
    @classmethod
    def _overlap_below_chunk(cls, value: int, info: Any) -> int:
        chunk = info.data.get("memory_chunk_chars")
        if chunk is not None and value >= chunk:
            raise ValueError("GEMMA_MEMORY_CHUNK_OVERLAP must be smaller than the chunk size")
        return value
