"""Conversations in a real PostgreSQL: the SQLite store's contract, and two handles (two front
replicas) appending to one conversation at once without losing or colliding a turn."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from gemma_service.memory.conversations import ConversationMessage
from gemma_service.memory.postgres_conversations import PostgresConversationStore


def test_history_summary_delete_and_owners(postgres_url: str) -> None:
    store = PostgresConversationStore(postgres_url)
    store.append("c1", "user", "hello", owner="alice")
    store.extend(
        "c1",
        [ConversationMessage("assistant", "hi!"), ConversationMessage("user", "bye")],
        owner="alice",
    )
    store.append("c1", "user", "bob's own c1", owner="bob")
    store.close()

    other = PostgresConversationStore(postgres_url)  # another replica, same database
    assert [m.content for m in other.load("c1", owner="alice")] == ["hello", "hi!", "bye"]
    assert [m.content for m in other.load("c1", owner="bob")] == ["bob's own c1"]
    assert other.load("c1", owner="carol") == []
    other.replace_with_summary("c1", 2, "they greeted", owner="alice")
    history = other.load("c1", owner="alice")
    assert history[0].is_summary and "they greeted" in history[0].content
    assert [m.content for m in history[1:]] == ["bye"]
    assert other.delete("c1", owner="alice") is True
    assert other.delete("c1", owner="alice") is False
    assert [m.content for m in other.load("c1", owner="bob")] == ["bob's own c1"]
    other.close()


def test_two_replicas_appending_at_once_keep_every_turn(postgres_url: str) -> None:
    replicas = [PostgresConversationStore(postgres_url) for _ in range(2)]

    def append(n: int) -> None:
        replicas[n % 2].append("busy", "user", f"turn {n}", owner="alice")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(append, range(40)))
    turns = replicas[0].load("busy", owner="alice")
    assert sorted(m.content for m in turns) == sorted(f"turn {n}" for n in range(40))
    for store in replicas:
        store.close()
