"""Build-once cache of the tiny models, keyed by a hash of the generator's own source."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.tiny_models.catalogue import SPECS
from tests.tiny_models.sdist import LLAMA_CPP_PYTHON_VERSION, cache_root, llama_cpp_sources

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent
# What building needs beyond the service's own dependencies (the "test-models" extra).
REQUIRED_MODULES = ("torch", "transformers", "safetensors", "yaml", "requests")


class TinyModelUnavailable(RuntimeError):
    """The generator cannot run here (a missing dependency) or its build failed."""


@dataclass(frozen=True)
class TinyModel:
    """Paths of one generated model: the text GGUF and, if it has one, its projector."""

    name: str
    model_path: Path
    mmproj_path: Path | None


def missing_dependencies() -> str | None:
    """Why the generator cannot run here, or None; tests skip with this reason."""
    missing = [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return (
            f"tiny test models need {', '.join(missing)}: "
            "pip install -e '.[test-models]' (make test installs it)"
        )
    return None


def source_key() -> str:
    """Hash of every source file of this package: a changed generator builds new models."""
    digest = hashlib.sha256(LLAMA_CPP_PYTHON_VERSION.encode())
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def models_dir() -> Path:
    """Where this generator version keeps its models."""
    return cache_root() / "test-models" / source_key()


def tiny_model(name: str) -> TinyModel:
    """The paths of tiny model ``name``, building it first if this generator has not yet."""
    spec = SPECS[name]
    out = models_dir() / name
    result = TinyModel(name, out / "model.gguf", out / "mmproj.gguf" if spec.multimodal else None)
    if (out / ".complete").exists():
        return result
    reason = missing_dependencies()
    if reason is not None:
        raise TinyModelUnavailable(reason)
    with _build_lock(out.parent):
        if not (out / ".complete").exists():  # another process may have built it meanwhile
            _build(name, out)
    return result


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """One builder at a time per cache (parallel test runs share it)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(name: str, out: Path) -> None:
    sources = llama_cpp_sources(
        cache_root() / "test-models" / f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}"
    )
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    print(f"[tiny models] building {name} ({SPECS[name].description}) into {out}", flush=True)
    started = time.monotonic()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.tiny_models.builder", name, str(partial), str(sources)],
        cwd=REPO_ROOT,
        env=env,
        stdout=None,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise TinyModelUnavailable(f"building tiny model {name} failed:\n{proc.stderr[-4000:]}")
    (partial / ".complete").touch()
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    print(f"[tiny models] {name} ready in {time.monotonic() - started:.0f} s", flush=True)
