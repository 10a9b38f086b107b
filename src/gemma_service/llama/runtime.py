"""llama.cpp's process-wide start: which CPU kernels load, and whether weights may be repacked.

Our llama-cpp-python wheel is built with runtime CPU dispatch (``scripts/build_llama_cpp.py``):
one CPU backend module per CPU generation (``libggml-cpu-haswell.so``, ``...-skylakex.so``, ...)
beside ``libllama.so``. ggml would only look for them beside the Python executable, so they are
loaded here, before anything else touches llama.cpp: the best one the host supports, or the one
the kernel self-check (``kernel_check.py``) settled on. A wheel built without dispatch has its
CPU backend linked in and needs nothing loaded.

With ``llama_cpp`` this module is one of the two that import llama.cpp (``llama_backend.py`` is
the other); the GGUF embedder starts llama.cpp through ``ensure_started`` too.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp as lc

log = logging.getLogger(__name__)

LIB_DIR = Path(lc.__file__).resolve().parent / "lib"
_CPU_PREFIX = "libggml-cpu-"
_lock = threading.Lock()
_started: RuntimeState | None = None


@dataclass(frozen=True, slots=True)
class CpuVariant:
    """One CPU backend module of a dispatched build, and how well it fits this host."""

    name: str
    path: Path
    score: int


@dataclass(frozen=True, slots=True)
class RuntimeState:
    """What this process loaded: the CPU variant (None: built in) and the repack decision."""

    variant: str | None
    repack: bool
    dispatch: bool


def build_id() -> str:
    """Identifies the llama.cpp build: our build key, else the sizes of its libraries."""
    key_file = LIB_DIR / "gemma-build-key"
    if key_file.exists():
        return key_file.read_text().strip()
    sizes = sorted(f"{p.name}:{p.stat().st_size}" for p in LIB_DIR.glob("*.so"))
    return "unkeyed:" + ",".join(sizes)


def cpu_variants() -> list[CpuVariant]:
    """The CPU modules this host can run, best first (empty for a build without dispatch)."""
    variants = []
    for path in sorted(LIB_DIR.glob(f"{_CPU_PREFIX}*.so")):
        # ggml_backend_score only reads cpuid: safe to call on any host.
        lib = ctypes.CDLL(str(path))
        score_fn = getattr(lib, "ggml_backend_score", None)
        if score_fn is None:
            continue
        score_fn.restype = ctypes.c_int
        score = int(score_fn())
        if score > 0:
            variants.append(CpuVariant(path.name[len(_CPU_PREFIX) : -3], path, score))
    return sorted(variants, key=lambda v: -v.score)


def _ggml() -> Any:
    # The file libllama links (its soname), not libggml.so: the wheel holds copies, not links,
    # and a second copy would be a second backend registry that llama.cpp never sees.
    soname = LIB_DIR / "libggml.so.0"
    lib = ctypes.CDLL(str(soname if soname.exists() else LIB_DIR / "libggml.so"))
    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    return lib


def _load_backends(variant: CpuVariant | None) -> None:
    if variant is None:
        return
    ggml = _ggml()
    if not ggml.ggml_backend_load(str(variant.path).encode()):
        raise RuntimeError(f"llama.cpp could not load its CPU backend {variant.path}")
    # GPU backends of a dispatched build are modules too (libggml-cuda.so, ...).
    for path in sorted(LIB_DIR.glob("libggml-*.so")):
        if path.name.startswith((_CPU_PREFIX, "libggml-base")):
            continue
        if not ggml.ggml_backend_load(str(path).encode()):
            log.warning("llama.cpp backend %s did not load", path.name)


def ensure_started(variant: str | None = None, *, repack: bool = True) -> RuntimeState:
    """Load the CPU kernels (``variant``, or the best for this host) and start llama.cpp, once.

    The first call decides for the whole process; later calls return that decision.
    """
    global _started
    with _lock:
        if _started is not None:
            return _started
        variants = cpu_variants()
        chosen: CpuVariant | None = None
        if variants:
            chosen = next((v for v in variants if v.name == variant), None) if variant else None
            if variant and chosen is None:
                names = ", ".join(v.name for v in variants)
                raise RuntimeError(f"CPU variant {variant!r} cannot run here (this host: {names})")
            chosen = chosen or variants[0]
        _load_backends(chosen)
        lc.llama_backend_init()
        _started = RuntimeState(chosen.name if chosen else None, repack, bool(variants))
        return _started


def started() -> RuntimeState | None:
    """The process's decision, or None before llama.cpp is started."""
    return _started


def model_params(gpu_layers: int, *, vocab_only: bool = False) -> Any:
    """llama_model_params honouring the repack decision of this process."""
    params = lc.llama_model_default_params()
    params.n_gpu_layers = gpu_layers
    params.vocab_only = vocab_only
    if _started is not None and not _started.repack:
        params.use_extra_bufts = False
    return params


@contextmanager
def repack_decision_for_high_level_api() -> Iterator[None]:
    """While open, ``llama_cpp.Llama(...)`` builds its model params with ``model_params``.

    ``Llama`` has no argument for ``use_extra_bufts``; it reads the module function
    ``llama_model_default_params`` when it loads, so that is what is swapped here.
    """
    import llama_cpp.llama_cpp as low_level

    original = low_level.llama_model_default_params
    low_level.llama_model_default_params = lambda: model_params(0)
    try:
        yield
    finally:
        low_level.llama_model_default_params = original
