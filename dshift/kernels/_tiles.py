"""The tile driver: a block of points walked a tile at a time, each tile's sums added for
the centers it may reach.

:func:`tile_loop` is the one loop over a block's tiles. numba compiles it once per
combination of optional columns: plain points (``wcol`` and ``hcol`` None), weighted points
and points with their own bandwidths; the ``is None`` tests are resolved at compile time, so
the plain variant carries no weight or bandwidth loads (they cost a third of the flat
kernel's speed when they were runtime flags: 6.6 against 4.4 G/s). Plain tiles go through
:func:`points_sums`, which uses the tile's bounding box and the center groups; weighted and
adaptive tiles run every center over the tile's points, with the box for pruning only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from dshift.kernels._config import (
    FASTMATH,
    FLAT,
    GAUSSIAN,
    INNER,
    JIT,
    SHELL,
    ZERO,
    work_buffer,
)
from dshift.kernels._exp import exp_nonpositive
from dshift.kernels._gaussian import gaussian_group
from dshift.kernels._groups import Group, add_to_members, core_and_shell, offset_sums
from dshift.kernels._tile_sums import (
    add3,
    bounding_box,
    box_reach,
    count_nonfinite,
    flat3,
    tile_sums,
    transpose,
)


class Tile(NamedTuple):
    """Points ``T[:, s:e]`` (features x points) with their bounding box ``lo``, ``hi`` and
    their weights ``pw`` (None: unweighted)."""

    T: np.ndarray
    pw: np.ndarray | None
    s: int
    e: int
    lo: np.ndarray
    hi: np.ndarray


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _add_box(C, j, rel, lo, sums, weights, counts):
    """Add a whole box (its weight ``rel[d]``, offset sums ``rel[:d]`` from ``lo``) to
    center j's sums."""
    d = lo.shape[0]
    tw = rel[d]
    counts[j] += tw
    weights[j] += tw
    for k in range(d):
        sums[j, k] += rel[k] + tw * (lo[k] - C[j, k])


@numba.njit(**INNER, fastmath=FASTMATH)
def points_sums(tile, centers, groups, members, work):
    """Add the kernel sums of a tile for the centers ``members``, listed group by group
    (``centers``: the :class:`~dshift.kernels._tile_sums.Centers`; ``groups``: their
    :class:`~dshift.kernels._groups.CenterGroups`, whose own list of members is not read).

    Compact kernels skip a center (or a whole group) whose ball misses the box, and with
    the flat kernel a box wholly inside a center's ball (or every member's) is added from
    the points' offset sums in O(d); other (center, box) pairs run the per-point loop, or
    :func:`~dshift.kernels._groups.core_and_shell` for a group
    (:func:`~dshift.kernels._gaussian.gaussian_group` for the Gaussian's). The tests keep a
    1e-9 margin that covers rounding, so the result equals the per-point loop's. (The
    records are unpacked once, here: an array taken from a tuple inside the loop over
    centers costs a reference count update per center, which tripled this loop's time.)
    """
    T, pw, s, e, lo, hi = tile
    C, h2, kernel, out = centers
    sums, weights, counts = out
    group_of, _, leaders, radius = groups
    d = lo.shape[0]
    rel = work[SHELL + d, : d + 1]  # the points' offset sums from lo and weight, on first use
    summed = False
    compact = kernel != GAUSSIAN
    prune_h2 = h2 * (1.0 + 1e-9) + 1e-300
    inner_h2 = h2 * (1.0 - 1e-9)
    h = math.sqrt(h2)
    p, p1 = 0, members.shape[0]
    while p < p1:
        g = group_of[members[p]]
        if g < 0:  # a center alone
            j = members[p]
            p += 1
            gap2, far2 = box_reach(lo, hi, C, j)
            if not compact:  # points are counted only if the box straddles the bandwidth
                count = -1 if gap2 > prune_h2 else (1 if far2 <= inner_h2 else 0)
                tile_sums(T, pw, s, e, centers, j, work, count)
            elif gap2 > prune_h2:
                continue
            elif kernel == FLAT and far2 <= inner_h2:  # the box is inside the ball: O(d)
                if not summed:
                    offset_sums(T, pw, s, e, lo, rel)
                    summed = True
                _add_box(C, j, rel, lo, sums, weights, counts)
            elif kernel == FLAT and d == 3 and pw is None:  # no call: tiles can be small
                inside, offsets = flat3(T, s, e, C[j, 0], C[j, 1], C[j, 2], h2)
                add3(sums, weights, counts, j, inside, inside, offsets)
            else:
                tile_sums(T, pw, s, e, centers, j, work, ZERO)
            continue
        q = p + 1
        while q < p1 and group_of[members[q]] == g:
            q += 1
        gap2, far2 = box_reach(lo, hi, leaders, g)
        lead, r = leaders[g], radius[g]
        if kernel == GAUSSIAN:
            gaussian_group(T, s, e, gap2, far2, centers, Group(members[p:q], lead, r), work)
        elif gap2 > (h + r) ** 2 * (1.0 + 1e-9) + 1e-300:
            pass
        elif h > r and far2 <= (h - r) ** 2 * (1.0 - 1e-9):
            if not summed:
                offset_sums(T, pw, s, e, lo, rel)
                summed = True
            add_to_members(C, members[p:q], rel[d], rel, lo, out)
        else:
            core_and_shell(T, pw, s, e, centers, Group(members[p:q], lead, r), work)
        p = q


class PointColumns(NamedTuple):
    """One tile's per-point weights and bandwidths (weighted or adaptive points).

    ``pw``: weights; ``ph``, ``ph2``: bandwidths and their squares; ``pnorm``: weight /
    (h_i / h)^d, the factor that makes a point's kernel integrate to its weight.
    """

    pw: np.ndarray
    ph: np.ndarray
    ph2: np.ndarray
    pnorm: np.ndarray


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _load_columns(X, start, t, d, wcol, hcol, h2, cols):
    """Load the tile's weights and bandwidths; returns the largest squared bandwidth."""
    pw, ph, ph2, pnorm = cols
    if wcol is not None:  # point weights ride in a column after the features
        for i in range(t):
            pw[i] = np.float64(X[start + i, wcol])
    if hcol is None:
        return h2
    log_href = 0.5 * math.log(h2) if h2 > 0 else 0.0  # reference for the adaptive weights
    tile_h2 = 0.0
    for i in range(t):  # and so do per-point bandwidths
        hv = np.float64(X[start + i, hcol])
        ph[i] = hv
        ph2[i] = hv * hv
        # w / (h_i / h)^d, in log space so that high dimensions cannot overflow
        pnorm[i] = pw[i] * math.exp(min(700.0, max(-700.0, d * (log_href - math.log(hv)))))
        tile_h2 = max(tile_h2, hv * hv)
    return tile_h2


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _adaptive_weights(d2, t, kernel, pw, ph2, pnorm, w, scratch):
    """w[:t] <- kernel weights from the squared distances, each point with its own squared
    bandwidth ``ph2`` and factor ``pnorm`` (see :class:`PointColumns`); returns the weight
    within the bandwidth."""
    inside = 0.0
    for i in range(t):
        inside += pw[i] if d2[i] <= ph2[i] else 0.0
    if kernel == FLAT:
        for i in range(t):
            w[i] = pnorm[i] if d2[i] <= ph2[i] else 0.0
    elif kernel == GAUSSIAN:
        for i in range(t):
            w[i] = -0.5 * d2[i] / ph2[i]
        exp_nonpositive(w[:t], scratch[:t])
        for i in range(t):
            w[i] *= pnorm[i]
    else:
        for i in range(t):
            w[i] = (1.0 - d2[i] / ph2[i]) * pnorm[i] if d2[i] <= ph2[i] else 0.0
    return inside


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _weighted_weights(d2, t, h2, kernel, pw, w, scratch):
    """w[:t] <- kernel weights from the squared distances, for points of weights ``pw``;
    returns (weight within the bandwidth, total weight)."""
    inside = 0.0
    for i in range(t):
        inside += pw[i] if d2[i] <= h2 else 0.0
    if kernel == FLAT:
        for i in range(t):
            w[i] = pw[i] if d2[i] <= h2 else 0.0
        return inside, inside
    total = 0.0
    if kernel == GAUSSIAN:
        inv_2h2 = 0.5 / h2 if h2 > 0 else 0.0
        for i in range(t):
            w[i] = -d2[i] * inv_2h2
        exp_nonpositive(w[:t], scratch[:t])
        for i in range(t):
            w[i] *= pw[i]
            total += w[i]
        return inside, total
    inv_h2 = 1.0 / h2 if h2 > 0 else 0.0
    for i in range(t):
        wi = (1.0 - d2[i] * inv_h2) * pw[i] if d2[i] <= h2 else 0.0
        w[i] = wi
        total += wi
    return inside, total


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def pointwise_sums(tile, centers, tile_h2, adaptive, cols, buffers, hsums):
    """Add the sums of a :class:`Tile` of weighted (or ``adaptive``) points, from its
    first, for every center: each center runs over the tile's points, unless the box is
    out of its reach.

    ``cols`` are the points' :class:`PointColumns` (the largest squared bandwidth:
    ``tile_h2``), ``hsums`` the sums of weight x bandwidth (adaptive points only).
    ``buffers`` are three separately allocated arrays (squared distances, weights, exp's
    scratch): rows of one work buffer could overlap for all the compiler knows, and its
    alias checks change how the weight sums vectorize (their rounding, and their speed).
    """
    T, _, _, t, lo, hi = tile
    C, h2, kernel, out = centers
    sums, weights, counts = out
    pw, ph, ph2, pnorm = cols
    m, d = C.shape
    d2, w, scratch = buffers[0][:t], buffers[1], buffers[2]
    # A tile is skipped for a center only if its bounding box is farther than the
    # (largest) bandwidth by a margin that covers rounding: exact for compact kernels.
    prune_h2 = tile_h2 * (1.0 + 1e-9) + 1e-300
    for j in range(m):
        if kernel != GAUSSIAN and box_reach(lo, hi, C, j)[0] > prune_h2:
            continue
        for i in range(t):
            d2[i] = 0.0
        for k in range(d):
            c = C[j, k]
            for i in range(t):
                diff = T[k, i] - c
                d2[i] += diff * diff
        if adaptive:
            inside = _adaptive_weights(d2, t, kernel, pw, ph2, pnorm, w, scratch)
            total = hacc = 0.0
            for i in range(t):
                total += w[i]
                hacc += w[i] * ph[i]
            hsums[j] += hacc
        else:
            inside, total = _weighted_weights(d2, t, h2, kernel, pw, w, scratch)
        counts[j] += inside
        if total > 0.0:
            weights[j] += total
            for k in range(d):
                c = C[j, k]
                acc = 0.0
                for i in range(t):
                    acc += w[i] * (T[k, i] - c)
                sums[j, k] += acc


@numba.njit(**JIT, fastmath=FASTMATH)
def tile_loop(X, centers, groups, tile_rows, boxed, wcol, hcol, hsums):
    """Add the kernel sums of the block X (features first, then the optional weight column
    ``wcol`` and bandwidth column ``hcol``) for the :class:`~dshift.kernels._tile_sums.Centers`
    (grouped as ``groups`` says), a tile at a time; ``hsums``: the sums of weight x
    bandwidth, added to with per-point bandwidths.

    Plain points use ``tile_rows``-row tiles, with their bounding box when ``boxed`` (rows
    in spatial order) and with an unbounded one otherwise (it would prune nothing, and the
    min/max loops do not vectorize); weighted or adaptive points use boxed
    ``tile_rows``-row tiles. Returns the count of NaN, infinite or out-of-range values.
    """
    C, h2, _, _ = centers
    members = groups.members
    n, d = X.shape[0], C.shape[1]
    T = np.empty((d, tile_rows))
    work = work_buffer(d, tile_rows)
    lo = np.full(d, -np.inf)
    hi = np.full(d, np.inf)
    rows = 1 if wcol is None and hcol is None else tile_rows
    cols = PointColumns(np.ones(rows), np.ones(rows), np.ones(rows), np.ones(rows))
    buffers = (np.empty(rows), np.empty(rows), np.empty(rows))
    nonfinite = 0
    for start in range(0, n, tile_rows):
        t = min(tile_rows, n - start)
        transpose(X, start, t, T)
        if wcol is None and hcol is None:
            nonfinite += bounding_box(T, 0, t, lo, hi) if boxed else count_nonfinite(T, t)
            points_sums(Tile(T, None, 0, t, lo, hi), centers, groups, members, work)
        else:
            tile_h2 = _load_columns(X, start, t, d, wcol, hcol, h2, cols)
            nonfinite += bounding_box(T, 0, t, lo, hi)
            adaptive = hcol is not None
            tile = Tile(T, cols.pw, 0, t, lo, hi)
            pointwise_sums(tile, centers, tile_h2, adaptive, cols, buffers, hsums)
    return nonfinite
