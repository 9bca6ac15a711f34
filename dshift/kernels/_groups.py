"""Flat center groups: centers close together share the work of a tile.

Centers within ``group_radius * bandwidth`` of a leader form one group. With the flat kernel
a point closer than ``bandwidth - r`` to the leader (r: the group's radius) is within the
bandwidth of every member, and one farther than ``bandwidth + r`` of none: such points are
added once for the whole group, and only the thin shell between the two is tested against
each member. Centers closing in on the same mode (most of them, in the middle iterations of
a fit) share a group. The Gaussian's groups (:mod:`dshift.kernels._gaussian`) use the same
leaders.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from dshift.kernels._config import (
    D2,
    FASTMATH,
    FLAT,
    INNER,
    JIT,
    SCRATCH,
    SHELL,
    SHELL_WEIGHT,
    WEIGHT,
    ZERO,
)
from dshift.kernels._tile_sums import Centers, add3, flat3, tile_sums

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


class Group(NamedTuple):
    """One group of :class:`CenterGroups`, as a tile's routines take it.

    Attributes
    ----------
    members : ndarray (n_members,), int64
        The indices of its centers.
    lead : ndarray (n_features,), float64
        Its leader.
    radius : float
        Distance from the leader to its farthest member, rounded up by a margin.
    """

    members: np.ndarray
    lead: np.ndarray
    radius: float


@numba.njit(**JIT)
def _leader_groups(C, order, radius):
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


def center_groups(centers: np.ndarray, bandwidth: float, fraction: float) -> CenterGroups:
    """Cluster the centers into groups of radius at most ``fraction * bandwidth``.

    Parameters
    ----------
    centers : ndarray of shape (n_centers, n_features)
    bandwidth : float
    fraction : float
        Largest group radius, as a fraction of the bandwidth (0: no groups; see
        ``GROUP_RADIUS`` and ``GAUSSIAN_GROUP_RADIUS``).

    Returns
    -------
    CenterGroups
        Centers alone in their group get group -1 and come first in ``members``.

    Examples
    --------
    >>> g = center_groups(np.array([[0.0], [5.0], [0.01]]), 1.0, GROUP_RADIUS)
    >>> g.group_of.tolist(), g.members.tolist(), g.leaders.ravel().tolist()
    ([0, -1, 0], [1, 0, 2], [0.0])
    """
    C = np.ascontiguousarray(centers, dtype=np.float64)
    m = C.shape[0]
    limit = fraction * bandwidth
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


@numba.njit(**INNER, fastmath=FASTMATH)
def offset_sums(T, pw, s, e, lo, rel):
    """rel[:d] <- sum of (weighted) offsets of T[:, s:e] from lo, rel[d] <- their weight."""
    d = lo.shape[0]
    total = 0.0
    for i in range(s, e):
        total += 1.0 if pw is None else pw[i]
    rel[d] = total
    for k in range(d):
        acc = 0.0
        for i in range(s, e):
            acc += (1.0 if pw is None else pw[i]) * (T[k, i] - lo[k])
        rel[k] = acc


@numba.njit(**INNER, fastmath=FASTMATH)
def add_to_members(C, members, w, offsets, base, out):
    """Add points of total weight w and offset sum ``offsets[:d]`` from ``base`` to the
    sums of the centers ``members`` (``out``: the :class:`Sums`)."""
    sums, weights, counts = out
    for q in range(members.shape[0]):
        j = members[q]
        counts[j] += w
        weights[j] += w
        for k in range(C.shape[1]):
            sums[j, k] += offsets[k] + w * (base[k] - C[j, k])


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _core(T, pw, s, e, lead, core2, d2, acc):
    """d2 <- squared distances of T[:, s:e] to the leader; acc <- the (weighted) offset sum
    from the leader of the points within ``core2`` of it; returns their weight."""
    d = lead.shape[0]
    n = e - s
    core_w = 0.0
    if d == 3 and pw is None:  # the common case: one pass, all in registers
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
        return core_w
    for i in range(n):
        d2[i] = 0.0
    for k in range(d):
        c = lead[k]
        for i in range(n):
            diff = T[k, s + i] - c
            d2[i] += diff * diff
    for i in range(n):
        core_w += (1.0 if pw is None else pw[s + i]) if d2[i] <= core2 else 0.0
    for k in range(d):
        c = lead[k]
        a = 0.0
        for i in range(n):
            p = 1.0 if pw is None else pw[s + i]
            a += p * (T[k, s + i] - c) if d2[i] <= core2 else 0.0
        acc[k] = a
    return core_w


@numba.njit(**JIT, fastmath=FASTMATH, inline="always")
def _copy_shell(T, pw, s, n, d2, core2, outer2, work):
    """Copy the points of T[:, s:s + n] between ``core2`` and ``outer2`` of the leader to
    the work buffer's shell rows; returns how many there are."""
    d = T.shape[0]
    S = work[SHELL:]
    spw = work[SHELL_WEIGHT]
    shell = work[SCRATCH].view(np.int64)
    ns = ZERO  # an int64 from the start (see ZERO): it is passed to tile_sums
    for i in range(n):  # branch-free: the shell is thin, and a branch here mispredicts
        shell[ns] = i
        ns += 1 if core2 < d2[i] <= outer2 else 0
    for q in range(ns):
        i = s + shell[q]
        for k in range(d):
            S[k, q] = T[k, i]
        spw[q] = 1.0 if pw is None else pw[i]
    return ns


@numba.njit(**INNER, fastmath=FASTMATH)
def core_and_shell(T, pw, s, e, centers, group, work):
    """Flat kernel: add the points T[:, s:e] for the centers of one :class:`Group`.

    Points within ``bandwidth - radius`` of the group's leader (the core) are in every
    member's ball: they are added once, as offsets from the leader. Only the shell out to
    ``bandwidth + radius`` is copied to ``work`` and tested per member. Both radii keep a
    1e-9 margin that covers rounding, so the result equals the per-point loop's.
    ``centers`` are the :class:`Centers` (whatever their kernel, the sums are flat ones);
    ``work`` is a :func:`~dshift.kernels._config.work_buffer`.
    """
    C, h2, _, out = centers
    sums, weights, counts = out
    members, lead, radius = group
    d = lead.shape[0]
    h = math.sqrt(h2)
    core2 = (h - radius) ** 2 * (1.0 - 1e-9) if h > radius else -1.0
    outer2 = (h + radius) ** 2 * (1.0 + 1e-9) + 1e-300
    d2 = work[D2, : e - s]
    acc = work[WEIGHT, :d]
    core_w = _core(T, pw, s, e, lead, core2, d2, acc)
    if core_w > 0.0:
        add_to_members(C, members, core_w, acc, lead, out)
    ns = _copy_shell(T, pw, s, e - s, d2, core2, outer2, work)
    if ns == 0:
        return
    S = work[SHELL:]
    spw = work[SHELL_WEIGHT]
    flat = Centers(C, h2, FLAT, out)
    for q in range(members.shape[0]):
        j = members[q]
        if d == 3 and pw is None:  # no call per member: the shells are often small
            inside, offsets = flat3(S, 0, ns, C[j, 0], C[j, 1], C[j, 2], h2)
            add3(sums, weights, counts, j, inside, inside, offsets)
        elif pw is None:
            tile_sums(S, None, ZERO, ns, flat, j, work, ZERO)
        else:
            tile_sums(S, spw, ZERO, ns, flat, j, work, ZERO)
