"""A model's tokenizer without its weights (vocab-only load): token counting for tools, and the
remote engine's tokenizer."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_cpp as lc

from gemma_service.llama.runtime import ensure_started, model_params


def tokenize(vocab: Any, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
    """``text``'s token ids in ``vocab`` (a llama_vocab pointer); ValueError if it cannot be."""
    data = text.encode("utf-8")
    capacity = len(data) + 8
    for _ in range(2):
        buf = (lc.llama_token * capacity)()
        n = lc.llama_tokenize(vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n >= 0:
            return list(buf[:n])
        capacity = -n  # minus the room it needs
    raise ValueError("text could not be tokenized")


def token_piece(vocab: Any, token: int, *, special: bool = False) -> bytes:
    """The bytes ``token`` stands for in ``vocab``."""
    buf = ctypes.create_string_buffer(64)
    n = lc.llama_token_to_piece(vocab, token, buf, 64, 0, special)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = lc.llama_token_to_piece(vocab, token, buf, -n, 0, special)
    return buf.raw[:n]


def meta_text(model: Any, key: bytes) -> str:
    """A string value of a model's GGUF metadata ("" when it has none)."""
    buf = ctypes.create_string_buffer(256)
    n = lc.llama_model_meta_val_str(model, key, buf, len(buf))
    return buf.value.decode("utf-8", "replace") if n >= 0 else ""


def token_counter(model_path: Path) -> Callable[[str], int]:
    """Counts the tokens of a text (no special tokens added) with ``model_path``'s vocabulary."""
    ensure_started()
    model = lc.llama_model_load_from_file(
        str(model_path).encode(), model_params(0, vocab_only=True)
    )
    if not model:
        raise ValueError(f"llama.cpp could not read the vocabulary of {model_path}")
    vocab = lc.llama_model_get_vocab(model)

    def count(text: str) -> int:
        data = text.encode()
        # With no room for tokens, llama_tokenize returns minus the count it needs.
        return -int(lc.llama_tokenize(vocab, data, len(data), None, 0, False, False))

    return count


class Vocabulary:
    """A GGUF's tokenizer and chat metadata, loaded without its weights (thread-safe reads).

    The remote engine tokenizes with it: prompts travel to upstreams as token ids, so the GGUF
    must share the served model's tokenizer (any GGUF of the same model family does).
    """

    def __init__(self, model_path: Path) -> None:
        ensure_started()
        self.path = model_path
        self._model = lc.llama_model_load_from_file(
            str(model_path).encode(), model_params(0, vocab_only=True)
        )
        if not self._model:
            raise ValueError(f"llama.cpp could not read the vocabulary of {model_path}")
        self._vocab = lc.llama_model_get_vocab(self._model)
        template = lc.llama_model_chat_template(self._model, None)
        self.chat_template: str | None = template.decode("utf-8", "replace") if template else None
        self.n_vocab = int(lc.llama_vocab_n_tokens(self._vocab))
        self.n_ctx_train = int(lc.llama_model_n_ctx_train(self._model))
        self.add_bos = bool(lc.llama_vocab_get_add_bos(self._vocab))
        self.bos_token = self.piece(lc.llama_vocab_bos(self._vocab), special=True).decode()
        self.eos_token = self.piece(lc.llama_vocab_eos(self._vocab), special=True).decode()
        # "gemma3", "gemma4", ...: which chat format the template is (chat/chat_format.py).
        self.architecture = meta_text(self._model, b"general.architecture")

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        return tokenize(self._vocab, text, add_special=add_special, parse_special=parse_special)

    def piece(self, token: int, *, special: bool = False) -> bytes:
        return token_piece(self._vocab, token, special=special)

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", "replace")

    def close(self) -> None:
        if self._model:
            lc.llama_model_free(self._model)
            self._model = None
