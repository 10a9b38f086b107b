"""Memory with the real model and the real embedder, over real HTTP."""

from __future__ import annotations

import httpx
import openai
import pytest

from .conftest import RunningServer

pytestmark = pytest.mark.integration

MEETING = [
    {
        "text": "Sarah: the deadline for the launch slips to March 14 because QA found bugs.",
        "kind": "transcript",
        "speaker": "Sarah",
        "timestamp": "2026-11-18T09:30:00Z",
        "emotion": "worried",
    },
    {
        "text": "John: the new office coffee machine finally works.",
        "kind": "transcript",
        "speaker": "John",
        "timestamp": "2026-11-18T09:35:00Z",
        "emotion": "happy",
    },
    {
        "text": "Priya: marketing needs the final screenshots by next week.",
        "kind": "transcript",
        "speaker": "Priya",
        "timestamp": "2026-11-18T09:40:00Z",
        "emotion": "neutral",
    },
    {"text": "Note: parking garage closed on Fridays.", "kind": "note"},
]


def test_chat_with_rag_cites_the_right_memory(server: RunningServer) -> None:
    ids = httpx.post(server.url + "/v1/memories", json=MEETING, timeout=60).json()["ids"]
    r = httpx.post(
        server.url + "/chat",
        json={
            "messages": [{"role": "user", "content": "What did Sarah say about the deadline?"}],
            "use_rag": True,
            "rag_top_k": 3,
            "max_tokens": 48,
            "temperature": 0,
        },
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rag_context_used"] >= 1
    assert body["sources"][0]["id"] == ids[0]  # hybrid search puts Sarah's remark first
    assert body["sources"][0]["speaker"] == "Sarah"
    assert body["retrieval_time"] > 0 and body["inference_time"] > 0
    assert body["response"]


def test_semantic_search_finds_a_paraphrase(server: RunningServer) -> None:
    httpx.post(server.url + "/v1/memories", json=MEETING, timeout=60)
    r = httpx.get(
        server.url + "/v1/memories/search",
        params={"q": "when is the release date?", "top_k": 2},
        timeout=60,
    )
    texts = [h["text"] for h in r.json()["results"]]
    assert any("deadline for the launch" in t for t in texts)


def test_embeddings_through_the_openai_sdk(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    r = client.embeddings.create(
        model="all-MiniLM-L6-v2", input=["a cat sat on the mat", "a kitten on a rug"]
    )
    assert len(r.data) == 2 and len(r.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="no-such-embedder", input="x")
