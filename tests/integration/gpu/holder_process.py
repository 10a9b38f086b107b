"""A lease holder for the failure tests: acquires, "uses" the GPU while valid, then checks fencing.

Prints JSON lines: ``acquired``, then (once the lease is no longer valid) ``invalid`` with the last
moment it saw the lease valid, then ``fencing_check`` with the coordinator's verdict on its token.
"""

from __future__ import annotations

import argparse
import json
import time

import httpx

from gemma_service.gpu.lease_client import LeaseClient


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--holder", default="holder")
    parser.add_argument("--priority", type=int, default=0)
    parser.add_argument("--ttl", type=float, default=2.0)
    args = parser.parse_args()
    with LeaseClient(args.url, args.holder) as client:
        lease = client.acquire(priority=args.priority, ttl_s=args.ttl, wait_s=20)
        emit("acquired", lease_id=lease.lease_id, token=lease.token)
        last_valid_t = time.monotonic()
        while True:
            now = time.monotonic()
            if not lease.is_valid():
                break
            last_valid_t = now  # the GPU may be used up to here
            time.sleep(0.01)
        emit("invalid", token=lease.token, last_valid_t=last_valid_t, reason=lease.lost_reason)
        check = httpx.post(
            f"{args.url}/leases/validate",
            json={"lease_id": lease.lease_id, "token": lease.token},
            timeout=5,
        )
        code = check.json().get("error", {}).get("code") if check.status_code != 200 else None
        emit("fencing_check", status=check.status_code, code=code)


if __name__ == "__main__":
    main()
