"""Prometheus metrics of the lease coordinator, in a registry of its own."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gemma_service.gpu.coordinator_state import LeaseTable

_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _LeaseTableCollector(Collector):
    """Reads holder, queue and token from the table at scrape time, so they are never stale."""

    def __init__(self, table: LeaseTable) -> None:
        self._table = table

    def collect(self) -> Iterable[Metric]:
        holder = GaugeMetricFamily(
            "gpu_lease_holder", "1 for the holder of the GPU lease", labels=["holder", "priority"]
        )
        lease = self._table.holder
        if lease is not None:
            holder.add_metric([lease.holder, str(lease.priority)], 1.0)
        yield holder
        yield GaugeMetricFamily(
            "gpu_lease_queue_length", "requests waiting for the lease", value=len(self._table.queue)
        )
        yield GaugeMetricFamily(
            "gpu_lease_last_token", "last fencing token issued", value=self._table.last_token
        )


class CoordinatorMetrics:
    """Counters and wait-time histogram; holder/queue gauges are read from the table."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.wait_seconds = Histogram(
            "gpu_lease_wait_seconds",
            "time from request to grant",
            buckets=_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.grants = Counter("gpu_lease_grants", "leases granted", registry=self.registry)
        self.preemptions = Counter(
            "gpu_lease_preemptions", "holders asked to yield", registry=self.registry
        )
        self.ended = Counter(
            "gpu_lease_ended", "leases ended, by reason", ["reason"], registry=self.registry
        )
        self.wait_timeouts = Counter(
            "gpu_lease_wait_timeouts", "requests not granted within wait_s", registry=self.registry
        )

    def watch(self, table: LeaseTable) -> None:
        self.registry.register(_LeaseTableCollector(table))

    def render(self) -> bytes:
        return generate_latest(self.registry)
