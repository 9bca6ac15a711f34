"""Dense references the tests check dshift against, written independently of dshift.

Each is the plain way, on small inputs: one (points x centers) matrix, a per-seed loop over
the whole data set, a dict of cells, a full sort. Kernels are written from their textbook
definitions. Also here: the input sizes the kernel tests use, which shrink when numba's JIT
is off (``make test``'s second pass runs tests/kernels with ``NUMBA_DISABLE_JIT=1``, so
that the kernels' Python source runs, some thousand times slower).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
from scipy.spatial.distance import cdist

#: Whether numba compiles the kernels (False: their Python source runs).
JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") != "1"


def size(compiled: int, interpreted: int) -> int:
    """An input size: ``compiled`` with numba's JIT, ``interpreted`` without it."""
    return compiled if JIT else interpreted


def packed(X: np.ndarray, w: np.ndarray | None = None, h: np.ndarray | None = None):
    """The block a fit iterates on: the features, then the weights and the per-point
    bandwidths when given (see ``dshift._columns.Columns``)."""
    return np.column_stack([X, *(c for c in (w, h) if c is not None)])


# ---------------------------------------------------------------------------------------
# Kernel sums
# ---------------------------------------------------------------------------------------


def ref_weights(d2: np.ndarray, h2, kernel: str) -> np.ndarray:
    """Kernel weight of points at squared distance ``d2`` for the squared bandwidth ``h2``."""
    if kernel == "flat":
        return (d2 <= h2).astype(np.float64)
    if kernel == "gaussian":
        return np.exp(-d2 / (2.0 * h2))
    if kernel == "epanechnikov":
        return np.where(d2 <= h2, 1.0 - d2 / h2, 0.0)
    raise AssertionError(kernel)


class RefStats(NamedTuple):
    """The fields of ``dshift.kernels.ChunkStats``."""

    sums: np.ndarray
    weights: np.ndarray
    counts: np.ndarray
    n_nonfinite: int
    bandwidths: np.ndarray


def ref_chunk_stats(X, C, bandwidth, kernel, w=None, h=None) -> RefStats:
    """Sums of weighted offsets w (x - c), weights, counts within the bandwidth, the count
    of NaN and infinite values, and the kernel-weighted sum of the points' bandwidths.

    ``w``: point weights (a point of weight w counts as w points). ``h``: per-point
    bandwidths used instead of ``bandwidth``; a point's weight is then also scaled by
    ``(bandwidth / h_i)^d`` (by ``h_i^-d`` when ``bandwidth`` is 0). Rows holding a NaN or
    infinite feature are left out, their bad values counted.
    """
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    n, d = X.shape
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    hh = np.full(n, float(bandwidth)) if h is None else np.asarray(h, dtype=np.float64)
    finite = np.isfinite(X)
    keep = finite.all(axis=1)
    X, w, hh = X[keep], w[keep], hh[keep]
    d2 = ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)  # (n, m)
    h2 = (hh * hh)[:, None]
    scale = w if h is None else w * ((bandwidth or 1.0) / hh) ** d
    W = ref_weights(d2, h2, kernel) * scale[:, None]
    sums = W.T @ X - W.sum(axis=0)[:, None] * C
    counts = ((d2 <= h2) * w[:, None]).sum(axis=0)
    hsums = W.T @ hh if h is not None else np.zeros(len(C))
    return RefStats(sums, W.sum(axis=0), counts, int(finite.size - finite.sum()), hsums)


# ---------------------------------------------------------------------------------------
# Full fits
# ---------------------------------------------------------------------------------------


def ref_stretch(step, last, last_factor) -> float:
    """The over-relaxation of a Gaussian step, as dshift's docs define it: when this step
    and the last point the same way (cosine >= 0.9), the plain iteration's rate along that
    line is 1 - (1 - r) / last_factor with r the step's component along the last step
    relative to it, and the step is stretched by 1 / (1 - rate), kept within [1, 1.9]."""
    norms = np.linalg.norm(step) * np.linalg.norm(last)
    if norms == 0 or step @ last < 0.9 * norms:
        return 1.0
    r = (step @ last) / (last @ last)
    rate = 1.0 - (1.0 - r) / last_factor
    return 1.9 if rate >= 1.0 - 1.0 / 1.9 else max(1.0, 1.0 / (1.0 - rate))


def ref_seeds(X, seeds, bandwidth, kernel, max_iter=300, tol=1e-3):
    """Mean shift of the seeds; for each, (trajectory, intensity, n_iter, alive).

    ``n_iter`` is the 0-based iteration at which the seed stopped (scikit-learn's count);
    ``intensity`` the number of points within the bandwidth of the center that was
    evaluated last (i.e. before the final update). With the Gaussian kernel, at the start
    of each iteration a moving seed takes the place (and the last step) of the first moving
    seed in its cell of a grid of edge tol * bandwidth when that one is within
    tol * bandwidth of it, and steps that do not stop a seed are stretched
    (:func:`ref_stretch`).
    """
    X = np.asarray(X, dtype=np.float64)
    radius = tol * bandwidth
    gaussian = kernel == "gaussian"
    seeds = [
        {
            "c": np.array(s, dtype=np.float64),
            "last": np.zeros(len(s)),
            "factor": 1.0,
            "traj": [],
            "count": 0,
            "n_iter": 0,
            "alive": True,
            "moving": True,
        }
        for s in seeds
    ]
    for it in range(max_iter + 1):
        moving = [s for s in seeds if s["moving"]]
        if gaussian and radius > 0:
            first = {}
            for s in moving:
                first.setdefault(tuple(np.floor(s["c"] / radius)), s)
            for s in moving:
                lead = first[tuple(np.floor(s["c"] / radius))]
                if np.linalg.norm(s["c"] - lead["c"]) <= radius:
                    s["c"], s["last"], s["factor"] = lead["c"].copy(), lead["last"], lead["factor"]
        for s in moving:
            c = s["c"]
            d2 = ((X - c) ** 2).sum(axis=1)
            w = ref_weights(d2, bandwidth * bandwidth, kernel)
            s["n_iter"] = it
            if w.sum() == 0:
                s["alive"] = s["moving"] = False
                continue
            s["count"] = int((d2 <= bandwidth * bandwidth).sum())
            new = (w[:, None] * X).sum(axis=0) / w.sum()
            stops = np.linalg.norm(new - c) <= radius or it == max_iter
            if gaussian and not stops:
                step = new - c
                s["factor"] = ref_stretch(step, s["last"], s["factor"])
                s["last"] = step
                new = c + s["factor"] * step
            s["c"] = new
            s["traj"].append(new.copy())
            s["moving"] = not stops
    return [(s["traj"], s["count"], s["n_iter"], s["alive"]) for s in seeds]


def ref_postprocess(X, finals, intensities, alive, bandwidth):
    """scikit-learn's rules: dict by center tuple, sort desc by (intensity, tuple),
    greedy removal of centers within the bandwidth of a kept one, nearest-center labels."""
    by_center = {}
    for c, i, a in zip(finals, intensities, alive):
        if a:
            by_center[tuple(c)] = i
    ordered = sorted(by_center.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    kept, kept_int = [], []
    for c, i in ordered:
        if all(np.linalg.norm(np.array(c) - np.array(k)) > bandwidth for k in kept):
            kept.append(c)
            kept_int.append(i)
    centers = np.array(kept, dtype=np.float64)
    return centers, np.array(kept_int), ref_nearest(X, centers)


def ref_mean_shift(X, seeds, bandwidth, kernel, max_iter=300, tol=1e-3):
    runs = ref_seeds(X, seeds, bandwidth, kernel, max_iter, tol)
    finals = np.array([r[0][-1] if r[0] else s for r, s in zip(runs, seeds)])
    intens = np.array([r[1] for r in runs])
    n_iter = np.array([r[2] for r in runs])
    alive = np.array([r[3] for r in runs])
    centers, c_int, labels = ref_postprocess(X, finals, intens, alive, bandwidth)
    return {
        "runs": runs,
        "finals": finals,
        "n_iter": n_iter,
        "alive": alive,
        "centers": centers,
        "intensity": c_int,
        "labels": labels,
    }


# ---------------------------------------------------------------------------------------
# Neighbours
# ---------------------------------------------------------------------------------------


def ref_nearest(X, C, bandwidth=np.inf, cluster_all=True) -> np.ndarray:
    """Index of each row's nearest center (the first one on ties); with ``cluster_all``
    False, -1 for rows farther than ``bandwidth`` from it."""
    dist = cdist(np.asarray(X, dtype=np.float64), np.asarray(C, dtype=np.float64))
    labels = np.argmin(dist, axis=1)  # argmin returns the first index on ties
    if cluster_all:
        return labels
    return np.where(dist.min(axis=1) <= bandwidth, labels, -1)


def ref_kth(X, S, k: int) -> np.ndarray:
    """Distance from each row of X to its k-th nearest row of S, by a full sort."""
    dist = cdist(np.asarray(X, dtype=np.float64), np.asarray(S, dtype=np.float64))
    return np.sort(dist, axis=1)[:, k - 1]


# ---------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------


class RefCells(NamedTuple):
    """The fields of ``dshift.kernels.Cells``, sums always given."""

    cells: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    n_nonfinite: int


def ref_cells(X, cell_size, w=None, *, nearest=True) -> RefCells:
    """Occupied cells ``round(x / cell_size)`` (``floor`` if not ``nearest``) by a dict, a
    row at a time, sorted: their point counts (or total weights ``w``) and (weighted)
    sums. Rows holding a NaN or infinite value are left out, their bad values counted."""
    X = np.asarray(X, dtype=np.float64)
    w = np.ones(len(X), dtype=np.int64) if w is None else np.asarray(w, dtype=np.float64)
    finite = np.isfinite(X)
    keep = finite.all(axis=1)
    X, w = X[keep], w[keep]
    keys = np.round(X / cell_size) if nearest else np.floor(X / cell_size)
    cells: dict[tuple, tuple] = {}
    for key, x, wi in zip(map(tuple, keys.tolist()), X, w):
        count, total = cells.get(key, (0, 0.0))
        cells[key] = (count + wi, total + wi * x)
    order = sorted(cells)
    return RefCells(
        np.array(order, dtype=np.float64).reshape(len(order), X.shape[1]),
        np.array([cells[k][0] for k in order], dtype=w.dtype),
        np.array([cells[k][1] for k in order], dtype=np.float64).reshape(len(order), -1),
        int(finite.size - finite.sum()),
    )


def ref_near_box(C, box_lo, edge, bandwidth) -> set[int]:
    """The centers within ``bandwidth`` of the box ``[box_lo, box_lo + edge]`` (to 1e-9
    relative, the margin the center grid keeps)."""
    gap = np.maximum(np.maximum(box_lo - C, C - box_lo - edge), 0)
    return set(np.flatnonzero((gap**2).sum(axis=1) <= bandwidth**2 * (1 + 1e-9)).tolist())


def ref_morton_codes(X, bits: int) -> np.ndarray:
    """Z-order codes: each feature quantized to ``bits`` bits over the block's range, bit b
    of feature k at bit ``b * d + k``."""
    d = X.shape[1]
    lo = X.min(axis=0).astype(np.float64)
    top = 2**bits - 1
    q = np.minimum(((X - lo) * (top / (X.max(axis=0) - lo))).astype(np.uint64), top)
    codes = np.zeros(len(X), dtype=np.uint64)
    for b in range(bits):
        for k in range(d):
            codes |= ((q[:, k] >> np.uint64(b)) & np.uint64(1)) << np.uint64(d * b + k)
    return codes
