"""The upstream servers a remote engine spreads requests over, and which one takes a request.

Choice: a request with an affinity key goes to the key's first healthy upstream in rendezvous
(highest-random-weight) order, so a conversation keeps landing where its prefix is cached, and
only moves when that upstream leaves (its keys spread over the rest) or is much busier than the
least busy one (``spill_margin`` more in flight). Without a key: the fewest in flight.

Health: an upstream is ejected after ``eject_after`` consecutive failures (failed requests or
failed probes) and readmitted by the first probe that succeeds. The pool holds no I/O; the
engine reports outcomes to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from gemma_service.engine.protocol import UpstreamStats

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(slots=True)
class Upstream:
    """One OpenAI-compatible server and what the front knows about it."""

    url: str
    healthy: bool = True
    in_flight: int = 0
    consecutive_failures: int = 0
    requests_total: int = 0
    errors_total: int = 0
    ejections_total: int = 0
    cached_tokens_total: int = 0
    completed_total: int = 0
    last_error: str | None = None
    latency_counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_sum_s: float = 0.0

    def stats(self) -> UpstreamStats:
        return UpstreamStats(
            url=self.url,
            healthy=self.healthy,
            in_flight=self.in_flight,
            requests_total=self.requests_total,
            errors_total=self.errors_total,
            ejections_total=self.ejections_total,
            cached_tokens_total=self.cached_tokens_total,
            completed_total=self.completed_total,
            latency_bounds=LATENCY_BUCKETS,
            latency_buckets=tuple(self.latency_counts),
            latency_sum_s=self.latency_sum_s,
        )


def rendezvous_order(key: str, upstreams: Iterable[Upstream]) -> list[Upstream]:
    """``upstreams`` in the key's preference order (stable while the set does not change)."""

    def weight(upstream: Upstream) -> bytes:
        return hashlib.blake2b(f"{key}\0{upstream.url}".encode(), digest_size=8).digest()

    return sorted(upstreams, key=weight, reverse=True)


class UpstreamPool:
    """The upstreams, their health and load, and the choice of one for a request."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        eject_after: int = 2,
        spill_margin: int = 4,
    ) -> None:
        self.upstreams = [Upstream(url.rstrip("/")) for url in urls]
        if not self.upstreams:
            raise ValueError("a remote engine needs at least one upstream URL")
        self._eject_after = max(1, eject_after)
        self._spill_margin = spill_margin

    @property
    def healthy(self) -> list[Upstream]:
        return [u for u in self.upstreams if u.healthy]

    def choose(self, key: str | None, exclude: Iterable[Upstream] = ()) -> Upstream | None:
        """The upstream for a request (None: none healthy that is not excluded)."""
        skip = {u.url for u in exclude}
        candidates = [u for u in self.healthy if u.url not in skip]
        if not candidates:
            return None
        least = min(candidates, key=lambda u: u.in_flight)
        if key is None:
            return least
        preferred = rendezvous_order(key, candidates)[0]
        if preferred.in_flight - least.in_flight > self._spill_margin:
            return least  # the affine upstream is swamped: a cache miss beats a long queue
        return preferred

    def started(self, upstream: Upstream) -> None:
        upstream.in_flight += 1
        upstream.requests_total += 1

    def finished(
        self, upstream: Upstream, *, seconds: float, failed: bool, cached_tokens: int = 0
    ) -> None:
        """A request on ``upstream`` ended; ``failed`` counts toward its ejection."""
        upstream.in_flight = max(0, upstream.in_flight - 1)
        upstream.cached_tokens_total += cached_tokens
        upstream.completed_total += 1
        upstream.latency_sum_s += seconds
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                upstream.latency_counts[i] += 1
        if failed:
            upstream.errors_total += 1

    def failure(self, upstream: Upstream, reason: str) -> None:
        """The upstream could not be reached or broke a stream: maybe eject it."""
        upstream.last_error = reason
        upstream.consecutive_failures += 1
        if upstream.healthy and upstream.consecutive_failures >= self._eject_after:
            upstream.healthy = False
            upstream.ejections_total += 1

    def success(self, upstream: Upstream) -> None:
        """The upstream answered (a request or a probe): it is (back) in the pool."""
        upstream.consecutive_failures = 0
        upstream.last_error = None
        upstream.healthy = True

    def stats(self) -> list[UpstreamStats]:
        return [u.stats() for u in self.upstreams]
