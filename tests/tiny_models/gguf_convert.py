"""HF checkpoint -> GGUF with llama.cpp's own converter, the vocabulary taken from a real GGUF.

The converter normally rebuilds the vocabulary from HF tokenizer files, which for Gemma means a
SentencePiece model or a tokenizer.json that a tiny test model does not have. Like the
converter's own ``_set_vocab_builtin``, we copy the tokenizer keys from a GGUF that has the
real vocabulary instead: the packaged Gemma 3 270M for Gemma 3, llama.cpp's
``ggml-vocab-gemma-4.gguf`` for Gemma 4 (its special tokens ``<|turn>``, ``<|channel>``,
``<|tool_call>``, ``<|"|>`` ... in their real slots). Weights, hyperparameters and the mmproj
go through the converter unchanged. Runs in the builder subprocess only.
"""

from __future__ import annotations

import mmap
import struct
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _import_converter(llama_cpp_dir: Path) -> tuple[Any, Any, Any]:
    sys.path.insert(0, str(llama_cpp_dir / "gguf-py"))
    sys.path.insert(0, str(llama_cpp_dir))
    import conversion  # type: ignore[import-not-found]
    import gguf  # type: ignore[import-not-found]
    from conversion.base import ModelBase  # type: ignore[import-not-found]

    return conversion, gguf, ModelBase


_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9


def gguf_fields(gguf: Any, path: Path) -> Iterator[tuple[str, Any, Any, Any]]:
    """(key, value, type, sub_type) of every ``tokenizer.ggml.*`` key of ``path``, typed for
    gguf.GGUFWriter.add_key_value."""
    for key, value, vtype, sub_type in read_gguf_keys(path, "tokenizer.ggml."):
        sub = None if sub_type is None else gguf.GGUFValueType(sub_type)
        yield key, value, gguf.GGUFValueType(vtype), sub


def read_gguf_keys(path: Path, prefix: str) -> Iterator[tuple[str, Any, int, int | None]]:
    """(key, value, type, sub_type) of every metadata key of ``path`` starting with ``prefix``.

    Read here rather than with gguf.GGUFReader, which makes a numpy view per array element:
    2-3 minutes for Gemma 4's 262k tokens and 515k merges, against about a second.
    """
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        magic, _version, _n_tensors, n_kv = struct.unpack_from("<4sIQQ", buf, 0)
        assert magic == b"GGUF", path
        offset = 24
        for _ in range(n_kv):
            key, offset = _read_string(buf, offset)
            (vtype,) = struct.unpack_from("<I", buf, offset)
            value, sub_type, offset = _read_value(buf, offset + 4, vtype)
            if key.startswith(prefix):
                yield key, value, vtype, sub_type


def _read_string(buf: Any, offset: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<Q", buf, offset)
    return bytes(buf[offset + 8 : offset + 8 + n]).decode("utf-8"), offset + 8 + n


def _read_value(buf: Any, offset: int, vtype: int) -> tuple[Any, int | None, int]:
    if vtype == _STRING:
        text, offset = _read_string(buf, offset)
        return text, None, offset
    if vtype != _ARRAY:
        fmt = "<" + _SCALARS[vtype]
        return struct.unpack_from(fmt, buf, offset)[0], None, offset + struct.calcsize(fmt)
    sub_type, count = struct.unpack_from("<IQ", buf, offset)
    offset += 12
    if sub_type == _STRING:
        items = []
        for _ in range(count):
            (n,) = struct.unpack_from("<Q", buf, offset)
            items.append(bytes(buf[offset + 8 : offset + 8 + n]))
            offset += 8 + n
        return items, sub_type, offset
    dtype = np.dtype("<" + _SCALARS[sub_type])
    values = np.frombuffer(buf, dtype, count, offset).tolist()
    return values, sub_type, offset + dtype.itemsize * count


def convert(
    hf_dir: Path,
    out: Path,
    *,
    llama_cpp_dir: Path,
    vocab_gguf: Path,
    chat_template: str,
    mmproj: bool,
) -> None:
    """Write ``out`` (f16) from ``hf_dir``: the text model, or with ``mmproj`` its projector."""
    import torch

    conversion, gguf, model_base = _import_converter(llama_cpp_dir)
    hparams = model_base.load_hparams(hf_dir, False)
    model_type = conversion.ModelType.MMPROJ if mmproj else conversion.ModelType.TEXT
    arch = conversion.get_model_architecture(hparams, model_type)
    base: Any = conversion.get_model_class(arch, mmproj=mmproj)

    class TinyGemma(base):  # type: ignore[misc,valid-type]
        model_arch = base.model_arch  # the converter wants it on every subclass

        @classmethod
        def filter_tensors(cls, item: tuple[str, Any]) -> tuple[str, Any] | None:
            name, gen = item
            # transformers 5 saves the SigLIP tower without the hub checkpoints' "vision_model."
            # level, which is what the converter's tensor map knows.
            tower = "vision_tower."
            if arch.startswith("Gemma3") and name.startswith(tower) and "vision_model" not in name:
                name = tower + "vision_model." + name.removeprefix(tower)
            return super().filter_tensors((name, gen))  # type: ignore[no-any-return]

        def set_vocab(self) -> None:
            for key, value, vtype, sub_type in gguf_fields(gguf, vocab_gguf):
                self.gguf_writer.add_key_value(key, value, vtype, sub_type=sub_type)
            self.gguf_writer.add_chat_template(chat_template)

        def modify_tensors(
            self, data_torch: Any, name: str, bid: int | None
        ) -> Iterable[tuple[str, Any]]:
            if not mmproj and "embed_tokens.weight" in name:
                # Gemma3Model trims the embedding to the tokenizer files' size (reading those
                # files); our rows already match the transplanted vocabulary one to one.
                gemma3 = next(c for c in type(self).__mro__ if c.__name__ == "Gemma3Model")
                return super(gemma3, self).modify_tensors(data_torch, name, bid)  # type: ignore[no-any-return]
            return super().modify_tensors(data_torch, name, bid)  # type: ignore[no-any-return]

    with torch.inference_mode():
        model = TinyGemma(hf_dir, gguf.LlamaFileType.MOSTLY_F16, out)
        model.write()
