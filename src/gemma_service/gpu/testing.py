"""Child processes for tests and demos: a coordinator on a free loopback port, JSON-line workers.

Both always end: use them as context managers (or call ``kill``) and every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def poll_until(
    check: Callable[[], bool | Awaitable[bool]], timeout_s: float, interval_s: float = 0.02
) -> None:
    """Re-check ``check`` (sync or async) until true; TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


class CoordinatorProcess:
    """``python -m gemma_service.gpu.coordinator_app`` bound to 127.0.0.1 on its own port."""

    def __init__(
        self, state_dir: Path, *, port: int | None = None, extra_args: Sequence[str] = ()
    ) -> None:
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.log_path = self.state_dir.parent / f"coordinator-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CoordinatorProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()

    def start(self, timeout_s: float = 30.0) -> None:
        """Start it and wait until /healthz answers."""
        args = [sys.executable, "-m", "gemma_service.gpu.coordinator_app"]
        args += ["--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--state-dir", str(self.state_dir), *self.extra_args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_healthy(timeout_s)

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"coordinator exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"coordinator not healthy within {timeout_s} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL and reap (a crash, as far as the coordinator can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class JsonLinesProcess:
    """A child whose stdout is JSON lines; they are collected in ``events`` as they arrive."""

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str] | None = None) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.events: list[dict[str, Any]] = []
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=50)
        self._changed = threading.Condition()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read_events, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self.proc.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def __enter__(self) -> JsonLinesProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_events(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self.stderr_tail.append(line.rstrip())

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float, *, after: int = 0
    ) -> dict[str, Any]:
        """The first event from index ``after`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for event in self.events[after:]:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self.describe(f"no matching event within {timeout_s} s"))
                self._changed.wait(remaining)

    def wait_for_event(self, name: str, timeout_s: float, *, after: int = 0) -> dict[str, Any]:
        return self.wait_for(lambda e: e.get("event") == name, timeout_s, after=after)

    async def wait_for_async(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float, *, after: int = 0
    ) -> dict[str, Any]:
        """``wait_for`` on a thread, so lease renewals in the caller's event loop keep running."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout_s, after=after)

    async def wait_for_event_async(
        self, name: str, timeout_s: float, *, after: int = 0
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self.wait_for_event, name, timeout_s, after=after)

    def describe(self, problem: str) -> str:
        return (
            f"{problem}\nargs: {self.args}\nevents: {self.events[-20:]}\n"
            f"stderr: {list(self.stderr_tail)[-20:]}"
        )

    def send_signal(self, sig: signal.Signals) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL (stopped processes die too) and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for reader in self._readers:
            reader.join(timeout=5)

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.wait(timeout=10)
