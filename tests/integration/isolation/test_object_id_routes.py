"""Every route of the OpenAPI document that takes an object id in its path, tried across
owners over real HTTP on SQLite and PostgreSQL. A route added later is walked too: if its id
names a kind of object this file cannot create, the walk fails until someone says how (in
OWNED_OBJECTS) or why every caller may see it (in SHARED_ID_PARAMETERS)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .conftest import (
    ACME_1,
    ACME_2,
    ALICE,
    EVE,
    GLOBEX,
    MISSING_ID,
    OPS,
    STRANGERS,
    Who,
    note,
    store,
    unique_word,
)

# Each backend's server starts (model and embedder) inside the first test's time.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class OwnedObject:
    """How to make one object of a kind as a caller: its id and a text only it holds."""

    create: Callable[[httpx.Client, Who, str], str]
    missing_id: str


def create_memory(http: httpx.Client, who: Who, secret: str) -> str:
    return store(http, who, note(f"the safe code is {secret}"))[0]


# Path parameter name -> the kind of owned object it names.
OWNED_OBJECTS: dict[str, OwnedObject] = {
    "memory_id": OwnedObject(create_memory, MISSING_ID),
}
# Path parameters that name objects every caller shares, and why.
SHARED_ID_PARAMETERS = {
    "model_id": "the model catalogue is the same for every caller",
}
# Bodies for routes that need one besides the id, by (method, path).
BODIES: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True)
class IdRoute:
    method: str
    path: str
    params: tuple[str, ...]

    def url(self, ids: dict[str, str]) -> str:
        path = self.path
        for name in self.params:
            path = path.replace("{" + name + "}", ids[name])
        return path

    def call(self, http: httpx.Client, who: Who, ids: dict[str, str], **headers: str) -> Any:
        body = BODIES.get((self.method, self.path))
        return http.request(self.method, self.url(ids), json=body, headers=who.headers(**headers))


def id_routes(http: httpx.Client) -> list[IdRoute]:
    """Every (method, path) of the OpenAPI document with path parameters; deletes last, so the
    other methods of a path find their object."""
    schema = http.get("/openapi.json", headers=ALICE.headers()).json()
    routes = [
        IdRoute(
            method.upper(),
            path,
            tuple(p["name"] for p in operation.get("parameters", []) if p["in"] == "path"),
        )
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]
    return sorted((r for r in routes if r.params), key=lambda r: r.method == "DELETE")


def owned_routes(http: httpx.Client) -> list[IdRoute]:
    return [r for r in id_routes(http) if any(p in OWNED_OBJECTS for p in r.params)]


def test_the_walk_knows_every_id_in_the_openapi_document(http: httpx.Client) -> None:
    unknown = {
        (r.method, r.path, p)
        for r in id_routes(http)
        for p in r.params
        if p not in OWNED_OBJECTS and p not in SHARED_ID_PARAMETERS
    }
    assert not unknown, (
        f"routes take ids this walk cannot check across owners: {sorted(unknown)}; add how to "
        "create that object to OWNED_OBJECTS, or why every caller shares it to "
        "SHARED_ID_PARAMETERS"
    )
    walked = {(r.method, r.path) for r in owned_routes(http)}
    assert {("GET", "/v1/memories/{memory_id}"), ("DELETE", "/v1/memories/{memory_id}")} <= walked


def make_objects(http: httpx.Client, route: IdRoute, who: Who, secret: str) -> dict[str, str]:
    return {
        p: OWNED_OBJECTS[p].create(http, who, secret) for p in route.params if p in OWNED_OBJECTS
    }


def missing_ids(route: IdRoute, real: dict[str, str]) -> dict[str, str]:
    return {**real, **{p: OWNED_OBJECTS[p].missing_id for p in real}}


@pytest.mark.parametrize(
    ("owner", "stranger"), [*STRANGERS, (ACME_1, GLOBEX)], ids=lambda w: w.name
)
def test_every_id_route_answers_a_strangers_id_exactly_like_a_missing_one(
    http: httpx.Client, owner: Who, stranger: Who
) -> None:
    for route in owned_routes(http):
        secret = unique_word()
        ids = make_objects(http, route, owner, secret)
        missing = route.call(http, stranger, missing_ids(route, ids))

        foreign = route.call(http, stranger, ids)

        where = f"{route.method} {route.path}"
        assert foreign.status_code == missing.status_code == 404, (where, foreign.text)
        expected = missing.text
        for name, object_id in ids.items():
            expected = expected.replace(OWNED_OBJECTS[name].missing_id, object_id)
        assert foreign.text == expected, where
        assert secret not in foreign.text, where
        # The walk proves something only if the route serves the object to its owner.
        mine = route.call(http, owner, ids)
        assert mine.status_code < 300, (where, mine.text)


@pytest.mark.parametrize("admin", [OPS, EVE], ids=lambda w: w.name)
def test_every_id_route_serves_an_admin_acting_for_the_owner(
    http: httpx.Client, admin: Who
) -> None:
    for route in owned_routes(http):
        ids = make_objects(http, route, ACME_2, unique_word())
        assert route.call(http, admin, ids).status_code == 404
        acting = route.call(http, admin, ids, **{"X-Gemma-Owner": ACME_2.owner})
        assert acting.status_code < 300, (route.method, route.path, acting.text)
