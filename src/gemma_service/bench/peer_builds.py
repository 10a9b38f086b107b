"""Builds the peers once and caches them: llama-server from the pinned sdist, and a server venv."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from gemma_service.llama.kernel_check import KernelCheck, KernelState, default_kernel_cache_dir

Progress = Callable[[str], None]
PINNED_FALLBACK = "0.3.36"
_CMAKE_PERCENT = re.compile(r"^\[\s*(\d+)%\]")


class PeerBuildError(Exception):
    """A peer could not be downloaded, built or installed."""


def default_bench_dir() -> Path:
    """Peer builds and the peer venv live in the user's cache, so a new clone reuses them."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "gemma-service" / "bench"


def peer_kernel_state(model: Path) -> KernelState:
    """Our kernel self-check's decision for ``model`` (cached, else probed): the peers follow it."""
    from gemma_service.llama.runtime import build_id, cpu_variants

    check = KernelCheck(default_kernel_cache_dir())
    return check.decide(model, [v.name for v in cpu_variants()], build_id())


def pinned_llama_cpp_python_version() -> str:
    """The llama-cpp-python version this environment runs (the one the project pins)."""
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return PINNED_FALLBACK


def llama_server_cmake_args(source: Path, build_dir: Path) -> list[str]:
    """The configure command: Release, server only, nothing fetched, and the same runtime CPU
    dispatch as our own llama-cpp-python build, so both run the same kernels on any host."""
    return [
        "cmake", "-S", str(source), "-B", str(build_dir),
        "-DCMAKE_BUILD_TYPE=Release",
        "-DGGML_NATIVE=OFF",
        "-DGGML_BACKEND_DL=ON",
        "-DGGML_CPU_ALL_VARIANTS=ON",
        "-DLLAMA_OPENSSL=OFF",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        # Without these the configure step would fetch the web UI from a model hub.
        "-DLLAMA_BUILD_UI=OFF",
        "-DLLAMA_USE_PREBUILT_UI=OFF",
    ]  # fmt: skip


def ensure_llama_server(bench_dir: Path, progress: Progress, jobs: int = 2) -> Path:
    """Return llama-server built from the llama.cpp vendored in the pinned sdist (cached)."""
    build_dir = bench_dir / "llama-server-build"
    binary = build_dir / "bin" / "llama-server"
    if binary.exists():
        return binary
    source = _vendored_llama_cpp(bench_dir, progress)
    progress(f"configuring llama-server in {build_dir}")
    _run(llama_server_cmake_args(source, build_dir), bench_dir / "llama-server-configure.log")
    progress(f"building llama-server with {jobs} jobs (about 12 minutes on 2 cores, once)")
    # ggml depends on every CPU backend module, which llama-server loads from its folder.
    build = ["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", str(jobs)]
    _run(build, bench_dir / "llama-server-build.log", progress)
    if not binary.exists():
        raise PeerBuildError(f"build finished but {binary} is missing")
    return binary


def _vendored_llama_cpp(bench_dir: Path, progress: Progress) -> Path:
    version = pinned_llama_cpp_python_version()
    sdist_dir = bench_dir / "sdist"
    source = sdist_dir / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if source.is_dir():
        return source
    archive = sdist_dir / f"llama_cpp_python-{version}.tar.gz"
    if not archive.exists():
        progress(f"downloading the llama-cpp-python {version} sdist")
        download = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            f"llama-cpp-python=={version}", "-d", str(sdist_dir),
        ]  # fmt: skip
        _run(download, bench_dir / "sdist-download.log")
    progress(f"extracting {archive.name}")
    with tarfile.open(archive) as tar:
        tar.extractall(sdist_dir, filter="data")
    if not source.is_dir():
        raise PeerBuildError(f"{archive} has no vendor/llama.cpp")
    return source


def portable_wheel() -> Path:
    """The cached llama-cpp-python wheel this environment was installed from (same build key)."""
    from gemma_service.llama.runtime import build_id

    key = build_id()
    base = os.environ.get("GEMMA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gemma-service"
    )
    wheels = sorted(Path(base).glob(f"wheels/llama-cpp-python-*-{key}/llama_cpp_python-*.whl"))
    if not wheels:
        raise PeerBuildError(
            f"no cached portable llama-cpp-python wheel for build {key} under {base}/wheels "
            "(run `make llama-cpp` or scripts/build_llama_cpp.py)"
        )
    return wheels[0]


def ensure_llama_cpp_python_server(bench_dir: Path, progress: Progress) -> Path:
    """Return the python of a venv holding ``llama-cpp-python[server]``: the same portable
    wheel as ours (never a pip-cache wheel compiled for whichever CPU built it)."""
    venv = bench_dir / "peer-venv"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    wheel = portable_wheel()
    if marker.exists() and marker.read_text().strip() == wheel.name + wheel.parent.name:
        return python
    if not python.exists():
        progress(f"creating {venv}")
        _run([sys.executable, "-m", "venv", str(venv)], bench_dir / "peer-venv.log")
    progress(f"installing {wheel.name}[server] into {venv}")
    install = [str(python), "-m", "pip", "install", "--force-reinstall", f"{wheel}[server]"]
    _run(install, bench_dir / "peer-venv.log")
    marker.write_text(wheel.name + wheel.parent.name)
    return python


def _run(argv: Sequence[str], log_path: Path, progress: Progress | None = None) -> None:
    """Run a build step, keep its output in ``log_path``, and pass cmake's percentages on."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    last_reported = -10
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        process = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            match = _CMAKE_PERCENT.match(line)
            if progress is not None and match and int(match.group(1)) >= last_reported + 10:
                last_reported = int(match.group(1))
                progress(f"  build {last_reported}%")
        code = process.wait()
    if code != 0:
        raise PeerBuildError(f"{argv[0]} failed with exit code {code}; see {log_path}")
