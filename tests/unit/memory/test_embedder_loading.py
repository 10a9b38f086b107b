"""Which embedders load, and what happens when none can."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from gemma_service.memory.embedder import load_default_embedder, load_embedders
from gemma_service.memory.store import MemoryConfigError


def test_without_sentence_transformers_memory_warns_once_and_goes_lexical(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now fails
    monkeypatch.setattr(
        "gemma_service.memory.embedder.sentence_transformers_installed", lambda: False
    )
    with caplog.at_level(logging.WARNING):
        embedder = load_default_embedder(sentence_model=None, gguf_path=None)

    assert embedder is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "lexical only" in warnings[0].getMessage()


def test_a_configured_gguf_that_does_not_exist_is_a_start_up_error(tmp_path: Path) -> None:
    with pytest.raises(MemoryConfigError, match="no such file"):
        load_embedders(sentence_model=None, gguf_path=tmp_path / "missing.gguf")
