"""The servers a benchmark run compares, started as subprocesses on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

OURS = "ours"
LLAMA_SERVER = "llama-server"
LLAMA_CPP_PYTHON = "llama-cpp-python"
KNOWN_SERVERS = (OURS, LLAMA_SERVER, LLAMA_CPP_PYTHON)


class ServerStartError(Exception):
    """A server process exited or never became ready."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """What every compared server is given, so they run on equal terms."""

    model: Path
    threads: int
    parallel: int
    ctx_per_sequence: int = 4096
    # False where our kernel self-check found that repacked weights crash this host: the peers
    # then run without repacking too (kernel_check.py).
    repack: bool = True


# llama-cpp-python's own server, started so that it finds the CPU backend modules of a
# runtime-dispatch build (ggml looks beside the executable only) and honours the repack decision.
LLAMA_CPP_PYTHON_BOOTSTRAP = """
import ctypes, pathlib, runpy, sys
import llama_cpp, llama_cpp.llama_cpp as low
lib = pathlib.Path(llama_cpp.__file__).parent / "lib"
if any(lib.glob("libggml-cpu-*.so")):
    ggml = ctypes.CDLL(str(lib / "libggml.so.0"))  # the copy libllama links, not libggml.so
    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load_all_from_path(str(lib).encode())
if sys.argv[1] == "no-repack":
    default_params = low.llama_model_default_params
    def params():
        p = default_params()
        p.use_extra_bufts = False
        return p
    low.llama_model_default_params = params
sys.argv = ["llama_cpp.server", *sys.argv[2:]]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to launch one server and how to tell when it is ready."""

    name: str
    argv: list[str]
    port: int
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def command_line(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return (env + " " if env else "") + shlex.join(self.argv)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ours_spec(gemma_service_exe: Path, settings: ServerSettings, port: int) -> ServerSpec:
    """gemma-service itself, with the same total KV context as llama-server's slots share.

    Like llama-server's ``-c``, ours takes the total: with the default per-sequence KV layout
    each slot gets the total / ``--parallel`` (the engine caps it at the model's trained
    context).
    """
    argv = [
        str(gemma_service_exe), "serve",
        "--model", str(settings.model),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--threads", str(settings.threads),
        "--parallel", str(settings.parallel),
        "--ctx-size", str(settings.parallel * settings.ctx_per_sequence),
    ]  # fmt: skip
    return ServerSpec(OURS, argv, port, "/readyz")


def llama_server_spec(binary: Path, settings: ServerSettings, port: int) -> ServerSpec:
    """llama.cpp's llama-server; its -c is shared by the slots, so it gets P x per-slot."""
    argv = [
        str(binary),
        "-m", str(settings.model),
        "-t", str(settings.threads),
        "-tb", str(settings.threads),
        "-np", str(settings.parallel),
        "-c", str(settings.parallel * settings.ctx_per_sequence),
        "--cont-batching",
        # The packaged GGUF carries no chat template. Name llama.cpp's built-in Gemma one; with
        # jinja on (the default) the name itself would be read as the template's source.
        "--no-jinja",
        "--chat-template", "gemma",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--no-webui",
    ]  # fmt: skip
    if not settings.repack:
        argv.append("--no-repack")
    return ServerSpec(LLAMA_SERVER, argv, port, "/health")


def llama_cpp_python_spec(python: Path, settings: ServerSettings, port: int) -> ServerSpec:
    """llama-cpp-python's own server: one request at a time, its defaults otherwise."""
    argv = [
        str(python), "-c", LLAMA_CPP_PYTHON_BOOTSTRAP, "repack" if settings.repack else "no-repack",
        "--model", str(settings.model),
        "--n_threads", str(settings.threads),
        "--n_threads_batch", str(settings.threads),
        "--n_ctx", str(settings.ctx_per_sequence),
        "--chat_format", "gemma",
        # By default a new request cuts off the one streaming; queue them instead.
        "--interrupt_requests", "false",
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    return ServerSpec(LLAMA_CPP_PYTHON, argv, port, "/v1/models")


class ServerProcess:
    """A running server: started on enter, ready-checked, and stopped (TERM, then KILL) on exit."""

    def __init__(self, spec: ServerSpec, log_path: Path, ready_timeout_s: float = 300.0) -> None:
        self.spec = spec
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Launch the process with its output going to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.spec.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.spec.env},
                start_new_session=True,  # so stop() can signal the server and its children
            )

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the server process has used so far; None where the
        process is gone or ``/proc`` is not there to read it (not Linux)."""
        if self._process is None:
            return None
        try:
            fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # After the command name: state is field 3, utime and stime fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_ready(self) -> None:
        """Poll the readiness route until it answers 200; fail if the process dies first."""
        deadline = time.monotonic() + self.ready_timeout_s
        url = self.spec.base_url + self.spec.ready_path
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise ServerStartError(f"{self.spec.name} exited; see {self.log_path}")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.5)
        raise ServerStartError(f"{self.spec.name} not ready in {self.ready_timeout_s:.0f}s")

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after ``grace_s``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=grace_s)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, sig)


def default_gemma_service_exe() -> Path:
    """The gemma-service console script installed beside the running interpreter."""
    return Path(sys.executable).parent / "gemma-service"
