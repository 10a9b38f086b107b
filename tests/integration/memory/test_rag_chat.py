"""`/chat` with `use_rag` cites what the improved retrieval ranks first, with the real model,
the real embedder and the real server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration


def meeting_history() -> list[dict[str, Any]]:
    """A fact that changed twice, filler lines, a role and a report of someone's view."""
    now = datetime.now(UTC)

    def at(days_ago: float) -> str:
        return (now - timedelta(days=days_ago)).isoformat()

    return [
        {"text": "The Orion release ships on May 3.", "speaker": "Priya", "timestamp": at(40)},
        {"text": "Agreed.", "speaker": "Tom", "timestamp": at(39.99)},
        {
            "text": "Orion slips: the release moves to May 17 because of the billing bug.",
            "speaker": "Priya",
            "timestamp": at(26),
        },
        {"text": "Sounds good to me.", "speaker": "Tom", "timestamp": at(25.99)},
        {
            "text": "Final word on Orion: it goes out on June 2, no more moves.",
            "speaker": "Priya",
            "timestamp": at(12),
        },
        {
            "text": "Org note: Dana Whitfield is our CTO from this month.",
            "kind": "note",
            "timestamp": at(50),
        },
        {
            "text": "Honestly, rewriting the billing service in Go right now would be a mistake.",
            "speaker": "Dana Whitfield",
            "emotion": "skeptical",
            "timestamp": at(20),
        },
        {
            "text": "Tom told me Dana wants the Go rewrite of billing stopped.",
            "speaker": "Priya",
            "timestamp": at(19),
        },
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[RunningServer]:
    """A server of its own: the session server's memory holds other tests' items."""
    tmp = tmp_path_factory.mktemp("rag-chat")
    srv = start_server(tmp, "--model", str(model_path), "--ctx-size", "8192", "--threads", "2")
    yield srv
    stop_server(srv)


def ask(server: RunningServer, question: str) -> dict[str, Any]:
    r = httpx.post(
        server.url + "/chat",
        json={
            "messages": [{"role": "user", "content": question}],
            "use_rag": True,
            "rag_top_k": 3,
            "max_tokens": 32,
            "temperature": 0,
        },
        timeout=180,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["response"]
    return body


def test_chat_cites_the_latest_statement_and_the_role_holders_own_words(
    server: RunningServer,
) -> None:
    history = meeting_history()
    r = httpx.post(server.url + "/v1/memories", json=history, timeout=120)
    assert r.status_code == 200, r.text
    ids = r.json()["ids"]
    filler = {ids[1], ids[3]}

    latest = ask(server, "When does Orion ship now?")
    assert latest["sources"][0]["id"] == ids[4]  # the June 2 statement, not May 3 or May 17
    assert latest["rag_context_used"] == len(latest["sources"]) == 3
    assert not filler & {s["id"] for s in latest["sources"]}

    # "our CTO" is Dana through the org note; her own words rank above Priya's report of them.
    cto = ask(server, "What does our CTO think about the Go rewrite?")
    assert cto["sources"][0]["id"] == ids[6]
    assert cto["sources"][0]["speaker"] == "Dana Whitfield"
    assert not filler & {s["id"] for s in cto["sources"]}
