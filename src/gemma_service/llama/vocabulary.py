"""A model's tokenizer without its weights (vocab-only load), for tools that count tokens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import llama_cpp as lc

from gemma_service.llama.runtime import ensure_started, model_params


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
