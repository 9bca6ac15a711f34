"""The numeric range dshift supports (dshift._limits): computed right inside, refused outside.

Inside the range a problem and the same problem scaled by a power of two give the same
answer bit for bit (every float64 operation commutes with such a scaling while nothing
overflows or underflows), so the bounds are checked against the scaled-down problem.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from dshift import MeanShift, estimate_bandwidth, get_bin_seeds
from dshift._limits import MAX_ABS, MAX_BANDWIDTH, MAX_TOTAL_WEIGHT, MIN_BANDWIDTH

RANGE = r"outside dshift's supported range \[1e-150, 1e\+150\]"
X_RANGE = r"beyond dshift's range \|x\| <= 1e\+150"
ABOVE = float(np.nextafter(MAX_ABS, np.inf))


def two_blobs(scale: float = 1.0, n: int = 100) -> np.ndarray:
    """Two tight blobs 1.2 * scale apart, every coordinate within [-scale, scale]."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-0.6, 0.05, (n, 2)), rng.normal(0.6, 0.05, (n, 2))])
    return np.clip(X, -1.0, 1.0) * scale


# ---------------------------------------------------------------------------------------
# Bandwidths
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bandwidth", [1.4e154, 1e155, 1e300])
def test_a_bandwidth_above_the_range_is_refused_not_an_overflow(bandwidth):
    """Its square overflowed float64: OverflowError from deep inside the fit."""
    with pytest.raises(ValueError, match=rf"bandwidth={re.escape(repr(bandwidth))} is {RANGE}"):
        MeanShift(bandwidth=bandwidth, kernel="flat").fit(two_blobs())


def test_the_gaussian_with_bandwidth_1e_300_is_refused_not_two_equal_centers():
    """Its square was 0: every weight exp(0) = 1, and both seeds ended at the same mean."""
    with pytest.raises(ValueError, match=rf"bandwidth=1e-300 is {RANGE}"):
        MeanShift(bandwidth=1e-300, kernel="gaussian").fit(np.array([[0.0], [1.0]]))


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("bound", ["upper", "lower"])
def test_bandwidths_at_the_bounds_give_the_scaled_fit_bit_for_bit(kernel, bound):
    """bandwidth = 1e150 with data reaching |x| = 1e150, and bandwidth = 1e-150: the fit of
    the same problem scaled by a power of two, times the scale."""
    scale = 2.0**500 if bound == "upper" else 2.0**-500
    target = MAX_BANDWIDTH if bound == "upper" else MIN_BANDWIDTH
    bandwidth = target / scale  # exact: the scale is a power of two
    X = two_blobs(bandwidth)
    X[0, 0] = -bandwidth  # scaled, the data reach |x| = 1e150 at the upper bound
    ref = MeanShift(bandwidth=bandwidth, kernel=kernel).fit(X)
    got = MeanShift(bandwidth=target, kernel=kernel).fit(X * scale)
    assert got.bandwidth_ == target and np.abs(X * scale).max() == target
    assert_array_equal(got.cluster_centers_, ref.cluster_centers_ * scale)
    assert_array_equal(got.labels_, ref.labels_)
    assert_array_equal(got.intensity_, ref.intensity_)


@pytest.mark.parametrize(
    "bandwidth", [float(np.nextafter(MAX_BANDWIDTH, np.inf)), float(np.nextafter(1e-150, 0))]
)
def test_a_bandwidth_just_outside_the_range_is_refused(bandwidth):
    with pytest.raises(ValueError, match=RANGE):
        MeanShift(bandwidth=bandwidth).fit(two_blobs())


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_an_estimated_bandwidth_outside_the_range_is_refused(kernel):
    """Data at 1e-160 estimate a bandwidth of ~1e-160, whose square is subnormal: the
    Gaussian dropped every seed ("No point was within bandwidth=0.000000")."""
    X = two_blobs(1e-160)
    assert 0 < estimate_bandwidth(X) < MIN_BANDWIDTH
    with pytest.raises(ValueError, match=rf"The estimated bandwidth .* is {RANGE}.*X \* 1e\+16"):
        MeanShift(kernel=kernel).fit(X)


def test_bin_size_and_point_bandwidths_outside_the_range_are_refused():
    X = two_blobs()
    with pytest.raises(ValueError, match=rf"bin_size=1e-200 is {RANGE}"):
        MeanShift(bandwidth=1.0, bin_size=1e-200, seeding="bin").fit(X)
    with pytest.raises(ValueError, match=rf"bin_size=1e-200 is {RANGE}"):
        get_bin_seeds(X, 1e-200)
    h = np.ones(len(X))
    h[[3, 7]] = [1e-200, 1e200]
    with pytest.raises(ValueError, match=r"point_bandwidth contains 2 non-positive, NaN, infin"):
        MeanShift(kernel="flat").fit(X, point_bandwidth=h)


# ---------------------------------------------------------------------------------------
# Coordinates
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_data_near_1e307_with_an_estimated_bandwidth_are_refused_with_the_range(kernel):
    """Their squared distances overflowed: an infinite bandwidth estimate, then
    ZeroDivisionError or a false 'X contains NaN or infinite values'."""
    X = two_blobs() * 1e307
    with pytest.raises(ValueError, match=rf"\(400 in a sample of 200 rows\) or values {X_RANGE}"):
        MeanShift(kernel=kernel).fit(X)
    with pytest.raises(ValueError, match=X_RANGE):
        estimate_bandwidth(X)


@pytest.mark.parametrize(
    "params",
    [
        dict(seeding="all"),
        dict(seeding="bin"),
        dict(seeding="sample", n_seeds=5),
        dict(seeding="all", algorithm="grid"),
        dict(seeding="all", kernel="gaussian"),
    ],
)
def test_data_beyond_the_range_are_counted_by_the_first_pass(params):
    """One value just above 1e150 is refused by whichever pass reads X first (seeding, the
    grid summary, the loop's first iteration), with NaN and inf: one count, one message."""
    X = two_blobs(1e149)
    X[5, 1] = -ABOVE
    X[6, 0] = np.nan
    params = {"kernel": "flat", **params}
    with pytest.raises(ValueError, match=r"X contains 2 NaN or infinite value\(s\) or value"):
        MeanShift(bandwidth=1e149, **params).fit(X)


def test_seeds_and_data_to_label_beyond_the_range_are_refused():
    X = two_blobs()
    seeds_message = rf"seeds contain NaN or infinite values or values {X_RANGE}"
    with pytest.raises(ValueError, match=seeds_message):
        MeanShift(bandwidth=1.0, seeds=[[1e200, 0.0]]).fit(X)
    model = MeanShift(bandwidth=1.0, kernel="flat").fit(X)
    with pytest.raises(ValueError, match=rf"X contains NaN or infinite values or values {X_RANGE}"):
        model.predict(np.array([[0.0, 1e200]]))  # its distances overflowed to inf
    assert model.predict(np.array([[MAX_ABS, -MAX_ABS]])).shape == (1,)


def test_bin_seeds_beyond_float32_keep_their_value():
    """Bin seeds are float32 as scikit-learn's, which overflowed to inf beyond 3.4e38: every
    seed was dropped ("No point was within bandwidth") for data within dshift's range."""
    X = two_blobs()
    scale = 2.0**140  # 1.4e42
    ref = MeanShift(bandwidth=0.5, kernel="flat", seeding="bin").fit(X)
    got = MeanShift(bandwidth=0.5 * scale, kernel="flat", seeding="bin").fit(X * scale)
    assert len(got.cluster_centers_) == 2
    np.testing.assert_allclose(got.cluster_centers_, ref.cluster_centers_ * scale, rtol=1e-12)
    assert_array_equal(got.labels_, ref.labels_)
    seeds = get_bin_seeds(X * scale, 0.5 * scale)
    assert np.isfinite(seeds).all() and seeds.dtype == np.float64


def test_mode_labels_with_cell_indices_beyond_int64():
    """|x| / cell_size above 2**63: the cell table's int64 cast overflowed."""
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1e5, (100, 2)), rng.normal(5e6, 1e5, (100, 2))]) + 1e20
    model = MeanShift(bandwidth=1e6, kernel="flat", label_method="mode", grid_fraction=1e-6)
    labels = model.fit(X).labels_
    assert sorted(np.bincount(labels)) == [100, 100]


# ---------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_weights_of_1e308_are_refused_with_the_range(kernel):
    """Their total overflowed, and so did the weighted sums: "No point was within
    bandwidth" (Gaussian). No weight may exceed the largest total, 1e150."""
    X = two_blobs()
    w = np.full(len(X), 1e308)
    match = r"sample_weight contains 200 negative, NaN or infinite value\(s\) or value\(s\) above"
    with pytest.raises(ValueError, match=rf"{match} 1e\+150; .* total in .*\[1e-150, 1e\+150\]"):
        MeanShift(bandwidth=1.0, kernel=kernel).fit(X, sample_weight=w)


def test_a_weight_total_at_the_bound_gives_the_scaled_fit_bit_for_bit():
    """One point weighs 1e150 and the others 1 (their sum vanishes in the total's rounding,
    so the total is exactly 1e150): the fit of the weights times 2**-400."""
    X = two_blobs(1e149)
    w = np.ones(len(X))
    w[0] = MAX_TOTAL_WEIGHT
    assert w.sum() == MAX_TOTAL_WEIGHT
    got = MeanShift(bandwidth=5e148, kernel="flat").fit(X, sample_weight=w)
    ref = MeanShift(bandwidth=5e148, kernel="flat").fit(X, sample_weight=w * 2.0**-400)
    assert_array_equal(got.cluster_centers_, ref.cluster_centers_)
    assert_array_equal(got.labels_, ref.labels_)
    assert_array_equal(got.intensity_, ref.intensity_ * 2.0**400)
    assert_array_equal(got.cluster_sizes_, ref.cluster_sizes_ * 2.0**400)


def test_a_weight_total_just_outside_the_range_is_refused():
    """Below 1e-150 the weighted offsets underflowed: the centers were silently wrong."""
    X = two_blobs()
    w = np.zeros(len(X))
    w[:3] = [5e149, 5e149, 1e135]  # 1e150 + 1e135
    with pytest.raises(ValueError, match=rf"sample_weight sums to 1e\+150, {RANGE}"):
        MeanShift(bandwidth=1.0, kernel="flat").fit(X, sample_weight=w)
    with pytest.raises(ValueError, match=rf"sample_weight sums to 2e-198, {RANGE}"):
        MeanShift(bandwidth=1.0, kernel="flat").fit(X, sample_weight=np.full(len(X), 1e-200))
