"""`gemma-service memory import` and `memory search`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gemma_service.errors import InvalidRequestError
from gemma_service.memory.commands import import_jsonl, search_cli
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.retriever import Retriever
from gemma_service.memory.service import MemoryService
from gemma_service.memory.sqlite_store import SqliteMemoryStore

LOCAL = OwnerScope.local()


@pytest.fixture
def service(store: SqliteMemoryStore, embedder: Any) -> MemoryService:
    return MemoryService(store, Retriever(store, embedder), embedder=embedder)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_import_stores_every_line_and_search_prints_them(
    service: MemoryService, tmp_path: Path
) -> None:
    when = "2024-05-01T09:00:00Z"
    rows = [
        {"text": f"standup note {n}", "speaker": "Dana", "timestamp": when, "emotion": "calm"}
        for n in range(300)
    ]
    ids = import_jsonl(
        service, write_jsonl(tmp_path / "m.jsonl", rows), show_progress=False, scope=LOCAL
    )

    assert len(ids) == 300 and service.store.count() == 300
    output = search_cli(service, "standup note 7", top_k=2, scope=LOCAL)
    lines = output.splitlines()
    assert lines[0].startswith("2 result(s)")
    assert "Dana (calm)" in lines[1] and "2024-05-01 09:00" in lines[1]
    assert lines[2].strip() == "standup note 7"


def test_a_bad_line_stores_nothing_and_names_the_line(
    service: MemoryService, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"text": "fine"}, "", {"text": "x", "kind": "diary"}])
    with pytest.raises(InvalidRequestError, match=r"m\.jsonl:3: kind"):
        import_jsonl(service, path, show_progress=False, scope=LOCAL)
    assert service.store.count() == 0

    write_jsonl(path, ["{not json"])
    with pytest.raises(InvalidRequestError, match=r"m\.jsonl:1: not JSON"):
        import_jsonl(service, path, show_progress=False, scope=LOCAL)


def test_import_and_search_keep_to_the_owner_named(service: MemoryService, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"text": "alice's locker code is 4471"}])
    [item_id] = import_jsonl(service, path, scope=OwnerScope("alice"), show_progress=False)

    as_bob = search_cli(service, "locker code", scope=OwnerScope("bob"))
    as_alice = search_cli(service, "locker code", scope=OwnerScope("alice"))
    as_admin = search_cli(service, "locker code", scope=OwnerScope("ops", every_owner=True))

    assert as_bob.startswith("0 result(s)") and item_id not in as_bob
    assert item_id in as_alice and "(alice)" in as_alice
    assert item_id in as_admin
