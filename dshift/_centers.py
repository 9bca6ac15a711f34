"""Local work on the small center set: shifting, ordering by intensity, removing duplicates.

Pure numpy, no dask: these run on the client after each reduction and cost O(m) or O(m^2)
in the number of centers m, never anything in the number of points.
"""

from __future__ import annotations

import numpy as np


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
