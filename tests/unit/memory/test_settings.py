"""Memory settings come from env vars with the documented names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gemma_service.config import field_env, field_flag
from gemma_service.memory.settings import MemorySettings


def test_env_vars_set_the_memory_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMMA_MEMORY_URL", "postgresql://db/memory")
    monkeypatch.setenv("GEMMA_EMBEDDING_MODEL_PATH", "/models/embeddinggemma.gguf")
    monkeypatch.setenv("GEMMA_RAG_RECENCY_HALF_LIFE_DAYS", "0")
    monkeypatch.setenv("GEMMA_RAG_TIMEOUT_S", "1.5")

    settings = MemorySettings()

    assert settings.memory_url == "postgresql://db/memory"
    assert settings.embedding_model_path == Path("/models/embeddinggemma.gguf")
    assert settings.rag_recency_half_life_days == 0
    assert settings.rag_timeout_s == 1.5


def test_every_setting_has_an_env_var_a_flag_and_a_description() -> None:
    for name, info in MemorySettings.model_fields.items():
        assert field_env(info), name
        assert field_flag(info), name
        assert info.description, name


def test_an_overlap_as_long_as_the_chunk_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMMA_MEMORY_CHUNK_CHARS", "500")
    monkeypatch.setenv("GEMMA_MEMORY_CHUNK_OVERLAP", "500")
    with pytest.raises(ValidationError, match="OVERLAP"):
        MemorySettings()
