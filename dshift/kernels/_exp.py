"""The exponentials of the Gaussian kernel: a vectorized exp for a tile of exponents, and the
Taylor polynomials that replace exp(t) for small |t| in Gaussian center groups."""

from __future__ import annotations

import math

import numba
import numpy as np

from dshift.kernels._config import FASTMATH, JIT

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it puts an integer in the low mantissa bits
_MAGIC_BITS = int(np.array([_MAGIC]).view(np.int64)[0])

#: Largest |t| for which a Gaussian group replaces exp(t) by its degree-9 Taylor
#: polynomial: the truncation is then below 3e-16 relative, under the exp's own error.
TAYLOR_REACH = 0.125
#: The same for the degree-13 polynomial (truncation below 5e-17 relative).
TAYLOR_REACH_WIDE = 0.4
_INV_FACT = tuple(1.0 / math.factorial(k) for k in range(14))


@numba.njit(**JIT, fastmath=FASTMATH)
def exp_nonpositive(x, scratch):
    """x[i] <- exp(x[i]) for x[i] <= 0, vectorized (relative error < 1e-13; 0 below -708).

    Cody-Waite reduction exp(x) = 2^k exp(r), |r| <= ln2/2, a degree-11 polynomial in
    Estrin's form (short dependency chains), and 2^k assembled from its exponent bits.
    ``scratch`` holds at least as many values as ``x``.
    """
    bits = scratch.view(np.int64)
    for i in range(x.shape[0]):
        v = max(x[i], -708.0)
        k = np.floor(v * _LOG2E + 0.5)  # a float: int<->float casts do not vectorize
        r = (v - k * _LN2_HI) - k * _LN2_LO
        r2 = r * r
        r4 = r2 * r2
        q0 = (1.0 + r) + r2 * (0.5 + r * 0.16666666666666666)
        q1 = (0.041666666666666664 + r * 0.008333333333333333) + r2 * (
            0.001388888888888889 + r * 0.0001984126984126984
        )
        q2 = (2.48015873015873e-05 + r * 2.7557319223985893e-06) + r2 * (
            2.755731922398589e-07 + r * 2.505210838544172e-08
        )
        p = q0 + r4 * (q1 + r4 * q2)
        x[i] = p if x[i] >= -708.0 else 0.0
        scratch[i] = k + _MAGIC
    for i in range(x.shape[0]):
        bits[i] = (bits[i] - _MAGIC_BITS + 1023) << 52
    for i in range(x.shape[0]):
        x[i] = x[i] * scratch[i]


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def exp_taylor(t):
    """exp(t) for |t| <= TAYLOR_REACH: degree-9 Taylor polynomial (Estrin's form)."""
    f0, f1, f2, f3, f4, f5, f6, f7, f8, f9 = _INV_FACT[:10]
    t2 = t * t
    t4 = t2 * t2
    q0 = (f0 + f1 * t) + t2 * (f2 + f3 * t)
    q1 = (f4 + f5 * t) + t2 * (f6 + f7 * t)
    return q0 + t4 * (q1 + t4 * (f8 + f9 * t))


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def exp_taylor13(t):
    """exp(t) for |t| <= TAYLOR_REACH_WIDE: degree-13 Taylor polynomial (Estrin's form)."""
    f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13 = _INV_FACT
    t2 = t * t
    t4 = t2 * t2
    t8 = t4 * t4
    q0 = (f0 + f1 * t) + t2 * (f2 + f3 * t)
    q1 = (f4 + f5 * t) + t2 * (f6 + f7 * t)
    q2 = (f8 + f9 * t) + t2 * (f10 + f11 * t)
    q3 = f12 + f13 * t
    return (q0 + t4 * q1) + t8 * (q2 + t4 * q3)
