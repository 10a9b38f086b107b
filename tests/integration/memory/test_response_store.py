"""Stored responses on a real SQLite file and a real PostgreSQL: durable, scoped by owner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gemma_service.memory.postgres_responses import PostgresResponseStore
from gemma_service.memory.service import open_response_store
from gemma_service.memory.stored_responses import (
    ResponseStore,
    SqliteResponseStore,
    StoredResponse,
)

Opener = Callable[[], ResponseStore]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens stores on one location; opening again sees the same data, as a restart would."""
    opened: list[ResponseStore] = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None

    def opener() -> ResponseStore:
        store: ResponseStore
        if url is not None:
            store = PostgresResponseStore(url)
        else:
            store = SqliteResponseStore.in_data_dir(tmp_path)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


def stored(response_id: str, owner: str | None, text: str = "Hi.") -> StoredResponse:
    output = [{"type": "message", "role": "assistant", "content": [{"text": text}]}]
    body = {"id": response_id, "object": "response", "output": output}
    inputs = [{"id": "msg_1", "type": "message", "role": "user", "content": "Hello, ünïcode ✓"}]
    return StoredResponse(response_id, owner, 1_700_000_000, body, inputs, [*inputs, *output])


def test_a_stored_response_survives_a_reopen(open_store: Opener) -> None:
    first = open_store()
    first.put(stored("resp_1", "alice"))
    first.close()
    again = open_store().get("alice", "resp_1")
    assert again == stored("resp_1", "alice")


def test_another_owners_response_is_not_found_and_not_deleted(open_store: Opener) -> None:
    store = open_store()
    store.put(stored("resp_a", "alice"))
    store.put(stored("resp_shared", None))
    assert store.get("bob", "resp_a") is None
    assert store.get(None, "resp_a") is None
    assert store.delete("bob", "resp_a") is False
    assert store.get("alice", "resp_a") is not None
    assert store.get(None, "resp_shared") is not None  # callers without an owner share
    assert store.get("alice", "resp_shared") is None


def test_delete_forgets_and_says_whether_there_was_one(open_store: Opener) -> None:
    store = open_store()
    store.put(stored("resp_d", "alice"))
    assert store.delete("alice", "resp_d") is True
    assert store.get("alice", "resp_d") is None
    assert store.delete("alice", "resp_d") is False


def test_the_server_keeps_them_in_postgresql_when_the_memory_is_there(
    postgres_url: str, tmp_path: Path
) -> None:
    store = open_response_store(postgres_url, tmp_path)
    try:
        assert isinstance(store, PostgresResponseStore)
        store.put(stored("resp_pg", "alice"))
    finally:
        store.close()
    replica = PostgresResponseStore(postgres_url)  # another front replica sees it
    try:
        assert replica.get("alice", "resp_pg") == stored("resp_pg", "alice")
    finally:
        replica.close()
    assert isinstance(open_response_store(None, tmp_path), SqliteResponseStore)
