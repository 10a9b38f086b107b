#!/usr/bin/env python3
"""Build (once) and install a portable llama-cpp-python wheel into a virtual environment.

llama-cpp-python ships no binary wheel, and the wheel pip builds by default is compiled with
GGML_NATIVE: it runs only on CPUs like the one that built it, and pip caches it under a key that
knows nothing of the CPU. This script builds the pinned version from its sdist with runtime CPU
dispatch instead (every CPU variant compiled, the best one for the host chosen at load time, as
llama.cpp's own release builds do) and keeps the wheel in our own cache, keyed by the build
recipe. The same cached wheel is correct on any x86-64 host. Standard library only: it runs before
the project is installed.

    python scripts/build_llama_cpp.py --python .venv/bin/python [--cuda]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VERSION = "0.3.36"
HERE = Path(__file__).resolve().parent
VARIANTS_CMAKE = HERE / "llama-cpp-install-cpu-variants.cmake"

# Runtime CPU dispatch: one CPU backend module per CPU generation, loaded by the package at start.
CPU_DISPATCH_ARGS = [
    "-DGGML_NATIVE=OFF",
    "-DGGML_BACKEND_DL=ON",
    "-DGGML_CPU_ALL_VARIANTS=ON",
    f"-DCMAKE_PROJECT_llama_cpp_INCLUDE={VARIANTS_CMAKE}",
]
# CUDA: real code for each architecture (no PTX JIT, which older drivers cannot do for newer PTX):
# 80 A100, 86 A10/RTX 30xx, 89 L4 (Cloud Run), 90 H100/H200.
DEFAULT_CUDA_ARCHITECTURES = "80-real;86-real;89-real;90-real"


def cmake_args(cuda_architectures: str | None) -> list[str]:
    """The CMake arguments of the build recipe (``None``: CPU only)."""
    if cuda_architectures is None:
        return list(CPU_DISPATCH_ARGS)
    # The GPU backend is a module too; the CPU side keeps its dispatch.
    return [*CPU_DISPATCH_ARGS, "-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={cuda_architectures}"]


def build_key(cuda_architectures: str | None) -> str:
    """What the wheel depends on: the version, the CMake arguments and the install rules."""
    # The include file by content, not by path: a clone elsewhere builds the same wheel.
    args = [a for a in cmake_args(cuda_architectures) if str(VARIANTS_CMAKE) not in a]
    recipe = "\n".join([VERSION, *args, VARIANTS_CMAKE.read_text()])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def cache_root() -> Path:
    base = os.environ.get("GEMMA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gemma-service"
    )
    return Path(base)


def log(message: str) -> None:
    print(f"[llama.cpp build] {message}", flush=True)


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    log("$ " + " ".join(argv))
    subprocess.run(argv, check=True, env=env)


def ensure_sdist(sdist_dir: Path, python: str) -> Path:
    archive = sdist_dir / f"llama_cpp_python-{VERSION}.tar.gz"
    if not archive.exists():
        log(f"downloading the llama-cpp-python {VERSION} sdist (76 MB)")
        sdist_dir.mkdir(parents=True, exist_ok=True)
        run([python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={VERSION}", "-d", str(sdist_dir)])  # fmt: skip
    return archive


def build_wheel(python: str, cuda_architectures: str | None, wheel_dir: Path) -> Path:
    """Compile the wheel into ``wheel_dir`` (about 13 minutes on 2 cores)."""
    archive = ensure_sdist(cache_root() / "sdist", python)
    env = dict(os.environ)
    env["CMAKE_ARGS"] = " ".join(cmake_args(cuda_architectures))
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    log(f"compiling llama.cpp with runtime CPU dispatch{' and CUDA' if cuda_architectures else ''} "
        f"({env['CMAKE_BUILD_PARALLEL_LEVEL']} jobs; about 13 min on 2 cores, once)")  # fmt: skip
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llama-wheel-") as tmp:
        # --no-cache-dir: never take (nor leave) a wheel in pip's cache, whose key ignores the
        # CPU and the CMake arguments; our own cache below is keyed by the recipe.
        run([python, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", tmp,
             str(archive)], env=env)  # fmt: skip
        built = sorted(Path(tmp).glob("llama_cpp_python-*.whl"))
        if not built:
            sys.exit("[llama.cpp build] pip wheel produced no wheel")
        wheel_dir.mkdir(parents=True, exist_ok=True)
        target = wheel_dir / built[0].name
        shutil.move(str(built[0]), target)
    log(f"built {target.name} in {time.monotonic() - started:.0f} s")
    return target


def installed_key(python: str) -> str | None:
    code = (
        "import importlib.util, pathlib; s = importlib.util.find_spec('llama_cpp');"
        "p = pathlib.Path(s.origin).parent / 'lib' / 'gemma-build-key' if s else None;"
        "print(p.read_text().strip() if p and p.exists() else '')"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or None


def install(python: str, wheel: Path, key: str) -> None:
    run([python, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--no-cache-dir",
         str(wheel)])  # fmt: skip
    code = (
        "import importlib.util, pathlib, sys;"
        "p = pathlib.Path(importlib.util.find_spec('llama_cpp').origin).parent / 'lib';"
        "(p / 'gemma-build-key').write_text(sys.argv[1] + '\\n');"
        "variants = sorted(f.name for f in p.glob('libggml-cpu-*.so'));"
        "print(f'{len(variants)} CPU backend variants in {p}')"
    )
    subprocess.run([python, "-c", code, key], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the target venv")
    parser.add_argument("--cuda", action="store_true", help="build the CUDA backend as well")
    parser.add_argument(
        "--cuda-architectures",
        default=DEFAULT_CUDA_ARCHITECTURES,
        help=f"CMAKE_CUDA_ARCHITECTURES with --cuda (default: {DEFAULT_CUDA_ARCHITECTURES})",
    )
    parser.add_argument("--wheel-only", action="store_true", help="build the wheel, install nothing")
    args = parser.parse_args()

    cuda_architectures = args.cuda_architectures if args.cuda else None
    key = build_key(cuda_architectures)
    flavour = "cuda" if args.cuda else "cpu"
    wheel_dir = cache_root() / "wheels" / f"llama-cpp-python-{VERSION}-{flavour}-{key}"
    if not args.wheel_only and installed_key(args.python) == key:
        log(f"portable llama-cpp-python {VERSION} ({flavour}, {key}) already installed")
        return
    wheels = sorted(wheel_dir.glob("llama_cpp_python-*.whl"))
    wheel = wheels[0] if wheels else build_wheel(args.python, cuda_architectures, wheel_dir)
    if wheels:
        log(f"using the cached wheel {wheel}")
    if not args.wheel_only:
        install(args.python, wheel, key)


if __name__ == "__main__":
    main()
