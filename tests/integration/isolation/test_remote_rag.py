"""With RAG_SERVICE_URL, the retrieval service is told whose memories to search, and what it
marks as another owner's never reaches the caller. The real app over real HTTP (the fake engine:
the answer's words do not matter here) and a real HTTP retrieval service."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from ..conftest import RunningServer, stop_server
from ..fake_engine_server import start_fake_server

pytestmark = pytest.mark.integration

ALICE = {"Authorization": "Bearer sk-remote-alice-0001"}
BOB = {"Authorization": "Bearer sk-remote-bob-0002"}
MEMORIES = {
    "alice": [{"id": "a-1", "text": "Alice's parking spot is B12.", "owner": "alice"}],
    "bob": [{"id": "b-1", "text": "Bob's parking spot is C7.", "owner": "bob"}],
}
# A careless service might return this to anyone; it is marked as Mallory's.
LEAKED = {"id": "m-1", "text": "Mallory's parking spot is D3.", "owner": "mallory"}


class RetrievalService:
    """Answers POST /search with the memories of the owner it is asked for (plus a leak)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                service.bodies.append(body)
                results = [*MEMORIES.get(body.get("owner"), []), LEAKED]
                payload = json.dumps({"results": [{**r, "score": 0.9} for r in results]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def retrieval() -> Iterator[RetrievalService]:
    service = RetrievalService()
    yield service
    service.close()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, retrieval: RetrievalService
) -> Iterator[RunningServer]:
    env = {
        "GEMMA_API_KEYS": "alice:sk-remote-alice-0001,bob:sk-remote-bob-0002",
        "RAG_SERVICE_URL": retrieval.url,
        "GEMMA_EMBEDDING_MODEL": "none",
    }
    server = start_fake_server(tmp_path_factory.mktemp("remote-rag"), env=env)
    yield server
    stop_server(server)


def test_the_retrieval_service_gets_the_callers_owner(
    served: RunningServer, retrieval: RetrievalService
) -> None:
    ask = {"messages": [{"role": "user", "content": "Where do I park?"}], "use_rag": True}
    for headers, owner, own_id in ((ALICE, "alice", "a-1"), (BOB, "bob", "b-1")):
        retrieval.bodies.clear()
        answer = httpx.post(served.url + "/chat", json=ask, headers=headers, timeout=60).json()
        found = httpx.get(
            served.url + "/v1/memories/search", params={"q": "parking"}, headers=headers
        ).json()

        assert [b["owner"] for b in retrieval.bodies] == [owner, owner]
        assert [s["id"] for s in answer["sources"]] == [own_id]  # Mallory's was dropped
        assert [h["id"] for h in found["results"]] == [own_id]
