"""Replica choice and health bookkeeping of the remote engine's upstream pool."""

from __future__ import annotations

from gemma_service.engine.remote.upstream_pool import UpstreamPool, rendezvous_order

URLS = ["http://a:1", "http://b:1", "http://c:1"]


def test_a_key_keeps_its_upstream_and_keys_spread() -> None:
    pool = UpstreamPool(URLS)
    chosen = {f"conversation-{i}": pool.choose(f"conversation-{i}") for i in range(60)}
    for key, upstream in chosen.items():
        assert pool.choose(key) is upstream  # the same conversation, the same upstream
    assert {u.url for u in chosen.values() if u is not None} == set(URLS)


def test_without_a_key_the_least_busy_upstream_is_chosen() -> None:
    pool = UpstreamPool(URLS)
    a, b, c = pool.upstreams
    a.in_flight, b.in_flight, c.in_flight = 3, 1, 2
    assert pool.choose(None) is b


def test_a_swamped_affine_upstream_spills_to_the_least_busy() -> None:
    pool = UpstreamPool(URLS, spill_margin=2)
    preferred = pool.choose("k")
    assert preferred is not None
    preferred.in_flight = 2
    assert pool.choose("k") is preferred  # within the margin: stay for the cache
    preferred.in_flight = 3
    assert pool.choose("k") is not preferred


def test_ejected_upstream_moves_only_its_keys_and_gets_them_back() -> None:
    pool = UpstreamPool(URLS, eject_after=2)
    keys = [f"k{i}" for i in range(40)]
    before = {k: pool.choose(k) for k in keys}
    victim = pool.upstreams[0]
    pool.failure(victim, "connection refused")
    assert victim.healthy  # one failure is not enough
    pool.failure(victim, "connection refused")
    assert not victim.healthy and victim.ejections_total == 1
    during = {k: pool.choose(k) for k in keys}
    for k in keys:
        assert during[k] is not victim
        if before[k] is not victim:
            assert during[k] is before[k]  # keys of the healthy upstreams did not move
    pool.success(victim)  # a probe answered: readmitted
    assert {k: pool.choose(k) for k in keys} == before


def test_no_healthy_upstream_left_is_none_and_exclusions_are_honoured() -> None:
    pool = UpstreamPool(URLS[:2], eject_after=1)
    a, b = pool.upstreams
    assert (
        pool.choose("k", exclude=[rendezvous_order("k", [a, b])[0]])
        is rendezvous_order("k", [a, b])[1]
    )
    pool.failure(a, "down")
    pool.failure(b, "down")
    assert pool.choose("k") is None


def test_finished_requests_feed_latency_buckets_and_counters() -> None:
    pool = UpstreamPool(URLS[:1])
    upstream = pool.upstreams[0]
    pool.started(upstream)
    pool.finished(upstream, seconds=0.3, failed=False, cached_tokens=12)
    pool.started(upstream)
    pool.finished(upstream, seconds=7.0, failed=True)
    stats = pool.stats()[0]
    assert (stats.requests_total, stats.completed_total, stats.errors_total) == (2, 2, 1)
    assert stats.in_flight == 0 and stats.cached_tokens_total == 12
    buckets = dict(zip(stats.latency_bounds, stats.latency_buckets, strict=True))
    assert buckets[0.25] == 0 and buckets[0.5] == 1 and buckets[5.0] == 1 and buckets[10.0] == 2
