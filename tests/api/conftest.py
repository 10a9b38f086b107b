"""Fast API tests: the real app and engine loop over the deterministic fake backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from gemma_service.api.app import create_app
from gemma_service.api.state import get_caller
from gemma_service.chat.job import Caller
from gemma_service.config import ServiceSettings
from gemma_service.engine import fake_backend
from gemma_service.engine.async_engine import Engine
from gemma_service.engine.factory import engine_config
from gemma_service.engine.fake_backend import FakeBackend
from gemma_service.memory.owners import OwnerScope

MakeClient = Callable[..., TestClient]


def wait_ready(client: TestClient, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError("server never became ready")


@pytest.fixture
def make_client(tmp_path: Any) -> Iterator[MakeClient]:
    clients: list[TestClient] = []

    def make(backend: FakeBackend | None = None, **overrides: Any) -> TestClient:
        # Lexical-only memory unless a test asks for an embedder: no torch import per app.
        overrides.setdefault("embedding_model", "none")
        settings = ServiceSettings(data_dir=tmp_path, **overrides)
        fake = backend or FakeBackend()
        engine = Engine(lambda: fake, engine_config(settings))
        client = TestClient(create_app(settings, engine))
        client.__enter__()
        clients.append(client)
        wait_ready(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


class ScriptedModel:
    """The fake model's reply, set by a test; the prompts it saw, as text."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.prompts: list[str] = []
        self._monkeypatch = monkeypatch

    def say(self, reply: str) -> None:
        def fake_reply(prompt_tokens: list[int], seed: int | None) -> str:
            self.prompts.append(bytes(t for t in prompt_tokens if t < 256).decode())
            return reply

        self._monkeypatch.setattr(fake_backend, "fake_reply", fake_reply)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedModel:
    return ScriptedModel(monkeypatch)


def as_owner(client: TestClient) -> None:
    """Let requests pick their owner with an ``X-Test-Owner`` header (what each key's owner
    gives them), so isolation of stored objects can be tried without real keys."""

    def caller(request: Request) -> Caller:
        owner = request.headers.get("x-test-owner")
        scope = OwnerScope(owner) if owner else OwnerScope.local()
        return Caller(f"test:{scope.owner}", scope)

    client.app.dependency_overrides[get_caller] = caller  # type: ignore[attr-defined]
