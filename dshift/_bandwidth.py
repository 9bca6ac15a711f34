"""Bandwidth estimation on a bounded random sample (scikit-learn's definition)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dshift import _limits, kernels
from dshift._inputs import read_points
from dshift._seeding import sample_rows

#: Sample size used when ``n_samples=None``: bounds the O(n^2) neighbour search.
DEFAULT_MAX_SAMPLES = 10_000


def estimate_bandwidth(
    X: Any,
    quantile: float = 0.3,
    n_samples: int | None = None,
    random_state: int | np.random.Generator | None = 0,
    *,
    storage_options: dict[str, Any] | None = None,
) -> np.float64:
    """Estimate the bandwidth to use with mean shift.

    The bandwidth is the mean, over a random sample of the points, of the distance from each
    sampled point to its k-th nearest neighbour within the sample, with
    ``k = max(1, int(n_samples * quantile))`` and the point itself counted as its first
    neighbour: scikit-learn's definition. Only the sample is loaded on the client; the cost
    is O(n_samples^2 * n_features), independent of the number of points.

    Parameters
    ----------
    X : any input ``MeanShift.fit`` takes, of shape (n_samples, n_features)
        Input points (any input ``MeanShift.fit`` takes; a string is a path or URL of a
        Zarr array, or of a Parquet file when it ends in ``.parquet``).
    quantile : float, default=0.3
        Between 0 and 1; 0.5 means the median of the pairwise distances is used.
    n_samples : int, default=None
        Number of points to sample. ``None`` uses every point when there are at most
        10,000, and a random sample of 10,000 otherwise.
    random_state : int, numpy Generator or None, default=0
        Seed of the sampling. When every point is used, the result does not depend on it
        and equals scikit-learn's ``estimate_bandwidth`` on the same data.
    storage_options : dict, optional
        For X given as a URL: fsspec options of its file system (credentials...).

    Returns
    -------
    bandwidth : numpy.float64
        As scikit-learn's (a numpy scalar, whatever X's dtype).

    Raises
    ------
    ValueError
        If the sample holds NaN, infinite or out-of-range values (``|x| > 1e150``, see
        :mod:`dshift._limits`).

    Notes
    -----
    With fewer sampled points than rows, the sample is drawn by
    ``numpy.random.default_rng(random_state).choice`` without replacement (O(n_samples)
    memory), which is not the same subset scikit-learn's permutation would pick.

    Examples
    --------
    >>> import numpy as np
    >>> from dshift import estimate_bandwidth
    >>> X = np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]])
    >>> print(round(estimate_bandwidth(X, quantile=0.5), 2))
    1.62
    """
    if not (isinstance(quantile, (int, float, np.floating)) and 0 <= quantile <= 1):
        raise ValueError(f"quantile must be a number between 0 and 1, got {quantile!r}.")
    if n_samples is not None and (not isinstance(n_samples, (int, np.integer)) or n_samples < 1):
        raise ValueError(f"n_samples must be a positive integer or None, got {n_samples!r}.")
    Xd, _ = read_points(X, storage_options=storage_options)
    n_total = Xd.shape[0]
    n = min(n_total, DEFAULT_MAX_SAMPLES if n_samples is None else int(n_samples))
    sample = sample_rows(Xd, n, random_state)
    bad = _limits.count_out_of_range(sample)  # NaN and inf are out of range too
    if bad:
        raise ValueError(
            f"X contains NaN or infinite values ({bad} in a sample of {n} rows) or values "
            f"beyond dshift's range {_limits.X_RANGE}; remove or impute them, or rescale X, "
            "before estimating the bandwidth."
        )
    k = max(1, int(n * quantile))
    return np.float64(kernels.kth_distances(sample, sample, k).sum() / n)
