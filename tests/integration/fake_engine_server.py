"""The real app behind the real uvicorn runner (drain included), over the fake backend.

    python tests/integration/fake_engine_server.py --port N [--step-delay S] [--fake-gpu]

Other settings come from GEMMA_* environment variables, as with `gemma-service serve`. Used where
a test needs real HTTP and real signals but not the real model (wedging, lease release, fast
fuzzing); tests start it with ``start_fake_server``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from gemma_service.api.app import create_app
from gemma_service.config import ServiceSettings
from gemma_service.engine.async_engine import Engine
from gemma_service.engine.factory import engine_config
from gemma_service.engine.fake_backend import FakeBackend
from gemma_service.logs import configure_logging
from gemma_service.server import http_server

if TYPE_CHECKING:
    from .conftest import RunningServer


def start_fake_server(tmp: Path, *args: str, env: dict[str, str]) -> RunningServer:
    """Run this script on a free port (environment: ``env`` only, plus the PYTHONPATH that
    found this checkout) and wait until it is ready."""
    from .conftest import RunningServer, free_port, stop_server

    port = free_port()
    log_path = tmp / f"fake-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                "GEMMA_DATA_DIR": str(tmp / "data"),
                **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
                **env,
                "PATH": "/usr/bin:/bin",
            },
        )
    server = RunningServer(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + 120  # a loaded 2-core machine needs a while to import torch
    while time.monotonic() < deadline:
        try:
            if httpx.get(server.url + "/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.05)
    stop_server(server)
    raise AssertionError(f"fake server not ready:\n{server.log()}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--fake-gpu", action="store_true", help="report a usable GPU")
    args = parser.parse_args()
    settings = ServiceSettings(host="127.0.0.1", port=args.port)
    configure_logging(settings.log_level, json_lines=True)
    backend = FakeBackend(step_delay_s=args.step_delay)
    backend.gpu_available = args.fake_gpu
    engine = Engine(lambda: backend, engine_config(settings))
    http_server(create_app(settings, engine), settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
