"""Chunk kernels: pure arithmetic on one block of points, no dask.

Each function takes a numpy block of rows and the (small) broadcast center set and returns
only small results. The inner loops are compiled with numba and work on tiles of
``TILE_ROWS`` points (transposed, so the loops over points vectorize); a call allocates a few
buffers of at most ``CELL_BLOCK_ROWS`` rows (plus one counter per center-grid cell, or for
Gaussian centers on a lattice ``MAX_AXIS_VALUES`` rows of ``TILE_ROWS``) and nothing per
(point, center) pair, so a task's temporaries do not grow with the chunk size or the number
of centers: a 1e6-row chunk against 1000 centers never builds a 1e6 x 1000 matrix. For the
compact kernels (flat, Epanechnikov) a tile whose bounding box lies farther than the
bandwidth from a center is skipped for that center, and with the flat kernel a tile wholly
inside a center's ball is added from its count and offset sum; both are exact and pay off
when rows are spatially ordered. Rows in no spatial order (streamed chunks) go in long
tiles, or with many centers are first bucketed by the cells of a grid over the centers.
Gaussian centers close together share one exp per point (center groups), and so do the
per-axis factors of centers on a lattice.

Distances are computed as direct sums of squared differences in float64 (not through the
``|x|^2 - 2 x.c + |c|^2`` expansion), so a point exactly at distance ``bandwidth`` is counted
exactly as scikit-learn's tree-based neighbour search counts it. (The Gaussian groups count
by an expanded distance, but recount directly any point within rounding of the bandwidth.)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from dshift._limits import MAX_ABS, X_RANGE

FLAT, GAUSSIAN, EPANECHNIKOV = 0, 1, 2
KERNELS = {"flat": FLAT, "gaussian": GAUSSIAN, "epanechnikov": EPANECHNIKOV}

#: Rows of a block handled by one binning step: bounds the binning temporaries.
BIN_TILE_ROWS = 65_536


class ChunkStats(NamedTuple):
    """Partial sums of one or more chunks for a set of centers.

    Attributes
    ----------
    sums : ndarray of shape (n_centers, n_features), float64
        Kernel-weighted sum of the points' offsets from the center, sum w (x - c). The new
        center is ``c + sums / weights``: offsets keep full precision near the center, and
        a center whose points all sit on it (bandwidth 0, duplicates) stays exactly put.
    weights : ndarray of shape (n_centers,), float64
        Sum of the kernel weights.
    counts : ndarray of shape (n_centers,), float64
        Number of points within the bandwidth (inclusive): the center's intensity.
    n_nonfinite : int
        Number of NaN, infinite or out-of-range (``|x| > MAX_ABS``, see :mod:`dshift._limits`)
        values met in the chunk. When it is not 0 the sums are meaningless: the caller must
        raise (dshift does, after the first pass).
    bandwidths : ndarray of shape (n_centers,), float64
        With per-point bandwidths: sum of kernel weight x the point's bandwidth (divided by
        ``weights``, the local bandwidth at the center). Zeros otherwise.
    """

    sums: np.ndarray
    weights: np.ndarray
    counts: np.ndarray
    n_nonfinite: int
    bandwidths: np.ndarray


#: Rows handled together: the tile is transposed so the loops over points vectorize.
TILE_ROWS = 512
#: The same for rows in no spatial order, where a tile's box is too wide to prune.
UNSORTED_TILE_ROWS = 8192
#: numba fast-math flags: reassociation lets the loops vectorize; no NaN/inf assumptions,
#: so non-finite values are still detected (``abs(v) <= MAX_ABS`` is false for NaN).
_FASTMATH = {"reassoc", "nsz", "arcp", "contract"}

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it puts an integer in the low mantissa bits
_MAGIC_BITS = int(np.array([_MAGIC]).view(np.int64)[0])


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _exp_nonpositive(x, scratch):  # pragma: no cover - compiled
    """x[i] <- exp(x[i]) for x[i] <= 0, vectorized (relative error < 1e-13; 0 below -708).

    Cody-Waite reduction exp(x) = 2^k exp(r), |r| <= ln2/2, a degree-11 polynomial in
    Estrin's form (short dependency chains), and 2^k assembled from its exponent bits.
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


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _count_nonfinite(T, n):  # pragma: no cover - compiled
    """Number of NaN, infinite or out-of-range (``|x| > MAX_ABS``) values in ``T[:, :n]``:
    one vectorized comparison per value (false for NaN and inf too), counted in a float."""
    count = 0.0
    for k in range(T.shape[0]):
        row = T[k, :n]
        for i in range(n):
            count += 0.0 if abs(row[i]) <= MAX_ABS else 1.0
    return int(count)


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _bounding_box(T, s, e, lo, hi):  # pragma: no cover - compiled
    """lo, hi <- the bounding box of the points ``T[:, s:e]``; returns their count of NaN,
    infinite or out-of-range values (see :func:`_count_nonfinite`)."""
    nonfinite = 0
    for k in range(T.shape[0]):
        a = np.inf
        b = -np.inf
        for i in range(s, e):
            v = T[k, i]
            nonfinite += 0 if abs(v) <= MAX_ABS else 1
            a = min(a, v)
            b = max(b, v)
        lo[k] = a
        hi[k] = b
    return nonfinite


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _accumulate(X, C, h2, kernel, wcol, hcol, sums, weights, counts, hsums):  # pragma: no cover
    n = X.shape[0]
    m, d = C.shape
    adaptive = hcol >= 0
    T = np.empty((d, TILE_ROWS))
    d2 = np.empty(TILE_ROWS)
    w = np.empty(TILE_ROWS)
    pw = np.ones(TILE_ROWS)
    ph = np.ones(TILE_ROWS)  # per-point bandwidth (adaptive)
    ph2 = np.ones(TILE_ROWS)
    pnorm = np.ones(TILE_ROWS)  # per-point weight / h^d (adaptive)
    scratch = np.empty(TILE_ROWS)
    lo = np.empty(d)
    hi = np.empty(d)
    inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
    inv_h2 = 1.0 / h2 if h2 > 0 else 0.0
    compact = kernel != GAUSSIAN
    log_href = 0.5 * math.log(h2) if h2 > 0 else 0.0  # reference for the adaptive weights
    nonfinite = 0
    for start in range(0, n, TILE_ROWS):
        t = min(TILE_ROWS, n - start)
        for i in range(t):
            for k in range(d):
                T[k, i] = np.float64(X[start + i, k])
        if wcol >= 0:  # point weights ride in a column after the features
            for i in range(t):
                pw[i] = np.float64(X[start + i, wcol])
        tile_h2 = h2
        if adaptive:  # and so do per-point bandwidths
            tile_h2 = 0.0
            for i in range(t):
                hv = np.float64(X[start + i, hcol])
                ph[i] = hv
                ph2[i] = hv * hv
                # w / (h_i / h)^d, in log space so that high dimensions cannot overflow
                pnorm[i] = pw[i] * math.exp(min(700.0, max(-700.0, d * (log_href - math.log(hv)))))
                tile_h2 = max(tile_h2, hv * hv)
        nonfinite += _bounding_box(T, 0, t, lo, hi)
        # A tile is skipped for a center only if its bounding box is farther than the
        # (largest) bandwidth by a margin that covers rounding: exact for compact kernels.
        prune_h2 = tile_h2 * (1.0 + 1e-9) + 1e-300
        for j in range(m):
            if compact:
                gap2 = 0.0
                for k in range(d):
                    g = max(lo[k] - C[j, k], C[j, k] - hi[k], 0.0)
                    gap2 += g * g
                if gap2 > prune_h2:
                    continue
            for i in range(t):
                d2[i] = 0.0
            for k in range(d):
                c = C[j, k]
                for i in range(t):
                    diff = T[k, i] - c
                    d2[i] += diff * diff
            if adaptive:
                inside = 0.0
                for i in range(t):
                    inside += pw[i] if d2[i] <= ph2[i] else 0.0
                total = 0.0
                if kernel == FLAT:
                    for i in range(t):
                        w[i] = pnorm[i] if d2[i] <= ph2[i] else 0.0
                elif kernel == GAUSSIAN:
                    for i in range(t):
                        w[i] = -0.5 * d2[i] / ph2[i]
                    _exp_nonpositive(w[:t], scratch[:t])
                    for i in range(t):
                        w[i] *= pnorm[i]
                else:
                    for i in range(t):
                        w[i] = (1.0 - d2[i] / ph2[i]) * pnorm[i] if d2[i] <= ph2[i] else 0.0
                hacc = 0.0
                for i in range(t):
                    total += w[i]
                    hacc += w[i] * ph[i]
                hsums[j] += hacc
            else:
                inside = 0.0
                for i in range(t):
                    inside += pw[i] if d2[i] <= h2 else 0.0
                if kernel == FLAT:
                    for i in range(t):
                        w[i] = pw[i] if d2[i] <= h2 else 0.0
                    total = inside
                elif kernel == GAUSSIAN:
                    for i in range(t):
                        w[i] = -d2[i] * inv_2h2
                    _exp_nonpositive(w[:t], scratch[:t])
                    total = 0.0
                    for i in range(t):
                        w[i] *= pw[i]
                        total += w[i]
                else:
                    total = 0.0
                    for i in range(t):
                        wi = (1.0 - d2[i] * inv_h2) * pw[i] if d2[i] <= h2 else 0.0
                        w[i] = wi
                        total += wi
            counts[j] += inside
            if total > 0.0:
                weights[j] += total
                for k in range(d):
                    c = C[j, k]
                    acc = 0.0
                    for i in range(t):
                        acc += w[i] * (T[k, i] - c)
                    sums[j, k] += acc
    return nonfinite


#: Centers within this fraction of the bandwidth of a leader form one group (flat kernel):
#: a point well inside (or outside) the group's ball is inside (or outside) every member's.
GROUP_RADIUS = 1 / 32
#: The same for the Gaussian kernel: one exp per point serves the whole group.
GAUSSIAN_GROUP_RADIUS = 1 / 40


class CenterGroups(NamedTuple):
    """Centers clustered around leaders (see :func:`center_groups`).

    Attributes
    ----------
    group_of : ndarray (n_centers,), int64
        Each center's group, or -1 for a center alone.
    members : ndarray (n_centers,), int64
        Center indices, group by group (the centers alone first).
    leaders : ndarray (n_groups, n_features), float64
        Each group's reference point (one of its members).
    radius : ndarray (n_groups,), float64
        Distance from the leader to its farthest member, rounded up by a margin.
    """

    group_of: np.ndarray
    members: np.ndarray
    leaders: np.ndarray
    radius: np.ndarray


@numba.njit(nogil=True, cache=True)
def _leader_groups(C, order, radius):  # pragma: no cover - compiled
    # Greedy leader clustering in order of the first coordinate: every center before the
    # current one is already placed, so the scan for members only looks forward, and stops
    # once the first coordinate alone is farther than the radius.
    m, d = C.shape
    group_of = np.full(m, -1, np.int64)
    leader = np.empty(m, np.int64)
    r2 = radius * radius
    n_groups = 0
    for a in range(m):
        i = order[a]
        if group_of[i] >= 0:
            continue
        group_of[i] = n_groups
        leader[n_groups] = i
        for b in range(a + 1, m):
            j = order[b]
            if C[j, 0] - C[i, 0] > radius:
                break
            if group_of[j] < 0:
                dist2 = 0.0
                for k in range(d):
                    diff = C[j, k] - C[i, k]
                    dist2 += diff * diff
                if dist2 <= r2:
                    group_of[j] = n_groups
        n_groups += 1
    return group_of, leader[:n_groups]


def center_groups(centers: np.ndarray, bandwidth: float, fraction: float | None = None):
    """Cluster the centers into groups of radius at most ``fraction * bandwidth``.

    With the flat kernel a point closer than ``bandwidth - r`` to a group's leader (r the
    group's radius) is within the bandwidth of every member, and one farther than
    ``bandwidth + r`` of none: the kernels add such points once for the whole group, and
    test only the thin shell between the two against each member. Centers closing in on
    the same mode (most of them, in the middle iterations of a fit) share a group.

    Parameters
    ----------
    centers : ndarray of shape (n_centers, n_features)
    bandwidth : float
    fraction : float, default=None
        Largest group radius, as a fraction of the bandwidth (0: no groups; None:
        ``GROUP_RADIUS``).

    Returns
    -------
    CenterGroups
        Centers alone in their group get group -1 and come first in ``members``.

    Examples
    --------
    >>> g = center_groups(np.array([[0.0], [5.0], [0.01]]), 1.0)
    >>> g.group_of.tolist(), g.members.tolist(), g.leaders.ravel().tolist()
    ([0, -1, 0], [1, 0, 2], [0.0])
    """
    C = np.ascontiguousarray(centers, dtype=np.float64)
    m = C.shape[0]
    limit = (GROUP_RADIUS if fraction is None else fraction) * bandwidth
    if m > 1 and limit > 0 and C.shape[1] > 0:
        group_of, lead = _leader_groups(C, np.argsort(C[:, 0], kind="stable"), limit)
    else:
        group_of, lead = np.arange(m, dtype=np.int64), np.arange(m, dtype=np.int64)
    size = np.bincount(group_of, minlength=len(lead))
    several = size > 1
    renumber = np.full(len(lead), -1, dtype=np.int64)
    renumber[several] = np.arange(int(several.sum()))
    group_of = renumber[group_of]
    leaders = C[lead[several]]
    grouped = np.flatnonzero(group_of >= 0)
    dist = np.sqrt(((C[grouped] - leaders[group_of[grouped]]) ** 2).sum(axis=1))
    radius = np.zeros(len(leaders))
    np.maximum.at(radius, group_of[grouped], dist)
    radius = radius * (1 + 1e-9) + 1e-300  # covers rounding
    members = np.argsort(group_of, kind="stable").astype(np.int64)
    return CenterGroups(group_of, members, leaders, radius)


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _offset_sums(T, pw, s, e, lo, weighted, rel):  # pragma: no cover - compiled
    """rel[:d] <- sum of (weighted) offsets of T[:, s:e] from lo, rel[d] <- their weight."""
    d = lo.shape[0]
    total = 0.0
    for i in range(s, e):
        total += pw[i] if weighted else 1.0
    rel[d] = total
    for k in range(d):
        acc = 0.0
        for i in range(s, e):
            acc += (pw[i] if weighted else 1.0) * (T[k, i] - lo[k])
        rel[k] = acc


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _add_to_members(C, idx, p0, p1, w, offsets, base, out):  # pragma: no cover - compiled
    """Add points of total weight w and offset sum ``offsets[:d]`` from ``base`` to the
    sums of the centers ``idx[p0:p1]`` (out: sums, weights, counts)."""
    sums, weights, counts = out
    for q in range(p0, p1):
        j = idx[q]
        counts[j] += w
        weights[j] += w
        for k in range(C.shape[1]):
            sums[j, k] += offsets[k] + w * (base[k] - C[j, k])


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _core_and_shell(
    T, pw, s, e, C, idx, p0, p1, lead, radius, h2, weighted, work, out
):  # pragma: no cover - compiled
    """Flat kernel: add the points T[:, s:e] for the centers ``idx[p0:p1]`` of one group.

    Points within ``bandwidth - radius`` of the group's leader ``lead`` (the core) are in
    every member's ball: they are added once, as offsets from the leader. Only the shell
    out to ``bandwidth + radius`` is copied to ``work`` and tested per member. Both radii
    keep a 1e-9 margin that covers rounding, so the result equals the per-point loop's.
    ``work`` holds at least ``d + 4`` rows of ``max(e - s, d)`` values; ``out`` is (sums,
    weights, counts).
    """
    sums, weights, counts = out
    d = lead.shape[0]
    n = e - s
    h = math.sqrt(h2)
    core2 = (h - radius) ** 2 * (1.0 - 1e-9) if h > radius else -1.0
    outer2 = (h + radius) ** 2 * (1.0 + 1e-9) + 1e-300
    d2 = work[0, :n]
    acc = work[1, :d]
    core_w = 0.0
    if d == 3 and not weighted:  # the common case: one pass, all in registers
        c0, c1, c2 = lead[0], lead[1], lead[2]
        t0, t1, t2 = T[0, s:e], T[1, s:e], T[2, s:e]
        a0 = a1 = a2 = 0.0
        for i in range(n):
            u0 = t0[i] - c0
            u1 = t1[i] - c1
            u2 = t2[i] - c2
            q = u0 * u0 + u1 * u1 + u2 * u2
            d2[i] = q
            wi = 1.0 if q <= core2 else 0.0
            core_w += wi
            a0 += wi * u0
            a1 += wi * u1
            a2 += wi * u2
        acc[0], acc[1], acc[2] = a0, a1, a2
    else:
        for i in range(n):
            d2[i] = 0.0
        for k in range(d):
            c = lead[k]
            for i in range(n):
                diff = T[k, s + i] - c
                d2[i] += diff * diff
        for i in range(n):
            core_w += (pw[s + i] if weighted else 1.0) if d2[i] <= core2 else 0.0
        for k in range(d):
            c = lead[k]
            a = 0.0
            for i in range(n):
                p = pw[s + i] if weighted else 1.0
                a += p * (T[k, s + i] - c) if d2[i] <= core2 else 0.0
            acc[k] = a
    if core_w > 0.0:
        _add_to_members(C, idx, p0, p1, core_w, acc, lead, out)
    S = work[4:]
    spw = work[3]
    shell = work[2].view(np.int64)
    ns = 0
    for i in range(n):  # branch-free: the shell is thin, and a branch here mispredicts
        shell[ns] = i
        ns += 1 if core2 < d2[i] <= outer2 else 0
    if ns == 0:
        return
    for q in range(ns):
        i = s + shell[q]
        for k in range(d):
            S[k, q] = T[k, i]
        spw[q] = pw[i] if weighted else 1.0
    for q in range(p0, p1):
        j = idx[q]
        if d == 3 and not weighted:  # no call per member: the shells are often small
            inside, a0, a1, a2 = _flat3(S, 0, ns, C[j, 0], C[j, 1], C[j, 2], h2)
            counts[j] += inside
            weights[j] += inside
            sums[j, 0] += a0
            sums[j, 1] += a1
            sums[j, 2] += a2
        else:
            _tile_sums(S, spw, 0, ns, C, j, h2, FLAT, weighted, work, out, 0)


#: Largest |t| for which the Gaussian group kernel replaces exp(t) by its degree-9 Taylor
#: polynomial: the truncation is then below 3e-16 relative, under the exp's own error.
_TAYLOR_REACH = 0.125
#: The same for the degree-13 polynomial (truncation below 5e-17 relative).
_TAYLOR_REACH_WIDE = 0.4
_INV_FACT = tuple(1.0 / math.factorial(k) for k in range(14))


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _gaussian_group(
    T, pw, s, e, gap2, far2, C, idx, p0, p1, lead, radius, h2, work, out
):  # pragma: no cover - compiled
    """Gaussian kernel: add the points T[:, s:e] for the centers ``idx[p0:p1]`` of one group.

    A member c = lead + delta has weight ``w(x) exp(-|delta|^2 / 2h^2) exp(t)``, with w the
    leader's weight and ``t = (x - lead) . delta / h^2``. When every |t| of the tile is at
    most ``_TAYLOR_REACH_WIDE`` (bounded by the group radius times the distance from the
    leader to the tile box's farthest corner, ``far2`` squared; ``gap2``: to the nearest),
    one exp per point serves the whole group and exp(t) is a Taylor polynomial (degree 9,
    or 13 beyond ``_TAYLOR_REACH``) whose truncation is below 3e-16 relative; otherwise
    each member runs :func:`_tile_sums`.

    Points are counted within the bandwidth only in a tile that straddles the group's
    shell, by their expanded squared distance; a (tile, member) with a point within 1e-12
    relative of the bandwidth is counted again directly, so the counts are exact.
    Unweighted points only; ``work`` holds at least ``d + 4`` rows of ``max(e - s, d)``.
    """
    sums, weights, counts = out
    d = lead.shape[0]
    n = e - s
    inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
    reach = math.sqrt(far2) * radius / h2 if h2 > 0 else np.inf
    if reach > _TAYLOR_REACH_WIDE or far2 * inv_2h2 > 700.0:
        for q in range(p0, p1):
            _tile_sums(T, pw, s, e, C, idx[q], h2, GAUSSIAN, False, work, out, 0)
        return
    wide = reach > _TAYLOR_REACH
    h = math.sqrt(h2)
    all_out = gap2 > (h + radius) ** 2 * (1.0 + 1e-9)
    all_in = h > radius and far2 <= (h - radius) ** 2 * (1.0 - 1e-9)
    d2, w, tq = work[0, :n], work[1, :n], work[2, :n]
    for i in range(n):
        d2[i] = 0.0
    for k in range(d):  # offsets from the leader, one row per feature
        c = lead[k]
        tk = T[k, s:e]
        uk = work[3 + k, :n]
        for i in range(n):
            u = tk[i] - c
            uk[i] = u
            d2[i] += u * u
    for i in range(n):
        w[i] = -d2[i] * inv_2h2
    _exp_nonpositive(w, tq)
    a = work[3 + d, :d]
    for q in range(p0, p1):
        j = idx[q]
        dd = 0.0
        for k in range(d):
            a[k] = C[j, k] - lead[k]
            dd += a[k] * a[k]
        inside = 0.0 if all_out else float(n)
        unsure = 0.0
        if dd == 0.0:  # the leader: its own weights
            total = 0.0
            for i in range(n):
                total += w[i]
            for k in range(d):
                uk = work[3 + k, :n]
                acc = 0.0
                for i in range(n):
                    acc += w[i] * uk[i]
                sums[j, k] += acc
            weights[j] += total
            if not (all_in or all_out):
                inside = 0.0
                for i in range(n):
                    inside += 1.0 if d2[i] <= h2 else 0.0
            counts[j] += inside
            continue
        if d == 3:  # one fused pass
            a0, a1, a2 = a[0] / h2, a[1] / h2, a[2] / h2
            if not (all_in or all_out):
                inside, unsure = _count3(work, n, a0, a1, a2, dd, h2)
            total, s0, s1, s2 = _taylor3(work, n, a0, a1, a2, wide)
            sk = (s0, s1, s2)
        else:
            for i in range(n):
                tq[i] = 0.0
            for k in range(d):
                ak = a[k] / h2
                uk = work[3 + k, :n]
                for i in range(n):
                    tq[i] += uk[i] * ak
            if not (all_in or all_out):
                inside, unsure = _count_expanded(d2, tq, n, dd, h2)
            total = 0.0
            for i in range(n):
                wi = w[i] * (_exp_taylor13(tq[i]) if wide else _exp_taylor(tq[i]))
                tq[i] = wi
                total += wi
        g = math.exp(-dd * inv_2h2)
        for k in range(d):
            if d == 3:
                acc = sk[k]
            else:
                uk = work[3 + k, :n]
                acc = 0.0
                for i in range(n):
                    acc += tq[i] * uk[i]
            sums[j, k] += g * (acc - total * a[k])  # offsets from the member
        weights[j] += g * total
        if unsure > 0.0:  # a point within rounding of the bandwidth: count directly
            inside = 0.0
            for i in range(n):
                r2 = 0.0
                for k in range(d):
                    diff = T[k, s + i] - C[j, k]
                    r2 += diff * diff
                inside += 1.0 if r2 <= h2 else 0.0
        counts[j] += inside


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, inline="always")
def _exp_taylor(t):  # pragma: no cover - compiled
    """exp(t) for |t| <= _TAYLOR_REACH: degree-9 Taylor polynomial (Estrin's form)."""
    f0, f1, f2, f3, f4, f5, f6, f7, f8, f9 = _INV_FACT[:10]
    t2 = t * t
    t4 = t2 * t2
    q0 = (f0 + f1 * t) + t2 * (f2 + f3 * t)
    q1 = (f4 + f5 * t) + t2 * (f6 + f7 * t)
    return q0 + t4 * (q1 + t4 * (f8 + f9 * t))


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, inline="always")
def _exp_taylor13(t):  # pragma: no cover - compiled
    """exp(t) for |t| <= _TAYLOR_REACH_WIDE: degree-13 Taylor polynomial (Estrin's form)."""
    f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13 = _INV_FACT
    t2 = t * t
    t4 = t2 * t2
    t8 = t4 * t4
    q0 = (f0 + f1 * t) + t2 * (f2 + f3 * t)
    q1 = (f4 + f5 * t) + t2 * (f6 + f7 * t)
    q2 = (f8 + f9 * t) + t2 * (f10 + f11 * t)
    q3 = f12 + f13 * t
    return (q0 + t4 * q1) + t8 * (q2 + t4 * q3)


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _count_expanded(d2, tq, n, dd, h2):  # pragma: no cover - compiled
    """Points surely within the bandwidth of a group member, and points within rounding
    of it, by the squared distance ``d2[i] + dd - 2 h2 tq[i]`` (see _gaussian_group)."""
    sure_in = h2 * (1.0 - 1e-12)
    sure_out = h2 * (1.0 + 1e-12)
    inside = unsure = 0.0
    for i in range(n):
        r2 = d2[i] + (dd - 2.0 * h2 * tq[i])
        inside += 1.0 if r2 <= sure_in else 0.0
        unsure += 1.0 if sure_in < r2 <= sure_out else 0.0
    return inside, unsure


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _count3(work, n, a0, a1, a2, dd, h2):  # pragma: no cover - compiled
    """:func:`_count_expanded` for 3 features, t computed on the way."""
    d2 = work[0, :n]
    u0, u1, u2 = work[3, :n], work[4, :n], work[5, :n]
    sure_in = h2 * (1.0 - 1e-12)
    sure_out = h2 * (1.0 + 1e-12)
    inside = unsure = 0.0
    for i in range(n):
        r2 = d2[i] + (dd - 2.0 * h2 * (u0[i] * a0 + u1[i] * a1 + u2[i] * a2))
        inside += 1.0 if r2 <= sure_in else 0.0
        unsure += 1.0 if sure_in < r2 <= sure_out else 0.0
    return inside, unsure


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _taylor3(work, n, a0, a1, a2, wide):  # pragma: no cover - compiled
    """A group member's weights for 3 features in one pass (see _gaussian_group): their
    total and offset sums from the leader, but for the factor exp(-|delta|^2 / 2h^2)."""
    w = work[1, :n]
    u0, u1, u2 = work[3, :n], work[4, :n], work[5, :n]
    total = s0 = s1 = s2 = 0.0
    if wide:
        for i in range(n):
            wi = w[i] * _exp_taylor13(u0[i] * a0 + u1[i] * a1 + u2[i] * a2)
            total += wi
            s0 += wi * u0[i]
            s1 += wi * u1[i]
            s2 += wi * u2[i]
        return total, s0, s1, s2
    for i in range(n):
        wi = w[i] * _exp_taylor(u0[i] * a0 + u1[i] * a1 + u2[i] * a2)
        total += wi
        s0 += wi * u0[i]
        s1 += wi * u1[i]
        s2 += wi * u2[i]
    return total, s0, s1, s2


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, inline="always")
def _box_reach(lo, hi, P, r):  # pragma: no cover - compiled
    """Squared distances from the point P[r] to the nearest and farthest corner of a box."""
    gap2 = 0.0
    far2 = 0.0
    for k in range(lo.shape[0]):
        c = P[r, k]
        a = max(lo[k] - c, c - hi[k], 0.0)
        gap2 += a * a
        f = max(c - lo[k], hi[k] - c)
        far2 += f * f
    return gap2, far2


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _points_sums(
    T, pw, s, e, lo, hi, C, idx, p0, p1, groups, h2, kernel, weighted, work, out
):  # pragma: no cover - compiled
    """Add the kernel sums of the points T[:, s:e] (bounding box lo, hi) for the centers
    ``idx[p0:p1]``, listed group by group (``groups``: group_of, leaders, radius).

    Compact kernels skip a center (or a whole group) whose ball misses the box, and with
    the flat kernel a box wholly inside a center's ball (or every member's) is added from
    the points' offset sums in O(d); other (center, box) pairs run the per-point loop, or
    :func:`_core_and_shell` for a group (:func:`_gaussian_group` for the Gaussian's). The
    tests keep a 1e-9 margin that covers rounding, so the result equals the per-point
    loop's.
    """
    group_of, leaders, radius = groups
    sums, weights, counts = out
    d = lo.shape[0]
    rel = work[4 + d, : d + 1]  # the points' offset sums from lo and weight, on first use
    summed = False
    compact = kernel != GAUSSIAN
    prune_h2 = h2 * (1.0 + 1e-9) + 1e-300
    inner_h2 = h2 * (1.0 - 1e-9)
    p = p0
    while p < p1:
        g = group_of[idx[p]]
        if g < 0:  # a center alone
            j = idx[p]
            p += 1
            if compact:
                gap2, far2 = _box_reach(lo, hi, C, j)
                if gap2 > prune_h2:
                    continue
                if kernel == FLAT and far2 <= inner_h2:
                    if not summed:
                        _offset_sums(T, pw, s, e, lo, weighted, rel)
                        summed = True
                    tw = rel[d]
                    counts[j] += tw
                    weights[j] += tw
                    for k in range(d):
                        sums[j, k] += rel[k] + tw * (lo[k] - C[j, k])
                    continue
                if kernel == FLAT and d == 3 and not weighted:  # no call: tiles can be small
                    inside, a0, a1, a2 = _flat3(T, s, e, C[j, 0], C[j, 1], C[j, 2], h2)
                    counts[j] += inside
                    weights[j] += inside
                    sums[j, 0] += a0
                    sums[j, 1] += a1
                    sums[j, 2] += a2
                    continue
                _tile_sums(T, pw, s, e, C, j, h2, kernel, weighted, work, out, 0)
                continue
            # Gaussian: points are counted within the bandwidth only if the box straddles it
            gap2, far2 = _box_reach(lo, hi, C, j)
            count = -1 if gap2 > prune_h2 else (1 if far2 <= inner_h2 else 0)
            _tile_sums(T, pw, s, e, C, j, h2, kernel, weighted, work, out, count)
            continue
        q = p + 1
        while q < p1 and group_of[idx[q]] == g:
            q += 1
        gap2, far2 = _box_reach(lo, hi, leaders, g)
        if kernel == GAUSSIAN:
            _gaussian_group(
                T, pw, s, e, gap2, far2, C, idx, p, q, leaders[g], radius[g], h2, work, out
            )
            p = q
            continue
        h = math.sqrt(h2)
        if gap2 > (h + radius[g]) ** 2 * (1.0 + 1e-9) + 1e-300:
            p = q
            continue
        if h > radius[g] and far2 <= (h - radius[g]) ** 2 * (1.0 - 1e-9):
            if not summed:
                _offset_sums(T, pw, s, e, lo, weighted, rel)
                summed = True
            _add_to_members(C, idx, p, q, rel[d], rel, lo, out)
        else:
            lead, r = leaders[g], radius[g]
            _core_and_shell(T, pw, s, e, C, idx, p, q, lead, r, h2, weighted, work, out)
        p = q


#: Gaussian centers on a lattice (bin seeds, before they move) get their weights as
#: products of per-axis exps when the axes have at most this many distinct values in all,
#: and at most a quarter as many as there are centers.
MAX_AXIS_VALUES = 1024


def axis_lattice(centers: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The distinct values of each coordinate of ``centers``, when they are few.

    Returns ``(values, index)``: the per-axis distinct values one axis after the other,
    and for each center and axis the row of its coordinate in ``values``; None when the
    centers are not on a lattice with few enough values (see ``MAX_AXIS_VALUES``).

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
    return np.concatenate(values), index


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _accumulate_lattice(X, C, h2, values, index, sums, weights, counts):  # pragma: no cover
    # Gaussian, unweighted: exp(-|x - c|^2 / 2h^2) is the product over the axes of
    # exp(-(x_k - c_k)^2 / 2h^2), and on a lattice those factors are shared: per point one
    # exp per distinct coordinate value instead of one per center.
    n, d = X.shape
    m = C.shape[0]
    nv = values.shape[0]
    T = np.empty((d, TILE_ROWS))
    E = np.empty((nv, TILE_ROWS))  # a row per axis value: its factor for each point
    w = np.empty(TILE_ROWS)
    scratch = np.empty(TILE_ROWS)
    axis_of = np.empty(nv, np.int64)
    for k in range(d):
        for j in range(m):
            axis_of[index[j, k]] = k
    inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
    far = 708.0 / inv_2h2 if h2 > 0 else 0.0  # beyond, the exp underflows to 0 as usual
    nonfinite = 0
    for start in range(0, n, TILE_ROWS):
        t = min(TILE_ROWS, n - start)
        _transpose(X, start, t, T)
        nonfinite += _count_nonfinite(T, t)
        for v in range(nv):
            g = values[v]
            tk = T[axis_of[v], :t]
            ev = E[v, :t]
            for i in range(t):
                u = tk[i] - g
                ev[i] = -u * u * inv_2h2
            _exp_nonpositive(ev, scratch[:t])
        for j in range(m):
            if d == 3:  # one fused pass
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
                counts[j] += inside
                weights[j] += total
                sums[j, 0] += a0
                sums[j, 1] += a1
                sums[j, 2] += a2
                continue
            wt = w[:t]
            wt[:] = E[index[j, 0], :t]
            for k in range(1, d):
                ek = E[index[j, k], :t]
                for i in range(t):
                    wt[i] *= ek[i]
            d2 = scratch[:t]  # feature by feature, as _tile_sums sums it (same rounding)
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
    return nonfinite


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _accumulate_plain(
    X, C, h2, kernel, gmembers, groups, rows_sorted, sums, weights, counts
):  # pragma: no cover - compiled
    # Unweighted, one bandwidth: kept apart from _accumulate, whose per-point weight and
    # bandwidth loads cost a third of the flat kernel's speed (measured 6.6 vs 4.4 G/s).
    # Rows in no spatial order go in long tiles with an unbounded box (it would prune
    # nothing, and the min/max loops do not vectorize).
    tile_rows = TILE_ROWS if rows_sorted else UNSORTED_TILE_ROWS
    n, d = X.shape
    m = gmembers.shape[0]
    T = np.empty((d, tile_rows))
    work = np.empty((d + 5, max(tile_rows, d + 1)))
    out = (sums, weights, counts)
    pw = np.empty(0)
    lo = np.empty(d)
    hi = np.empty(d)
    nonfinite = 0
    if not rows_sorted:
        lo[:] = -np.inf
        hi[:] = np.inf
    for start in range(0, n, tile_rows):
        t = min(tile_rows, n - start)
        _transpose(X, start, t, T)
        if rows_sorted:
            nonfinite += _bounding_box(T, 0, t, lo, hi)
        else:
            nonfinite += _count_nonfinite(T, t)
        _points_sums(T, pw, 0, t, lo, hi, C, gmembers, 0, m, groups, h2, kernel, False, work, out)
    return nonfinite


#: Most cells of the center grid used for rows in no spatial order (else the tile path).
MAX_GRID_CELLS = 2**22
#: Most (cell, center) entries of the center grid (it is broadcast to every task).
MAX_GRID_ENTRIES = 2**21


def center_grid(centers: np.ndarray, bandwidth: float):
    """A uniform grid of edge ``bandwidth`` over the centers, and each cell's candidates.

    A cell lists the centers whose distance to the cell's box is at most the bandwidth
    (ordered by their :func:`center_groups` group, then index), so a point needs to be
    compared only with its own cell's list; points outside the grid
    are farther than the bandwidth from every center. Built once per iteration on the
    client, one of the 3^d neighbouring offsets at a time (temporaries O(n_centers x d)).
    Returns None when the grid would be too large (many dimensions or centers, far-flung
    centers): the tile path is used then.

    Returns
    -------
    lo : ndarray (d,), origin; dims : ndarray (d,), cells per axis;
    start : ndarray (n_cells + 1,), CSR offsets; members : ndarray, center indices

    Examples
    --------
    >>> lo, dims, start, members = center_grid(np.array([[0.0], [5.0]]), 1.0)
    >>> dims.tolist(), np.diff(start).tolist()
    ([8], [1, 1, 1, 0, 0, 1, 1, 1])
    """
    C = np.asarray(centers, dtype=np.float64)
    m, d = C.shape
    if bandwidth <= 0 or d > 8 or 3**d * m > MAX_GRID_ENTRIES:
        return None
    lo = C.min(axis=0) - bandwidth
    dims = (np.floor((C.max(axis=0) + bandwidth - lo) / bandwidth) + 1).astype(np.int64)
    n_cells = float(np.prod(dims.astype(np.float64)))
    if n_cells > MAX_GRID_CELLS:
        return None
    strides = np.ones(d, dtype=np.int64)
    strides[:-1] = np.cumprod(dims[::-1])[::-1][1:]
    base = np.floor((C - lo) / bandwidth).astype(np.int64)
    cells, owners = [], []
    limit = bandwidth**2 * (1 + 1e-9) + 1e-300
    for offset in np.ndindex(*([3] * d)):
        idx = base + (np.array(offset) - 1)
        box_lo = lo + idx * bandwidth
        gap = np.maximum(np.maximum(box_lo - C, C - box_lo - bandwidth), 0)
        near = ((gap**2).sum(axis=1) <= limit) & ((idx >= 0) & (idx < dims)).all(axis=1)
        cells.append(idx[near] @ strides)
        owners.append(np.flatnonzero(near))
    cell = np.concatenate(cells)
    owner = np.concatenate(owners)
    # a cell lists its centers group by group (the kernels take a group's centers together)
    order = np.lexsort((owner, center_groups(C, bandwidth).group_of[owner], cell))
    start = np.zeros(int(n_cells) + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell, minlength=int(n_cells)), out=start[1:])
    return lo, dims, start, owner[order].astype(np.int64)


#: Rows of a block bucketed by grid cell at a time: bounds the cell path's temporaries.
CELL_BLOCK_ROWS = 65_536


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, inline="always")
def _flat3(T, s, e, c0, c1, c2, h2):  # pragma: no cover - compiled
    """Flat kernel, 3-d, unweighted: (count, offset sums) of T[:, s:e] for one center."""
    t0, t1, t2 = T[0, s:e], T[1, s:e], T[2, s:e]
    inside = 0.0
    a0 = a1 = a2 = 0.0
    for i in range(e - s):
        u0 = t0[i] - c0
        u1 = t1[i] - c1
        u2 = t2[i] - c2
        wi = 1.0 if u0 * u0 + u1 * u1 + u2 * u2 <= h2 else 0.0
        inside += wi
        a0 += wi * u0
        a1 += wi * u1
        a2 += wi * u2
    return inside, a0, a1, a2


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _tile_sums(T, pw, s, e, C, j, h2, kernel, weighted, work, out, count):  # pragma: no cover
    """Add the kernel sums of the points ``T[:, s:e]`` (features x points) for center j.

    ``pw`` holds point weights when ``weighted``; ``work`` has at least 3 rows of ``e - s``
    values; ``out`` is (sums, weights, counts). Three dimensions get fused loops (no
    per-feature passes). Gaussian kernel: ``count`` 0 counts the points within the
    bandwidth one by one, 1 says all of them are, -1 none (known from the tile's box).
    """
    d2, w, scratch = work[0], work[1], work[2]
    sums, weights, counts = out
    d = C.shape[1]
    n = e - s
    if d == 3:
        c0, c1, c2 = C[j, 0], C[j, 1], C[j, 2]
        t0, t1, t2 = T[0, s:e], T[1, s:e], T[2, s:e]
        if kernel == FLAT and not weighted:  # the common case: one pass, all in registers
            inside, a0, a1, a2 = _flat3(T, s, e, c0, c1, c2, h2)
            if inside > 0.0:
                counts[j] += inside
                weights[j] += inside
                sums[j, 0] += a0
                sums[j, 1] += a1
                sums[j, 2] += a2
            return
        for i in range(n):
            u0 = t0[i] - c0
            u1 = t1[i] - c1
            u2 = t2[i] - c2
            d2[i] = u0 * u0 + u1 * u1 + u2 * u2
    else:
        for i in range(n):
            d2[i] = 0.0
        for k in range(d):
            c = C[j, k]
            tk = T[k, s:e]
            for i in range(n):
                diff = tk[i] - c
                d2[i] += diff * diff
    inside = 0.0
    total = 0.0
    if kernel == GAUSSIAN:
        inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
        if count >= 0:
            if weighted:
                for i in range(n):
                    inside += pw[s + i] if d2[i] <= h2 or count == 1 else 0.0
            else:
                if count == 1:
                    inside = float(n)
                else:
                    for i in range(n):
                        inside += 1.0 if d2[i] <= h2 else 0.0
        for i in range(n):
            w[i] = -d2[i] * inv_2h2
        _exp_nonpositive(w[:n], scratch[:n])
        if weighted:
            for i in range(n):
                w[i] *= pw[s + i]
        for i in range(n):
            total += w[i]
    else:
        inv_h2 = 1.0 / h2 if h2 > 0 else 0.0
        epan = kernel != FLAT
        for i in range(n):
            q = d2[i]
            p = pw[s + i] if weighted else 1.0
            inside += p if q <= h2 else 0.0
            wi = ((1.0 - q * inv_h2) * p if epan else p) if q <= h2 else 0.0
            w[i] = wi
            total += wi
    counts[j] += inside
    if total > 0.0:
        weights[j] += total
        if d == 3:
            c0, c1, c2 = C[j, 0], C[j, 1], C[j, 2]
            t0, t1, t2 = T[0, s:e], T[1, s:e], T[2, s:e]
            a0 = a1 = a2 = 0.0
            for i in range(n):
                a0 += w[i] * (t0[i] - c0)
                a1 += w[i] * (t1[i] - c1)
                a2 += w[i] * (t2[i] - c2)
            sums[j, 0] += a0
            sums[j, 1] += a1
            sums[j, 2] += a2
        else:
            for k in range(d):
                c = C[j, k]
                tk = T[k, s:e]
                acc = 0.0
                for i in range(n):
                    acc += w[i] * (tk[i] - c)
                sums[j, k] += acc


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _transpose(X, first, rows, R):  # pragma: no cover - compiled
    """R[:, :rows] <- the first R.shape[0] columns of X[first:first + rows], as float64."""
    d = R.shape[0]
    if d == 3:  # unrolled: three times faster than the loop over features
        for i in range(rows):
            R[0, i] = np.float64(X[first + i, 0])
            R[1, i] = np.float64(X[first + i, 1])
            R[2, i] = np.float64(X[first + i, 2])
    else:
        for i in range(rows):
            for k in range(d):
                R[k, i] = np.float64(X[first + i, k])


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _grid_cells(R, rows, lo, inv, edge, cellf, cell_of):  # pragma: no cover - compiled
    """cell_of[i] <- the grid cell of the point R[:, i], -1 outside the grid (NaN too).

    Computed feature by feature in floating point (exact below 2^53 cells), so that every
    loop vectorizes; returns the number of NaN, infinite or out-of-range values.
    """
    nonfinite = 0
    for i in range(rows):
        cellf[i] = 0.0
    for k in range(R.shape[0]):
        low = lo[k]
        e = edge[k]
        r = R[k]
        for i in range(rows):
            v = r[i]
            nonfinite += 0 if abs(v) <= MAX_ABS else 1
            x = (v - low) * inv
            c = cellf[i] * e + np.floor(min(max(x, 0.0), e - 1.0))
            cellf[i] = c if (x >= 0.0) & (x < e) else -1e300  # stays negative
    for i in range(rows):
        c = cellf[i]
        cell_of[i] = np.int32(c) if c >= 0.0 else -1
    return nonfinite


@numba.njit(nogil=True, cache=True)
def _accumulate_cells(
    X, C, h2, size, kernel, wcol, lo, dims, start, members, groups, block, sums, weights, counts
):  # pragma: no cover - compiled
    # Rows are bucketed by their center-grid cell, CELL_BLOCK_ROWS at a time (a counting
    # sort into a transposed buffer); each bucket then runs, a tile at a time, against only
    # its cell's centers, with the same bounding-box pruning as the tile path. Spatially
    # unordered rows thus get the vectorized tile kernel on small, dense boxes.
    n = X.shape[0]
    d = C.shape[1]
    weighted = wcol >= 0
    inv = 1.0 / size
    n_cells = start.shape[0] - 1
    b = max(1, min(n, block))
    edge = dims.astype(np.float64)
    fill = np.zeros(n_cells, np.int32)  # per cell: its row count, then its write position
    R = np.empty((d, b))  # the block's rows, transposed
    cellf = np.empty(b)
    cell_of = np.empty(b, np.int32)
    touched = np.empty(b, np.int64)
    begin = np.empty(b + 1, np.int64)
    T = np.empty((d, b))  # ... and bucketed by cell
    pw = np.ones(b)
    work = np.empty((d + 5, max(TILE_ROWS, d + 1)))
    box_lo = np.empty(d)
    box_hi = np.empty(d)
    args = (h2, kernel, weighted, work, (sums, weights, counts))
    nonfinite = 0
    for first in range(0, n, b):
        rows = min(b, n - first)
        _transpose(X, first, rows, R)
        nonfinite += _grid_cells(R, rows, lo, inv, edge, cellf, cell_of)
        n_touched = 0
        for i in range(rows):
            cell = cell_of[i]
            if cell >= 0 and start[cell + 1] > start[cell]:
                if fill[cell] == 0:
                    touched[n_touched] = cell
                    n_touched += 1
                fill[cell] += 1
            else:
                cell_of[i] = -1  # outside the grid, or in a cell no center reaches
        pos = 0
        for t in range(n_touched):
            cell = touched[t]
            begin[t] = pos
            pos, fill[cell] = pos + fill[cell], pos
        begin[n_touched] = pos
        for i in range(rows):
            cell = cell_of[i]
            if cell >= 0:
                p = fill[cell]
                fill[cell] = p + 1
                if d == 3:
                    T[0, p] = R[0, i]
                    T[1, p] = R[1, i]
                    T[2, p] = R[2, i]
                else:
                    for k in range(d):
                        T[k, p] = R[k, i]
                if weighted:
                    pw[p] = np.float64(X[first + i, wcol])
        for t in range(n_touched):
            cell = touched[t]
            fill[cell] = 0
            for s in range(begin[t], begin[t + 1], TILE_ROWS):
                e = min(s + TILE_ROWS, begin[t + 1])
                _bounding_box(T, s, e, box_lo, box_hi)  # its NaNs are counted above
                cands = (start[cell], start[cell + 1])
                _points_sums(T, pw, s, e, box_lo, box_hi, C, members, *cands, groups, *args)
    return nonfinite


def chunk_stats(
    X: np.ndarray,
    centers: np.ndarray,
    bandwidth: float,
    kernel: int,
    weighted: bool = False,
    adaptive: bool = False,
    grid: tuple | None = None,
    rows_sorted: bool = True,
) -> ChunkStats:
    """Kernel-weighted sums of one block of points for every center.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features) or (n_rows, n_features + 1), float32/float64
        The points; with ``weighted``, a last column of point weights (>= 0).
    centers : ndarray of shape (n_centers, n_features), float64
    bandwidth : float
    kernel : int
        One of ``FLAT``, ``GAUSSIAN``, ``EPANECHNIKOV``.
    weighted : bool, default=False
        A point of weight w counts as w points (in the sums, weights and counts).
    adaptive : bool, default=False
        X's last column holds each point's own bandwidth h_i (after the weight column if
        ``weighted``), used instead of ``bandwidth``: a point's kernel weight is
        ``K(|x - c| / h_i) (bandwidth / h_i)^d`` (``bandwidth`` only scales all weights
        alike, keeping them finite), and it counts in ``counts`` when ``|x - c| <= h_i``.
    grid : tuple, default=None
        :func:`center_grid` of the centers (compact kernels, fixed bandwidth): the rows are
        bucketed by grid cell (``CELL_BLOCK_ROWS`` at a time) and each bucket runs through
        the tile kernel against its cell's centers only. Several times faster on rows in
        no spatial order (streamed data); same result.
    rows_sorted : bool, default=True
        Whether the rows are in spatial order (see :func:`spatially_sorted`). If not, and
        without ``grid``, the compact kernels' tiles are ``UNSORTED_TILE_ROWS`` long instead
        of ``TILE_ROWS`` and get no bounding box: it would be too wide to skip anything,
        and fewer, longer tiles save the fixed cost per (tile, center). Same result but
        for rounding.

    Returns
    -------
    ChunkStats

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> s = chunk_stats(X, np.array([[0.5]]), 1.0, FLAT)
    >>> s.sums, s.weights, s.counts, s.n_nonfinite
    (array([[0.]]), array([2.]), array([2.]), 0)
    """
    m, d = centers.shape
    sums = np.zeros((m, d), dtype=np.float64)
    weights = np.zeros(m, dtype=np.float64)
    counts = np.zeros(m, dtype=np.float64)
    hsums = np.zeros(m, dtype=np.float64)
    X = np.ascontiguousarray(X)
    C = np.ascontiguousarray(centers, dtype=np.float64)
    h2 = float(bandwidth) ** 2
    wcol = d if weighted else -1
    hcol = d + int(weighted) if adaptive else -1
    # centers close together are taken as groups (center_groups): flat kernel, and the
    # Gaussian on unweighted points with one bandwidth
    plain = not weighted and not adaptive  # the Gaussian's groups and lattice need this
    fraction = {FLAT: GROUP_RADIUS, GAUSSIAN: GAUSSIAN_GROUP_RADIUS if plain else 0.0}
    groups = center_groups(C, bandwidth, fraction.get(kernel, 0.0))
    lattice = axis_lattice(C) if kernel == GAUSSIAN and plain and m >= 4 else None
    if grid is not None and kernel != GAUSSIAN and not adaptive:
        lo, dims, start, members = grid
        tile_groups = (groups.group_of, groups.leaders, groups.radius)
        args = (kernel, wcol, lo, dims, start, members, tile_groups, CELL_BLOCK_ROWS)
        bad = _accumulate_cells(X, C, h2, float(bandwidth), *args, sums, weights, counts)
    elif lattice is not None:
        bad = _accumulate_lattice(X, C, h2, *lattice, sums, weights, counts)
    elif plain:
        tile_groups = (groups.group_of, groups.leaders, groups.radius)
        boxed = rows_sorted or kernel == GAUSSIAN  # its groups need small boxes
        args = (kernel, groups.members, tile_groups, boxed)
        bad = _accumulate_plain(X, C, h2, *args, sums, weights, counts)
    else:
        bad = _accumulate(X, C, h2, kernel, wcol, hcol, sums, weights, counts, hsums)
    return ChunkStats(sums, weights, counts, int(bad), hsums)


def add_stats(*parts: ChunkStats) -> ChunkStats:
    """Add partial :class:`ChunkStats` (the combine step of the tree reduction)."""
    first = parts[0]
    sums, weights, counts = first.sums.copy(), first.weights.copy(), first.counts.copy()
    hsums = first.bandwidths.copy()
    nonfinite = first.n_nonfinite
    for p in parts[1:]:
        sums += p.sums
        weights += p.weights
        counts += p.counts
        hsums += p.bandwidths
        nonfinite += p.n_nonfinite
    return ChunkStats(sums, weights, counts, nonfinite, hsums)


#: The error for data to label that hold NaN, inf or values out of range.
PREDICT_RANGE_MESSAGE = (
    f"X contains NaN or infinite values or values beyond dshift's range {X_RANGE}; remove or "
    "impute them before predicting."
)


@numba.njit(nogil=True, cache=True)
def _nearest(X, C, h2, cluster_all, labels):  # pragma: no cover - compiled
    # h2: squared orphan radius of each center
    n, d = X.shape
    m = C.shape[0]
    nonfinite = 0
    for i in range(n):
        best = np.inf
        best_j = -1
        in_range = True
        for k in range(d):
            in_range &= abs(np.float64(X[i, k])) <= MAX_ABS  # false for NaN and inf too
        for j in range(m if in_range else 0):
            d2 = 0.0
            for k in range(d):
                t = np.float64(X[i, k]) - C[j, k]
                d2 += t * t
            if d2 < best:
                best = d2
                best_j = j
        if best_j < 0:  # only when the row holds NaN, inf or values out of range
            nonfinite += 1
        elif not cluster_all and best > h2[best_j]:
            best_j = -1
        labels[i] = best_j
    return nonfinite


def nearest_labels(
    X: np.ndarray,
    centers: np.ndarray,
    bandwidth: float | np.ndarray = np.inf,
    cluster_all: bool = True,
) -> np.ndarray:
    """Index of the nearest center for each row (first one on ties).

    With ``cluster_all=False``, rows farther than ``bandwidth`` from their nearest center get
    -1 (``bandwidth`` may be one radius per center).

    Raises
    ------
    ValueError
        If a row holds NaN, infinite or out-of-range values (see :mod:`dshift._limits`).

    Examples
    --------
    >>> import numpy as np
    >>> nearest_labels(np.array([[0.0], [2.9], [9.0]]), np.array([[0.0], [3.0]]), 1.0, False)
    array([ 0,  1, -1], dtype=int32)
    """
    labels = np.empty(X.shape[0], dtype=np.int32)
    C = np.ascontiguousarray(centers, dtype=np.float64)
    h2 = np.ascontiguousarray(
        np.broadcast_to(np.asarray(bandwidth, dtype=np.float64) ** 2, (len(C),))
    )
    if _nearest(np.ascontiguousarray(X), C, h2, bool(cluster_all), labels):
        raise ValueError(PREDICT_RANGE_MESSAGE)
    return labels


def bin_cells(
    X: np.ndarray, bin_size: float, weighted: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """Occupied grid cells ``round(x / bin_size)`` of a block and their point counts.

    With ``weighted``, the last column of X holds point weights and a cell's count is the
    sum of its points' weights (float64).

    The block is processed in tiles of ``BIN_TILE_ROWS`` rows, so temporaries are bounded
    by the tile and the number of distinct cells, whatever the block size. Rows holding NaN,
    infinite or out-of-range (``|x| > MAX_ABS``) values are skipped and their values counted.

    Returns
    -------
    cells : ndarray of shape (n_cells, n_features), float64, sorted lexicographically
    counts : ndarray of shape (n_cells,), int64
    n_nonfinite : int

    Examples
    --------
    >>> import numpy as np
    >>> cells, counts, bad = bin_cells(np.array([[0.1, 0.2], [0.4, 0.3], [2.0, np.nan]]), 1.0)
    >>> cells.tolist(), counts.tolist(), bad
    ([[0.0, 0.0]], [2], 1)
    """
    d = X.shape[1] - 1 if weighted else X.shape[1]
    cells = np.empty((0, d), dtype=np.float64)
    counts = np.empty(0, dtype=np.float64 if weighted else np.int64)
    nonfinite = 0
    for start in range(0, X.shape[0], BIN_TILE_ROWS):
        tile = np.asarray(X[start : start + BIN_TILE_ROWS], dtype=np.float64)
        finite = np.abs(tile) <= MAX_ABS  # false for NaN and inf too
        nonfinite += int(finite.size - np.count_nonzero(finite))
        tile = tile[finite.all(axis=1)]
        q = np.round(tile[:, :d] / bin_size)
        if weighted:
            tile_cells, inverse = np.unique(q, axis=0, return_inverse=True)
            tile_counts = np.bincount(inverse.ravel(), tile[:, d], minlength=len(tile_cells))
        else:
            tile_cells, tile_counts = _unique_rows(q)
        cells, counts, _ = merge_cells((cells, counts, 0), (tile_cells, tile_counts, 0))
    return cells, counts, nonfinite


def _unique_rows(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(q, axis=0, return_counts=True)`` for integer-valued float rows, fast.

    Rows are encoded as one int64 key in mixed radix (first column most significant, so the
    order stays lexicographic) when the tile's ranges allow; otherwise numpy's row unique.
    """
    if len(q) == 0:
        return q, np.empty(0, dtype=np.int64)
    lo = q.min(axis=0)
    span = q.max(axis=0) - lo + 1
    if float(np.prod(span)) >= 2.0**62:
        return np.unique(q, axis=0, return_counts=True)
    radix = np.ones(q.shape[1], dtype=np.int64)
    radix[:-1] = np.cumprod(span[::-1].astype(np.int64))[::-1][1:]
    keys, counts = np.unique((q - lo).astype(np.int64) @ radix, return_counts=True)
    cells = (keys[:, None] // radix) % span.astype(np.int64) + lo
    return cells.astype(np.float64), counts


def merge_cells(
    *parts: tuple[np.ndarray, np.ndarray, int],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Union of (cells, counts, n_nonfinite) sets, adding the counts of shared cells.

    >>> import numpy as np
    >>> a = (np.array([[0.0], [1.0]]), np.array([2, 1]), 0)
    >>> b = (np.array([[1.0], [4.0]]), np.array([5, 1]), 3)
    >>> cells, counts, bad = merge_cells(a, b)
    >>> cells.ravel().tolist(), counts.tolist(), bad
    ([0.0, 1.0, 4.0], [2, 6, 1], 3)
    """
    cells = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    nonfinite = sum(p[2] for p in parts)
    if len(cells) == 0:
        return cells, counts, nonfinite
    merged, inverse = np.unique(cells, axis=0, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=counts, minlength=len(merged))
    return merged, summed.astype(counts.dtype), nonfinite


@numba.njit(nogil=True, cache=True)
def _sq_distances(A, B, out):  # pragma: no cover - compiled
    for i in range(A.shape[0]):
        for j in range(B.shape[0]):
            d2 = 0.0
            for c in range(A.shape[1]):
                t = A[i, c] - B[j, c]
                d2 += t * t
            out[i, j] = d2


#: Elements of the (rows x sample) distance tile in kth_neighbor_distances.
KNN_TILE_ELEMENTS = 2**22


def kth_neighbor_distances(sample: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of ``sample`` to its k-th nearest row, itself included.

    Distances are computed a tile of rows at a time (at most ``KNN_TILE_ELEMENTS`` values),
    so memory stays bounded; time is O(n^2 d) for n rows.

    Examples
    --------
    >>> import numpy as np
    >>> kth_neighbor_distances(np.array([[0.0], [1.0], [3.0]]), 2).tolist()
    [1.0, 1.0, 2.0]
    """
    S = np.ascontiguousarray(sample, dtype=np.float64)
    n = len(S)
    rows = max(1, KNN_TILE_ELEMENTS // n)
    out = np.empty(n, dtype=np.float64)
    tile = np.empty((min(rows, n), n), dtype=np.float64)
    for start in range(0, n, rows):
        part = tile[: min(rows, n - start)]
        _sq_distances(S[start : start + rows], S, part)
        out[start : start + len(part)] = np.sqrt(np.partition(part, k - 1, axis=1)[:, k - 1])
    return out


@numba.njit(nogil=True, cache=True)
def _morton_codes(X, d, bits, lo, scale):  # pragma: no cover - compiled
    # Bit b of feature k's quantized value goes to bit b * d + k of the row's code.
    n = X.shape[0]
    top = float(2**bits - 1)
    codes = np.empty(n, np.uint64)
    for i in range(n):
        code = np.uint64(0)
        for k in range(d):
            q = np.uint64(min(max((np.float64(X[i, k]) - lo[k]) * scale[k], 0.0), top))
            for b in range(bits):
                code |= ((q >> np.uint64(b)) & np.uint64(1)) << np.uint64(b * d + k)
        codes[i] = code
    return codes


@numba.njit(nogil=True, cache=True)
def _radix_argsort(codes, n_bits):  # pragma: no cover - compiled
    # Stable least-significant-digit radix sort, 11 bits per pass.
    n = codes.shape[0]
    order = np.arange(n)
    keys = codes.copy()
    order2 = np.empty(n, np.int64)
    keys2 = np.empty(n, np.uint64)
    shift = 0
    while shift < n_bits:
        count = np.zeros(2049, np.int64)
        for i in range(n):
            count[((keys[i] >> np.uint64(shift)) & np.uint64(2047)) + 1] += 1
        for v in range(2048):
            count[v + 1] += count[v]
        for i in range(n):
            digit = (keys[i] >> np.uint64(shift)) & np.uint64(2047)
            p = count[digit]
            count[digit] = p + 1
            order2[p] = order[i]
            keys2[p] = keys[i]
        order, order2 = order2, order
        keys, keys2 = keys2, keys
        shift += 11
    return order


@numba.njit(nogil=True, cache=True)
def _finite_bounds(X, d):  # pragma: no cover - compiled
    """(all in range?, lower corner, upper corner) of the first d columns of X, in one pass
    (in range: every column's ``|x| <= MAX_ABS``, false for NaN and inf)."""
    lo = np.full(d, np.inf)
    hi = np.full(d, -np.inf)
    finite = True
    for i in range(X.shape[0]):
        for k in range(X.shape[1]):
            v = np.float64(X[i, k])
            finite &= abs(v) <= MAX_ABS  # false for NaN and inf too
            if k < d:
                lo[k] = min(lo[k], v)
                hi[k] = max(hi[k], v)
    return finite, lo, hi


@numba.njit(nogil=True, cache=True)
def _take_rows(X, order):  # pragma: no cover - compiled
    out = np.empty_like(X)
    for i in range(order.shape[0]):
        out[i] = X[order[i]]
    return out


def _morton(X: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    n, d = X.shape[0], lo.shape[0]
    bits = max(1, min(10, 63 // max(d, 1)))  # 1024 levels per feature: plenty for tiles
    span = hi - lo
    span[~(span > 0)] = 1.0
    codes = _morton_codes(X, d, bits, lo, float(2**bits - 1) / span)
    return _radix_argsort(codes, bits * d) if n else np.arange(0)


def morton_order(X: np.ndarray) -> np.ndarray:
    """Row order that follows a Z-order (Morton) curve through the block's bounding box.

    Consecutive rows in this order are close in space, so a tile of ``TILE_ROWS`` rows
    has a small bounding box and the compact kernels can skip it for far centers. Each
    feature is quantized to ``min(10, 63 // n_features)`` bits (at least 1) over the block's
    range; the interleaved codes are sorted by a stable radix sort (compiled).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[9.0, 9.0], [0.0, 0.0], [9.0, 0.0], [0.0, 9.0]])
    >>> morton_order(X).tolist()
    [1, 2, 3, 0]
    """
    X = np.ascontiguousarray(X)
    _, lo, hi = _finite_bounds(X, X.shape[1])
    return _morton(X, lo, hi)


def spatially_sorted(X: np.ndarray, n_features: int | None = None) -> np.ndarray:
    """The rows of a block in :func:`morton_order` of their first ``n_features`` columns
    (all by default; extra columns, such as weights, move with their row). Blocks with
    NaN, inf or out-of-range values are returned as they are."""
    X = np.ascontiguousarray(X)
    d = X.shape[1] if n_features is None else n_features
    finite, lo, hi = _finite_bounds(X, d)
    if not finite:
        return X  # the fit raises on the first pass anyway
    return _take_rows(X, _morton(X, lo, hi))


def grid_cells(
    X: np.ndarray, cell_size: float, weighted: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Occupied cells ``floor(x / cell_size)`` of a block, with their points' sums and weights.

    With ``weighted``, the last column of X holds point weights. The block is processed in
    tiles of ``BIN_TILE_ROWS`` rows, so temporaries are bounded by the tile and the number
    of occupied cells. Rows holding NaN, inf or out-of-range (``|x| > MAX_ABS``) values are
    skipped and their values counted.

    Returns
    -------
    cells : ndarray of shape (n_cells, n_features), float64 (integer-valued), sorted
    sums : ndarray of shape (n_cells, n_features), float64
        Weighted sum of the points in each cell.
    weights : ndarray of shape (n_cells,), float64
        Sum of the points' weights (their number when unweighted).
    n_nonfinite : int

    Examples
    --------
    >>> import numpy as np
    >>> cells, sums, w, bad = grid_cells(np.array([[0.1], [0.3], [1.5]]), 1.0)
    >>> cells.ravel().tolist(), sums.ravel().tolist(), w.tolist(), bad
    ([0.0, 1.0], [0.4, 1.5], [2.0, 1.0], 0)
    """
    d = X.shape[1] - 1 if weighted else X.shape[1]
    out = (np.empty((0, d)), np.empty((0, d)), np.empty(0), 0)
    for start in range(0, X.shape[0], BIN_TILE_ROWS):
        tile = np.asarray(X[start : start + BIN_TILE_ROWS], dtype=np.float64)
        finite = np.abs(tile) <= MAX_ABS  # false for NaN and inf too
        bad = int(finite.size - np.count_nonzero(finite))
        tile = tile[finite.all(axis=1)]
        points = tile[:, :d]
        w = tile[:, d] if weighted else np.ones(len(tile))
        cells, inverse = _unique_rows_inverse(np.floor(points / cell_size))
        sums = np.stack(
            [np.bincount(inverse, points[:, k] * w, len(cells)) for k in range(d)], axis=1
        ).reshape(len(cells), d)
        part = (cells, sums, np.bincount(inverse, w, len(cells)), bad)
        out = merge_grid_cells(out, part)
    return out


def _unique_rows_inverse(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(q, axis=0, return_inverse=True)`` for integer-valued float rows, fast
    (one int64 key per row in mixed radix when the ranges allow, as in ``_unique_rows``)."""
    if len(q) == 0:
        return q, np.empty(0, dtype=np.intp)
    lo = q.min(axis=0)
    span = q.max(axis=0) - lo + 1
    if float(np.prod(span)) >= 2.0**62:
        cells, inverse = np.unique(q, axis=0, return_inverse=True)
        return cells, inverse.ravel()
    radix = np.ones(q.shape[1], dtype=np.int64)
    radix[:-1] = np.cumprod(span[::-1].astype(np.int64))[::-1][1:]
    keys, inverse = np.unique((q - lo).astype(np.int64) @ radix, return_inverse=True)
    cells = (keys[:, None] // radix) % span.astype(np.int64) + lo
    return cells.astype(np.float64), inverse


def merge_grid_cells(
    *parts: tuple[np.ndarray, np.ndarray, np.ndarray, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Union of :func:`grid_cells` results, adding the sums and weights of shared cells."""
    cells = np.concatenate([p[0] for p in parts])
    sums = np.concatenate([p[1] for p in parts])
    weights = np.concatenate([p[2] for p in parts])
    bad = sum(p[3] for p in parts)
    if len(cells) == 0:
        return cells, sums, weights, bad
    merged, inverse = np.unique(cells, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    d = cells.shape[1]
    summed = np.stack(
        [np.bincount(inverse, sums[:, k], len(merged)) for k in range(d)], axis=1
    ).reshape(len(merged), d)
    return merged, summed, np.bincount(inverse, weights, len(merged)), bad


def _void_rows(a: np.ndarray) -> np.ndarray:
    """Each row of an integer-valued float array as one opaque value (sortable, comparable).

    The keys stay float64 (adding 0.0 turns -0.0 into 0.0, so equal values have equal
    bytes): a cell index beyond 2**63 (``|x| / cell_size`` can reach 1e300 in dshift's
    range) would not survive a cast to int64.
    """
    a = np.ascontiguousarray(a, dtype=np.float64) + 0.0
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()


def cell_table(cells: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort (cell, label) pairs for :func:`cell_labels`' lookups.

    Parameters
    ----------
    cells : ndarray of shape (n_cells, n_features), integer-valued
    labels : ndarray of shape (n_cells,), int32

    Returns
    -------
    keys : ndarray of shape (n_cells, n_features), float64 (integer-valued), in lookup order
    labels : ndarray of shape (n_cells,), int32, in the same order
    """
    keys = np.ascontiguousarray(cells, dtype=np.float64)
    order = np.argsort(_void_rows(keys), kind="stable")
    return keys[order], np.asarray(labels, dtype=np.int32)[order]


def cell_labels(
    X: np.ndarray,
    cell_size: float,
    keys: np.ndarray,
    labels: np.ndarray,
    centers: np.ndarray,
    bandwidth: float = np.inf,
    cluster_all: bool = True,
) -> np.ndarray:
    """Label of each row: the label of its grid cell ``floor(x / cell_size)`` in the table.

    Rows whose cell is not in the table get their nearest center (as
    :func:`nearest_labels`). Works a tile of ``BIN_TILE_ROWS`` rows at a time.

    Examples
    --------
    >>> import numpy as np
    >>> keys, labels = cell_table(np.array([[0], [1]]), np.array([1, 0]))
    >>> cell_labels(np.array([[0.5], [1.2], [7.0]]), 1.0, keys, labels, np.array([[1.0], [0.0]]))
    array([1, 0, 0], dtype=int32)
    """
    table = _void_rows(keys)
    out = np.empty(X.shape[0], dtype=np.int32)
    for start in range(0, X.shape[0], BIN_TILE_ROWS):
        tile = np.asarray(X[start : start + BIN_TILE_ROWS], dtype=np.float64)
        if not (np.abs(tile) <= MAX_ABS).all():  # false for NaN and inf too
            raise ValueError(PREDICT_RANGE_MESSAGE)
        query = _void_rows(np.floor(tile / cell_size))
        idx = np.minimum(np.searchsorted(table, query), len(table) - 1)
        found = table[idx] == query
        part = out[start : start + len(tile)]
        part[found] = labels[idx[found]]
        if not found.all():
            part[~found] = nearest_labels(tile[~found], centers, bandwidth, cluster_all)
    return out


def kth_distances_to(
    X: np.ndarray, sample: np.ndarray, k: int, floor: float = 0.0, n_features: int | None = None
) -> np.ndarray:
    """Distance from each row of X to its k-th nearest row of ``sample`` (at least ``floor``).

    Computed a tile of rows at a time (at most ``KNN_TILE_ELEMENTS`` distances), so memory
    stays bounded whatever the block size. Only X's first ``n_features`` columns are used.

    Examples
    --------
    >>> import numpy as np
    >>> kth_distances_to(np.array([[0.0], [10.0]]), np.array([[1.0], [3.0], [4.0]]), 2).tolist()
    [3.0, 7.0]
    """
    S = np.ascontiguousarray(sample, dtype=np.float64)
    n = X.shape[0]
    rows = max(1, KNN_TILE_ELEMENTS // len(S))
    out = np.empty(n, dtype=np.float64)
    tile = np.empty((min(rows, n), len(S)), dtype=np.float64)
    for start in range(0, n, rows):
        A = np.ascontiguousarray(X[start : start + rows, :n_features], dtype=np.float64)
        part = tile[: len(A)]
        _sq_distances(A, S, part)
        out[start : start + len(A)] = np.sqrt(np.partition(part, k - 1, axis=1)[:, k - 1])
    return np.maximum(out, floor)
