"""Several models behind one app: routing by ``model``, /v1/models states, admin load/unload."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from gemma_service.api.app import create_app, model_budget
from gemma_service.config import ServiceSettings
from gemma_service.engine.async_engine import Engine
from gemma_service.engine.factory import engine_config
from gemma_service.engine.fake_backend import FakeBackend
from gemma_service.gpu.testing import CoordinatorProcess
from gemma_service.logs import JsonFormatter
from gemma_service.models.catalogue import CatalogueEntry, ModelCatalogue
from gemma_service.models.pool import ModelPool

from .conftest import wait_ready

CHAT = "/v1/chat/completions"


def fake_named(model_id: str, gpu: bool = False) -> FakeBackend:
    fake = FakeBackend()
    fake.info.model_id = model_id
    fake.gpu_available = gpu  # a CUDA build, as far as the GPU placement can tell
    return fake


def three_models(tmp_path: Path, **overrides: object) -> TestClient:
    """An app over three fake models, "small" the default, two loaded at most."""
    settings = ServiceSettings(
        data_dir=tmp_path,
        embedding_model="none",
        max_loaded_models=2,
        **overrides,  # type: ignore[arg-type]
    )
    entries = []
    for model_id in ("small", "big", "other"):
        path = tmp_path / f"{model_id}.gguf"
        path.write_bytes(b"GGUF")
        entries.append(CatalogueEntry(model_id, path, aliases=(f"{model_id}-alias",)))

    def engine_for(entry: CatalogueEntry) -> Engine:
        gpu = settings.gpu_coordinator_url is not None
        return Engine(lambda: fake_named(entry.id, gpu), engine_config(settings))

    pool = ModelPool(ModelCatalogue(entries, "small"), engine_for, model_budget(settings))
    return TestClient(create_app(settings, models=pool))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with three_models(tmp_path) as c:
        wait_ready(c)
        yield c


def chat(client: TestClient, model: str) -> dict[str, object]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    r = client.post(CHAT, json=body)
    assert r.status_code == 200, r.text
    result: dict[str, object] = r.json()
    return result


def states(client: TestClient) -> dict[str, str]:
    return {m["id"]: m["state"] for m in client.get("/v1/models").json()["data"]}


def test_models_are_listed_with_their_states(client: TestClient) -> None:
    data = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == ["small", "big", "other"]
    small, big = data[0], data[1]
    assert small["state"] == "loaded" and small["device"] == "cpu" and "meta" in small
    assert big["state"] == "unloaded" and big["aliases"] == ["big-alias"] and "meta" not in big


def test_each_request_is_answered_by_the_model_it_names(client: TestClient) -> None:
    assert chat(client, "big")["model"] == "big"
    assert chat(client, "small")["model"] == "small"
    assert chat(client, "other-alias")["model"] == "other"
    # A budget of two: the least recently used (big) made room for other.
    assert states(client) == {"small": "loaded", "big": "unloaded", "other": "loaded"}


def test_an_unknown_model_is_a_404_listing_the_ids(client: TestClient) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    r = client.post(CHAT, json=body)
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "small, big, other" in error["message"]
    assert client.get("/v1/models/gpt-4o").status_code == 404
    assert client.get("/v1/models/big-alias").json()["id"] == "big"


def test_admin_routes_load_and_unload(client: TestClient) -> None:
    r = client.post("/models/load", json={"model": "big"})
    assert r.status_code == 200 and r.json()["state"] == "loaded"
    assert client.get("/healthz").json()["models"] == [
        {"id": "small", "state": "loaded", "device": "cpu", "running": 0},
        {"id": "big", "state": "loaded", "device": "cpu", "running": 0},
    ]
    r = client.post("/models/unload", json={"model": "big"})
    assert r.status_code == 200 and r.json()["state"] == "unloaded"
    assert states(client)["big"] == "unloaded"
    assert client.post("/models/unload", json={"model": "nope"}).status_code == 404
    assert client.post("/models/load", json={}).status_code == 400


def test_the_default_model_may_be_unloaded_and_comes_back(client: TestClient) -> None:
    client.post("/models/unload", json={"model": "small"})
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["model"] == "small"
    assert client.get("/readyz").status_code == 200
    assert chat(client, "small")["model"] == "small"


def test_metrics_carry_the_model_label(client: TestClient) -> None:
    chat(client, "big")
    text = client.get("/metrics").text
    assert 'gemma_model_state{model="big",state="loaded"} 1.0' in text
    assert 'gemma_model_state{model="other",state="unloaded"} 1.0' in text
    assert 'gemma_model_loads_total{model="big"} 1.0' in text
    assert 'gemma_model_tokens_total{kind="generated",model="big"} 4.0' in text


def test_only_admins_load_and_unload_on_a_server_with_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("ops:admin-key-0123456789 admin\nuser:user-key-0123456789\n")
    with three_models(tmp_path, api_keys_file=keys) as c:
        wait_ready(c)
        user = {"Authorization": "Bearer user-key-0123456789"}
        admin = {"Authorization": "Bearer admin-key-0123456789"}
        r = c.post("/models/load", json={"model": "big"}, headers=user)
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_admin"
        assert c.post("/models/load", json={"model": "big"}, headers=admin).status_code == 200
        assert c.post("/models/unload", json={"model": "big"}, headers=user).status_code == 403


def test_the_request_log_names_the_model_that_answered(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gemma_service.requests"):
        chat(client, "big-alias")
    line = next(r for r in caplog.records if r.name == "gemma_service.requests")
    assert "model=big" in line.getMessage()
    assert json.loads(JsonFormatter().format(line))["model"] == "big"


def test_the_native_api_picks_the_model_too(client: TestClient) -> None:
    r = client.post("/chat", json={"model": "big", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and r.json()["model"] == "big"
    r = client.post("/generate", json={"model": "other", "prompt": "Once", "max_tokens": 4})
    assert r.status_code == 200 and r.json()["model"] == "other"
    r = client.post("/generate", json={"model": "nope", "prompt": "Once"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_ollama_lists_every_model_and_the_loaded_ones(client: TestClient) -> None:
    chat(client, "big")
    tags = [m["name"] for m in client.get("/api/tags").json()["models"]]
    assert tags == ["small", "big", "other"]
    assert [m["name"] for m in client.get("/api/ps").json()["models"]] == ["small", "big"]


def test_ollama_loads_with_an_empty_request_and_unloads_with_keep_alive_0(
    client: TestClient,
) -> None:
    r = client.post("/api/generate", json={"model": "other:latest"})
    assert r.status_code == 200 and r.json()["done_reason"] == "load"
    assert states(client)["other"] == "loaded"
    r = client.post("/api/chat", json={"model": "other", "messages": [], "keep_alive": 0})
    assert r.status_code == 200 and r.json()["done_reason"] == "unload"
    assert states(client)["other"] == "unloaded"
    asked = {"model": "other", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    r = client.post("/api/chat", json=asked)
    assert r.status_code == 200 and r.json()["model"] == "other"
    assert client.post("/api/generate", json={"model": "nope"}).status_code == 404


def test_each_model_leases_the_gpu_under_its_own_name(tmp_path: Path) -> None:
    with (
        CoordinatorProcess(tmp_path / "coordinator-state") as coordinator,
        three_models(tmp_path, gpu_coordinator_url=coordinator.url, gpu_keep_s=30) as c,
    ):
        wait_ready(c)

        def holder() -> object:
            held = httpx.get(coordinator.url + "/leases").json().get("holder")
            return held["holder"] if held else None

        chat(c, "big")
        assert holder() == "gemma-service/big"
        # Unloading big gives its lease back; small then takes the GPU under its own name.
        c.post("/models/unload", json={"model": "big"})
        assert holder() is None
        chat(c, "small")
        assert holder() == "gemma-service/small"
