"""What the generator uses of the pinned llama.cpp sources, from the llama-cpp-python sdist.

The sdist (kept by ``scripts/build_llama_cpp.py`` in the gemma-service cache) vendors llama.cpp's
own HF-to-GGUF converter (``conversion/`` with ``gguf-py``), the real Gemma 4 vocabulary
(``models/ggml-vocab-gemma-4.gguf``) and the real Gemma 4 chat template. Only those members are
extracted, once, next to the generated models.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
_PREFIX = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
# What the generator reads from the vendored llama.cpp (folders end with "/").
_MEMBERS = (
    "conversion/",
    "gguf-py/gguf/",
    "models/ggml-vocab-gemma-4.gguf",
    "models/templates/google-gemma-4-31B-it.jinja",
)
GEMMA4_VOCAB = "models/ggml-vocab-gemma-4.gguf"
GEMMA4_TEMPLATE = "models/templates/google-gemma-4-31B-it.jinja"


def cache_root() -> Path:
    """The gemma-service cache (same rule as scripts/build_llama_cpp.py)."""
    base = os.environ.get("GEMMA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gemma-service"
    )
    return Path(base)


def sdist_archive() -> Path:
    """The llama-cpp-python sdist, downloaded from PyPI with pip if the build has not kept it."""
    sdist_dir = cache_root() / "sdist"
    archive = sdist_dir / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    if not archive.exists():
        print(f"[tiny models] downloading the llama-cpp-python sdist into {sdist_dir}", flush=True)
        sdist_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(sdist_dir)],
            check=True,
        )  # fmt: skip
    return archive


def llama_cpp_sources(target: Path) -> Path:
    """Extract the converter, gguf-py, the Gemma 4 vocabulary and template into ``target`` once."""
    done = target / ".extracted"
    if done.exists():
        return target
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    with tarfile.open(sdist_archive()) as tar:
        members = []
        for member in tar.getmembers():
            rel = member.name.removeprefix(_PREFIX)
            if rel == member.name or not member.isfile():
                continue
            if any(rel == m or (m.endswith("/") and rel.startswith(m)) for m in _MEMBERS):
                member.name = rel
                members.append(member)
        tar.extractall(tmp, members=members, filter="data")
    (tmp / ".extracted").touch()
    try:
        tmp.rename(target)
    except OSError:  # another process extracted it first
        if not done.exists():
            raise
    return target
