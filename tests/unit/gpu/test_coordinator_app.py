"""The coordinator's HTTP contract, in process (no sockets): bodies, statuses, metrics, settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gemma_service.gpu.coordinator_app import (
    CoordinatorSettings,
    create_coordinator_app,
    parse_coordinator_args,
)


@pytest.fixture
async def coordinator(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = CoordinatorSettings(state_dir=tmp_path, default_ttl_s=5.0, max_ttl_s=30.0)
    app = create_coordinator_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as client:
            yield client


async def acquire(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/leases", json={"holder": "a", **body})


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def test_acquire_renew_release_with_increasing_tokens(
    coordinator: httpx.AsyncClient,
) -> None:
    first = (await acquire(coordinator, priority=3, ttl_s=2.0)).json()
    assert first["holder"] == "a" and first["ttl_s"] == 2.0 and first["token"] == 1
    assert 0 < first["expires_in_s"] <= 2.0
    renewed = await coordinator.post(
        f"/leases/{first['lease_id']}/renew", json={"token": first["token"]}
    )
    assert renewed.status_code == 200 and renewed.json()["token"] == 1
    released = await coordinator.delete(
        f"/leases/{first['lease_id']}", params={"token": first["token"]}
    )
    assert released.json() == {"released": True, "lease_id": first["lease_id"], "token": 1}
    second = (await acquire(coordinator)).json()
    assert second["token"] == 2 and second["ttl_s"] == 5.0


async def test_busy_without_waiting_is_409_and_waiting_too_long_is_408(
    coordinator: httpx.AsyncClient,
) -> None:
    await acquire(coordinator)
    busy = await coordinator.post("/leases", json={"holder": "b"})
    assert busy.status_code == 409
    assert error_of(busy)["code"] == "lease_busy"
    timed_out = await coordinator.post("/leases", json={"holder": "b", "wait_s": 0.2})
    assert timed_out.status_code == 408
    assert error_of(timed_out)["code"] == "lease_wait_timeout"
    assert error_of(timed_out)["param"] == "wait_s"


async def test_a_waiter_is_granted_when_the_holder_releases(
    coordinator: httpx.AsyncClient,
) -> None:
    held = (await acquire(coordinator)).json()
    waiter = asyncio.create_task(coordinator.post("/leases", json={"holder": "b", "wait_s": 5}))
    await asyncio.sleep(0.1)
    queue = (await coordinator.get("/leases")).json()["queue"]
    assert [entry["holder"] for entry in queue] == ["b"]
    await coordinator.delete(f"/leases/{held['lease_id']}", params={"token": held["token"]})
    granted = (await asyncio.wait_for(waiter, 5)).json()
    assert granted["holder"] == "b" and granted["token"] == held["token"] + 1


async def test_stale_token_is_rejected_and_the_fencing_check_says_so(
    coordinator: httpx.AsyncClient,
) -> None:
    old = (await acquire(coordinator, ttl_s=0.2)).json()
    new = (await coordinator.post("/leases", json={"holder": "b", "wait_s": 5})).json()
    renew = await coordinator.post(f"/leases/{old['lease_id']}/renew", json={"token": 1})
    assert renew.status_code == 409 and error_of(renew)["code"] == "stale_token"
    check_old = await coordinator.post(
        "/leases/validate", json={"lease_id": old["lease_id"], "token": old["token"]}
    )
    assert check_old.status_code == 409 and error_of(check_old)["code"] == "stale_token"
    check_new = await coordinator.post(
        "/leases/validate", json={"lease_id": new["lease_id"], "token": new["token"]}
    )
    assert check_new.json()["valid"] is True and check_new.json()["holder"] == "b"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"holder": "a", "priority": "high"}, "priority"),
        ({"holder": "a", "ttl_s": 31}, "ttl_s"),
        ({"holder": "a", "wait_s": -1}, "wait_s"),
        ({"holder": "has space"}, "holder"),
        ({"priority": 1}, "holder"),
    ],
)
async def test_invalid_requests_are_400_naming_the_field(
    coordinator: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    response = await coordinator.post("/leases", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error" and error["param"] == param


async def test_unknown_route_is_404_in_the_error_shape(coordinator: httpx.AsyncClient) -> None:
    response = await coordinator.get("/nope")
    assert response.status_code == 404
    assert error_of(response)["code"] == "http_404"


async def test_metrics_show_holder_queue_preemptions_and_waits(
    coordinator: httpx.AsyncClient,
) -> None:
    await acquire(coordinator, priority=1)
    waiter = asyncio.create_task(
        coordinator.post("/leases", json={"holder": "gemma", "priority": 10, "wait_s": 5})
    )
    await asyncio.sleep(0.1)
    text = (await coordinator.get("/metrics")).text
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert 'gpu_lease_holder{holder="a",priority="1"} 1.0' in text
    assert "gpu_lease_queue_length 1.0" in text
    assert "gpu_lease_preemptions_total 1.0" in text
    assert "gpu_lease_wait_seconds_count 1.0" in text
    assert "gpu_lease_last_token 1.0" in text


async def test_healthz_reports_holder_and_queue(coordinator: httpx.AsyncClient) -> None:
    await acquire(coordinator)
    health = (await coordinator.get("/healthz")).json()
    assert health["status"] == "ok" and health["holder"] == "a"
    assert health["queue_length"] == 0 and health["last_token"] == 1


def test_settings_come_from_env_vars_and_flags_override_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GPU_COORDINATOR_PORT", "9000")
    monkeypatch.setenv("GPU_COORDINATOR_STATE_DIR", str(tmp_path))
    from_env = parse_coordinator_args([])
    assert (from_env.host, from_env.port, from_env.state_dir) == ("127.0.0.1", 9000, tmp_path)
    from_flags = parse_coordinator_args(["--port", "9100", "--default-ttl", "3"])
    assert (from_flags.port, from_flags.default_ttl_s) == (9100, 3.0)


def test_default_port_is_8002(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPU_COORDINATOR_PORT", raising=False)
    assert CoordinatorSettings().port == 8002
