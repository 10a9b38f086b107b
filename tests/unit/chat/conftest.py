"""The tiny Gemma 4's vocabulary and chat template through llama.cpp (vocabulary only), for
the tests of Gemma 4's prompt and grammars. Skipped where llama_cpp or the generator of tiny
models cannot run."""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.tiny_models.fixtures import tiny_gemma4_text  # noqa: F401

lc: Any = importlib.import_module("llama_cpp") if importlib.util.find_spec("llama_cpp") else None
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class Gemma4Vocab:
    """Tokenizer, template and grammar engine of the tiny Gemma 4 (the real Gemma 4 ones)."""

    def __init__(self, model: Any) -> None:
        self.vocab = lc.llama_model_get_vocab(model)
        self.template = lc.llama_model_chat_template(model, None).decode()
        self.eos = lc.llama_vocab_eos(self.vocab)

    def tokenize(self, text: str, special: bool) -> list[int]:
        data = text.encode()
        buffer = (lc.llama_token * (len(data) + 8))()
        count = lc.llama_tokenize(self.vocab, data, len(data), buffer, len(buffer), False, special)
        assert count >= 0
        return list(buffer[:count])

    def token(self, text: str) -> int:
        [token] = self.tokenize(text, True)
        return token

    def grammar(self, gbnf: str) -> Any:
        sampler = lc.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
        assert sampler, f"llama.cpp rejected the grammar:\n{gbnf}"
        return sampler

    def allows(self, sampler: Any, token: int) -> bool:
        """Whether the grammar, where it stands, lets ``token`` come next."""
        data = np.zeros(1, dtype=_TOKEN_DATA)
        data["id"] = [token]
        pointer = data.ctypes.data_as(ctypes.POINTER(lc.llama_token_data))
        candidates = lc.llama_token_data_array(pointer, 1, -1, False)
        lc.llama_sampler_apply(sampler, ctypes.byref(candidates))
        return bool(data["logit"][0] != -math.inf)

    def accepts(self, gbnf: str, tokens: list[int], *, then_end: bool = True) -> bool:
        """Whether the grammar takes ``tokens`` (and then the end of generation)."""
        sampler = self.grammar(gbnf)
        try:
            for token in [*tokens, self.eos] if then_end else tokens:
                if not self.allows(sampler, token):
                    return False
                if token != self.eos:
                    lc.llama_sampler_accept(sampler, token)
            return True
        finally:
            lc.llama_sampler_free(sampler)


@pytest.fixture(scope="module")
def gemma4(tiny_gemma4_text: Any) -> Iterator[Gemma4Vocab]:  # noqa: F811
    if lc is None:
        pytest.skip("llama_cpp is not installed")
    from gemma_service.llama.kernel_check import default_kernel_cache_dir, start_checked
    from gemma_service.llama.runtime import model_params

    path = Path(tiny_gemma4_text.model_path)
    start_checked(path, default_kernel_cache_dir())
    model = lc.llama_model_load_from_file(str(path).encode(), model_params(0, vocab_only=True))
    assert model, "could not load the tiny Gemma 4's vocabulary"
    yield Gemma4Vocab(model)
    lc.llama_model_free(model)
