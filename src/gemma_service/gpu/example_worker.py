"""Example transcription worker: holds the GPU at low priority, pauses on preempt, resumes after.

Run ``python -m gemma_service.gpu.example_worker --coordinator http://127.0.0.1:8002``. Every state
change is printed as one JSON line (``event``, ``holder``, ``token``, ``t`` = monotonic seconds).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence

from gemma_service.gpu.lease import CoordinatorUnavailable, Lease, LeaseNotGranted
from gemma_service.gpu.lease_client import LeaseClient

_print_lock = threading.Lock()


def emit(event: str, **fields: object) -> None:
    """One JSON line on stdout (the lease client's callbacks print from another thread)."""
    line = json.dumps({"event": event, "t": round(time.monotonic(), 4), **fields})
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def transcribe_chunk(chunk_s: float) -> None:
    """Stand-in for one chunk of GPU work (a real worker runs its model here)."""
    time.sleep(chunk_s)


def transcribe_while_allowed(lease: Lease, stop: threading.Event, chunk_s: float) -> str:
    """Work chunk by chunk while the lease is ours; returns why we stopped."""
    while not stop.is_set():
        if lease.preempted:
            return "preempted"
        if not lease.is_valid():
            return "lost"
        transcribe_chunk(chunk_s)
    return "stopping"


def run_worker(
    coordinator_url: str,
    *,
    holder: str = "transcriber",
    priority: int = 1,
    ttl_s: float = 5.0,
    wait_s: float = 5.0,
    chunk_s: float = 0.05,
    stop: threading.Event | None = None,
) -> None:
    """Loop: wait for the GPU, transcribe until preempted or stopped, release, repeat."""
    stop = stop or threading.Event()

    def on_preempt(lease: Lease) -> None:
        emit("preempt_received", holder=holder, token=lease.token)

    with LeaseClient(coordinator_url, holder, on_preempt=on_preempt) as gpu:
        while not stop.is_set():
            emit("waiting", holder=holder, priority=priority)
            try:
                with gpu.lease(priority=priority, ttl_s=ttl_s, wait_s=wait_s) as lease:
                    emit("acquired", holder=holder, token=lease.token)
                    reason = transcribe_while_allowed(lease, stop, chunk_s)
                    emit("pausing", holder=holder, token=lease.token, reason=reason)
                emit("released", holder=holder, token=lease.token)
            except LeaseNotGranted:
                continue
            except CoordinatorUnavailable as exc:
                emit("coordinator_unavailable", holder=holder, error=str(exc))
                stop.wait(1.0)
    emit("stopped", holder=holder)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--coordinator", default="http://127.0.0.1:8002", help="coordinator URL")
    parser.add_argument("--holder", default="transcriber", help="holder name")
    parser.add_argument("--priority", type=int, default=1, help="lease priority (higher wins)")
    parser.add_argument("--ttl", type=float, default=5.0, help="lease TTL in seconds")
    parser.add_argument("--wait", type=float, default=5.0, help="seconds per acquire attempt")
    parser.add_argument("--chunk", type=float, default=0.05, help="seconds per work chunk")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_worker(
        args.coordinator,
        holder=args.holder,
        priority=args.priority,
        ttl_s=args.ttl,
        wait_s=args.wait,
        chunk_s=args.chunk,
        stop=stop,
    )


if __name__ == "__main__":
    main()
