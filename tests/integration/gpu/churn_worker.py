"""A randomized lease holder for the churn test: acquire, hold briefly while valid, release, repeat.

Prints ``start`` (first moment it saw its lease valid) and ``end`` (last such moment) per token, so
the test can check from the history that no two holders ever used the GPU at the same time.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from gemma_service.gpu.lease import CoordinatorUnavailable, Lease, LeaseNotGranted
from gemma_service.gpu.lease_client import LeaseClient


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def hold(lease: Lease, seconds: float, *, heed_preempt: bool) -> None:
    """Use the GPU for ``seconds`` while the lease stays valid; report the span actually used."""
    first_valid_t: float | None = None
    last_valid_t = 0.0
    reason = "done"
    deadline = time.monotonic() + seconds
    while True:
        now = time.monotonic()
        if (heed_preempt and lease.preempted) or not lease.is_valid():
            reason = "lost" if not lease.is_valid() else "preempted"
            break
        if first_valid_t is None:
            first_valid_t = now
            emit("start", token=lease.token, t=now)
        last_valid_t = now
        if now >= deadline:
            break
        time.sleep(0.005)
    if first_valid_t is not None:
        emit("end", token=lease.token, t=last_valid_t, reason=reason)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--holder", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--ttl", type=float, default=1.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with LeaseClient(args.url, args.holder) as client:
        while True:
            try:
                lease = client.acquire(priority=rng.randint(0, 3), ttl_s=args.ttl, wait_s=3)
            except LeaseNotGranted:
                continue
            except CoordinatorUnavailable:
                time.sleep(0.2)
                continue
            # Some rounds ignore preempts: the coordinator must not hand over before they stop.
            hold(lease, rng.uniform(0.0, 0.08), heed_preempt=rng.random() > 0.3)
            client.release(lease)


if __name__ == "__main__":
    main()
