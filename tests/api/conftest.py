"""Fast API tests: the real app and engine loop over the deterministic fake backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gemma_service.api.app import create_app
from gemma_service.config import ServiceSettings
from gemma_service.engine.async_engine import Engine
from gemma_service.engine.factory import engine_config
from gemma_service.engine.fake_backend import FakeBackend

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
