"""Initial centers ("seeds"): given, every point, binned, or sampled.

Binning runs chunk-wise (per-chunk cell counts merged in a tree), and sampling gathers only
the chosen rows, so neither loads the array.
"""

from __future__ import annotations

import warnings
from typing import Any

import dask.array as da
import numpy as np

from dshift import _limits
from dshift._cluster import scheduler_options
from dshift._inputs import read_points
from dshift._iterate import check_finite, reduce_cells

SEEDINGS = ("auto", "all", "bin", "sample")
#: Largest number of points ``seeding="all"`` accepts (cost per iteration is N^2).
ALL_SEEDS_LIMIT = 20_000
#: ``seeding="auto"`` seeds from every point up to this many points (scikit-learn's default).
AUTO_ALL_LIMIT = 10_000
#: ``seeding="auto"`` falls back from bins to a sample when binning gives more seeds.
AUTO_MAX_BIN_SEEDS = 10_000
#: Number of seeds ``seeding="sample"`` draws when ``n_seeds`` is not given.
DEFAULT_N_SEEDS = 1_000


def sample_rows(
    X: da.Array, n: int, random_state: Any = None, p: np.ndarray | None = None
) -> np.ndarray:
    """Gather ``n`` distinct random rows of X (all rows, in order, if ``n >= len(X)``).

    Only the chosen rows are read; the index draw needs O(n) memory, or O(len(X)) when
    row probabilities ``p`` are given (only for small X, such as grid cells).
    """
    n_total = X.shape[0]
    if p is not None:
        n = min(n, int(np.count_nonzero(p)))
    if n >= n_total:
        return np.asarray(X.compute(**scheduler_options()))
    rng = np.random.default_rng(random_state)
    idx = np.sort(rng.choice(n_total, size=n, replace=False, p=p))
    return np.asarray(X[idx].compute(**scheduler_options()))


def get_bin_seeds(X: Any, bin_size: float, min_bin_freq: int = 1) -> np.ndarray:
    """Seeds from a grid: the occupied cells with at least ``min_bin_freq`` points.

    A point falls in cell ``round(x / bin_size)``; each cell with enough points gives the
    seed ``cell * bin_size``. This is scikit-learn's ``get_bin_seeds``, computed chunk by
    chunk (cell counts per chunk, merged), so it works on arrays larger than memory.

    Parameters
    ----------
    X : array-like, dask array, zarr.Array or str of shape (n_samples, n_features)
        Input points.
    bin_size : float
        Grid spacing, usually the bandwidth. ``0`` returns the points themselves (X
        itself for a numpy array, as scikit-learn).
    min_bin_freq : int, default=1
        Only cells with at least this many points become seeds.

    Returns
    -------
    bin_seeds : ndarray of shape (n_seeds, n_features)
        float32 as in scikit-learn (float64 when ``bin_size`` is a float64 numpy scalar, or
        when a seed is beyond float32's range, ~3.4e38), sorted by cell.

    Raises
    ------
    ValueError
        If ``bin_size`` is negative, NaN, or outside dshift's range [1e-150, 1e150], or X
        holds NaN, infinite or out-of-range values (see :mod:`dshift._limits`).

    Warns
    -----
    UserWarning
        If binning does not reduce the number of points; the points are returned instead.

    Examples
    --------
    >>> import numpy as np
    >>> from dshift import get_bin_seeds
    >>> X = np.array([[1.0, 1.0], [1.4, 1.2], [1.6, 1.5], [5.0, 5.0]])
    >>> get_bin_seeds(X, bin_size=2.0).tolist()
    [[0.0, 0.0], [2.0, 2.0], [4.0, 4.0]]
    """
    Xd, _ = read_points(X)
    if bin_size == 0:
        return _the_points(X, Xd)
    if not np.isfinite(bin_size) or bin_size < 0:
        raise ValueError(f"bin_size must be a positive number, got {bin_size!r}.")
    if not _limits.bandwidth_in_range(bin_size):
        raise ValueError(bin_size_range_message(bin_size))
    seeds = _bin_seeds(Xd, bin_size, min_bin_freq)
    if len(seeds) == Xd.shape[0]:
        _warn_binning_failed(bin_size)
        return _the_points(X, Xd)
    return seeds


def bin_size_range_message(bin_size: float) -> str:
    """The error for a positive ``bin_size`` outside the supported range."""
    return (
        f"bin_size={bin_size!r} is outside dshift's supported range {_limits.BANDWIDTH_RANGE} "
        "(see dshift._limits); pass a bin_size within it, rescaling X if need be."
    )


def _warn_binning_failed(bin_size: float) -> None:
    warnings.warn(
        f"Binning data failed with provided bin_size={bin_size:f}, using data points as seeds.",
        UserWarning,
        stacklevel=3,
    )


def _bin_seeds(
    Xd: da.Array, bin_size: float, min_bin_freq: int, weighted: bool = False
) -> np.ndarray:
    """Seeds of the cells holding at least ``min_bin_freq`` points (one pass over X);
    with ``weighted``, a cell holds the sum of its points' weights."""
    cells, counts, _, n_nonfinite = reduce_cells(Xd, bin_size, weighted, nearest=True)
    check_finite(n_nonfinite)
    chosen = cells[counts >= min_bin_freq]
    if len(chosen) == 0:
        raise ValueError(
            f"No grid cell of bin_size={bin_size:g} holds min_bin_freq={min_bin_freq} points; "
            "lower min_bin_freq or raise bin_size."
        )
    with np.errstate(over="ignore"):  # float32 as scikit-learn, unless it overflows
        seeds = np.asarray(chosen, dtype=np.float32) * bin_size
    return seeds if np.isfinite(seeds).all() else chosen * float(bin_size)


def _the_points(X: Any, Xd: da.Array) -> np.ndarray:
    """What ``get_bin_seeds`` returns when it does not bin: X itself for a numpy array
    (as scikit-learn), else every point, computed."""
    return X if isinstance(X, np.ndarray) else _all_points(Xd)


def _all_points(Xd: da.Array, weighted: bool = False) -> np.ndarray:
    if Xd.shape[0] > ALL_SEEDS_LIMIT:
        _all_points_limit(Xd.shape[0])
    points = np.asarray(Xd.compute(**scheduler_options()))
    check_finite(_limits.count_out_of_range(points))  # weights are in range (aligned_column)
    return _positive_weight_points(points, weighted)


def _positive_weight_points(rows: np.ndarray, weighted: bool) -> np.ndarray:
    """Drop the weight column, and the rows of weight 0 (they are not there)."""
    return rows[rows[:, -1] > 0, :-1] if weighted else rows


def check_seeds(n_samples: int, n_features: int, seeds: Any, seeding: str) -> np.ndarray | None:
    """Shape-only checks of the seeding, before any data is read; returns given seeds."""
    if seeds is not None:
        arr = np.asarray(seeds, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != n_features or len(arr) == 0:
            raise ValueError(
                f"seeds must have shape (n_seeds, {n_features}) to match X's {n_features} "
                f"features, got shape {arr.shape}; pass one row per initial center."
            )
        if _limits.count_out_of_range(arr):
            raise ValueError(
                f"seeds contain NaN or infinite values or values beyond dshift's range "
                f"{_limits.X_RANGE}; pass finite seeds within it."
            )
        return arr
    if seeding == "all" and n_samples > ALL_SEEDS_LIMIT:
        _all_points_limit(n_samples)
    return None


def _all_points_limit(n_samples: int) -> None:
    raise ValueError(
        f"Seeding from every point is limited to {ALL_SEEDS_LIMIT} points (the cost per "
        f"iteration grows as n_samples^2), and X has {n_samples}. Use seeding='bin' "
        "(with a larger bin_size or min_bin_freq), seeding='sample' with n_seeds, or "
        "pass seeds explicitly."
    )


def make_seeds(
    Xd: da.Array,
    *,
    binning_source: da.Array | None = None,
    seeds: Any,
    seeding: str,
    n_seeds: int | None,
    bin_size: float,
    min_bin_freq: int,
    random_state: Any,
    weighted: bool = False,
    sample_p: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """Choose the seeds for a fit; returns them (float64) and the method actually used.

    ``"auto"``: explicit ``seeds`` if given; every point up to 10,000 points (as
    scikit-learn); otherwise bins, or a sample of ``n_seeds`` points if binning gives more
    than 10,000 seeds. Bins are counted on ``binning_source`` (the same rows as ``Xd`` in
    any order, e.g. the loop's persisted copy) when given. With ``weighted``, Xd's last
    column holds the point weights: bins count weights, and points of weight 0 are never
    seeds. ``sample_p`` (row probabilities, for small X such as grid cells) makes the sample
    seeding draw rows by weight; otherwise it draws rows uniformly.
    """
    n, d = Xd.shape[0], Xd.shape[1] - int(weighted)
    given = check_seeds(n, d, seeds, seeding)
    if given is not None:
        return given, "given"
    auto = seeding == "auto"
    if auto:
        seeding = "all" if n <= AUTO_ALL_LIMIT else "bin"
    if seeding == "bin" and bin_size == 0:
        seeding = "all"
    if seeding == "all":
        return _all_points(Xd, weighted), "all"
    if seeding == "bin":
        binned = _bin_seeds(
            Xd if binning_source is None else binning_source, bin_size, min_bin_freq, weighted
        )
        if auto and len(binned) > AUTO_MAX_BIN_SEEDS:
            seeding = "sample"
        elif len(binned) == n:
            _warn_binning_failed(bin_size)
            return _all_points(Xd, weighted), "all"
        else:
            return binned, "bin"
    count = DEFAULT_N_SEEDS if n_seeds is None else n_seeds
    rows = _positive_weight_points(sample_rows(Xd, count, random_state, sample_p), weighted)
    return rows.astype(np.float64), "sample"
