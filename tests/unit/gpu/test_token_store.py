"""The coordinator's state file: survives restarts, never half-written, refuses garbage."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemma_service.gpu.token_store import CorruptStateError, TokenRecord, TokenStore


def test_a_fresh_directory_starts_from_token_zero(tmp_path: Path) -> None:
    assert TokenStore(tmp_path / "new").load() == TokenRecord(0, 0.0)


def test_saved_record_is_what_a_new_store_loads(tmp_path: Path) -> None:
    TokenStore(tmp_path).save(TokenRecord(17, 4.5))
    TokenStore(tmp_path).save(TokenRecord(18, 0.0))
    assert TokenStore(tmp_path).load() == TokenRecord(18, 0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coordinator-state.json"]


def test_unreadable_state_refuses_to_start_rather_than_reissue_tokens(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    store.path.write_text("{not json")
    with pytest.raises(CorruptStateError):
        store.load()
