"""Memory routes and memory-backed chat over the fake engine (lexical-only memory)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from gemma_service.engine.fake_backend import FakeBackend

from .conftest import MakeClient

MEMORIES = [
    {
        "text": "The deadline for the Apollo project moves to Friday.",
        "kind": "transcript",
        "speaker": "Sarah",
        "timestamp": "2026-11-20T10:00:00Z",
        "emotion": "stressed",
    },
    {"text": "Lunch options near the office are limited.", "kind": "note", "speaker": "John"},
    {"text": "Budget review happens next quarter.", "kind": "transcript", "speaker": "Priya"},
]


def ingest(client: TestClient) -> list[str]:
    r = client.post("/v1/memories", json=MEMORIES)
    assert r.status_code == 200, r.text
    ids: list[str] = r.json()["ids"]
    assert len(ids) == 3
    return ids


def test_add_get_search_delete_round_trip(client: TestClient) -> None:
    one = client.post("/v1/memories", json={"text": "A single note.", "speaker": "Ann"})
    [single] = one.json()["ids"]
    ids = ingest(client)
    item = client.get(f"/v1/memories/{ids[0]}").json()
    assert item["speaker"] == "Sarah" and item["emotion"] == "stressed"
    assert item["timestamp"].startswith("2026-11-20T10:00:00")
    found = client.get("/v1/memories/search", params={"q": "deadline Apollo"}).json()
    assert found["results"][0]["id"] == ids[0]
    filtered = client.get("/v1/memories/search", params={"q": "deadline", "speaker": "John"})
    assert all(h["speaker"] == "John" for h in filtered.json()["results"])
    assert client.delete(f"/v1/memories/{single}").json()["deleted"] is True
    gone = client.get(f"/v1/memories/{single}")
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "not_found_error"


def test_batch_object_form_is_accepted(client: TestClient) -> None:
    r = client.post("/v1/memories", json={"items": MEMORIES[:2]})
    assert len(r.json()["ids"]) == 2


def test_bad_memories_are_400_naming_the_field(client: TestClient) -> None:
    r = client.post("/v1/memories", json={"speaker": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "text"
    r = client.post("/v1/memories", json=[{"text": "ok"}, {"text": "x", "timestamp": "soon"}])
    assert r.status_code == 400 and r.json()["error"]["param"] == "[1].timestamp"
    r = client.get("/v1/memories/search", params={"q": "x", "kind": "poem"})
    assert r.status_code == 400


def test_chat_with_rag_reports_the_right_sources(client: TestClient) -> None:
    ids = ingest(client)
    r = client.post(
        "/chat",
        json={
            "messages": [{"role": "user", "content": "What did Sarah say about the deadline?"}],
            "use_rag": True,
            "rag_top_k": 2,
        },
    )
    body = r.json()
    assert body["rag_context_used"] >= 1
    first = body["sources"][0]
    assert first["id"] == ids[0] and first["n"] == 1 and first["speaker"] == "Sarah"
    assert "deadline" in first["text"] and body["retrieval_time"] >= 0


def test_caller_context_documents_are_numbered_sources(client: TestClient) -> None:
    r = client.post(
        "/chat",
        json={
            "messages": [{"role": "user", "content": "Summarize"}],
            "context": ["Doc one.", "Doc two."],
        },
    )
    body = r.json()
    assert [s["type"] for s in body["sources"]] == ["context", "context"]
    assert body["rag_context_used"] == 0  # documents are not retrieved memories


def test_openai_chat_extension_fields(client: TestClient) -> None:
    ingest(client)
    r = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "deadline Apollo"}], "use_rag": True},
    )
    body = r.json()
    assert body["rag_context_used"] >= 1 and body["sources"][0]["speaker"] == "Sarah"
    plain = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
    ).json()
    assert "sources" not in plain  # extension fields only when asked for


def test_remote_rag_down_answers_without_memories(make_client: MakeClient) -> None:
    client = make_client(rag_service_url="http://127.0.0.1:9", rag_timeout_s=1)
    r = client.post(
        "/chat", json={"messages": [{"role": "user", "content": "deadline?"}], "use_rag": True}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["rag_context_used"] == 0 and body["sources"] == []
    assert "warning" in body and body["response"]


def test_conversation_history_is_kept_server_side(client: TestClient) -> None:
    first = client.post(
        "/chat",
        json={"messages": [{"role": "user", "content": "I am Ann."}], "conversation_id": "c1"},
    ).json()
    assert first["history"]["turns"] == 0
    second = client.post(
        "/chat",
        json={"messages": [{"role": "user", "content": "Who am I?"}], "conversation_id": "c1"},
    ).json()
    assert second["history"] == {"turns": 2, "kept": 2, "dropped": 0, "summarized": False}
    # The stored turns are in the prompt: it is longer than the same question alone.
    alone = client.post("/chat", json={"messages": [{"role": "user", "content": "Who am I?"}]})
    assert second["usage"]["prompt_tokens"] > alone.json()["usage"]["prompt_tokens"] + 20


def test_long_conversation_goes_on_past_the_context(make_client: MakeClient) -> None:
    client = make_client(FakeBackend(n_ctx=600), default_max_tokens=64)
    for i in range(8):
        r = client.post(
            "/chat",
            json={
                "messages": [{"role": "user", "content": f"Turn {i}: " + "blah " * 20}],
                "conversation_id": "long",
            },
        )
        assert r.status_code == 200, r.text
    history = r.json()["history"]
    assert history["dropped"] > 0 or history["summarized"]
    assert r.json()["usage"]["prompt_tokens"] < 600


def test_metrics_show_retrieval_time_and_kv_cache_use(client: TestClient) -> None:
    ingest(client)
    client.post(
        "/chat", json={"messages": [{"role": "user", "content": "deadline"}], "use_rag": True}
    )
    text = client.get("/metrics").text
    count = next(
        line
        for line in text.splitlines()
        if line.startswith("gemma_memory_retrieval_seconds_count")
    )
    assert float(count.split()[-1]) >= 1
    used = next(line for line in text.splitlines() if line.startswith("gemma_kv_cache_used_tokens"))
    assert float(used.split()[-1]) > 0  # the finished chat's prefix stays cached
