"""Chunk kernels and full fits checked against a small dense numpy reference.

The reference below is written independently of dshift: a plain per-seed loop over the whole
(small) data set, with the kernels written from their textbook definitions.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist

from dshift import MeanShift, _kernels
from dshift._limits import MAX_ABS

# ---------------------------------------------------------------------------------------
# Dense reference
# ---------------------------------------------------------------------------------------

KERNEL_CODES = {
    "flat": _kernels.FLAT,
    "gaussian": _kernels.GAUSSIAN,
    "epanechnikov": _kernels.EPANECHNIKOV,
}


def ref_weights(d2: np.ndarray, bandwidth: float, kernel: str) -> np.ndarray:
    """Kernel weight of points at squared distance ``d2`` (textbook definitions)."""
    h2 = bandwidth * bandwidth
    if kernel == "flat":
        return (d2 <= h2).astype(np.float64)
    if kernel == "gaussian":
        return np.exp(-d2 / (2.0 * h2))
    if kernel == "epanechnikov":
        return np.where(d2 <= h2, 1.0 - d2 / h2, 0.0)
    raise AssertionError(kernel)


def ref_chunk_stats(X, C, bandwidth, kernel):
    """(sums of weighted offsets w (x - c), weights, counts, n_nonfinite), the dense way."""
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    finite = np.isfinite(X)
    n_bad = int(finite.size - finite.sum())
    Xf = X[finite.all(axis=1)]
    d2 = ((Xf[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)  # (n, m)
    w = ref_weights(d2, bandwidth, kernel)
    sums = w.T @ Xf - w.sum(axis=0)[:, None] * C
    return sums, w.sum(axis=0), (d2 <= bandwidth * bandwidth).sum(axis=0).astype(float), n_bad


def ref_single_seed(X, seed, bandwidth, kernel, max_iter=300, tol=1e-3):
    """Mean shift of one seed; returns (trajectory, intensity, n_iter, alive).

    ``n_iter`` is the 0-based iteration at which the seed stopped (scikit-learn's count);
    ``intensity`` the number of points within the bandwidth of the center that was
    evaluated last (i.e. before the final update).
    """
    X = np.asarray(X, dtype=np.float64)
    c = np.array(seed, dtype=np.float64)
    traj = []
    for it in range(max_iter + 1):
        d2 = ((X - c) ** 2).sum(axis=1)
        w = ref_weights(d2, bandwidth, kernel)
        if w.sum() == 0:
            return traj, 0, it, False
        count = int((d2 <= bandwidth * bandwidth).sum())
        new = (w[:, None] * X).sum(axis=0) / w.sum()
        shift = np.linalg.norm(new - c)
        c = new
        traj.append(c.copy())
        if shift <= tol * bandwidth or it == max_iter:
            return traj, count, it, True
    raise AssertionError("unreachable")


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
    d = cdist(np.asarray(X, dtype=np.float64), centers)
    labels = np.argmin(d, axis=1)  # argmin returns the first index on ties
    return centers, np.array(kept_int), labels


def ref_mean_shift(X, seeds, bandwidth, kernel, max_iter=300, tol=1e-3):
    runs = [ref_single_seed(X, s, bandwidth, kernel, max_iter, tol) for s in seeds]
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


def stop_iterations(history, n_seeds):
    """0-based iteration at which each seed became inactive, read from history_."""
    out = np.full(n_seeds, -1)
    for step in history:
        newly = (~step.active) & (out < 0)
        out[newly] = step.iteration
    return out


def blobs(n_per=60, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [4.0, 4.0], [0.0, 5.0]])
    X = np.concatenate([rng.normal(m, 0.5, size=(n_per, 2)) for m in means])
    return X.astype(dtype)


# ---------------------------------------------------------------------------------------
# chunk_stats / add_stats
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["flat", "gaussian", "epanechnikov"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunk_stats_matches_dense_reference_per_chunk(kernel, dtype):
    rng = np.random.default_rng(1)
    # chunks of 1100 rows span several kernel tiles, the last one partial
    X = rng.normal(size=(2500, 3)).astype(dtype)
    C = np.concatenate([rng.normal(size=(8, 3)), [[30.0, 0.0, 0.0]]])  # one far center
    bw = 1.3
    for start in range(0, len(X), 1100):
        block = X[start : start + 1100]
        got = _kernels.chunk_stats(block, C, bw, KERNEL_CODES[kernel])
        sums, weights, counts, bad = ref_chunk_stats(block, C, bw, kernel)
        assert got.sums.shape == (9, 3) and got.sums.dtype == np.float64
        assert_allclose(got.sums, sums, rtol=1e-10, atol=1e-12)
        assert_allclose(got.weights, weights, rtol=1e-10, atol=1e-12)
        assert_array_equal(got.counts, counts)
        assert got.n_nonfinite == bad == 0
        assert counts[:8].sum() > 0 and counts[8] == 0


@pytest.mark.parametrize("kernel", ["flat", "gaussian", "epanechnikov"])
def test_chunk_stats_is_exact_on_spatially_ordered_rows(kernel):
    """Rows sorted in space (whole tiles far from a center): compact kernels may skip those
    tiles, and the result must not change, including points exactly on the boundary."""
    rng = np.random.default_rng(11)
    X = np.sort(rng.uniform(0, 40, size=(3000, 2)), axis=0)  # tiles are narrow in x
    X[1500:1530] = [20.0, 20.0]
    C = np.array([[20.0, 25.0], [17.0, 16.0], [0.5, 0.5], [39.0, 1.0], [-10.0, -10.0]])
    bw = 5.0  # (20, 20) is exactly at distance 5 from both of the first two centers
    got = _kernels.chunk_stats(X, C, bw, KERNEL_CODES[kernel])
    sums, weights, counts, _ = ref_chunk_stats(X, C, bw, kernel)
    assert_array_equal(got.counts, counts)
    assert counts[0] >= 30 and counts[1] >= 30 and counts[4] == 0
    assert_allclose(got.weights, weights, rtol=1e-10, atol=1e-300)
    assert_allclose(got.sums, sums, rtol=1e-10, atol=1e-300)
    # whole tiles whose bounding box is a single point exactly on the boundary
    X2 = np.full((2000, 2), 20.0)
    X2[1000:] = [0.3, 0.1]
    X2[1000:, 0] += np.linspace(0, 1e-3, 1000)
    for c, bw2 in (([20.0, 25.0], 5.0), ([0.3, 0.1 + 0.7], 0.7), ([0.3 + 1e-3 + 0.2, 0.1], 0.2)):
        C2 = np.array([c])
        got = _kernels.chunk_stats(X2, C2, bw2, KERNEL_CODES[kernel])
        ref = ref_chunk_stats(X2, C2, bw2, kernel)
        assert_array_equal(got.counts, ref[2])
        assert ref[2][0] > 0
        assert_allclose(got.weights, ref[1], rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_tiles_wholly_inside_the_ball_are_summed_exactly(d):
    """Sorted dense clusters: many tiles lie wholly within the flat kernel's ball (their
    count and offset sum are used at once), others straddle it; same as the reference."""
    rng = np.random.default_rng(d)
    X = np.vstack([rng.normal(m, 0.3, size=(4_000, d)) for m in (0.0, 3.0)])
    X = _kernels.spatially_sorted(X)
    C = np.vstack([np.zeros(d), np.full(d, 3.0), np.full(d, 1.5), rng.normal(size=(5, d))])
    for bw in (0.4, 1.0, 2.5):
        got = _kernels.chunk_stats(X, C, bw, _kernels.FLAT)
        sums, weights, counts, _ = ref_chunk_stats(X, C, bw, "flat")
        assert_array_equal(got.counts, counts)
        assert_array_equal(got.weights, weights)
        assert_allclose(got.sums, sums, rtol=1e-12, atol=1e-9)
    # a center whose points all sit exactly on it does not move, not even by rounding
    c = np.array([0.1, 1 / 3, 0.7, 2.9, -5.3][:d])
    got = _kernels.chunk_stats(np.tile(c, (1_500, 1)), c[None], 1.0, _kernels.FLAT)
    assert got.counts[0] == 1_500 and np.all(got.sums == 0.0)


def test_center_groups_are_tight_and_cover_every_center():
    rng = np.random.default_rng(21)
    C = np.vstack([rng.normal(m, 0.02, size=(30, 3)) for m in (0.0, 5.0)])
    C = np.vstack([C, rng.uniform(-20, 20, size=(40, 3))])
    g = _kernels.center_groups(C, 2.0)
    assert sorted(g.members.tolist()) == list(range(len(C)))
    assert_array_equal(np.sort(g.group_of[g.members]), g.group_of[g.members])  # grouped
    alone = g.group_of < 0
    assert np.bincount(g.group_of[~alone]).min() >= 2  # a group has several members
    assert alone[60:].sum() >= 35  # the scattered centers stay alone
    for k, (lead, r) in enumerate(zip(g.leaders, g.radius, strict=True)):
        members = C[g.group_of == k]
        dist = np.sqrt(((members - lead) ** 2).sum(axis=1))
        assert (dist == 0).any()  # the leader is a member
        assert dist.max() <= r <= 2.0 * _kernels.GROUP_RADIUS * (1 + 1e-6)
    assert (_kernels.center_groups(C, 2.0, 0.0).group_of == -1).all()


@pytest.mark.parametrize("d", [3, 2, 5])
@pytest.mark.parametrize("weighted", [False, True])
def test_grouped_centers_give_the_per_center_sums(d, weighted, monkeypatch):
    """Centers closing in on the same modes are taken as groups (core added once, shell
    tested per member): same sums as the dense reference and as without groups, on
    sorted and unsorted rows, through the tiles and the center grid; a point exactly at
    distance bandwidth from a member is still counted."""
    rng = np.random.default_rng(100 + d)
    modes = np.array([np.zeros(d), np.full(d, 2.5)])
    X = np.vstack([rng.normal(m, 0.8, size=(3_000, d)) for m in modes])
    bw = 1.5
    C = np.vstack([rng.normal(m, 0.005, size=(25, d)) for m in modes])  # two tight groups
    C = np.vstack([C, rng.normal(size=(6, d))])  # and a few loose centers
    X[7] = C[3] + np.eye(d)[0] * bw  # exactly on a member's boundary
    X[8] = C[30] - np.eye(d)[-1] * bw
    assert (_kernels.center_groups(C, bw).group_of[:50] >= 0).sum() >= 45  # groups form
    w = rng.integers(0, 3, len(X)).astype(np.float64)
    sums, weights, counts = ref_weighted_flat(X, w if weighted else np.ones(len(X)), C, bw)
    block = np.column_stack([X, w]) if weighted else X
    variants = {}
    for radius in (_kernels.GROUP_RADIUS, 0.0):
        monkeypatch.setattr(_kernels, "GROUP_RADIUS", radius)
        grid = _kernels.center_grid(C, bw)
        for rows, B in (("sorted", _kernels.spatially_sorted(block, d)), ("stored", block)):
            for path, g in (("tiles", None), ("grid", grid)):
                variants[radius, rows, path] = _kernels.chunk_stats(
                    B, C, bw, _kernels.FLAT, weighted, grid=g
                )
            variants[radius, rows, "long tiles"] = _kernels.chunk_stats(
                B, C, bw, _kernels.FLAT, weighted, rows_sorted=False
            )
    for got in variants.values():
        assert_array_equal(got.counts, counts)
        assert_allclose(got.weights, weights, rtol=1e-13)
        assert_allclose(got.sums, sums, rtol=1e-11, atol=1e-9)
    assert counts[3] >= 1 and counts[30] >= 1


def ref_weighted_flat(X, w, C, bandwidth):
    D2 = cdist(X, C, "sqeuclidean")
    inside = (D2 <= bandwidth**2) * w[:, None]
    sums = inside.T @ X - inside.sum(axis=0)[:, None] * C
    return sums, inside.sum(axis=0), inside.sum(axis=0)


def test_a_tile_inside_every_members_ball_is_added_once_per_group():
    """Tiny tiles near two tight groups of centers: whole tiles inside the core, tiles
    straddling the shell, and the members' sums stay exact."""
    rng = np.random.default_rng(5)
    C = rng.normal(0.0, 0.005, size=(12, 3))
    X = _kernels.spatially_sorted(rng.normal(0.0, 0.6, size=(20_000, 3)))
    for bw in (0.3, 1.0, 3.0):
        got = _kernels.chunk_stats(X, C, bw, _kernels.FLAT)
        sums, weights, counts = ref_weighted_flat(X, np.ones(len(X)), C, bw)
        assert_array_equal(got.counts, counts)
        assert_array_equal(got.weights, weights)
        assert_allclose(got.sums, sums, rtol=1e-11, atol=1e-9)


@pytest.mark.parametrize("n_bits", [3, 30, 63])
def test_radix_argsort_is_a_stable_argsort(n_bits):
    rng = np.random.default_rng(n_bits)
    codes = rng.integers(0, 2**n_bits, size=5_000, dtype=np.uint64)
    codes[::7] = codes[0]  # many ties: their order must be kept
    order = _kernels._radix_argsort(codes, n_bits)
    assert_array_equal(order, np.argsort(codes, kind="stable"))


def test_morton_order_sorts_rows_by_their_interleaved_codes():
    rng = np.random.default_rng(8)
    X = rng.uniform(-3, 7, size=(3_000, 3)).astype(np.float32)
    order = _kernels.morton_order(X)
    assert sorted(order.tolist()) == list(range(len(X)))
    lo = X.min(axis=0).astype(np.float64)
    q = np.minimum(((X - lo) * (1023.0 / (X.max(axis=0) - lo))).astype(np.uint64), 1023)
    codes = np.zeros(len(X), dtype=np.uint64)
    for b in range(10):
        for k in range(3):
            codes |= ((q[:, k] >> np.uint64(b)) & np.uint64(1)) << np.uint64(3 * b + k)
    assert_array_equal(order, np.argsort(codes, kind="stable"))


def test_spatially_sorted_is_a_row_permutation_that_keeps_the_stats():
    rng = np.random.default_rng(13)
    X = rng.uniform(-5, 5, size=(4096, 2))
    S = _kernels.spatially_sorted(X)
    assert S.shape == X.shape and S.flags.c_contiguous
    assert_array_equal(S[np.lexsort(S.T[::-1])], X[np.lexsort(X.T[::-1])])  # same rows
    C = rng.uniform(-5, 5, size=(6, 2))
    for kernel in KERNEL_CODES.values():
        a = _kernels.chunk_stats(X, C, 1.0, kernel)
        b = _kernels.chunk_stats(S, C, 1.0, kernel)
        assert_array_equal(a.counts, b.counts)
        assert_allclose(a.sums, b.sums, rtol=1e-10)
        assert_allclose(a.weights, b.weights, rtol=1e-10)

    # consecutive rows are close in space: 512-row tiles have small bounding boxes
    def mean_tile_area(A):
        tiles = A.reshape(-1, 512, 2)
        return np.prod(tiles.max(axis=1) - tiles.min(axis=1), axis=1).mean()

    assert mean_tile_area(S) < 0.35 * mean_tile_area(X)  # ~0.2 measured; random ~1
    # blocks holding non-finite values are returned unchanged (the fit raises anyway)
    Y = X.copy()
    Y[7, 1] = np.nan
    assert_array_equal(_kernels.spatially_sorted(Y), Y)


def test_gaussian_weights_match_numpy_exp_over_the_whole_range():
    # one point at the origin, one center per distance: weights[j] = exp(-d_j^2 / (2 h^2))
    h = 1.0
    exponents = np.concatenate([[0.0, 1e-12, 0.5], np.linspace(0.01, 700.0, 400)])
    C = np.sqrt(2.0 * exponents)[:, None] * np.array([[0.6, 0.8]])
    got = _kernels.chunk_stats(np.zeros((1, 2)), C, h, _kernels.GAUSSIAN)
    d2 = (C**2).sum(axis=1)
    assert_allclose(got.weights, np.exp(-d2 / 2.0), rtol=1e-12, atol=0)
    assert got.weights[0] == 1.0


@pytest.mark.parametrize(
    "reach, taylor", [("_TAYLOR_REACH", "_exp_taylor"), ("_TAYLOR_REACH_WIDE", "_exp_taylor13")]
)
def test_gaussian_group_polynomials_are_exp_to_rounding_within_their_reach(reach, taylor):
    limit = getattr(_kernels, reach)
    poly = getattr(_kernels, taylor)
    for t in np.linspace(-limit, limit, 1001):
        assert abs(poly(t) / np.exp(t) - 1.0) <= 1e-15
    assert abs(poly(3 * limit) / np.exp(3 * limit) - 1.0) > 1e-15  # the reach is needed


@pytest.mark.parametrize("d", [3, 2, 5])
@pytest.mark.parametrize("sort_rows", [True, False])
def test_gaussian_groups_give_the_per_center_sums(d, sort_rows, monkeypatch):
    """Gaussian centers closing in on a mode share one exp per point (a Taylor polynomial
    per member): the sums match the dense reference and the per-center path, the counts
    exactly, also for a point exactly at distance bandwidth from a member. Groups of
    several radii use the degree-9 and degree-13 polynomials, and far tiles the exp."""
    rng = np.random.default_rng(300 + d)
    modes = np.array([np.zeros(d), np.full(d, 4.0)])
    X = np.vstack([rng.normal(m, 1.0, size=(4_000, d)) for m in modes])
    X = np.vstack([X, rng.uniform(-30, 30, size=(200, d))])  # far tiles
    bw = 1.5
    spreads = (0.0005, 0.004, 0.012)  # group radii up to about GAUSSIAN_GROUP_RADIUS * bw
    C = np.vstack([rng.normal(m, s, size=(8, d)) for m in modes for s in spreads])
    C = np.vstack([C, rng.normal(size=(5, d))])  # and a few loose centers
    X[7] = C[3] + np.eye(d)[0] * bw  # exactly on a member's boundary (to rounding)
    X[8] = C[20] - np.eye(d)[-1] * bw
    if sort_rows:
        X = _kernels.spatially_sorted(X)
    groups = _kernels.center_groups(C, bw, _kernels.GAUSSIAN_GROUP_RADIUS)
    assert (groups.group_of[:48] >= 0).sum() >= 40  # groups form
    sums, weights, counts, _ = ref_chunk_stats(X, C, bw, "gaussian")
    direct = (cdist(X, C, "sqeuclidean") <= bw * bw).sum(axis=0)
    grouped = _kernels.chunk_stats(X, C, bw, _kernels.GAUSSIAN)
    monkeypatch.setattr(_kernels, "GAUSSIAN_GROUP_RADIUS", 0.0)
    single = _kernels.chunk_stats(X, C, bw, _kernels.GAUSSIAN)
    for got in (grouped, single):
        assert_array_equal(got.counts, direct)
        assert_array_equal(got.counts, counts)
        assert_allclose(got.weights, weights, rtol=1e-13)
        assert_allclose(got.sums, sums, rtol=1e-11, atol=1e-11 * weights.max())
    assert counts[3] >= 1 and counts[20] >= 1
    assert not np.array_equal(grouped.weights, single.weights)  # the groups were used


@pytest.mark.parametrize("d", [3, 2, 4])
def test_gaussian_centers_on_a_lattice_give_the_per_center_sums(d, monkeypatch):
    """Bin seeds lie on a lattice: the Gaussian weights come from per-axis factors, and
    match the dense reference and the per-center path, counts exactly. A center whose
    exponent is past exp's underflow (-708) gets weight 0 on both paths, although its
    per-axis factors are not 0."""
    rng = np.random.default_rng(400 + d)
    X = np.vstack([rng.normal(0.0, 1.0, size=(3_000, d)), np.zeros((1, d))])
    axis = np.linspace(-6.0, 6.0, 9)
    C = np.array(np.meshgrid(*[axis] * d)).reshape(d, -1).T
    X[3] = C[40] + np.eye(d)[0] * 1.5  # exactly at distance bandwidth from a center
    # a far center whose nearest point has exponent -725: past exp's cut-off at -708, yet
    # the product of its two per-axis factors would still be a (subnormal) double
    offset = np.r_[[1.0, 1.0], np.zeros(d - 2)]
    b = min(np.linspace(30, 70, 4001), key=lambda b: abs(cdist(X, [-b * offset]).min() - 57.12))
    C = np.vstack([C, -b * offset])
    assert _kernels.axis_lattice(C) is not None
    sums, weights, counts, _ = ref_chunk_stats(X, C, 1.5, "gaussian")
    lattice = _kernels.chunk_stats(X, C, 1.5, _kernels.GAUSSIAN)
    monkeypatch.setattr(_kernels, "MAX_AXIS_VALUES", 0)
    assert _kernels.axis_lattice(C) is None
    single = _kernels.chunk_stats(X, C, 1.5, _kernels.GAUSSIAN)
    for got in (lattice, single):
        assert_array_equal(got.counts, counts)
        assert_allclose(got.weights, weights, rtol=1e-13, atol=1e-300)  # numpy: subnormals
        assert_allclose(got.sums, sums, rtol=1e-11, atol=1e-11 * weights.max())
    assert counts[40] >= 1
    exponents = ((X - C[-1]) ** 2).sum(axis=1) / (2 * 1.5**2)
    assert 708 < exponents.min() < 740 and np.exp(-exponents.min() / 2) ** 2 > 0
    assert lattice.weights[-1] == single.weights[-1] == 0.0
    assert not np.array_equal(lattice.weights, single.weights)  # the lattice was used
    # points at distance bandwidth in random directions: the same count as the plain path
    # (the squared distance is summed in the same order)
    u = rng.normal(size=(2_000, d))
    Y = C[rng.integers(0, len(C) - 1, len(u))] + 1.5 * u / np.linalg.norm(u, axis=1)[:, None]
    one_by_one = _kernels.chunk_stats(Y, C, 1.5, _kernels.GAUSSIAN).counts
    monkeypatch.undo()
    assert_array_equal(_kernels.chunk_stats(Y, C, 1.5, _kernels.GAUSSIAN).counts, one_by_one)


def test_chunk_stats_boundary_is_inclusive_and_kernel_values():
    # distances 0, 5, 10 from the center: exactly representable, one exactly on the boundary
    X = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    C = np.array([[0.0, 0.0]])
    flat = _kernels.chunk_stats(X, C, 5.0, _kernels.FLAT)
    assert flat.counts.tolist() == [2.0]
    assert flat.weights.tolist() == [2.0]
    assert_allclose(flat.sums, [[3.0, 4.0]])

    epa = _kernels.chunk_stats(X, C, 5.0, _kernels.EPANECHNIKOV)
    assert epa.counts.tolist() == [2.0]  # counted, though its weight 1 - 25/25 is 0
    assert_allclose(epa.weights, [1.0])
    assert_allclose(epa.sums, [[0.0, 0.0]], atol=1e-15)

    gau = _kernels.chunk_stats(X, C, 5.0, _kernels.GAUSSIAN)
    assert gau.counts.tolist() == [2.0]
    w = np.exp(-np.array([0.0, 25.0, 100.0]) / 50.0)
    assert_allclose(gau.weights, [w.sum()], rtol=1e-12)
    assert_allclose(gau.sums, [w @ X], rtol=1e-12)


@pytest.mark.parametrize("kernel", ["flat", "gaussian", "epanechnikov"])
def test_chunk_stats_counts_every_nonfinite_value(kernel):
    rng = np.random.default_rng(12)
    X = rng.normal(size=(1500, 3))
    X[5, 1] = np.nan
    X[77] = [np.inf, np.nan, -np.inf]  # 3 bad values in one row
    X[1400, 2] = -np.inf  # in a later tile
    got = _kernels.chunk_stats(X, rng.normal(size=(4, 3)), 1.0, KERNEL_CODES[kernel])
    assert got.n_nonfinite == int((~np.isfinite(X)).sum()) == 5
    X32 = X.astype(np.float32)
    got32 = _kernels.chunk_stats(X32, np.zeros((1, 3)), 1.0, KERNEL_CODES[kernel])
    assert got32.n_nonfinite == 5


#: The smallest value beyond the supported range (see dshift._limits).
ABOVE = float(np.nextafter(MAX_ABS, np.inf))


@pytest.mark.parametrize("path", ["boxed", "long", "grid", "weighted", "adaptive", "lattice"])
def test_every_chunk_stats_path_counts_values_beyond_the_range(path):
    """|x| > MAX_ABS counts as NaN and inf do (one comparison covers the three), and
    |x| = MAX_ABS does not, on every kernel path: the fit refuses such data after its first
    pass instead of summing overflowed squares (they were not counted before)."""
    rng = np.random.default_rng(14)
    X = rng.normal(size=(1500, 3))
    X[5, 1] = ABOVE
    X[77] = [-ABOVE, 1e300, np.nan]  # 3 bad values in one row
    X[1400, 2] = -np.inf  # in a later tile
    X[600] = [MAX_ABS, -MAX_ABS, 0.0]  # in range
    C = rng.normal(size=(30, 3))
    kernel, options = _kernels.FLAT, {}
    if path == "long":
        options = dict(rows_sorted=False)
    elif path == "grid":
        options = dict(rows_sorted=False, grid=_kernels.center_grid(C, 1.0))
        assert options["grid"] is not None
    elif path in ("weighted", "adaptive"):
        X = np.column_stack([X, np.ones(len(X))])
        kernel, options = _kernels.EPANECHNIKOV, {path: True}
    elif path == "lattice":
        g = np.arange(4.0)
        C = np.array([[a, b, c] for a in g for b in g for c in g])
        assert _kernels.axis_lattice(C) is not None
        kernel = _kernels.GAUSSIAN
    got = _kernels.chunk_stats(X, C, 1.0, kernel, **options)
    assert got.n_nonfinite == 5


def test_binning_and_labelling_count_values_beyond_the_range():
    rng = np.random.default_rng(15)
    X = rng.normal(size=(300, 2))
    X[3, 0] = ABOVE
    X[4] = [MAX_ABS, -MAX_ABS]  # in range: binned
    X[5, 1] = np.nan
    _, counts, bad = _kernels.bin_cells(X, 1.0)
    assert bad == 2 and counts.sum() == 298
    *_, weights, bad = _kernels.grid_cells(X, 1.0)
    assert bad == 2 and weights.sum() == 298
    C = np.zeros((1, 2))
    keys, labels = _kernels.cell_table(np.zeros((1, 2)), np.zeros(1))
    assert _kernels.nearest_labels(X[4:5], C).tolist() == [0]
    for row in ([ABOVE, 0.0], [0.0, -1e300]):  # the squared distances overflowed to inf
        with pytest.raises(ValueError, match=r"or values beyond dshift's range \|x\| <= 1e\+150"):
            _kernels.nearest_labels(np.array([[0.0, 0.0], row]), C)
        with pytest.raises(ValueError, match=r"or values beyond dshift's range \|x\| <= 1e\+150"):
            _kernels.cell_labels(np.array([[0.0, 0.0], row]), 1.0, keys, labels, C)
    # a block out of range is left in its order (the fit raises anyway)
    assert_array_equal(_kernels.spatially_sorted(X), X)


def test_cell_labels_find_cells_beyond_int64():
    """Cell indices floor(x / cell_size) reach 1e300 within the range: they are kept as
    floats (an int64 cast overflowed), and -0.0 finds the cell 0."""
    size = 2.0**-100
    cells = np.array([[0.0], [2.0**70], [-(2.0**80)], [MAX_ABS / size]])
    keys, labels = _kernels.cell_table(cells, np.array([0, 1, 2, 3]))
    X = np.array([[2.0**-30], [-(2.0**-20)], [MAX_ABS], [-0.0], [0.5 * size]])
    C = np.zeros((1, 1))
    assert _kernels.cell_labels(X, size, keys, labels, C).tolist() == [1, 2, 3, 0, 0]


def test_add_stats_equals_stats_of_whole_array_and_does_not_mutate():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2500, 2))
    C = rng.normal(size=(4, 2))
    parts = [
        _kernels.chunk_stats(X[s : s + 600], C, 0.8, _kernels.GAUSSIAN) for s in range(0, 2500, 600)
    ]
    parts = [p._replace(n_nonfinite=k) for k, p in enumerate(parts)]  # 0 + 1 + ... + 4
    before = [(p.sums.copy(), p.weights.copy(), p.counts.copy()) for p in parts]
    total = _kernels.add_stats(*parts)
    sums, weights, counts, _ = ref_chunk_stats(X, C, 0.8, "gaussian")
    assert_allclose(total.sums, sums, rtol=1e-10)
    assert_allclose(total.weights, weights, rtol=1e-10)
    assert_array_equal(total.counts, counts)
    assert total.n_nonfinite == 10
    for p, (s, w, c) in zip(parts, before):
        assert_array_equal(p.sums, s)
        assert_array_equal(p.weights, w)
        assert_array_equal(p.counts, c)
    # a single part is returned as an equal copy
    one = _kernels.add_stats(parts[0])
    assert_array_equal(one.sums, parts[0].sums)
    assert one.sums is not parts[0].sums


# ---------------------------------------------------------------------------------------
# nearest_labels
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nearest_labels_matches_brute_force(dtype):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 3)).astype(dtype)
    C = rng.normal(size=(7, 3))
    d = cdist(X.astype(np.float64), C)
    labels = _kernels.nearest_labels(X, C)
    assert labels.dtype == np.int32
    assert_array_equal(labels, d.argmin(axis=1))
    bw = 0.9
    orphans = _kernels.nearest_labels(X, C, bw, cluster_all=False)
    expected = np.where(d.min(axis=1) <= bw, d.argmin(axis=1), -1)
    assert (expected == -1).any() and (expected >= 0).any()
    assert_array_equal(orphans, expected)


def test_nearest_labels_ties_go_to_first_center_and_boundary_is_inside():
    C = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 0.0]])  # centers 1 and 2 identical
    X = np.array([[1.0, 0.0], [2.0, 0.0], [5.0, 0.0], [2.0, 1.0], [2.0, 1.0000001]])
    assert _kernels.nearest_labels(X, C).tolist() == [0, 1, 1, 1, 1]
    # cluster_all=False: distance exactly == bandwidth keeps the label, beyond gets -1
    assert _kernels.nearest_labels(X, C, 1.0, cluster_all=False).tolist() == [0, 1, -1, 1, -1]


def test_nearest_labels_rejects_nonfinite_rows():
    C = np.zeros((2, 2))
    for bad in (np.nan, np.inf, -np.inf):
        X = np.array([[0.0, 0.0], [bad, 1.0]])
        with pytest.raises(ValueError, match="NaN or infinite"):
            _kernels.nearest_labels(X, C)


# ---------------------------------------------------------------------------------------
# bin_cells / merge_cells
# ---------------------------------------------------------------------------------------


def ref_cells(X, bin_size):
    X = np.asarray(X, dtype=np.float64)
    counts: dict[tuple, int] = {}
    bad = 0
    for row in X:
        n_bad = int((~np.isfinite(row)).sum())
        if n_bad:
            bad += n_bad
            continue
        key = tuple(np.round(row / bin_size).tolist())
        counts[key] = counts.get(key, 0) + 1
    keys = sorted(counts)
    return keys, [counts[k] for k in keys], bad


@pytest.mark.parametrize("tile_rows", [None, 7])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bin_cells_matches_dict_reference(tile_rows, dtype, monkeypatch):
    if tile_rows is not None:  # exercise the tiled merge on a small block
        monkeypatch.setattr(_kernels, "BIN_TILE_ROWS", tile_rows)
    rng = np.random.default_rng(4)
    X = rng.normal(scale=3.0, size=(300, 2)).astype(dtype)
    X[3, 0] = np.nan
    X[150] = [np.inf, -np.inf]
    X[299, 1] = np.nan
    cells, counts, bad = _kernels.bin_cells(X, 1.5)
    keys, ref_counts, ref_bad = ref_cells(X, 1.5)
    assert cells.dtype == np.float64 and counts.dtype == np.int64
    assert [tuple(c) for c in cells.tolist()] == keys  # lexicographically sorted
    assert counts.tolist() == ref_counts
    assert bad == ref_bad == 4
    assert counts.sum() == 297


def test_bin_cells_rounds_half_to_even_like_numpy():
    X = np.array([[0.5], [1.5], [2.5], [-0.5]])
    cells, counts, _ = _kernels.bin_cells(X, 1.0)
    # np.round: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0
    assert cells.ravel().tolist() == [0.0, 2.0]
    assert counts.tolist() == [2, 2]


def test_merge_cells_matches_dict_reference():
    rng = np.random.default_rng(5)
    parts = []
    total: dict[tuple, int] = {}
    bad = 0
    for k in range(5):
        n = int(rng.integers(0, 12))
        cells = np.unique(rng.integers(-3, 3, size=(n, 3)).astype(np.float64), axis=0)
        counts = rng.integers(1, 50, size=len(cells)).astype(np.int64)
        parts.append((cells, counts, k))
        bad += k
        for c, v in zip(map(tuple, cells.tolist()), counts.tolist()):
            total[c] = total.get(c, 0) + v
    parts.append((np.empty((0, 3)), np.empty(0, dtype=np.int64), 4))
    bad += 4
    cells, counts, n_bad = _kernels.merge_cells(*parts)
    keys = sorted(total)
    assert [tuple(c) for c in cells.tolist()] == keys
    assert counts.tolist() == [total[k] for k in keys]
    assert counts.dtype == np.int64
    assert n_bad == bad


# ---------------------------------------------------------------------------------------
# kth_neighbor_distances
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tile_elements", [None, 100])
@pytest.mark.parametrize("k", [1, 2, 9, 37])
def test_kth_neighbor_distances_matches_brute_force(k, tile_elements, monkeypatch):
    if tile_elements is not None:  # rows per tile = 100 // 37 = 2, with a remainder
        monkeypatch.setattr(_kernels, "KNN_TILE_ELEMENTS", tile_elements)
    rng = np.random.default_rng(6)
    S = rng.normal(size=(37, 4)).astype(np.float32)
    expected = np.sort(cdist(S.astype(np.float64), S.astype(np.float64)), axis=1)[:, k - 1]
    got = _kernels.kth_neighbor_distances(S, k)
    assert got.shape == (37,)
    assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    if k == 1:
        assert_array_equal(got, 0.0)


# ---------------------------------------------------------------------------------------
# Full fits vs the dense reference
# ---------------------------------------------------------------------------------------


def assert_fit_matches_reference(ms, X, seeds, ref):
    last = ms.history_[-1]
    alive = ref["alive"]
    assert_array_equal(last.alive, alive)
    # per-seed final positions, pre-deduplication
    assert_allclose(last.centers[alive], ref["finals"][alive], rtol=1e-9, atol=1e-9)
    # per-seed stop iterations and the overall count
    assert_array_equal(stop_iterations(ms.history_, len(seeds))[alive], ref["n_iter"][alive])
    assert ms.n_iter_ == ref["n_iter"].max()
    assert len(ms.history_) == ms.n_iter_ + 1
    # per-seed trajectories: every step's position of every seed still moving
    for j in np.flatnonzero(alive):
        traj = ref["runs"][j][0]
        for it, pos in enumerate(traj):
            assert_allclose(ms.history_[it].centers[j], pos, rtol=1e-9, atol=1e-9)
    # after deduplication
    assert_allclose(ms.cluster_centers_, ref["centers"], rtol=1e-9, atol=1e-9)
    assert_array_equal(ms.intensity_, ref["intensity"])
    assert_array_equal(ms.labels_, ref["labels"])
    assert_array_equal(ms.cluster_sizes_, np.bincount(ref["labels"], minlength=len(ref["centers"])))


@pytest.mark.parametrize("kernel", ["gaussian", "epanechnikov", "flat"])
def test_fit_with_seeds_matches_dense_reference(kernel):
    X = blobs()
    rng = np.random.default_rng(7)
    seeds = np.concatenate([X[rng.choice(len(X), 10, replace=False)], [[40.0, 40.0]]])
    bw = 1.5
    ref = ref_mean_shift(X, seeds, bw, kernel)
    # row_chunks=15 -> 12 chunks, so the tree reduction has two levels
    ms = MeanShift(kernel=kernel, bandwidth=bw, seeds=seeds, row_chunks=15).fit(X)
    assert ms.seeding_ == "given"
    if kernel != "gaussian":  # the far seed has no point within reach of a compact kernel
        assert not ref["alive"][-1]
    assert len(ref["centers"]) == 3
    assert_fit_matches_reference(ms, X, seeds, ref)


def test_textbook_example_gaussian_matches_dense_reference():
    X = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]], dtype=np.float64)
    ref = ref_mean_shift(X, X, 2.0, "gaussian")
    ms = MeanShift(kernel="gaussian", bandwidth=2.0, seeding="all").fit(X)
    assert ms.seeding_ == "all"
    assert_array_equal(ms.seeds_, X)
    assert_fit_matches_reference(ms, X, X, ref)
    assert ms.cluster_centers_.dtype == np.float64


def test_textbook_example_default_seeding_is_all_points():
    X = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]], dtype=np.float64)
    ref = ref_mean_shift(X, X, 2.0, "gaussian", max_iter=20)
    ms = MeanShift(kernel="gaussian", bandwidth=2.0, max_iter=20).fit(X)
    assert ms.seeding_ == "all"
    assert_fit_matches_reference(ms, X, X, ref)


def test_flat_kernel_matches_scikit_learn():
    from sklearn.cluster import MeanShift as SkMeanShift

    X = blobs(n_per=40, seed=8)
    sk = SkMeanShift(bandwidth=1.2).fit(X)
    ms = MeanShift(kernel="flat", bandwidth=1.2, row_chunks=32).fit(X)
    assert_allclose(ms.cluster_centers_, sk.cluster_centers_, rtol=1e-9, atol=1e-12)
    assert_array_equal(ms.labels_, sk.labels_)
    assert ms.n_iter_ == sk.n_iter_


@pytest.mark.parametrize("kernel", ["gaussian", "epanechnikov"])
def test_float32_input_keeps_float32_centers(kernel):
    X32 = blobs(n_per=30, seed=9, dtype=np.float32)
    seeds = X32[::15].astype(np.float64)
    ms = MeanShift(kernel=kernel, bandwidth=1.5, seeds=seeds).fit(X32)
    assert ms.cluster_centers_.dtype == np.float32
    ref = ref_mean_shift(X32, seeds, 1.5, kernel)
    assert_allclose(ms.cluster_centers_, ref["centers"].astype(np.float32), rtol=1e-6)
    assert_array_equal(ms.labels_, ref["labels"])


@pytest.mark.parametrize("kernel", ["flat", "epanechnikov"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("block_rows", [65_536, 1_000, 7])
@pytest.mark.parametrize("d", [3, 2])
def test_center_grid_path_for_unsorted_rows_matches_the_tile_path(
    kernel, weighted, block_rows, d, monkeypatch
):
    """Rows in no spatial order are bucketed by the cells of a grid over the centers,
    a block of rows at a time; same sums, counts and NaN count as the tile path."""
    monkeypatch.setattr(_kernels, "CELL_BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(7)
    X = np.vstack([rng.normal(c, 0.7, size=(3_000, 3)) for c in ([0, 0, 0], [4, 4, 0])])
    X = X[rng.permutation(len(X)), :d]
    C = np.vstack([X[rng.choice(len(X), 60)], np.full((1, d), 50.0)])  # one far center
    # a center exactly at distance bandwidth from a point counts it (inclusive), both ways
    C = np.vstack([C, X[100] + np.eye(d)[0] * 1.5])
    block = np.column_stack([X, rng.integers(0, 3, len(X))]) if weighted else X
    code = KERNEL_CODES[kernel]
    cg = _kernels.center_grid(C, 1.5)
    assert cg is not None  # the grid path really runs
    tiles = _kernels.chunk_stats(block, C, 1.5, code, weighted)
    grid = _kernels.chunk_stats(block, C, 1.5, code, weighted, grid=cg)
    long_tiles = _kernels.chunk_stats(block, C, 1.5, code, weighted, rows_sorted=False)
    for got in (grid, long_tiles):
        np.testing.assert_allclose(got.sums, tiles.sums, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(got.weights, tiles.weights, rtol=1e-12)
        np.testing.assert_array_equal(got.counts, tiles.counts)
    assert grid.counts[-2] == 0 and grid.counts[-1] >= 1
    # non-finite values are counted the same way (the sums are then meaningless)
    block[[5, 17], [1, d - 1]] = [np.nan, np.inf]
    block[9] = np.nan
    bad = _kernels.chunk_stats(block, C, 1.5, code, weighted, grid=cg)
    assert bad.n_nonfinite == _kernels.chunk_stats(block, C, 1.5, code, weighted).n_nonfinite
    assert bad.n_nonfinite == 2 + d  # features only: weights are checked before the fit
    long_bad = _kernels.chunk_stats(block, C, 1.5, code, weighted, rows_sorted=False)
    assert long_bad.n_nonfinite == 2 + d


def test_center_grid_refuses_huge_grids():
    C = np.array([[0.0, 0.0, 0.0], [1e6, 1e6, 1e6]])
    assert _kernels.center_grid(C, 1.0) is None  # too many cells
    assert _kernels.center_grid(np.zeros((2, 9)), 1.0) is None  # too many dimensions
    many = np.random.default_rng(0).normal(size=(_kernels.MAX_GRID_ENTRIES // 3**8 + 1, 8))
    assert _kernels.center_grid(many, 1.0) is None  # too many (cell, center) entries


def test_center_grid_lists_exactly_the_centers_within_reach_of_each_cell():
    rng = np.random.default_rng(3)
    C = rng.uniform(0, 10, size=(40, 2))
    lo, dims, start, members = _kernels.center_grid(C, 1.3)
    for cell in range(int(np.prod(dims))):
        idx = np.array(np.unravel_index(cell, dims))
        box_lo = lo + idx * 1.3
        gap = np.maximum(np.maximum(box_lo - C, C - box_lo - 1.3), 0)
        within = set(np.flatnonzero((gap**2).sum(axis=1) <= 1.3**2 * (1 + 1e-9)))
        assert set(members[start[cell] : start[cell + 1]]) == within
