"""A server started on a data directory written before owners existed: with
GEMMA_LEGACY_OWNER=alice, key 'alice' keeps its memories and its conversation, key 'bob' finds
neither. The real app over real HTTP (the fake engine: the answers' words do not matter)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ..conftest import stop_server
from ..fake_engine_server import start_fake_server
from ..memory.legacy_stores import OLD_ID, conversations_before_owners, sqlite_before_owners

pytestmark = pytest.mark.integration

ALICE = {"Authorization": "Bearer sk-migrated-alice-0001"}
BOB = {"Authorization": "Bearer sk-migrated-bob-0002"}


def test_data_from_before_owners_belongs_to_the_legacy_owner(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    sqlite_before_owners(data / "memory.sqlite3")
    conversations_before_owners(data / "conversations.sqlite3")
    env = {
        "GEMMA_API_KEYS": "alice:sk-migrated-alice-0001,bob:sk-migrated-bob-0002",
        "GEMMA_LEGACY_OWNER": "alice",
        "GEMMA_EMBEDDING_MODEL": "none",
    }
    server = start_fake_server(tmp_path, env=env)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            old = http.get(f"/v1/memories/{OLD_ID}", headers=ALICE)
            assert old.status_code == 200 and old.json()["owner"] == "alice"
            assert http.get(f"/v1/memories/{OLD_ID}", headers=BOB).status_code == 404
            search = {"q": "budget review"}
            assert [
                h["id"]
                for h in http.get("/v1/memories/search", params=search, headers=ALICE).json()[
                    "results"
                ]
            ] == [OLD_ID]
            assert (
                http.get("/v1/memories/search", params=search, headers=BOB).json()["results"] == []
            )

            ask = {
                "messages": [{"role": "user", "content": "Which cabin?"}],
                "conversation_id": "trip",
            }
            assert http.post("/chat", json=ask, headers=ALICE).json()["history"]["turns"] == 2
            assert http.post("/chat", json=ask, headers=BOB).json()["history"]["turns"] == 0
    finally:
        stop_server(server)
    assert "2 messages stored before owners existed now belong to 'alice'" in server.log()
