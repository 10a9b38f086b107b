"""A GBNF grammar as llama.cpp's grammar sampler checks it: part of the llama.cpp backend.

The batched sampler asks it two things: does the grammar allow this one token (cheap, asked of
every drawn token), and which tokens does it allow at all (the whole vocabulary, only when the
drawn token was rejected).
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Any

import llama_cpp as lc
import numpy as np
import numpy.typing as npt

from gemma_service.errors import InvalidRequestError

# llama_token_data as a numpy record, so the whole vocabulary goes to llama.cpp as one array.
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


@dataclass(frozen=True, slots=True)
class CandidateBuffer:
    """A vocabulary-sized llama_token_data array (shared by a backend's grammars: they use it
    one at a time) and the token ids to fill it with."""

    data: npt.NDArray[Any]
    token_ids: npt.NDArray[np.int32]


class LlamaGrammar:
    """One request's grammar sampler (``TokenConstraint`` for the batched sampler)."""

    def __init__(self, vocab: Any, grammar: str, candidates: CandidateBuffer) -> None:
        self._sampler = lc.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if not self._sampler:
            raise InvalidRequestError("the grammar could not be parsed", param="grammar")
        self._candidates = candidates

    def allows(self, token: int) -> bool:
        one = np.array([(token, 0.0, 0.0)], dtype=TOKEN_DATA)
        single = token_data_array(one)
        lc.llama_sampler_apply(self._sampler, ctypes.byref(single))
        return bool(one["logit"][0] != -math.inf)

    def mask(self, logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        buf = self._candidates.data
        buf["logit"] = logits
        buf["id"] = self._candidates.token_ids
        buf["p"] = 0.0
        array = token_data_array(buf)
        lc.llama_sampler_apply(self._sampler, ctypes.byref(array))
        return np.ascontiguousarray(buf["logit"])

    def accept(self, token: int) -> None:
        # Only a token the grammar allows may be accepted: llama.cpp aborts on another.
        lc.llama_sampler_accept(self._sampler, token)

    def free(self) -> None:
        if self._sampler:
            lc.llama_sampler_free(self._sampler)
            self._sampler = None


def token_data_array(buf: npt.NDArray[Any]) -> Any:
    """A llama_token_data_array over ``buf`` (which must outlive it), nothing selected."""
    pointer = buf.ctypes.data_as(ctypes.POINTER(lc.llama_token_data))
    return lc.llama_token_data_array(pointer, len(buf), -1, False)
