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
    store.append("c1", "user", "hello")
    store.extend(
        "c1", [ConversationMessage("assistant", "hi!"), ConversationMessage("user", "bye")]
    )
    store.append("c2", "user", "other chat")
    store.close()

    reopened = ConversationStore(tmp_path / "conversations.sqlite3")
    assert [(m.role, m.content) for m in reopened.load("c1")] == [
        ("user", "hello"),
        ("assistant", "hi!"),
        ("user", "bye"),
    ]
    assert [m.content for m in reopened.load("c2")] == ["other chat"]
    assert reopened.load("unknown") == []
    reopened.close()


def test_oldest_turns_are_replaced_by_a_summary_that_stays_first(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    for n in range(5):
        store.append("c", "user" if n % 2 == 0 else "assistant", f"turn {n}")

    store.replace_with_summary("c", 3, "they greeted and talked about turns 0-2")
    store.append("c", "user", "turn 5")

    history = store.load("c")
    assert history[0].role == "system" and history[0].is_summary
    assert "turns 0-2" in history[0].content
    assert [m.content for m in history[1:]] == ["turn 3", "turn 4", "turn 5"]
    store.close()


def test_delete_forgets_a_conversation(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    store.append("c", "user", "secret")
    assert store.delete("c") is True
    assert store.delete("c") is False
    assert store.load("c") == []
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
