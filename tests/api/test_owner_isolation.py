"""Owners over the ASGI app and the fake engine: each key sees only its own memories and
conversations; an admin may act for others. (Real HTTP, the real model and both stores:
tests/integration/isolation/.)"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .conftest import MakeClient

KEYS = "alice:sk-alice-0001,bob:sk-bob-0002,ops:sk-ops-0003 admin"
ALICE = {"Authorization": "Bearer sk-alice-0001"}
BOB = {"Authorization": "Bearer sk-bob-0002"}
OPS = {"Authorization": "Bearer sk-ops-0003"}
SECRET_NOTE = {"text": "Alice's locker code is 4471.", "speaker": "Alice"}


@pytest.fixture
def keyed(make_client: MakeClient) -> TestClient:
    return make_client(api_keys=KEYS)


def remember(client: TestClient, headers: dict[str, str], note: dict[str, str]) -> str:
    r = client.post("/v1/memories", json=note, headers=headers)
    assert r.status_code == 200, r.text
    [item_id] = r.json()["ids"]
    return str(item_id)


def test_another_owners_memory_is_missing_exactly_like_an_unknown_one(keyed: TestClient) -> None:
    item_id = remember(keyed, ALICE, SECRET_NOTE)
    missing_id = "mem_" + "0" * 32

    for method in ("GET", "DELETE"):
        foreign = keyed.request(method, f"/v1/memories/{item_id}", headers=BOB)
        missing = keyed.request(method, f"/v1/memories/{missing_id}", headers=BOB)
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == {
            "error": {**missing.json()["error"], "message": f"no memory with id {item_id!r}"}
        }
    mine = keyed.get(f"/v1/memories/{item_id}", headers=ALICE).json()
    assert mine["text"] == SECRET_NOTE["text"] and mine["owner"] == "alice"


def test_search_and_rag_find_only_the_callers_memories(keyed: TestClient) -> None:
    alice_id = remember(keyed, ALICE, SECRET_NOTE)
    bob_id = remember(keyed, BOB, {"text": "Bob's locker code is 9120.", "speaker": "Bob"})

    def found(headers: dict[str, str]) -> set[str]:
        r = keyed.get("/v1/memories/search", params={"q": "locker code"}, headers=headers)
        return {hit["id"] for hit in r.json()["results"]}

    assert found(ALICE) == {alice_id} and found(BOB) == {bob_id}
    ask = {"messages": [{"role": "user", "content": "What is the locker code?"}], "use_rag": True}
    sources = keyed.post("/chat", json=ask, headers=BOB).json()["sources"]
    assert [s["id"] for s in sources] == [bob_id]


def test_a_conversation_id_is_each_owners_own(keyed: TestClient) -> None:
    def say(headers: dict[str, str], text: str) -> dict[str, int]:
        body = {"messages": [{"role": "user", "content": text}], "conversation_id": "trip"}
        r = keyed.post("/v1/chat/completions", json=body, headers=headers)
        assert r.status_code == 200, r.text
        history: dict[str, int] = r.json()["history"]
        return history

    assert say(ALICE, "My cabin is 4471.")["turns"] == 0
    assert say(BOB, "What is my cabin?")["turns"] == 0  # not Alice's conversation
    assert say(ALICE, "Which cabin?")["turns"] == 2


def test_an_admin_acts_for_an_owner_it_names_and_nobody_else_may(keyed: TestClient) -> None:
    alice_id = remember(keyed, ALICE, SECRET_NOTE)
    bob_id = remember(keyed, BOB, {"text": "Bob's locker code is 9120."})
    as_alice = {**OPS, "X-Gemma-Owner": "alice"}

    assert keyed.get(f"/v1/memories/{alice_id}", headers=OPS).status_code == 404
    assert keyed.get(f"/v1/memories/{alice_id}", headers=as_alice).json()["owner"] == "alice"
    everyone = {**OPS, "X-Gemma-Owner": "*"}
    hits = keyed.get("/v1/memories/search", params={"q": "locker"}, headers=everyone).json()
    assert {h["id"] for h in hits["results"]} == {alice_id, bob_id}
    stored = remember(keyed, everyone, {"text": "an admin's own note"})
    assert keyed.get(f"/v1/memories/{stored}", headers=OPS).json()["owner"] == "ops"

    refused = keyed.get(f"/v1/memories/{bob_id}", headers={**ALICE, "X-Gemma-Owner": "bob"})
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"
    assert keyed.get(f"/v1/memories/{bob_id}", headers=BOB).status_code == 200  # untouched


def test_without_auth_everything_belongs_to_the_local_owner(client: TestClient) -> None:
    item_id = remember(client, {}, SECRET_NOTE)
    assert client.get(f"/v1/memories/{item_id}").json()["owner"] == "local"
    assert (
        client.get(f"/v1/memories/{item_id}", headers={"X-Gemma-Owner": "bob"}).status_code == 403
    )
