"""The C arithmetic the sampler reproduces: libstdc++'s seeded uniform draw, libm's expf/logf."""

from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np
import pytest

from gemma_service.engine.sampling.numerics import Mt19937Uniform, expf, logf, ordered_sum_f32
from gemma_service.engine.sampling.token_draw import EXP_REL_ERROR


def _libm_function(name: str) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    lib = ctypes.util.find_library("m")
    if lib is None:
        pytest.skip("no libm to compare with")
    fn = getattr(ctypes.CDLL(lib), name)
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn


def test_uniform_draws_equal_std_mt19937_with_uniform_real_distribution_double() -> None:
    # Printed by: std::mt19937 r(seed); std::uniform_real_distribution<double> d(0.0f, 1.0f);
    # d(r) three times (g++ 12, libstdc++), the draw llama.cpp's dist sampler makes.
    expected = {
        0: [0.59284461651668263, 0.84426574425659828, 0.85794561998982988],
        42: [0.79654298428784598, 0.18343478789336848, 0.77969099761266125],
        123456789: [0.99064914056398745, 0.013154497727317877, 0.72386569471786566],
    }
    for seed, draws in expected.items():
        uniform = Mt19937Uniform(seed)
        assert [uniform.next() for _ in range(3)] == draws


def test_expf_equals_libm_bit_for_bit() -> None:
    libm_expf = _libm_function("expf")
    rng = np.random.default_rng(7)
    # Spread over every exponent the samplers meet (x <= 0), plus the edges of underflow.
    x = -np.exp(rng.uniform(-30, math.log(104.5), 60_000)).astype(np.float32)
    bits = np.arange(0xC2CE8E00, 0xC2CFF200, 7, dtype=np.uint32)
    edges = np.array([0.0, -0.0, -1e-45, -87.33655, -np.inf], dtype=np.float32)
    x = np.concatenate([x, bits.view(np.float32), edges])
    ours = expf(x)
    theirs = np.array([libm_expf(float(v)) for v in x], dtype=np.float32)
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_numpy_fast_exp_stays_within_the_error_the_fast_draw_allows() -> None:
    """The full-vocabulary draw trusts np.exp to within EXP_REL_ERROR of expf; a numpy build
    where that fails would make its error bound wrong, so check it where the suite runs."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-87.0, 0.0, 2_000_000).astype(np.float32)
    exact = expf(x).astype(np.float64)
    fast = np.exp(x).astype(np.float64)
    assert np.max(np.abs(fast - exact) / exact) < EXP_REL_ERROR


def test_logf_equals_libm() -> None:
    libm_logf = _libm_function("logf")
    for p in [0.05, 0.1, 0.01, 0.3333, 1e-6, 0.999, 1.0]:
        assert logf(p) == np.float32(libm_logf(p))


def test_ordered_sum_adds_first_to_last_in_float32() -> None:
    values = np.array([1.0, 2.0**-24, 2.0**-24, 2.0**-24, 2.0**-24], dtype=np.float32)
    total = np.float32(0.0)
    for v in values:
        total = np.float32(total + v)
    assert ordered_sum_f32(values) == total == np.float32(1.0)  # each tiny term is lost
