"""The memory routes across owners over real HTTP, on SQLite and on PostgreSQL: two keys, two
JWT subjects, a tenant claim, and admins."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import (
    ACME_1,
    ACME_2,
    ADMINS,
    ALICE,
    BOB,
    CAROL,
    GLOBEX,
    MISSING_ID,
    STRANGERS,
    U1_ALONE,
    Who,
    note,
    store,
    unique_word,
)

# Each backend's server starts (model and embedder) inside the first test's time.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
PAIRS = pytest.mark.parametrize(("owner", "stranger"), STRANGERS, ids=lambda w: w.name)


def as_missing(http: httpx.Client, method: str, who: Who, item_id: str) -> dict[str, Any]:
    """What ``who`` gets for an id that never existed, as it would read for ``item_id``."""
    missing = http.request(method, f"/v1/memories/{MISSING_ID}", headers=who.headers())
    assert missing.status_code == 404
    error = missing.json()["error"]
    return {"error": {**error, "message": error["message"].replace(MISSING_ID, item_id)}}


def search(http: httpx.Client, who: Who, **params: Any) -> list[dict[str, Any]]:
    r = http.get("/v1/memories/search", params=params, headers=who.headers())
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    assert all(hit["owner"] == who.owner for hit in results), results
    return results


@PAIRS
def test_a_strangers_memory_answers_exactly_like_a_missing_one(
    http: httpx.Client, owner: Who, stranger: Who
) -> None:
    [item_id] = store(http, owner, note("the locker code is 4471", speaker="Sam"))

    for method in ("GET", "DELETE"):
        foreign = http.request(method, f"/v1/memories/{item_id}", headers=stranger.headers())
        assert foreign.status_code == 404
        assert foreign.json() == as_missing(http, method, stranger, item_id)
        assert "4471" not in foreign.text
    mine = http.get(f"/v1/memories/{item_id}", headers=owner.headers())
    assert mine.status_code == 200 and mine.json()["owner"] == owner.owner


@PAIRS
def test_searches_never_return_a_strangers_memory(
    http: httpx.Client, owner: Who, stranger: Who
) -> None:
    word = unique_word()
    [mine] = store(http, owner, note(f"{word} review moves to Friday", speaker="Sam"))
    [theirs] = store(http, stranger, note(f"{word} review moves to Monday", speaker="Sam"))

    for who, own, other in ((owner, mine, theirs), (stranger, theirs, mine)):
        for params in (
            {"q": word},
            {"q": f"{word} review", "speaker": "Sam", "kind": "note"},
            {"q": "when does the review move?", "top_k": 100},
            {"q": word, "since": "2000-01-01T00:00:00Z"},
        ):
            found = [hit["id"] for hit in search(http, who, **params)]
            assert own in found and other not in found, (who.name, params)


@PAIRS
def test_a_stranger_cannot_delete_and_the_owner_can(
    http: httpx.Client, owner: Who, stranger: Who
) -> None:
    [item_id] = store(http, owner, note("keep me"))

    assert http.delete(f"/v1/memories/{item_id}", headers=stranger.headers()).status_code == 404
    assert http.get(f"/v1/memories/{item_id}", headers=owner.headers()).status_code == 200
    assert http.delete(f"/v1/memories/{item_id}", headers=owner.headers()).json()["deleted"]
    assert http.get(f"/v1/memories/{item_id}", headers=owner.headers()).status_code == 404


def test_a_tenant_shares_its_memories_within_the_tenant_only(http: httpx.Client) -> None:
    word = unique_word()
    [item_id] = store(http, ACME_1, note(f"{word} acme's roadmap is due in May"))

    shared = http.get(f"/v1/memories/{item_id}", headers=ACME_2.headers())
    assert shared.status_code == 200 and shared.json()["owner"] == "tenant:acme"
    assert [hit["id"] for hit in search(http, ACME_2, q=word)] == [item_id]
    for outsider in (GLOBEX, U1_ALONE):  # another tenant; the same user without a tenant
        assert http.get(f"/v1/memories/{item_id}", headers=outsider.headers()).status_code == 404
        assert search(http, outsider, q=word) == []
        r = http.delete(f"/v1/memories/{item_id}", headers=outsider.headers())
        assert r.status_code == 404
    assert http.delete(f"/v1/memories/{item_id}", headers=ACME_2.headers()).status_code == 200


@pytest.mark.parametrize("admin", ADMINS, ids=lambda w: w.name)
def test_an_admin_acts_for_the_owner_it_names(http: httpx.Client, admin: Who) -> None:
    word = unique_word()
    [alice_id] = store(http, ALICE, note(f"{word} alice's note"))
    [carol_id] = store(http, CAROL, note(f"{word} carol's note"))

    assert http.get(f"/v1/memories/{alice_id}", headers=admin.headers()).status_code == 404
    as_alice = admin.headers(**{"X-Gemma-Owner": "alice"})
    assert http.get(f"/v1/memories/{alice_id}", headers=as_alice).json()["owner"] == "alice"
    everyone = admin.headers(**{"X-Gemma-Owner": "*"})
    r = http.get("/v1/memories/search", params={"q": word}, headers=everyone)
    found = {(h["id"], h["owner"]) for h in r.json()["results"]}
    assert {(alice_id, "alice"), (carol_id, "jwt:carol")} <= found
    [own_id] = store_as(http, everyone, note(f"{word} the admin's own note"))
    assert http.get(f"/v1/memories/{own_id}", headers=admin.headers()).json()["owner"] == (
        admin.owner
    )
    as_carol = admin.headers(**{"X-Gemma-Owner": "jwt:carol"})
    assert http.delete(f"/v1/memories/{carol_id}", headers=as_carol).status_code == 200
    assert http.get(f"/v1/memories/{carol_id}", headers=CAROL.headers()).status_code == 404


@pytest.mark.parametrize("who", [ALICE, CAROL, ACME_1], ids=lambda w: w.name)
def test_only_an_admin_may_name_another_owner(http: httpx.Client, who: Who) -> None:
    [bob_id] = store(http, BOB, note("bob's note"))
    as_bob = who.headers(**{"X-Gemma-Owner": "bob"})

    for method, path, body in (
        ("GET", f"/v1/memories/{bob_id}", None),
        ("DELETE", f"/v1/memories/{bob_id}", None),
        ("GET", "/v1/memories/search?q=note", None),
        ("POST", "/v1/memories", {"text": "planted in bob's space"}),
    ):
        r = http.request(method, path, json=body, headers=as_bob)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["type"] == "permission_error"
    assert http.get(f"/v1/memories/{bob_id}", headers=BOB.headers()).status_code == 200
    assert all("planted" not in hit["text"] for hit in search(http, BOB, q="planted"))


def store_as(http: httpx.Client, headers: dict[str, str], *notes: dict[str, Any]) -> list[str]:
    r = http.post("/v1/memories", json=list(notes), headers=headers)
    assert r.status_code == 200, r.text
    ids: list[str] = r.json()["ids"]
    return ids
