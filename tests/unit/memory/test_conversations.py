"""Server-side conversation history and fitting it into a token budget."""

from __future__ import annotations

from pathlib import Path

from gemma_service.memory.conversations import (
    ConversationMessage,
    ConversationStore,
    fit_history,
)


def test_history_persists_per_conversation_across_reopening(tmp_path: Path) -> None:
    store = ConversationStore.in_data_dir(tmp_path)
    store.append("c1", "user", "hello", owner="local")
    store.extend(
        "c1",
        [ConversationMessage("assistant", "hi!"), ConversationMessage("user", "bye")],
        owner="local",
    )
    store.append("c2", "user", "other chat", owner="local")
    store.close()

    reopened = ConversationStore(tmp_path / "conversations.sqlite3")
    assert [(m.role, m.content) for m in reopened.load("c1", owner="local")] == [
        ("user", "hello"),
        ("assistant", "hi!"),
        ("user", "bye"),
    ]
    assert [m.content for m in reopened.load("c2", owner="local")] == ["other chat"]
    assert reopened.load("unknown", owner="local") == []
    reopened.close()


def test_oldest_turns_are_replaced_by_a_summary_that_stays_first(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    for n in range(5):
        store.append("c", "user" if n % 2 == 0 else "assistant", f"turn {n}", owner="local")

    store.replace_with_summary("c", 3, "they greeted and talked about turns 0-2", owner="local")
    store.append("c", "user", "turn 5", owner="local")

    history = store.load("c", owner="local")
    assert history[0].role == "system" and history[0].is_summary
    assert "turns 0-2" in history[0].content
    assert [m.content for m in history[1:]] == ["turn 3", "turn 4", "turn 5"]
    store.close()


def test_delete_forgets_a_conversation(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    store.append("c", "user", "secret", owner="local")
    assert store.delete("c", owner="local") is True
    assert store.delete("c", owner="local") is False
    assert store.load("c", owner="local") == []
    store.close()


def by_words(message: ConversationMessage) -> int:
    return len(message.content.split())


def test_fit_history_keeps_the_newest_messages_that_fit() -> None:
    history = [
        ConversationMessage("user", "one two three"),
        ConversationMessage("assistant", "four"),
        ConversationMessage("user", "five six"),
    ]

    kept, dropped = fit_history(history, by_words, budget=3)

    assert [m.content for m in kept] == ["four", "five six"]
    assert [m.content for m in dropped] == ["one two three"]
    assert fit_history(history, by_words, budget=100) == (history, [])
    assert fit_history(history, by_words, budget=1) == ([], history)


def test_one_conversation_id_is_a_separate_conversation_per_owner(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    store.append("trip", "user", "alice's cabin is 4471", owner="alice")
    store.append("trip", "user", "bob's cabin is 9120", owner="bob")
    store.replace_with_summary("trip", 1, "bob talked about his cabin", owner="bob")

    assert [m.content for m in store.load("trip", owner="alice")] == ["alice's cabin is 4471"]
    assert "bob talked" in store.load("trip", owner="bob")[0].content
    assert store.load("trip", owner="carol") == []
    assert store.delete("trip", owner="carol") is False
    assert store.delete("trip", owner="bob") is True
    assert len(store.load("trip", owner="alice")) == 1
    store.close()
