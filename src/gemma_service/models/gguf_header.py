"""Reads a GGUF file's header (its metadata keys), without loading the model.

Used by ``gemma-service models list|show`` and the catalogue: sizes, families and modalities
come from the file itself. Arrays (the vocabulary) are skipped, not kept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from gemma_service.errors import ModelFileError

# GGUF value types: id -> struct format of one scalar (strings and arrays are read apart).
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9

# llama.cpp's LLAMA_FTYPE_* names for general.file_type (the common ones).
_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    24: "IQ4_NL",
    30: "IQ4_XS",
    32: "BF16",
}


@dataclass(slots=True)
class GgufHeader:
    """A GGUF file's metadata: scalar keys as values, arrays as their length."""

    path: Path
    version: int
    tensor_count: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str | None:
        value = self.metadata.get("general.name")
        return str(value) if value is not None else None

    @property
    def size_label(self) -> str | None:
        value = self.metadata.get("general.size_label")
        return str(value) if value is not None else None

    @property
    def quantization(self) -> str | None:
        value = self.metadata.get("general.file_type")
        return _FILE_TYPES.get(value, f"type {value}") if isinstance(value, int) else None

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if isinstance(value, int) else None

    @property
    def is_projector(self) -> bool:
        """An mmproj (vision / audio projector), not a language model."""
        return self.architecture == "clip" or self.metadata.get("general.type") == "mmproj"

    @property
    def has_vision(self) -> bool:
        return bool(self.metadata.get("clip.has_vision_encoder"))

    @property
    def has_audio(self) -> bool:
        return bool(self.metadata.get("clip.has_audio_encoder"))


def read_gguf_header(path: Path) -> GgufHeader:
    """The header of the GGUF at ``path``; ModelFileError if it is not one."""
    try:
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelFileError(f"not a GGUF file (bad magic): {path}")
            (version,) = _unpack(f, "<I")
            tensor_count, kv_count = _unpack(f, "<QQ")
            header = GgufHeader(path, int(version), int(tensor_count))
            for _ in range(kv_count):
                key = _read_string(f)
                (kind,) = _unpack(f, "<I")
                header.metadata[key] = _read_value(f, int(kind))
            return header
    except (OSError, struct.error, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"cannot read the GGUF header of {path}: {exc}") from exc


def _unpack(f: BinaryIO, fmt: str) -> tuple[Any, ...]:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("the file ends inside its header")
    return struct.unpack(fmt, data)


def _read_string(f: BinaryIO) -> str:
    (length,) = _unpack(f, "<Q")
    if length > 1 << 24:
        raise ValueError(f"implausible string length {length}")
    return f.read(length).decode("utf-8")


def _read_value(f: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _unpack(f, _SCALARS[kind])[0]
    if kind == _STRING:
        return _read_string(f)
    if kind == _ARRAY:
        (item_kind,) = _unpack(f, "<I")
        (count,) = _unpack(f, "<Q")
        _skip_array(f, int(item_kind), int(count))
        return count
    raise ValueError(f"unknown GGUF value type {kind}")


def _skip_array(f: BinaryIO, kind: int, count: int) -> None:
    if kind in _SCALARS:
        f.seek(struct.calcsize(_SCALARS[kind]) * count, 1)
        return
    for _ in range(count):
        if kind == _STRING:
            (length,) = _unpack(f, "<Q")
            f.seek(length, 1)
        else:
            _read_value(f, kind)
