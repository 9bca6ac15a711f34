"""kernels.plan and chunk_stats: which strategy the plan picks, which forced strategies it
refuses, and every strategy's sums against the dense reference."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dshift import kernels
from dshift._columns import Columns
from dshift._limits import MAX_ABS
from dshift.kernels._groups import GAUSSIAN_GROUP_RADIUS, GROUP_RADIUS
from dshift.kernels._plan import GRID_MIN_UNITS, WIDE_GROUP_RADIUS
from tests.reference import packed, ref_chunk_stats, size

FLAT, GAUSSIAN, EPANECHNIKOV = kernels.FLAT, kernels.GAUSSIAN, kernels.EPANECHNIKOV
#: (weighted, adaptive) of the packed columns
COLUMNS = [(False, False), (True, False), (False, True), (True, True)]
#: The smallest value beyond the supported range (see dshift._limits).
ABOVE = float(np.nextafter(MAX_ABS, np.inf))


def runs(strategy: str, kernel: str, weighted: bool, adaptive: bool) -> bool:
    """Whether a forced strategy can compute these sums (kernels/_plan.py's docstring)."""
    plain = not (weighted or adaptive)
    return {
        "short tiles": plain,
        "long tiles": plain,
        "center grid": kernel != "gaussian" and not adaptive,
        "lattice": kernel == "gaussian" and plain,
        "pointwise": not plain,
    }[strategy]


def lattice(d: int, low: float = -1.5, high: float = 4.0) -> np.ndarray:
    """Centers on a lattice with few enough axis values for the "lattice" strategy."""
    axis = np.linspace(low, high, {2: 8, 3: 4}.get(d, 3))
    return np.array(np.meshgrid(*[axis] * d)).reshape(d, -1).T


def two_modes(d: int, bw: float, seed: int):
    """Points around two modes in spatial order, with weights and bandwidths, and centers:
    two tight groups closing in on the modes, a few loose ones, one far from every point
    and one exactly at distance ``bw`` (point 5's bandwidth) from point 5."""
    rng = np.random.default_rng(seed)
    n = size(1_500, 300)
    X = kernels.spatially_sorted(np.vstack([rng.normal(m, 0.7, (n, d)) for m in (0.0, 2.5)]))
    w = rng.integers(0, 4, len(X)).astype(np.float64)
    h = rng.uniform(0.6, 1.4, len(X)) * bw
    w[5], h[5] = 1.0, bw
    X[5] = np.round(X[5] * 1024) / 1024  # X[5] + bw is exact: on the boundary
    tight = [rng.normal(m, 0.003, (size(8, 4), d)) for m in (0.0, 2.5)]
    far = np.full((1, d), 10.0)
    C = np.vstack([*tight, rng.normal(size=(4, d)), far, X[5] + bw * np.eye(d)[0]])
    return X, w, h, C


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("d", [3, 2, 5])
@pytest.mark.parametrize("kernel", list(kernels.KERNELS))
@pytest.mark.parametrize("strategy", kernels.STRATEGIES)
def test_every_strategy_gives_the_dense_sums_or_is_refused(strategy, kernel, d, weighted, adaptive):
    """Every strategy the plan may be forced to, with or without center groups, gives the
    dense reference's sums (counts exactly, also for a point exactly at distance bandwidth)
    for the columns it can handle, and plan refuses it for the others."""
    bw = 1.5
    X, w, h, C = two_modes(d, bw, seed=10 * d + 2 * weighted + adaptive)
    if strategy == "lattice":
        C = lattice(d)
    code, columns = kernels.KERNELS[kernel], Columns(d, weighted, adaptive)
    if not runs(strategy, kernel, weighted, adaptive):
        with pytest.raises(ValueError, match=f"Cannot plan with strategy='{strategy}': "):
            kernels.plan(C, bw, code, columns, strategy=strategy)
        return
    block = packed(X, w if weighted else None, h if adaptive else None)
    ref = ref_chunk_stats(X, C, bw, kernel, w if weighted else None, h if adaptive else None)
    plans = [kernels.plan(C, bw, code, columns, strategy=strategy)]
    if len(plans[0].groups.leaders):  # and without the groups
        plans.append(kernels.plan(C, bw, code, columns, strategy=strategy, group_radius=0.0))
    if strategy != "lattice" and (
        kernel == "flat" or (kernel == "gaussian" and not (weighted or adaptive))
    ):
        assert len(plans[0].groups.leaders) >= 2  # the tight centers form groups
    atol = 1e-13 if kernel == "epanechnikov" else 1e-300  # 1 - 1 to rounding at the boundary
    for p in plans:
        assert p.strategy == strategy
        got = kernels.chunk_stats(block, p)
        assert got.sums.shape == (len(C), d)
        assert_array_equal(got.counts, ref.counts)
        assert_allclose(got.weights, ref.weights, rtol=1e-12, atol=atol)
        assert_allclose(got.sums, ref.sums, rtol=1e-10, atol=1e-11 * ref.weights.max())
        assert_allclose(got.bandwidths, ref.bandwidths, rtol=1e-10, atol=1e-300)
        assert got.n_nonfinite == 0
    if strategy != "lattice":
        assert ref.counts[-1] >= 1 and ref.counts[-2] == 0  # the boundary and far centers


def test_plan_says_why_it_refuses_a_forced_strategy():
    C = np.array([[0.0, 0.0], [1e7, 1e7]])
    with pytest.raises(ValueError, match=r"strategy must be one of \('short tiles', "):
        kernels.plan(C, 1.0, FLAT, Columns(2), strategy="tiles")
    with pytest.raises(ValueError, match="'center grid': the grid is too large"):
        kernels.plan(C, 1.0, FLAT, Columns(2), strategy="center grid")
    with pytest.raises(ValueError, match="'lattice': the centers are no lattice"):
        kernels.plan(C, 1.0, GAUSSIAN, Columns(2), strategy="lattice")
    with pytest.raises(ValueError, match="'lattice' needs the Gaussian kernel"):
        kernels.plan(lattice(2), 1.0, FLAT, Columns(2), strategy="lattice")
    with pytest.raises(ValueError, match="'center grid' needs a compact kernel and one"):
        kernels.plan(lattice(2), 1.0, GAUSSIAN, Columns(2), strategy="center grid")
    with pytest.raises(ValueError, match="'pointwise' needs weighted points or per-point"):
        kernels.plan(C, 1.0, FLAT, Columns(2), strategy="pointwise")
    with pytest.raises(ValueError, match="'long tiles' needs unweighted points with one"):
        kernels.plan(C, 1.0, FLAT, Columns(2, weighted=True), strategy="long tiles")


# ---------------------------------------------------------------------------------------
# The plan's choices (kernels/_plan.py's _choose)
# ---------------------------------------------------------------------------------------


def on_a_line(m: int, d: int = 3, spacing: float = 1.0) -> np.ndarray:
    """m centers, each alone in its group (``spacing`` apart along the first axis)."""
    C = np.zeros((m, d))
    C[:, 0] = spacing * np.arange(m)
    return C


def tight_groups(k: int, d: int = 3, members: int = 5) -> np.ndarray:
    """k groups of centers, each closing in on its own mode (modes 3 apart)."""
    rng = np.random.default_rng(k)
    return np.vstack(
        [rng.normal(0.0, 0.002, (members, d)) + on_a_line(k, d, 3.0)[g] for g in range(k)]
    )


def choice(C, kernel=FLAT, weighted=False, adaptive=False, rows_sorted=True) -> str:
    columns = Columns(C.shape[1], weighted, adaptive)
    p = kernels.plan(C, 1.0, kernel, columns, rows_sorted=rows_sorted)
    assert (p.grid is not None) == (p.strategy == "center grid")
    assert (p.lattice is not None) == (p.strategy == "lattice")
    return p.strategy


@pytest.mark.parametrize("kernel", [FLAT, GAUSSIAN, EPANECHNIKOV], ids=list(kernels.KERNELS))
def test_sorted_plain_rows_use_short_tiles(kernel):
    for C in (on_a_line(3), on_a_line(500), tight_groups(30)):
        assert choice(C, kernel) == "short tiles"


@pytest.mark.parametrize("kernel", [FLAT, EPANECHNIKOV], ids=["flat", "epanechnikov"])
def test_unsorted_rows_use_the_center_grid_from_grid_min_units_centers(kernel):
    assert choice(on_a_line(1), kernel, rows_sorted=False) == "long tiles"
    assert choice(on_a_line(GRID_MIN_UNITS - 1), kernel, rows_sorted=False) == "long tiles"
    assert choice(on_a_line(GRID_MIN_UNITS), kernel, rows_sorted=False) == "center grid"
    assert choice(on_a_line(500), kernel, rows_sorted=False) == "center grid"


def test_a_flat_group_counts_as_one_center_unit():
    """Flat groups closing in on a mode cost about one center each: few groups of many
    centers run through long tiles. The Epanechnikov kernel has no groups, and weighted
    points none that save work: there every center is a unit."""
    few = tight_groups(GRID_MIN_UNITS - 1)  # 5 times as many centers as units
    many = tight_groups(GRID_MIN_UNITS)
    groups = kernels.plan(few, 1.0, FLAT, Columns(3)).groups
    assert len(groups.leaders) == GRID_MIN_UNITS - 1 and (groups.group_of >= 0).all()
    assert choice(few, rows_sorted=False) == "long tiles"
    assert choice(many, rows_sorted=False) == "center grid"
    # lone centers and groups add up
    mixed = np.vstack([tight_groups(GRID_MIN_UNITS - 2), on_a_line(1, spacing=0.0) - 5.0])
    assert choice(mixed, rows_sorted=False) == "long tiles"
    assert choice(np.vstack([mixed, [[-9.0, 0.0, 0.0]]]), rows_sorted=False) == "center grid"
    assert choice(few, EPANECHNIKOV, rows_sorted=False) == "center grid"
    assert choice(few, weighted=True, rows_sorted=False) == "center grid"
    assert choice(on_a_line(GRID_MIN_UNITS - 1), weighted=True, rows_sorted=False) == "pointwise"


def crowded(k: int, members: int = 8, spread: float = 0.12, seed: int = 0) -> np.ndarray:
    """k modes 3 apart, each with centers up to ``spread`` from it: apart at the grid's
    group radius, within one group at ``WIDE_GROUP_RADIUS``."""
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-1.0, 1.0, (k, members, 3))
    offsets *= spread / np.sqrt(3) / np.abs(offsets).max()
    return (offsets + on_a_line(k, 3, 3.0)[:, None, :]).reshape(-1, 3)


def test_crowded_flat_centers_on_unsorted_rows_run_as_wide_groups_through_long_tiles():
    """Centers closing in on few modes, too far apart for the grid's groups but within
    ``WIDE_GROUP_RADIUS`` of their mode, run as wide groups through long tiles; the same
    centers on sorted rows, with another kernel or with weights keep the groups of
    ``GROUP_RADIUS``; and the sums are those of the dense reference."""
    C = crowded(5)
    narrow = kernels.plan(C, 1.0, FLAT, Columns(3), group_radius=GROUP_RADIUS)
    assert len(narrow.groups.leaders) + (narrow.groups.group_of < 0).sum() >= GRID_MIN_UNITS
    p = kernels.plan(C, 1.0, FLAT, Columns(3), rows_sorted=False)
    assert p.strategy == "long tiles" and len(p.groups.leaders) == 5
    assert (p.groups.group_of >= 0).all() and (p.groups.radius <= WIDE_GROUP_RADIUS).all()
    assert choice(C) == "short tiles"
    assert choice(C, EPANECHNIKOV, rows_sorted=False) == "center grid"
    assert choice(C, weighted=True, rows_sorted=False) == "center grid"
    # groups of many modes stay in the grid
    assert choice(crowded(GRID_MIN_UNITS), rows_sorted=False) == "center grid"
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(m, 0.6, (size(4_000, 800), 3)) for m in on_a_line(5, 3, 3.0)])
    X = X[rng.permutation(len(X))]
    got = kernels.chunk_stats(X, p)
    ref = ref_chunk_stats(X, C, 1.0, "flat")
    assert_array_equal(got.counts, ref.counts)
    assert_allclose(got.sums, ref.sums, rtol=1e-12, atol=1e-9)
    assert_allclose(got.weights, ref.weights, rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kernel", [FLAT, EPANECHNIKOV], ids=["flat", "epanechnikov"])
def test_unsorted_rows_without_a_grid_use_the_tiles_that_prune(kernel, weighted):
    """A grid too large (far-flung centers, many dimensions) is not built: plain points
    then take short tiles, whose boxes may prune, and weighted ones the pointwise sums."""
    fallback = "pointwise" if weighted else "short tiles"
    far_flung = on_a_line(GRID_MIN_UNITS, spacing=1e6)
    many_dims = on_a_line(GRID_MIN_UNITS, d=9)
    for C in (far_flung, many_dims):
        assert choice(C, kernel, weighted, rows_sorted=False) == fallback


def test_gaussian_centers_use_short_tiles_in_any_row_order():
    """The Gaussian has no center grid (no compact support): its groups need small boxes."""
    for C in (on_a_line(3), on_a_line(500), tight_groups(30)):
        assert choice(C, GAUSSIAN, rows_sorted=False) == "short tiles"


@pytest.mark.parametrize("rows_sorted", [True, False])
def test_gaussian_centers_on_a_lattice_use_the_lattice(rows_sorted):
    for d in (2, 3, 5):
        assert choice(lattice(d), GAUSSIAN, rows_sorted=rows_sorted) == "lattice"
    # at most a quarter as many axis values as centers; no centers, no lattice
    assert choice(np.zeros((4, 1)), GAUSSIAN, rows_sorted=rows_sorted) == "lattice"
    assert choice(np.zeros((3, 1)), GAUSSIAN, rows_sorted=rows_sorted) == "short tiles"
    assert choice(np.zeros((0, 3)), GAUSSIAN, rows_sorted=rows_sorted) == "short tiles"
    assert choice(lattice(2)[:63], GAUSSIAN, rows_sorted=rows_sorted) == "short tiles"
    # not for points with weights or bandwidths
    assert choice(lattice(3), GAUSSIAN, weighted=True, rows_sorted=rows_sorted) == "pointwise"
    assert choice(lattice(3), GAUSSIAN, adaptive=True, rows_sorted=rows_sorted) == "pointwise"
    # compact kernels have no lattice path
    compact = "short tiles" if rows_sorted else "center grid"
    assert choice(lattice(3), FLAT, rows_sorted=rows_sorted) == compact
    assert choice(lattice(3), EPANECHNIKOV, rows_sorted=rows_sorted) == compact


@pytest.mark.parametrize("kernel", [FLAT, GAUSSIAN, EPANECHNIKOV], ids=list(kernels.KERNELS))
def test_weighted_points_use_the_pointwise_sums_or_the_center_grid(kernel):
    for C in (on_a_line(3), on_a_line(500), lattice(3)):
        assert choice(C, kernel, weighted=True) == "pointwise"
    unsorted = "pointwise" if kernel == GAUSSIAN else "center grid"
    assert choice(on_a_line(500), kernel, weighted=True, rows_sorted=False) == unsorted


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kernel", [FLAT, GAUSSIAN, EPANECHNIKOV], ids=list(kernels.KERNELS))
def test_points_with_their_own_bandwidths_always_use_the_pointwise_sums(kernel, weighted):
    for C in (on_a_line(3), on_a_line(500), lattice(3), tight_groups(30)):
        for rows_sorted in (True, False):
            assert choice(C, kernel, weighted, True, rows_sorted) == "pointwise"


def test_default_group_radius_depends_on_the_kernel_and_the_columns():
    """Flat groups help plain and weighted points (their shells are tested per member);
    the Gaussian's only plain points; the Epanechnikov kernel has none."""
    C = np.array([[0.0, 0.0], [0.02, 0.0], [0.05, 0.0], [5.0, 5.0]])

    def grouped(kernel, weighted=False, adaptive=False, **radius):
        p = kernels.plan(C, 1.0, kernel, Columns(2, weighted, adaptive), **radius)
        return p.groups.group_of.tolist()

    # GROUP_RADIUS = 1/32 takes the first two; GAUSSIAN_GROUP_RADIUS = 1/40 too
    assert 0.02 < GAUSSIAN_GROUP_RADIUS < GROUP_RADIUS < 0.05
    assert grouped(FLAT) == grouped(FLAT, True) == grouped(GAUSSIAN) == [0, 0, -1, -1]
    assert grouped(GAUSSIAN, True) == grouped(GAUSSIAN, False, True) == [-1] * 4
    assert grouped(EPANECHNIKOV) == grouped(EPANECHNIKOV, True) == [-1] * 4
    assert grouped(FLAT, group_radius=0.0) == grouped(GAUSSIAN, group_radius=0.0) == [-1] * 4
    assert grouped(FLAT, group_radius=0.06) == [0, 0, 0, -1]


def test_sorts_rows_unless_gaussian_points_carry_weights_or_bandwidths():
    for kernel in (FLAT, EPANECHNIKOV):
        for weighted, adaptive in COLUMNS:
            assert kernels.sorts_rows(kernel, Columns(2, weighted, adaptive))
    assert kernels.sorts_rows(GAUSSIAN, Columns(2))
    for weighted, adaptive in COLUMNS[1:]:
        assert not kernels.sorts_rows(GAUSSIAN, Columns(2, weighted, adaptive))


def test_plan_keeps_contiguous_float64_centers():
    C = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(6, 2))
    p = kernels.plan(C, 2, FLAT, Columns(2))
    assert p.centers.dtype == np.float64 and p.centers.flags.c_contiguous
    assert_array_equal(p.centers, C)
    assert type(p.bandwidth) is float and p.kernel == FLAT and p.columns == Columns(2)


def test_a_group_radius_is_refused_for_the_epanechnikov_kernel():
    C = np.random.default_rng(0).normal(0.0, 0.005, size=(6, 3))
    with pytest.raises(ValueError, match="center groups serve the flat and Gaussian kernels"):
        kernels.plan(C, 1.0, EPANECHNIKOV, Columns(3), group_radius=GROUP_RADIUS)
    p = kernels.plan(C, 1.0, EPANECHNIKOV, Columns(3), group_radius=0.0)
    assert (p.groups.group_of == -1).all()


# ---------------------------------------------------------------------------------------
# chunk_stats / add_stats
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", list(kernels.KERNELS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunk_stats_matches_dense_reference_per_chunk(kernel, dtype):
    rng = np.random.default_rng(1)
    # chunks span several kernel tiles, the last one partial
    n, chunk = size(2_500, 1_300), size(1_100, 600)
    X = rng.normal(size=(n, 3)).astype(dtype)
    C = np.concatenate([rng.normal(size=(8, 3)), [[30.0, 0.0, 0.0]]])  # one far center
    bw = 1.3
    p = kernels.plan(C, bw, kernels.KERNELS[kernel], Columns(3))
    for start in range(0, len(X), chunk):
        block = X[start : start + chunk]
        got = kernels.chunk_stats(block, p)
        sums, weights, counts, bad, _ = ref_chunk_stats(block, C, bw, kernel)
        assert got.sums.shape == (9, 3) and got.sums.dtype == np.float64
        assert_allclose(got.sums, sums, rtol=1e-10, atol=1e-12)
        assert_allclose(got.weights, weights, rtol=1e-10, atol=1e-12)
        assert_array_equal(got.counts, counts)
        assert got.n_nonfinite == bad == 0
        assert counts[:8].sum() > 0 and counts[8] == 0


def test_add_stats_equals_stats_of_whole_array_and_does_not_mutate():
    rng = np.random.default_rng(2)
    n, chunk = size(2_500, 1_200), size(600, 250)  # 5 chunks
    X = rng.normal(size=(n, 2))
    C = rng.normal(size=(4, 2))
    p = kernels.plan(C, 0.8, GAUSSIAN, Columns(2))
    parts = [kernels.chunk_stats(X[s : s + chunk], p) for s in range(0, n, chunk)]
    parts = [p._replace(n_nonfinite=k) for k, p in enumerate(parts)]  # 0 + 1 + ... + 4
    before = [(p.sums.copy(), p.weights.copy(), p.counts.copy()) for p in parts]
    total = kernels.add_stats(*parts)
    sums, weights, counts, *_ = ref_chunk_stats(X, C, 0.8, "gaussian")
    assert_allclose(total.sums, sums, rtol=1e-10)
    assert_allclose(total.weights, weights, rtol=1e-10)
    assert_array_equal(total.counts, counts)
    assert total.n_nonfinite == 10
    for p, (s, w, c) in zip(parts, before):
        assert_array_equal(p.sums, s)
        assert_array_equal(p.weights, w)
        assert_array_equal(p.counts, c)
    # a single part is returned as an equal copy
    one = kernels.add_stats(parts[0])
    assert_array_equal(one.sums, parts[0].sums)
    assert one.sums is not parts[0].sums


@pytest.mark.parametrize("kernel", list(kernels.KERNELS))
def test_chunk_stats_counts_every_nonfinite_value(kernel):
    rng = np.random.default_rng(12)
    X = rng.normal(size=(1500, 3))
    X[5, 1] = np.nan
    X[77] = [np.inf, np.nan, -np.inf]  # 3 bad values in one row
    X[1400, 2] = -np.inf  # in a later tile
    code = kernels.KERNELS[kernel]
    # (without the JIT, numpy warns of the meaningless inf - inf in the sums)
    with np.errstate(invalid="ignore"):
        got = kernels.chunk_stats(X, kernels.plan(rng.normal(size=(4, 3)), 1.0, code, Columns(3)))
        assert got.n_nonfinite == int((~np.isfinite(X)).sum()) == 5
        X32 = X.astype(np.float32)
        got32 = kernels.chunk_stats(X32, kernels.plan(np.zeros((1, 3)), 1.0, code, Columns(3)))
    assert got32.n_nonfinite == 5


@pytest.mark.parametrize(
    "strategy, kernel, weighted, adaptive",
    [
        ("short tiles", "flat", False, False),
        ("long tiles", "flat", False, False),
        ("center grid", "flat", False, False),
        ("center grid", "flat", True, False),
        ("pointwise", "epanechnikov", True, False),
        ("pointwise", "epanechnikov", False, True),
        ("lattice", "gaussian", False, False),
    ],
)
def test_every_strategy_counts_values_beyond_the_range(strategy, kernel, weighted, adaptive):
    """|x| > MAX_ABS counts as NaN and inf do (one comparison covers the three), and
    |x| = MAX_ABS does not, on every strategy: the fit refuses such data after its first
    pass instead of summing overflowed squares (they were not counted before)."""
    rng = np.random.default_rng(14)
    X = rng.normal(size=(1500, 3))
    X[5, 1] = ABOVE
    X[77] = [-ABOVE, 1e300, np.nan]  # 3 bad values in one row
    X[1400, 2] = -np.inf  # in a later tile
    X[600] = [MAX_ABS, -MAX_ABS, 0.0]  # in range
    C = lattice(3) if strategy == "lattice" else rng.normal(size=(30, 3))
    ones = np.ones(len(X))
    block = packed(X, ones if weighted else None, ones if adaptive else None)
    code, columns = kernels.KERNELS[kernel], Columns(3, weighted, adaptive)
    p = kernels.plan(C, 1.0, code, columns, strategy=strategy)
    with np.errstate(invalid="ignore", over="ignore"):  # without the JIT, numpy warns
        got = kernels.chunk_stats(block, p)
    assert got.n_nonfinite == 5
