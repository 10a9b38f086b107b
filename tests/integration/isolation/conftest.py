"""One real server per memory backend (SQLite, PostgreSQL) with the real model, two named keys,
an admin key, and JWTs whose owners are their subjects, or their tenant ('org' claim)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from ..conftest import RunningServer, start_server, stop_server
from ..memory.conftest import postgres_cluster  # noqa: F401  (a fixture, used by name)

SECRET = "isolation-jwt-secret-0123456789abcdef"
MISSING_ID = "mem_" + "0" * 32


@dataclass(frozen=True)
class Who:
    """A caller: a static key, or the claims of a JWT signed when it is used."""

    name: str
    owner: str
    key: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    def credential(self) -> str:
        if self.key is not None:
            return self.key
        return jwt.encode({"exp": int(time.time()) + 600, **self.claims}, SECRET, "HS256")

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential()}", **extra}


ALICE = Who("alice (key)", "alice", key="sk-isolation-alice-0001")
BOB = Who("bob (key)", "bob", key="sk-isolation-bob-0002")
OPS = Who("ops (admin key)", "ops", key="sk-isolation-ops-0003")
CAROL = Who("carol (jwt)", "jwt:carol", claims={"sub": "carol"})
DAVE = Who("dave (jwt)", "jwt:dave", claims={"sub": "dave"})
EVE = Who("eve (admin jwt)", "jwt:eve", claims={"sub": "eve", "roles": ["reader", "admin"]})
ACME_1 = Who("u1@acme", "tenant:acme", claims={"sub": "u1", "org": "acme"})
ACME_2 = Who("u2@acme", "tenant:acme", claims={"sub": "u2", "org": "acme"})
GLOBEX = Who("u3@globex", "tenant:globex", claims={"sub": "u3", "org": "globex"})
U1_ALONE = Who("u1 without org", "jwt:u1", claims={"sub": "u1"})
# (owner, another owner): two keys, and two JWT subjects.
STRANGERS = [(ALICE, BOB), (CAROL, DAVE)]
ADMINS = [OPS, EVE]


@dataclass
class Deployment:
    """A running server and where its memory lives (for the CLI)."""

    backend: str
    server: RunningServer
    data_dir: Path
    memory_url: str | None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=120)


def postgres_database(cluster: Any) -> str:
    import psycopg

    name = f"isolation_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster.url(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return str(cluster.url(name))


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp(f"isolation-{request.param}")
    keys = tmp / "keys"
    keys.write_text(f"alice:{ALICE.key}\nbob:{BOB.key}\n# the operator\nops:{OPS.key} admin\n")
    env = {
        "GEMMA_API_KEYS_FILE": str(keys),
        "GEMMA_JWT_SECRET": SECRET,
        "GEMMA_JWT_TENANT_CLAIM": "org",
        "GEMMA_JWT_ADMIN_CLAIM": "roles",
    }
    memory_url = None
    if request.param == "postgres":
        memory_url = postgres_database(request.getfixturevalue("postgres_cluster"))
        env["GEMMA_MEMORY_URL"] = memory_url
    args = ["--model", str(model_path), "--ctx-size", "4096", "--threads", "2", "--parallel", "4"]
    server = start_server(tmp, *args, env=env, ready_timeout_s=600)
    yield Deployment(request.param, server, tmp / "data", memory_url)
    stop_server(server)


@pytest.fixture
def http(deployment: Deployment) -> Iterator[httpx.Client]:
    with deployment.client() as client:
        yield client


def store(http: httpx.Client, who: Who, *notes: dict[str, Any]) -> list[str]:
    """Store memories as ``who``; their ids."""
    r = http.post("/v1/memories", json=list(notes), headers=who.headers())
    assert r.status_code == 200, r.text
    ids: list[str] = r.json()["ids"]
    return ids


def note(text: str, **fields: Any) -> dict[str, Any]:
    """A memory with a word no other test uses, so searches find only what a test stored."""
    return {"text": text, "kind": "note", **fields}


def unique_word() -> str:
    return "zq" + uuid.uuid4().hex[:8]
