"""The Gaussian kernel's shortcuts: exps shared by a group of centers, and per-axis factors
shared by centers on a lattice.

A group member c = lead + delta has the weight ``w(x) exp(-|delta|^2 / 2h^2) exp(t)`` for a
point x, with w the leader's weight and ``t = (x - lead) . delta / h^2``; for small |t|,
exp(t) is a short Taylor polynomial, so one exp per point serves the whole group. On a
lattice, exp(-|x - c|^2 / 2h^2) is the product over the axes of exp(-(x_k - c_k)^2 / 2h^2),
and those factors are shared: one exp per distinct coordinate value instead of one per
center.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from dshift.kernels._config import (
    D2,
    FASTMATH,
    INNER,
    JIT,
    OFFSETS,
    SCRATCH,
    SHELL,
    TILE_ROWS,
    WEIGHT,
    ZERO,
)
from dshift.kernels._exp import (
    TAYLOR_REACH,
    TAYLOR_REACH_WIDE,
    exp_nonpositive,
    exp_taylor,
    exp_taylor13,
)
from dshift.kernels._tile_sums import add3, count_nonfinite, tile_sums, transpose

#: Gaussian centers on a lattice (bin seeds, before they move) get their weights as
#: products of per-axis exps when the axes have at most this many distinct values in all,
#: and at most a quarter as many as there are centers.
MAX_AXIS_VALUES = 1024


@numba.njit(**INNER, fastmath=FASTMATH)
def _count_expanded(d2, tq, n, dd, h2):
    """Points surely within the bandwidth of a group member, and points within rounding
    of it, by the squared distance ``d2[i] + dd - 2 h2 tq[i]`` (see gaussian_group)."""
    sure_in = h2 * (1.0 - 1e-12)
    sure_out = h2 * (1.0 + 1e-12)
    inside = unsure = 0.0
    for i in range(n):
        r2 = d2[i] + (dd - 2.0 * h2 * tq[i])
        inside += 1.0 if r2 <= sure_in else 0.0
        unsure += 1.0 if sure_in < r2 <= sure_out else 0.0
    return inside, unsure


@numba.njit(**INNER, fastmath=FASTMATH)
def _count3(work, n, a0, a1, a2, dd, h2):
    """:func:`_count_expanded` for 3 features, t computed on the way."""
    d2 = work[D2, :n]
    u0, u1, u2 = work[OFFSETS, :n], work[OFFSETS + 1, :n], work[OFFSETS + 2, :n]
    sure_in = h2 * (1.0 - 1e-12)
    sure_out = h2 * (1.0 + 1e-12)
    inside = unsure = 0.0
    for i in range(n):
        r2 = d2[i] + (dd - 2.0 * h2 * (u0[i] * a0 + u1[i] * a1 + u2[i] * a2))
        inside += 1.0 if r2 <= sure_in else 0.0
        unsure += 1.0 if sure_in < r2 <= sure_out else 0.0
    return inside, unsure


@numba.njit(**INNER, fastmath=FASTMATH)
def _taylor3(work, n, a0, a1, a2, wide):
    """A group member's weights for 3 features in one pass (see gaussian_group): their
    total and offset sums from the leader, but for the factor exp(-|delta|^2 / 2h^2)."""
    w = work[WEIGHT, :n]
    u0, u1, u2 = work[OFFSETS, :n], work[OFFSETS + 1, :n], work[OFFSETS + 2, :n]
    total = s0 = s1 = s2 = 0.0
    if wide:
        for i in range(n):
            wi = w[i] * exp_taylor13(u0[i] * a0 + u1[i] * a1 + u2[i] * a2)
            total += wi
            s0 += wi * u0[i]
            s1 += wi * u1[i]
            s2 += wi * u2[i]
        return total, s0, s1, s2
    for i in range(n):
        wi = w[i] * exp_taylor(u0[i] * a0 + u1[i] * a1 + u2[i] * a2)
        total += wi
        s0 += wi * u0[i]
        s1 += wi * u1[i]
        s2 += wi * u2[i]
    return total, s0, s1, s2


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _leader_weights(T, s, e, lead, inv_2h2, work):
    """The work rows of the leader: squared distances, offsets (one row per feature) and
    Gaussian weights of the points T[:, s:e]."""
    d = lead.shape[0]
    n = e - s
    d2, w, tq = work[D2, :n], work[WEIGHT, :n], work[SCRATCH, :n]
    for i in range(n):
        d2[i] = 0.0
    for k in range(d):
        c = lead[k]
        tk = T[k, s:e]
        uk = work[OFFSETS + k, :n]
        for i in range(n):
            u = tk[i] - c
            uk[i] = u
            d2[i] += u * u
    for i in range(n):
        w[i] = -d2[i] * inv_2h2
    exp_nonpositive(w, tq)


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _leader_sums(n, j, work, sums, weights):
    """Add the leader's own weights (from the work rows) to center j's sums."""
    w = work[WEIGHT, :n]
    total = 0.0
    for i in range(n):
        total += w[i]
    for k in range(sums.shape[1]):
        uk = work[OFFSETS + k, :n]
        acc = 0.0
        for i in range(n):
            acc += w[i] * uk[i]
        sums[j, k] += acc
    weights[j] += total


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _leader_count(n, h2, work):
    """The leader's count of points within the bandwidth, from the work rows."""
    d2 = work[D2, :n]
    inside = 0.0
    for i in range(n):
        inside += 1.0 if d2[i] <= h2 else 0.0
    return inside


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _member_weights(n, h2, a, dd, count_each, wide, work, acc):
    """A member's weights by the Taylor polynomial: (count, unsure count, total); acc <-
    the weighted offset sums from the leader, ``a`` its offset from the leader (see
    gaussian_group)."""
    d = a.shape[0]
    inside = unsure = 0.0
    if d == 3:  # one fused pass
        a0, a1, a2 = a[0] / h2, a[1] / h2, a[2] / h2
        if count_each:
            inside, unsure = _count3(work, n, a0, a1, a2, dd, h2)
        total, acc[0], acc[1], acc[2] = _taylor3(work, n, a0, a1, a2, wide)
        return inside, unsure, total
    d2, w, tq = work[D2, :n], work[WEIGHT, :n], work[SCRATCH, :n]
    for i in range(n):
        tq[i] = 0.0
    for k in range(d):
        ak = a[k] / h2
        uk = work[OFFSETS + k, :n]
        for i in range(n):
            tq[i] += uk[i] * ak
    if count_each:
        inside, unsure = _count_expanded(d2, tq, n, dd, h2)
    total = 0.0
    for i in range(n):
        wi = w[i] * (exp_taylor13(tq[i]) if wide else exp_taylor(tq[i]))
        tq[i] = wi
        total += wi
    for k in range(d):
        uk = work[OFFSETS + k, :n]
        s = 0.0
        for i in range(n):
            s += tq[i] * uk[i]
        acc[k] = s
    return inside, unsure, total


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _count_directly(T, s, e, C, j, h2):
    """Points of T[:, s:e] within the bandwidth of center j, by their direct distances."""
    inside = 0.0
    for i in range(e - s):
        r2 = 0.0
        for k in range(C.shape[1]):
            diff = T[k, s + i] - C[j, k]
            r2 += diff * diff
        inside += 1.0 if r2 <= h2 else 0.0
    return inside


@numba.njit(**INNER, fastmath=FASTMATH)
def gaussian_group(T, s, e, gap2, far2, centers, group, work):
    """Gaussian kernel: add the points T[:, s:e] for the centers of one group.

    When every |t| of the tile is at most ``TAYLOR_REACH_WIDE`` (bounded by the group
    radius times the distance from the leader to the tile box's farthest corner, ``far2``
    squared; ``gap2``: to the nearest), one exp per point serves the whole group and exp(t)
    is a Taylor polynomial (degree 9, or 13 beyond ``TAYLOR_REACH``) whose truncation is
    below 3e-16 relative; otherwise each member runs :func:`tile_sums`.

    Points are counted within the bandwidth only in a tile that straddles the group's
    shell, by their expanded squared distance; a (tile, member) with a point within 1e-12
    relative of the bandwidth is counted again directly, so the counts are exact.
    Unweighted points only; ``centers`` are the :class:`~dshift.kernels._tile_sums.Centers`
    (Gaussian kernel), ``group`` a :class:`~dshift.kernels._groups.Group`, ``work`` a
    :func:`~dshift.kernels._config.work_buffer`.
    """
    C, h2, _, out = centers
    sums, weights, counts = out
    members, lead, radius = group
    d = lead.shape[0]
    n = e - s
    inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
    reach = math.sqrt(far2) * radius / h2 if h2 > 0 else np.inf
    if reach > TAYLOR_REACH_WIDE or far2 * inv_2h2 > 700.0:
        for q in range(members.shape[0]):
            tile_sums(T, None, s, e, centers, members[q], work, ZERO)
        return
    wide = reach > TAYLOR_REACH
    h = math.sqrt(h2)
    all_out = gap2 > (h + radius) ** 2 * (1.0 + 1e-9)
    all_in = h > radius and far2 <= (h - radius) ** 2 * (1.0 - 1e-9)
    count_each = not (all_in or all_out)
    _leader_weights(T, s, e, lead, inv_2h2, work)
    a = work[OFFSETS + d, :d]  # the member's offset from the leader
    acc = work[SHELL + d, :d]  # its weighted offset sums from the leader
    for q in range(members.shape[0]):
        j = members[q]
        dd = 0.0
        for k in range(d):
            a[k] = C[j, k] - lead[k]
            dd += a[k] * a[k]
        inside = 0.0 if all_out else float(n)
        if dd == 0.0:  # the leader: its own weights
            _leader_sums(n, j, work, sums, weights)
            counts[j] += _leader_count(n, h2, work) if count_each else inside
            continue
        counted, unsure, total = _member_weights(n, h2, a, dd, count_each, wide, work, acc)
        if count_each:
            inside = counted
        g = math.exp(-dd * inv_2h2)
        for k in range(d):
            sums[j, k] += g * (acc[k] - total * a[k])  # offsets from the member
        weights[j] += g * total
        if unsure > 0.0:  # a point within rounding of the bandwidth: count directly
            inside = _count_directly(T, s, e, C, j, h2)
        counts[j] += inside


class Lattice(NamedTuple):
    """Centers on a lattice (see :func:`axis_lattice`).

    Attributes
    ----------
    values : ndarray (n_values,), float64
        The distinct values of each coordinate, one axis after the other.
    index : ndarray (n_centers, n_features), int64
        For each center and axis, the row of its coordinate in ``values``.
    """

    values: np.ndarray
    index: np.ndarray


def axis_lattice(centers: np.ndarray) -> Lattice | None:
    """The distinct values of each coordinate of ``centers``, when they are few.

    Returns the :class:`Lattice` of the centers, or None when they are not on a lattice
    with few enough values (see ``MAX_AXIS_VALUES``).

    Examples
    --------
    >>> g = np.arange(4.0)
    >>> C = np.array([[a, b, c] for a in g for b in g for c in g])  # 64 centers
    >>> values, index = axis_lattice(C)
    >>> values.tolist(), C[6].tolist(), index[6].tolist()
    ([0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0], [0, 5, 10])
    >>> axis_lattice(C[:20]) is None  # 10 values for 20 centers: not worth it
    True
    """
    m, d = centers.shape
    limit = min(MAX_AXIS_VALUES, m // 4)
    values, index, offset = [], np.empty((m, d), dtype=np.int64), 0
    for k in range(d):
        axis, inverse = np.unique(centers[:, k], return_inverse=True)
        values.append(axis)
        index[:, k] = inverse.ravel() + offset
        offset += len(axis)
        if offset > limit:
            return None
    return Lattice(np.concatenate(values), index)


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _lattice_center3(T, t, E, index, C, j, h2, far):
    """Center j's count, weight and (offset sums) from the per-axis factors ``E``, for 3
    features in one fused pass."""
    e0, e1, e2 = E[index[j, 0], :t], E[index[j, 1], :t], E[index[j, 2], :t]
    c0, c1, c2 = C[j, 0], C[j, 1], C[j, 2]
    t0, t1, t2 = T[0, :t], T[1, :t], T[2, :t]
    inside = total = a0 = a1 = a2 = 0.0
    for i in range(t):
        u0 = t0[i] - c0
        u1 = t1[i] - c1
        u2 = t2[i] - c2
        q = u0 * u0 + u1 * u1 + u2 * u2
        inside += 1.0 if q <= h2 else 0.0
        wi = e0[i] * e1[i] * e2[i] if q <= far else 0.0
        total += wi
        a0 += wi * u0
        a1 += wi * u1
        a2 += wi * u2
    return inside, total, (a0, a1, a2)


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _lattice_tile(T, t, E, index, centers, buffers):
    """Add the sums of the tile ``T[:, :t]`` for every center of the
    :class:`~dshift.kernels._tile_sums.Centers`, from the per-axis factors ``E`` (a row
    per axis value); ``buffers``: two separately allocated rows of ``t`` values or more."""
    C, h2, _, out = centers
    sums, weights, counts = out
    w, scratch = buffers
    m, d = C.shape
    inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
    far = 708.0 / inv_2h2 if h2 > 0 else 0.0  # beyond, the exp underflows to 0 as usual
    for j in range(m):
        if d == 3:
            inside, total, offsets = _lattice_center3(T, t, E, index, C, j, h2, far)
            add3(sums, weights, counts, j, inside, total, offsets)
            continue
        wt = w[:t]
        e0 = E[index[j, 0], :t]
        for i in range(t):  # not wt[:] = e0: that compiles a shape-mismatch error message
            wt[i] = e0[i]
        for k in range(1, d):
            ek = E[index[j, k], :t]
            for i in range(t):
                wt[i] *= ek[i]
        d2 = scratch[:t]  # feature by feature, as tile_sums sums it (same rounding)
        d2[:] = 0.0
        for k in range(d):
            c = C[j, k]
            tk = T[k, :t]
            for i in range(t):
                diff = tk[i] - c
                d2[i] += diff * diff
        inside = 0.0
        total = 0.0
        for i in range(t):  # the support and the count need the squared distance
            q = d2[i]
            inside += 1.0 if q <= h2 else 0.0
            wi = wt[i] if q <= far else 0.0
            wt[i] = wi
            total += wi
        counts[j] += inside
        weights[j] += total
        for k in range(d):
            c = C[j, k]
            tk = T[k, :t]
            acc = 0.0
            for i in range(t):
                acc += wt[i] * (tk[i] - c)
            sums[j, k] += acc


@numba.njit(**JIT, fastmath=FASTMATH)
def lattice_sums(X, centers, lattice):
    """Gaussian kernel, unweighted points, centers on a :class:`Lattice`: add the sums of
    the block X for the :class:`~dshift.kernels._tile_sums.Centers`, a tile at a time, with
    one exp per point and distinct coordinate value; returns the count of NaN, infinite or
    out-of-range values."""
    n, d = X.shape
    m = centers.C.shape[0]
    h2 = centers.h2
    values, index = lattice
    nv = values.shape[0]
    T = np.empty((d, TILE_ROWS))
    E = np.empty((nv, TILE_ROWS))  # a row per axis value: its factor for each point
    w = np.empty(TILE_ROWS)
    scratch = np.empty(TILE_ROWS)
    buffers = (w, scratch)
    axis_of = np.empty(nv, np.int64)
    for k in range(d):
        for j in range(m):
            axis_of[index[j, k]] = k
    inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
    nonfinite = 0
    for start in range(0, n, TILE_ROWS):
        t = min(TILE_ROWS, n - start)
        transpose(X, start, t, T)
        nonfinite += count_nonfinite(T, t)
        for v in range(nv):
            g = values[v]
            tk = T[axis_of[v], :t]
            ev = E[v, :t]
            for i in range(t):
                u = tk[i] - g
                ev[i] = -u * u * inv_2h2
            exp_nonpositive(ev, scratch[:t])
        _lattice_tile(T, t, E, index, centers, buffers)
    return nonfinite
