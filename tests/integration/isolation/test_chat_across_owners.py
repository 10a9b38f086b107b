"""Chats across owners with the real model over real HTTP, on SQLite and on PostgreSQL: RAG
answers cite only the caller's memories; a conversation id reaches only its owner's history."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from .conftest import ACME_1, ACME_2, GLOBEX, STRANGERS, Deployment, Who, note, store, unique_word

# Each backend's server starts (model and embedder) inside the first test's time.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
PAIRS = pytest.mark.parametrize(("owner", "stranger"), STRANGERS, ids=lambda w: w.name)
GREEDY = {"max_tokens": 24, "temperature": 0}


def ask(question: str, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}], **GREEDY, **fields}


def native_chat(http: httpx.Client, who: Who, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post("/chat", json=body, headers=who.headers())
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def native_stream(http: httpx.Client, who: Who, body: dict[str, Any]) -> dict[str, Any]:
    """The streamed answer, as /chat would give it: the text and the final event's fields."""
    with http.stream("POST", "/chat/stream", json=body, headers=who.headers()) as r:
        assert r.status_code == 200
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    final: dict[str, Any] = events[-1]
    assert final["done"] is True
    return {**final, "response": "".join(e["token"] for e in events)}


def openai_chat(deployment: Deployment, who: Who, body: dict[str, Any]) -> dict[str, Any]:
    client = openai.OpenAI(
        base_url=deployment.server.url + "/v1", api_key=who.credential(), max_retries=0
    )
    messages, rest = body["messages"], {k: v for k, v in body.items() if k != "messages"}
    completion = client.chat.completions.create(
        model="gemma",
        messages=messages,
        max_tokens=rest.pop("max_tokens"),
        temperature=rest.pop("temperature"),
        extra_body=rest,
    )
    extra = completion.model_extra or {}
    return {**extra, "response": completion.choices[0].message.content or ""}


def chat_all_ways(
    deployment: Deployment, http: httpx.Client, who: Who, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """The same request through /chat, /chat/stream and the OpenAI SDK."""
    return [
        native_chat(http, who, body),
        native_stream(http, who, body),
        openai_chat(deployment, who, body),
    ]


def cited_ids(answer: dict[str, Any]) -> list[str]:
    return [source["id"] for source in answer["sources"] if source["type"] == "memory"]


@PAIRS
def test_rag_answers_cite_only_the_callers_memories(
    deployment: Deployment, http: httpx.Client, owner: Who, stranger: Who
) -> None:
    tag = unique_word()
    code_words = {owner.name: "PELICAN", stranger.name: "WALRUS"}
    ids = {
        who.name: store(http, who, note(f"The {tag} launch code word is {word}.", speaker="Sam"))[0]
        for who, word in ((owner, "PELICAN"), (stranger, "WALRUS"))
    }
    question = ask(f"What is the {tag} launch code word?", use_rag=True, rag_top_k=5)

    for who, other in ((owner, stranger), (stranger, owner)):
        for answer in chat_all_ways(deployment, http, who, question):
            cited = cited_ids(answer)
            assert ids[who.name] in cited and ids[other.name] not in cited, answer
            for item_id in cited:  # every source is the caller's own
                r = http.get(f"/v1/memories/{item_id}", headers=who.headers())
                assert r.status_code == 200
            assert code_words[other.name] not in answer["response"].upper()


@PAIRS
def test_a_conversation_id_reaches_only_its_owners_history(
    deployment: Deployment, http: httpx.Client, owner: Who, stranger: Who
) -> None:
    conversation = "trip-" + unique_word()

    told = openai_chat(
        deployment, owner, ask("Remember: my cabin number is 4471.", conversation_id=conversation)
    )
    assert told["history"]["turns"] == 0
    asked = native_chat(
        http, stranger, ask("What is my cabin number?", conversation_id=conversation)
    )
    assert asked["history"]["turns"] == 0  # the stranger's own, new conversation
    assert "4471" not in asked["response"]
    again = native_stream(http, stranger, ask("And my name?", conversation_id=conversation))
    assert again["history"]["turns"] == 2  # its own two turns, none of the owner's

    went_on = native_chat(http, owner, ask("Which cabin was it?", conversation_id=conversation))
    assert went_on["history"]["turns"] == 2


def test_a_tenant_claim_shares_rag_memories_within_the_tenant_only(
    deployment: Deployment, http: httpx.Client
) -> None:
    tag = unique_word()
    [item_id] = store(http, ACME_1, note(f"The {tag} vault password is HERON.", speaker="Sam"))
    question = ask(f"What is the {tag} vault password?", use_rag=True, rag_top_k=5)

    assert item_id in cited_ids(native_chat(http, ACME_2, question))
    outsider = native_chat(http, GLOBEX, question)
    assert item_id not in cited_ids(outsider) and "HERON" not in outsider["response"].upper()
