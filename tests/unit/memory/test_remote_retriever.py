"""Remote retrieval (RAG_SERVICE_URL): the contract, and a service that is down is a warning."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gemma_service.memory.models import SearchFilters
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.remote_retriever import RemoteRetriever

LOCAL = OwnerScope.local()


class RagService:
    """A real HTTP server on 127.0.0.1 that answers /search with a configurable reply."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.reply: Any = {"results": []}
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                service.requests.append(
                    {"path": self.path, "body": json.loads(self.rfile.read(length))}
                )
                payload = (
                    service.reply
                    if isinstance(service.reply, bytes)
                    else json.dumps(service.reply).encode()
                )
                self.send_response(service.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rag/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rag_service() -> Iterator[RagService]:
    service = RagService()
    yield service
    service.close()


def test_search_posts_query_and_top_k_and_maps_results(rag_service: RagService) -> None:
    rag_service.reply = {
        "results": [
            {
                "id": 17,
                "text": "Sarah: the deadline is Friday",
                "speaker": "Sarah",
                "timestamp": "2024-05-01T14:03:00+02:00",
                "emotion": "stressed",
                "score": 0.91,
            },
            {"id": "n-2", "text": "no metadata at all", "score": 0.5},
        ]
    }
    retriever = RemoteRetriever(rag_service.url, timeout_s=5)

    result = retriever.search("when is the deadline?", top_k=3, scope=LOCAL)

    assert rag_service.requests == [
        {
            "path": "/rag/search",
            "body": {"query": "when is the deadline?", "top_k": 3, "owner": "local"},
        }
    ]
    assert result.warning is None
    first, second = result.hits
    assert (first.item.id, first.item.speaker, first.item.emotion) == ("17", "Sarah", "stressed")
    assert first.item.timestamp == datetime(2024, 5, 1, 12, 3, tzinfo=UTC)
    assert first.score == pytest.approx(0.91)
    assert second.item.timestamp is None and second.item.speaker is None
    retriever.close()


def test_filters_are_applied_to_what_the_service_returns(rag_service: RagService) -> None:
    rag_service.reply = {
        "results": [
            {"id": 1, "text": "a", "speaker": "Tom", "score": 0.9},
            {"id": 2, "text": "b", "speaker": "Sarah", "score": 0.8},
        ]
    }
    retriever = RemoteRetriever(rag_service.url, timeout_s=5)
    result = retriever.search("x", SearchFilters(speaker="Sarah"), top_k=5, scope=LOCAL)
    assert [hit.item.id for hit in result.hits] == ["2"]
    retriever.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_service_that_is_down_gives_no_memories_and_a_warning() -> None:
    retriever = RemoteRetriever(f"http://127.0.0.1:{closed_port()}", timeout_s=2)
    result = retriever.search("anything", top_k=5, scope=LOCAL)
    assert result.hits == []
    assert result.warning is not None and "unavailable" in result.warning
    retriever.close()


def test_a_service_that_does_not_answer_in_time_gives_a_warning() -> None:
    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        retriever = RemoteRetriever(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.3)
        result = retriever.search("anything", scope=LOCAL)
        retriever.close()
    assert result.hits == []
    assert result.warning is not None and "timed out" in result.warning
    assert result.elapsed_s < 5


@pytest.mark.parametrize(
    ("status", "reply", "reason"),
    [
        (500, {"error": "boom"}, "HTTP 500"),
        (200, b"<html>", "malformed"),
        (200, {"results": [{"text": "no id"}]}, "malformed"),
    ],
)
def test_an_error_or_garbage_reply_gives_a_warning(
    rag_service: RagService, status: int, reply: Any, reason: str
) -> None:
    rag_service.status, rag_service.reply = status, reply
    retriever = RemoteRetriever(rag_service.url, timeout_s=5)
    result = retriever.search("anything", scope=LOCAL)
    assert result.hits == []
    assert result.warning is not None and reason in result.warning
    retriever.close()


def test_the_service_is_told_whose_memories_to_search(rag_service: RagService) -> None:
    retriever = RemoteRetriever(rag_service.url, timeout_s=5)

    retriever.search("deadline?", top_k=2, scope=OwnerScope("alice"))
    retriever.search("deadline?", top_k=2, scope=OwnerScope("ops", every_owner=True))

    bodies = [r["body"] for r in rag_service.requests]
    assert bodies[0] == {"query": "deadline?", "top_k": 2, "owner": "alice"}
    assert bodies[1] == {"query": "deadline?", "top_k": 2, "owner": "ops", "all_owners": True}
    retriever.close()


def test_results_the_service_marks_as_another_owners_are_dropped(rag_service: RagService) -> None:
    rag_service.reply = {
        "results": [
            {"id": 1, "text": "alice's own", "owner": "alice", "score": 0.9},
            {"id": 2, "text": "bob's secret", "owner": "bob", "score": 0.8},
            {"id": 3, "text": "unmarked", "score": 0.7},
        ]
    }
    retriever = RemoteRetriever(rag_service.url, timeout_s=5)

    mine = retriever.search("x", top_k=5, scope=OwnerScope("alice")).hits
    everyone = retriever.search("x", top_k=5, scope=OwnerScope("ops", every_owner=True)).hits

    assert [h.item.text for h in mine] == ["alice's own", "unmarked"]
    assert mine[0].item.owner == "alice"
    assert len(everyone) == 3
    retriever.close()
