"""Prometheus metrics of the service (``GET /metrics``), in a registry of the app's own.

Request, token and latency series are recorded as things happen; queue, engine and GPU state
are read from the live objects at scrape time, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gemma_service.engine.protocol import EngineHealth, EngineStats, UpstreamStats
from gemma_service.gpu.residency import Residency

if TYPE_CHECKING:
    from gemma_service.api.state import ServiceState

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TOKEN_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.5, 1, 2.5)
_LEASE_STATES = ("none", "exclusive", "waiting", "held", "preempted", "releasing")

router = APIRouter(tags=["metrics"])


class ServiceMetrics:
    """The series the service records; one instance per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # protocol: openai, responses, anthropic, ollama, native, llama, memory, service.
        self.requests = Counter(
            "gemma_http_requests",
            "HTTP requests",
            ["protocol", "route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "gemma_http_request_duration_seconds",
            "HTTP request time until the last byte of the response",
            ["protocol", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("gemma_prompt_tokens", "prompt tokens", registry=r)
        self.generation_tokens = Counter("gemma_generation_tokens", "tokens generated", registry=r)
        self.model_tokens = Counter(
            "gemma_model_tokens",
            "tokens per model, prompt or generated",
            ["model", "kind"],
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "gemma_time_to_first_token_seconds",
            "time from submitting a generation to its first token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inter_token_latency = Histogram(
            "gemma_inter_token_latency_seconds",
            "time between consecutive generated tokens of one sequence",
            buckets=_TOKEN_GAP_BUCKETS,
            registry=r,
        )
        self.e2e_latency = Histogram(
            "gemma_e2e_request_latency_seconds",
            "time from submitting a generation to its end",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.gpu_wait = Histogram(
            "gemma_gpu_wait_seconds",
            "time a generation waited for the model's placement (GPU lease) before it ran",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.memory_retrieval = Histogram(
            "gemma_memory_retrieval_seconds",
            "time to retrieve memories for a prompt",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def watch(self, state: Callable[[], ServiceState | None]) -> None:
        """Report engine and GPU state read from ``state()`` at scrape time."""
        self.registry.register(_ServiceStateCollector(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ServiceStateCollector(Collector):
    def __init__(self, state: Callable[[], ServiceState | None]) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        state = self._state()
        ready = GaugeMetricFamily("gemma_ready", "1 while the server takes work (see /readyz)")
        ready.add_metric([], 1.0 if state is not None and state.ready else 0.0)
        yield ready
        if state is None:
            return
        yield from _engine_metrics(state)
        if state.residency is not None:
            yield from _gpu_metrics(state.residency.status())


def _model_metrics(state: ServiceState) -> Iterable[Metric]:
    """Each catalogue model's state and running requests, labelled by model."""
    models = state.models.status()
    states = GaugeMetricFamily(
        "gemma_model_state",
        "where each model is (1 for its current state)",
        labels=["model", "state"],
    )
    running = GaugeMetricFamily(
        "gemma_model_requests_running", "requests holding each model", labels=["model"]
    )
    loads = CounterMetricFamily(
        "gemma_model_loads", "times each model was loaded", labels=["model"]
    )
    for m in models:
        for name in ("unloaded", "loading", "loaded", "unloading"):
            states.add_metric([m.id, name], 1.0 if m.state == name else 0.0)
        running.add_metric([m.id], m.in_use)
        loads.add_metric([m.id], m.loads)
    yield from (states, running, loads)


def _engine_metrics(state: ServiceState) -> Iterable[Metric]:
    yield from _model_metrics(state)
    health = _total_health(state)
    yield GaugeMetricFamily(
        "gemma_requests_waiting", "sequences queued for the engine", value=health.waiting
    )
    yield GaugeMetricFamily(
        "gemma_requests_running", "sequences being decoded", value=health.running
    )
    if health.last_step_age_s is not None:
        yield GaugeMetricFamily(
            "gemma_engine_last_step_age_seconds",
            "seconds since the last engine step while work is pending (0 when idle)",
            value=health.last_step_age_s,
        )
    stats = health.stats
    yield CounterMetricFamily("gemma_engine_steps", "engine decode steps", value=stats.steps_total)
    yield CounterMetricFamily(
        "gemma_prefix_cache_hits",
        "generations that reused a cached prompt prefix",
        value=stats.prefix_cache_hits_total,
    )
    yield CounterMetricFamily(
        "gemma_prefix_cache_hit_tokens",
        "prompt tokens served from the prefix cache",
        value=stats.cached_tokens_total,
    )
    if health.upstreams:
        yield from _upstream_metrics(health.upstreams)
    used, capacity = stats.kv_cache_used_tokens, stats.kv_cache_capacity_tokens
    yield GaugeMetricFamily("gemma_kv_cache_used_tokens", "KV cache cells in use", value=used)
    if capacity > 0:
        yield GaugeMetricFamily(
            "gemma_kv_cache_usage_ratio", "share of the KV cache in use", value=used / capacity
        )


def _upstream_metrics(upstreams: Iterable[UpstreamStats]) -> Iterable[Metric]:
    """The remote engine's upstream servers, one labelled series each."""
    up = GaugeMetricFamily(
        "gemma_upstream_healthy", "1 while the upstream is in the pool", labels=["upstream"]
    )
    in_flight = GaugeMetricFamily(
        "gemma_upstream_in_flight", "requests open on the upstream", labels=["upstream"]
    )
    requests = CounterMetricFamily(
        "gemma_upstream_requests", "requests sent to the upstream", labels=["upstream"]
    )
    errors = CounterMetricFamily(
        "gemma_upstream_errors",
        "requests the upstream refused, failed or broke off",
        labels=["upstream"],
    )
    ejections = CounterMetricFamily(
        "gemma_upstream_ejections", "times the upstream was taken out", labels=["upstream"]
    )
    cached = CounterMetricFamily(
        "gemma_upstream_cached_prompt_tokens",
        "prompt tokens the upstream reported served from its prefix cache",
        labels=["upstream"],
    )
    latency = HistogramMetricFamily(
        "gemma_upstream_request_duration_seconds",
        "time from opening a request on the upstream to its end",
        labels=["upstream"],
    )
    for u in upstreams:
        up.add_metric([u.url], 1.0 if u.healthy else 0.0)
        in_flight.add_metric([u.url], u.in_flight)
        requests.add_metric([u.url], u.requests_total)
        errors.add_metric([u.url], u.errors_total)
        ejections.add_metric([u.url], u.ejections_total)
        cached.add_metric([u.url], u.cached_tokens_total)
        counts = zip(u.latency_bounds, u.latency_buckets, strict=True)
        buckets = [(str(b), float(n)) for b, n in counts]
        buckets.append(("+Inf", float(u.completed_total)))
        latency.add_metric([u.url], buckets, u.latency_sum_s)
    yield from (up, in_flight, requests, errors, ejections, cached, latency)


def _total_health(state: ServiceState) -> EngineHealth:
    """The loaded models' engines together (the default model's, while none is loaded)."""
    engines = [engine for _, engine in state.models.loaded()] or [state.engine]
    healths = [e.health() for e in engines]
    if len(healths) == 1:
        return healths[0]
    ages = [h.last_step_age_s for h in healths if h.last_step_age_s is not None]
    stats = EngineStats(
        *(sum(getattr(h.stats, f) for h in healths) for f in EngineStats.__dataclass_fields__)
    )
    first = healths[0]
    return EngineHealth(
        first.state,
        first.device,
        first.gpu_layers,
        first.gpu_available,
        running=sum(h.running for h in healths),
        waiting=sum(h.waiting for h in healths),
        last_step_age_s=max(ages) if ages else None,
        stats=stats,
        upstreams=tuple(u for h in healths for u in h.upstreams),
    )


def _gpu_metrics(status: dict[str, object]) -> Iterable[Metric]:
    residency = GaugeMetricFamily(
        "gemma_gpu_residency", "where the model is (1 for the current state)", labels=["state"]
    )
    for name in (r.value for r in Residency):
        residency.add_metric([name], 1.0 if status.get("residency") == name else 0.0)
    yield residency
    lease = GaugeMetricFamily(
        "gemma_gpu_lease_state", "GPU lease state (1 for the current state)", labels=["state"]
    )
    current = status.get("lease_state")
    for name in sorted({*_LEASE_STATES, str(current)}):
        lease.add_metric([name], 1.0 if current == name else 0.0)
    yield lease
    layers = status.get("gpu_layers")
    if isinstance(layers, int):
        yield GaugeMetricFamily("gemma_gpu_layers", "model layers on the GPU now", value=layers)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the service's metrics."""
    service_metrics: ServiceMetrics = request.app.state.metrics
    return Response(service_metrics.render(), media_type=CONTENT_TYPE_LATEST)
