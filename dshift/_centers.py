"""Local work on the small center set: shifting, ordering by intensity, removing duplicates.

Pure numpy, no dask: these run on the client after each reduction and cost O(m) or O(m^2)
in the number of centers m, never anything in the number of points.
"""

from __future__ import annotations

import numpy as np

from dshift.kernels import GAUSSIAN

#: Largest factor a Gaussian step is stretched by (see :func:`relaxation`). Below 2, a
#: stretched step still raises the kernel density estimate at the center.
MAX_RELAX = 1.9
#: Two consecutive steps of a center whose directions have at least this cosine are taken
#: as one slow approach along a line, whose rate :func:`relaxation` estimates.
ALIGNED = 0.9


def shortcuts(kernel: int, adaptive: bool) -> bool:
    """Whether the loop takes the Gaussian shortcuts: stretched steps (:func:`relaxation`)
    and seeds that follow a close seed (:func:`followers`). With the Gaussian kernel and one
    bandwidth for all points, where each stretched step provably raises the density
    estimate; never with the flat kernel (scikit-learn's iterations) or per-point
    bandwidths."""
    return kernel == GAUSSIAN and not adaptive


def followers(centers: np.ndarray, radius: float) -> np.ndarray:
    """For each center, the center it follows from now on: the first center of its cell in
    a grid of edge ``radius``, if that is within ``radius`` of it; else itself.

    A center that follows another takes its position (and its last step): they are
    computed once from then on and end where the one followed ends. The one followed moves
    as it would alone, so every final center is the end of some seed's own trajectory. The
    loop uses the convergence threshold ``tol * bandwidth`` as the radius: centers that
    close are as near as the convergence test can tell apart. Cells are exact: a center
    whose cell index is not an exact float (beyond 2**52 cells from 0) follows no one.

    Parameters
    ----------
    centers : ndarray of shape (m, d)
    radius : float

    Returns
    -------
    ndarray of shape (m,), int64
        Indices into ``centers``; ``lead[i] == i`` for a center that follows no one.

    Examples
    --------
    >>> C = np.array([[0.1, 0.1], [5.0, 5.0], [0.1005, 0.1], [5.3, 5.0]])
    >>> followers(C, 0.01).tolist()
    [0, 1, 0, 3]
    """
    m = len(centers)
    own = np.arange(m)
    if m < 2 or not radius > 0:
        return own
    cells = np.floor(centers / radius)
    exact = (np.abs(cells) < 2.0**52).all(axis=1)  # false for NaN and inf too
    rows = np.flatnonzero(exact)
    _, first, inverse = np.unique(cells[rows], axis=0, return_index=True, return_inverse=True)
    lead = own.copy()
    lead[rows] = rows[first[inverse.ravel()]]
    offset, unit = _unit_scale(centers - centers[lead], np.full((m, 1), radius))
    near = (offset * offset).sum(axis=1) <= unit[:, 0] ** 2
    return np.where(near, lead, own)


def _unit_scale(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``a`` and ``b`` times the power of two that brings their largest magnitude
    into [0.5, 1): squares and products neither overflow nor underflow anywhere in dshift's
    range, and scaling the data by a power of two scales nothing here."""
    top = np.maximum(np.abs(a).max(axis=1, initial=0.0), np.abs(b).max(axis=1, initial=0.0))
    _, exponent = np.frexp(top)
    return np.ldexp(a, -exponent[:, None]), np.ldexp(b, -exponent[:, None])


def relaxation(step: np.ndarray, last_step: np.ndarray, last_factor: np.ndarray) -> np.ndarray:
    """How far to stretch each center's mean shift step: a factor in [1, ``MAX_RELAX``].

    Gaussian mean shift approaches a mode along a line at a steady rate on flat density
    tops, taking many small steps. From two consecutive steps s (this one) and p (the last,
    which moved the center by ``last_factor`` p) in nearly the same direction (cosine at
    least ``ALIGNED``), the plain iteration's rate is estimated as
    ``1 - (1 - r) / last_factor`` with ``r = s.p / p.p``, and the step is stretched by the
    factor that would land on the limit of such a line, ``last_factor / (1 - r)``, clipped to
    [1, ``MAX_RELAX``]. Other steps (the first, a turn) are not stretched.

    Any factor in (0, 2) keeps mean shift an ascent: the step maximizes a quadratic lower
    bound of the Gaussian kernel density estimate that touches it at the center, and that
    bound is above its value at the center over the whole stretch (0, 2) of the step. So
    the centers still converge to the same kind of points (modes), in fewer iterations.

    Parameters
    ----------
    step : ndarray of shape (m, d)
        Each center's mean shift vector (its kernel-weighted mean less the center).
    last_step : ndarray of shape (m, d)
        The center's previous mean shift vector (zeros before its first step).
    last_factor : ndarray of shape (m,)
        The factor its previous step was stretched by.

    Returns
    -------
    ndarray of shape (m,)

    Examples
    --------
    >>> p, s = np.array([[1.0, 0.0]]), np.array([[0.8, 0.0]])  # a rate of 0.8
    >>> relaxation(s, p, np.ones(1)).round(2).tolist()  # 1 / (1 - 0.8) = 5: capped
    [1.9]
    >>> relaxation(np.array([[0.3, 0.0]]), p, np.ones(1)).round(3).tolist()  # 1 / 0.7
    [1.429]
    >>> relaxation(np.array([[0.0, 0.5]]), p, np.ones(1)).tolist()  # a turn
    [1.0]
    """
    step, last_step = _unit_scale(step, last_step)
    dot = (step * last_step).sum(axis=1)
    last2 = (last_step * last_step).sum(axis=1)
    step2 = (step * step).sum(axis=1)
    aligned = (dot > 0) & (dot * dot >= ALIGNED**2 * step2 * last2)
    r = np.divide(dot, last2, out=np.zeros_like(dot), where=aligned)
    stretch = np.divide(last_factor, 1.0 - r, out=np.full_like(dot, MAX_RELAX), where=r < 1.0)
    return np.where(aligned, np.clip(stretch, 1.0, MAX_RELAX), 1.0)


def order_by_intensity(centers: np.ndarray, intensity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse identical centers and sort by (intensity, center tuple), descending.

    This is scikit-learn's rule: centers are keys of a dict filled in seed order (so for
    identical centers the last seed's intensity wins), then sorted by intensity with the
    center's coordinates breaking ties.

    Parameters
    ----------
    centers : ndarray of shape (n_centers, n_features)
    intensity : ndarray of shape (n_centers,)

    Returns
    -------
    centers : ndarray of shape (n_unique, n_features)
    intensity : ndarray of shape (n_unique,)

    Examples
    --------
    >>> import numpy as np
    >>> c, i = order_by_intensity(np.array([[0.0], [5.0], [1.0], [5.0]]), np.array([3, 2, 3, 4]))
    >>> c.ravel().tolist(), i.tolist()
    ([5.0, 1.0, 0.0], [4, 3, 3])
    """
    by_center = {tuple(row): value for row, value in zip(centers.tolist(), intensity.tolist())}
    ordered = sorted(by_center.items(), key=lambda item: (item[1], item[0]), reverse=True)
    out = np.array([c for c, _ in ordered], dtype=centers.dtype).reshape(-1, centers.shape[1])
    return out, np.array([v for _, v in ordered], dtype=intensity.dtype)


def remove_near_duplicates(centers: np.ndarray, bandwidth: float | np.ndarray) -> np.ndarray:
    """Greedy pass in the given order: drop every center within ``bandwidth`` of a kept one.

    Parameters
    ----------
    centers : ndarray of shape (n_centers, n_features)
        Ordered best first (see :func:`order_by_intensity`).
    bandwidth : float or ndarray of shape (n_centers,)
        Distance at or under which a later center duplicates a kept one (inclusive); an
        array gives each kept center its own radius (adaptive bandwidths).

    Returns
    -------
    keep : ndarray of shape (n_centers,), bool

    Examples
    --------
    >>> import numpy as np
    >>> remove_near_duplicates(np.array([[0.0], [0.5], [2.0], [1.0]]), 1.0).tolist()
    [True, False, True, False]
    """
    c = np.asarray(centers, dtype=np.float64)
    keep = np.ones(len(c), dtype=bool)
    h2 = np.broadcast_to(np.asarray(bandwidth, dtype=np.float64) ** 2, (len(c),))
    for i in range(len(c)):
        if keep[i]:
            later = np.arange(i + 1, len(c))
            later = later[keep[i + 1 :]]
            d2 = ((c[later] - c[i]) ** 2).sum(axis=1)
            keep[later[d2 <= h2[i]]] = False
    return keep
