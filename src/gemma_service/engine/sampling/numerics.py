"""The float arithmetic of llama.cpp's samplers, reproduced in numpy bit for bit.

llama.cpp's ``dist`` sampler draws ``std::uniform_real_distribution<double>`` from a
``std::mt19937`` and turns logits into probabilities with C's ``expf``; its top-p and min-p stages
use ``expf``, ``logf`` and float sums taken in order. Sampling the same token for the same seed
means doing exactly that arithmetic, so this module has: ``expf`` (glibc's algorithm, which is
what llama.cpp calls on Linux), ``logf``, ordered float32 sums, and the seeded uniform draw.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

# glibc's expf (sysdeps/ieee754/flt-32/e_expf.c, from Arm's optimized-routines): with N = 32,
# exp(x) = 2^(k/N) * 2^(r/N), k = round(x * N/ln2), 2^(k/N) from a table and 2^(r/N) from a
# cubic, all in double, rounded to float once at the end. Constants as stored in libm.
_EXP2_TABLE = np.array(
    [
        0x3FF0000000000000, 0x3FEFD9B0D3158574, 0x3FEFB5586CF9890F, 0x3FEF9301D0125B51,
        0x3FEF72B83C7D517B, 0x3FEF54873168B9AA, 0x3FEF387A6E756238, 0x3FEF1E9DF51FDEE1,
        0x3FEF06FE0A31B715, 0x3FEEF1A7373AA9CB, 0x3FEEDEA64C123422, 0x3FEECE086061892D,
        0x3FEEBFDAD5362A27, 0x3FEEB42B569D4F82, 0x3FEEAB07DD485429, 0x3FEEA47EB03A5585,
        0x3FEEA09E667F3BCD, 0x3FEE9F75E8EC5F74, 0x3FEEA11473EB0187, 0x3FEEA589994CCE13,
        0x3FEEACE5422AA0DB, 0x3FEEB737B0CDC5E5, 0x3FEEC49182A3F090, 0x3FEED503B23E255D,
        0x3FEEE89F995AD3AD, 0x3FEEFF76F2FB5E47, 0x3FEF199BDD85529C, 0x3FEF3720DCEF9069,
        0x3FEF5818DCFBA487, 0x3FEF7C97337B9B5F, 0x3FEFA4AFA2A490DA, 0x3FEFD0765B6E4540,
    ],
    dtype=np.uint64,
)  # fmt: skip


def _f64(bits: int) -> float:
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


_INV_LN2_N = 0x40471547652B82FE  # N / ln 2
# N/ln2 split so that each half times a float32 is exact in double: the FMA-built libm rounds
# x * N/ln2 - k once, and this reproduces that without an FMA.
_INV_LN2_N_HI = _f64(_INV_LN2_N & ~((1 << 27) - 1))
_INV_LN2_N_LO = _f64(_INV_LN2_N) - _INV_LN2_N_HI
_C0 = _f64(0x3EBC6AF84B912394)
_C1 = _f64(0x3F2EBFCE50FAC4F3)
_C2 = _f64(0x3F962E42FF0C52D6)
_SHIFT = _f64(0x4338000000000000)  # 1.5 * 2^52: adding it rounds to an integer
_UNDERFLOW = np.array([0xC2CFF1B4], dtype=np.uint32).view(np.float32)[0]  # < log(2^-150): +0
# Below log(2^-149), glibc returns the smallest subnormal (and may set errno).
_MAY_UNDERFLOW = np.array([0xC2CE8ECF], dtype=np.uint32).view(np.float32)[0]
_TINY = np.float32(2.0**-149)


def expf(x: F32) -> F32:
    """``expf`` of every element, equal bit for bit to glibc's for x <= 0 (what samplers pass:
    logits minus their maximum). Checked against libm over every float in [-103, 0]."""
    out = np.empty(x.shape, dtype=np.float32)
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)
    for start in range(0, flat_x.size, _CHUNK):  # chunks small enough to stay in cache
        _expf_chunk(flat_x[start : start + _CHUNK], flat_out[start : start + _CHUNK])
    low = x < _MAY_UNDERFLOW  # rare: only logits far below the maximum
    if low.any():
        out[low] = _TINY
        out[x < _UNDERFLOW] = 0.0
    nan = np.isnan(x)
    if nan.any():
        out[nan] = np.nan
    return out


_CHUNK = 16384


def _expf_chunk(x: F32, out: F32) -> None:
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # -inf and NaN are fixed up after
        a = xd * _INV_LN2_N_HI  # exact
        b = np.multiply(xd, _INV_LN2_N_LO, out=xd)  # exact
        shifted = a + b
        shifted += _SHIFT
        kd = shifted - _SHIFT
        r = np.subtract(a, kd, out=a)
        r += b
        ki = shifted.view(np.uint64)
        scale = _EXP2_TABLE[ki & np.uint64(31)]
        scale += np.left_shift(ki, np.uint64(47), out=ki)
        r2 = np.multiply(r, r, out=kd)
        y = np.multiply(r, _C0, out=b)
        y += _C1
        y *= r2
        r *= _C2
        r += 1.0
        y += r
        y *= scale.view(np.float64)
        out[...] = y


def _libm_logf() -> Any:
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).logf
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn


_LOGF = _libm_logf()


def logf(x: float) -> np.float32:
    """C's ``logf`` (min-p's threshold): libm's own where it can be loaded, else the correctly
    rounded value, which libm's agrees with for all but rare inputs."""
    if _LOGF is not None:
        return np.float32(_LOGF(float(np.float32(x))))
    return np.float32(math.log(float(np.float32(x)))) if x > 0 else np.float32(-np.inf)


def ordered_sum_f32(values: F32) -> np.float32:
    """The float32 sum of ``values`` added first to last, as a C ``float`` loop adds them
    (numpy's own sum adds pairwise, which rounds differently)."""
    if values.size == 0:
        return np.float32(0.0)
    return np.float32(np.cumsum(values, dtype=np.float32)[-1])


class Mt19937Uniform:
    """``std::uniform_real_distribution<double>(0, 1)`` over ``std::mt19937(seed)``, as
    llama.cpp's dist sampler draws it: libstdc++ builds each double from two 32-bit outputs."""

    __slots__ = ("_bits",)

    def __init__(self, seed: int) -> None:
        # numpy's legacy seeding of MT19937 from a 32-bit integer is init_genrand, the same
        # state std::mt19937(seed) starts from; the raw 32-bit outputs then agree.
        legacy = np.random.RandomState(seed & 0xFFFFFFFF).get_state(legacy=False)
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937", "state": legacy["state"]}

    def next(self) -> float:
        """The next draw in [0, 1)."""
        low, high = (float(v) for v in self._bits.random_raw(2))
        value = (low + high * 4294967296.0) / 18446744073709551616.0
        # libstdc++'s generate_canonical returns the largest double below 1 instead of 1.
        return value if value < 1.0 else math.nextafter(1.0, 0.0)
