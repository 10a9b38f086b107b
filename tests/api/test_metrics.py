"""/metrics: Prometheus text with requests, tokens, latencies, queue, cache and GPU state."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from gemma_service.api.app import single_model_pool
from gemma_service.api.metrics import ServiceMetrics
from gemma_service.api.state import ServiceState
from gemma_service.config import ServiceSettings
from gemma_service.engine.protocol import EngineHealth, EngineStats

from .conftest import MakeClient

CHAT = "/v1/chat/completions"


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one series in Prometheus text format (labels as written, in order)."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert match is not None, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))


def test_generation_is_measured(client: TestClient) -> None:
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 12}
    usage = client.post(CHAT, json=body).json()["usage"]
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert sample(text, "gemma_prompt_tokens_total") == usage["prompt_tokens"]
    assert sample(text, "gemma_generation_tokens_total") == usage["completion_tokens"] == 12
    assert sample(text, "gemma_time_to_first_token_seconds_count") == 1
    assert sample(text, "gemma_inter_token_latency_seconds_count") == 11
    assert sample(text, "gemma_e2e_request_latency_seconds_count") == 1
    assert sample(text, "gemma_gpu_wait_seconds_count") == 1
    assert sample(text, "gemma_requests_waiting") == 0
    assert sample(text, "gemma_requests_running") == 0
    assert sample(text, "gemma_ready") == 1
    assert sample(text, "gemma_engine_steps_total") >= 12


def test_requests_are_counted_by_route_and_status(make_client: MakeClient) -> None:
    client = make_client(api_keys="sk-a")
    key = {"X-Api-Key": "sk-a"}
    client.get("/v1/models", headers=key)
    client.get("/v1/models")
    client.get("/v1/models/nope", headers=key)
    text = client.get("/metrics", headers=key).text
    series = "gemma_http_requests_total"
    openai = 'method="GET",protocol="openai"'
    assert sample(text, series, f'{openai},route="/v1/models",status="200"') == 1
    assert sample(text, series, f'{openai},route="/v1/models",status="401"') == 1
    labels = f'{openai},route="/v1/models/{{model_id:path}}",status="404"'
    assert sample(text, series, labels) == 1
    assert client.get("/metrics").status_code == 401


def test_prefix_cache_hits_are_counted(client: TestClient) -> None:
    body = {"messages": [{"role": "user", "content": "the same long question " * 8}]}
    client.post(CHAT, json={**body, "max_tokens": 4})
    second = client.post(CHAT, json={**body, "max_tokens": 4}).json()["usage"]
    cached = second["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0
    text = client.get("/metrics").text
    assert sample(text, "gemma_prefix_cache_hits_total") == 1
    assert sample(text, "gemma_prefix_cache_hit_tokens_total") == cached


def test_gpu_residency_and_lease_state_are_reported(client: TestClient) -> None:
    text = client.get("/metrics").text
    # The fake backend has no GPU: the model stays on CPU and no lease is taken.
    assert sample(text, "gemma_gpu_residency", 'state="no_gpu"') == 1
    assert sample(text, "gemma_gpu_residency", 'state="on_gpu"') == 0
    assert sample(text, "gemma_gpu_lease_state", 'state="none"') == 1
    assert sample(text, "gemma_gpu_layers") == 0
    assert "gemma_memory_retrieval_seconds_count" in text


class EngineReportingKv:
    """An engine whose health reports KV cache use."""

    def health(self) -> EngineHealth:
        stats = EngineStats(kv_cache_used_tokens=1536, kv_cache_capacity_tokens=4096)
        return EngineHealth("ready", "cpu", 0, False, running=3, waiting=2, stats=stats)


def test_kv_cache_use_is_reported_when_the_engine_knows_it() -> None:
    settings = ServiceSettings()
    pool = single_model_pool(settings, EngineReportingKv())  # type: ignore[arg-type]
    state = ServiceState(settings=settings, models=pool)
    metrics = ServiceMetrics()
    metrics.watch(lambda: state)
    text = metrics.render().decode()
    assert sample(text, "gemma_kv_cache_used_tokens") == 1536
    assert sample(text, "gemma_kv_cache_usage_ratio") == 0.375
    assert sample(text, "gemma_requests_running") == 3
    assert sample(text, "gemma_requests_waiting") == 2
    assert sample(text, "gemma_ready") == 0  # no chat service yet: still loading


def test_requests_carry_their_protocol(client: TestClient) -> None:
    hi = [{"role": "user", "content": "hi"}]
    client.post("/v1/messages", json={"model": "m", "max_tokens": 2, "messages": hi})
    client.post("/api/chat", json={"model": "m", "messages": hi, "stream": False})
    client.post("/v1/responses", json={"input": "hi", "max_output_tokens": 2})
    client.post("/tokenize", json={"content": "hi"})
    text = client.get("/metrics").text
    series = "gemma_http_requests_total"
    for protocol, route in [
        ("anthropic", "/v1/messages"),
        ("ollama", "/api/chat"),
        ("responses", "/v1/responses"),
        ("llama", "/tokenize"),
    ]:
        labels = f'method="POST",protocol="{protocol}",route="{route}",status="200"'
        assert sample(text, series, labels) == 1
