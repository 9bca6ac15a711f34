"""The scikit-learn estimator contract, the accepted inputs, and the fitted attributes."""

from __future__ import annotations

import inspect
import time
from contextlib import contextmanager
from unittest import mock

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from dask.callbacks import Callback
from dask.utils import key_split
from distributed import get_task_stream
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist

import dshift
from dshift import MeanShift, Step, _iterate, mean_shift
from dshift._centers import MAX_RELAX
from dshift._iterate import SPLIT_EVERY, compute_tree
from dshift._resident import LocalBlocks

# the constructor's parameters, all keyword-only (scikit-learn's convention)
PARAM_NAMES = sorted(
    name for name, p in inspect.signature(MeanShift.__init__).parameters.items() if name != "self"
)


def blobs(n_per=50, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 6.0]])
    X = np.concatenate([rng.normal(m, 0.4, size=(n_per, 2)) for m in means])
    return X.astype(dtype)


@contextmanager
def recording(scheduler):
    """Run the block on the given scheduler and collect the names of the tasks it ran."""
    names: list[str] = []
    if scheduler is None:

        class Record(Callback):
            def _pretask(self, key, dsk, state):
                names.append(key_split(key))

        def recorded(self, fn, *args):  # persisted blocks run on threads, without tasks
            names.append(getattr(fn, "func", fn).__name__)  # partials too
            return run_on_threads(self, fn, *args)

        run_on_threads = LocalBlocks.map_blocks
        with (
            dask.config.set(scheduler="threads"),
            Record(),
            mock.patch.object(LocalBlocks, "map_blocks", recorded),
        ):
            yield names
    else:
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        with get_task_stream(scheduler) as ts:
            yield names
        names.extend(key_split(t["key"]) for t in ts.data)
        workers = set(scheduler.scheduler_info()["workers"])
        assert {t["worker"] for t in ts.data} <= workers
        # The loop's chunk sums over data held by the workers run there without tasks
        # (dshift._resident): each such call is in the workers' logs.
        names.extend(["chunk_stats"] * _runs_on_workers(scheduler, since))


def _runs_on_workers(client, since: str) -> int:
    """How many times the workers ran dshift's chunk function on the blocks they hold,
    from the second ``since`` on (the logs keep their last 10,000 lines)."""
    logs = client.get_worker_logs()
    return sum(
        "_run_here" in message and message[:19] >= since
        for entries in logs.values()
        for _, message in entries
    )


# ---------------------------------------------------------------------------------------
# get_params / set_params / clone / repr
# ---------------------------------------------------------------------------------------


def test_get_params_lists_every_constructor_parameter():
    ms = MeanShift(bandwidth=2.5, kernel="flat")
    params = ms.get_params()
    assert sorted(params) == PARAM_NAMES
    assert {"bandwidth", "kernel", "seeds", "seeding", "max_iter", "tol"} <= set(params)
    assert all(
        p.kind == p.KEYWORD_ONLY
        for n, p in inspect.signature(MeanShift.__init__).parameters.items()
        if n != "self"
    )
    assert params["bandwidth"] == 2.5 and params["kernel"] == "flat"
    assert params["max_iter"] == 300 and params["tol"] == 1e-3 and params["seeding"] == "auto"
    assert ms.get_params(deep=False) == params


def test_set_params_returns_self_and_rejects_unknown_names():
    ms = MeanShift()
    assert ms.set_params(bandwidth=3.0, max_iter=7) is ms
    assert ms.bandwidth == 3.0 and ms.get_params()["max_iter"] == 7
    with pytest.raises(ValueError, match=r"Invalid parameter 'bandwith' for estimator MeanShift"):
        ms.set_params(bandwith=1.0)
    assert ms.bandwidth == 3.0
    with pytest.raises(TypeError):
        MeanShift(2.0)  # keyword-only, as scikit-learn's


def test_clone_gives_an_unfitted_copy_with_equal_params():
    from sklearn.base import clone

    seeds = np.array([[0.0, 0.0], [5.0, 5.0]])
    ms = MeanShift(bandwidth=1.5, kernel="epanechnikov", seeds=seeds, tol=1e-4, random_state=3)
    ms.fit(blobs())
    copy = clone(ms)
    assert copy is not ms and type(copy) is MeanShift
    a, b = ms.get_params(), copy.get_params()
    assert sorted(a) == sorted(b)
    for name in a:
        if name == "seeds":
            assert_array_equal(a[name], b[name])
        else:
            assert a[name] == b[name]
    assert not hasattr(copy, "cluster_centers_")
    assert not hasattr(copy, "labels_")
    # the clone fits to the same result
    copy.fit(blobs())
    assert_allclose(copy.cluster_centers_, ms.cluster_centers_)


def test_repr_shows_only_non_default_params():
    assert repr(MeanShift()) == "MeanShift()"
    r = repr(MeanShift(bandwidth=2.0, kernel="gaussian", cluster_all=False, max_iter=300))
    assert r.startswith("MeanShift(") and r.endswith(")")
    assert "bandwidth=2.0" in r
    assert "kernel='gaussian'" in r
    assert "cluster_all=False" in r
    assert "max_iter" not in r and "tol" not in r and "seeding" not in r
    # the repr of scalar parameters evaluates back to an equal estimator
    ms = MeanShift(bandwidth=1.25, seeding="bin", min_bin_freq=3, tol=0.01, n_seeds=40)
    again = eval(repr(ms), {"MeanShift": MeanShift})
    assert again.get_params() == ms.get_params()


# ---------------------------------------------------------------------------------------
# fit / predict / fit_predict / mean_shift
# ---------------------------------------------------------------------------------------


def test_fit_returns_self_and_sets_attributes():
    X = blobs()
    ms = MeanShift(bandwidth=1.5)
    assert ms.fit(X) is ms
    assert ms.n_features_in_ == 2
    assert ms.bandwidth_ == 1.5
    assert ms.seeding_ == "all"  # 150 points <= 10,000: scikit-learn's default
    assert_array_equal(ms.seeds_, X)
    assert isinstance(ms.labels_, np.ndarray) and ms.labels_.dtype == np.int64  # scikit-learn's
    assert ms.labels_.shape == (len(X),)
    assert ms.cluster_centers_.shape == (3, 2)
    # each blob's mean is close to one center
    true = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 6.0]])
    assert (cdist(true, ms.cluster_centers_).min(axis=1) < 0.3).all()


def test_fit_predict_and_predict_equal_labels():
    X = blobs(seed=1)
    ms = MeanShift(bandwidth=1.5, row_chunks=40).fit(X)
    assert_array_equal(MeanShift(bandwidth=1.5, row_chunks=40).fit_predict(X), ms.labels_)
    assert_array_equal(ms.predict(X), ms.labels_)
    # labels are the nearest centers, computed independently
    assert_array_equal(ms.labels_, cdist(X, ms.cluster_centers_).argmin(axis=1))
    new = np.array([[0.2, -0.1], [4.0, 4.5], [-1.0, 7.0], [100.0, 100.0]])
    assert_array_equal(ms.predict(new), cdist(new, ms.cluster_centers_).argmin(axis=1))
    assert ms.predict(new.tolist()).tolist() == ms.predict(new).tolist()


def test_cluster_all_false_gives_orphans_but_predict_labels_everything():
    X = np.concatenate([blobs(seed=2), [[20.0, 20.0]]])
    seeds = [[0.0, 0.0], [5.0, 5.0], [0.0, 6.0]]
    ms = MeanShift(bandwidth=1.5, seeds=seeds, cluster_all=False).fit(X)
    d = cdist(X, ms.cluster_centers_)
    expected = np.where(d.min(axis=1) <= 1.5, d.argmin(axis=1), -1)
    assert expected[-1] == -1
    assert_array_equal(ms.labels_, expected)
    assert ms.cluster_sizes_.sum() == (expected >= 0).sum()
    assert_array_equal(ms.cluster_sizes_, np.bincount(expected[expected >= 0], minlength=3))
    assert ms.predict(X[-1:]).tolist() == [d[-1].argmin()]


def test_mean_shift_function_matches_the_class():
    X = blobs(seed=3)
    centers, labels = mean_shift(X, bandwidth=1.5, kernel="flat", seeding="bin")
    ms = MeanShift(bandwidth=1.5, kernel="flat", seeding="bin").fit(X)
    assert_array_equal(centers, ms.cluster_centers_)
    assert_array_equal(labels, ms.labels_)
    c2, l2 = mean_shift(X)  # estimated bandwidth, as the class
    ms2 = MeanShift().fit(X)
    assert_array_equal(c2, ms2.cluster_centers_)
    assert_array_equal(l2, ms2.labels_)


def test_estimated_bandwidth_is_scikit_learns():
    from sklearn.cluster import estimate_bandwidth as sk_estimate_bandwidth

    X = blobs(seed=4)
    ms = MeanShift(kernel="flat").fit(X)
    assert_allclose(ms.bandwidth_, sk_estimate_bandwidth(X, quantile=0.3), rtol=1e-12)
    assert_allclose(dshift.estimate_bandwidth(X), ms.bandwidth_, rtol=0)


def test_bin_seeding_flat_matches_scikit_learn():
    from sklearn.cluster import MeanShift as SkMeanShift
    from sklearn.cluster import get_bin_seeds as sk_get_bin_seeds

    X = blobs(n_per=80, seed=5)
    sk_seeds = sk_get_bin_seeds(X, 1.0, 3)
    seeds = dshift.get_bin_seeds(da.from_array(X, chunks=(37, 2)), 1.0, 3)
    assert sorted(map(tuple, seeds.tolist())) == sorted(map(tuple, sk_seeds.tolist()))
    assert seeds.dtype == sk_seeds.dtype
    sk = SkMeanShift(bandwidth=1.0, bin_seeding=True, min_bin_freq=3).fit(X)
    ms = MeanShift(bandwidth=1.0, kernel="flat", seeding="bin", min_bin_freq=3).fit(X)
    assert ms.seeding_ == "bin"
    assert_allclose(ms.cluster_centers_, sk.cluster_centers_, rtol=1e-9)
    assert_array_equal(ms.labels_, sk.labels_)


# ---------------------------------------------------------------------------------------
# Inputs: numpy, dask, zarr.Array, path, file:// URL; dtypes
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
def test_numpy_and_dask_input_agree_on_both_schedulers(scheduler, kernel):
    X = blobs(seed=6)
    seeds = X[::10]
    params = dict(bandwidth=1.5, kernel=kernel, seeds=seeds)
    with recording(scheduler) as names:
        ref = MeanShift(**params, row_chunks=32).fit(X)
        ms = MeanShift(**params).fit(da.from_array(X, chunks=(32, 2)))
        assert isinstance(ms.labels_, da.Array)  # lazy
        assert ms.labels_.dtype == np.int32 and ms.labels_.shape == (len(X),)
        assert ms.labels_.chunks == ((32, 32, 32, 32, 22),)
        labels = ms.labels_.compute()
        predicted = ms.predict(da.from_array(X, chunks=(50, 2)))
        assert isinstance(predicted, da.Array)
        predicted = predicted.compute()
    assert "chunk_stats" in names and "nearest_labels" in names
    assert isinstance(ref.labels_, np.ndarray)
    assert_array_equal(labels, ref.labels_)
    assert_array_equal(predicted, ref.labels_)
    assert_allclose(ms.cluster_centers_, ref.cluster_centers_, rtol=1e-12)
    assert ms.n_iter_ == ref.n_iter_
    assert_array_equal(ms.cluster_sizes_, ref.cluster_sizes_)
    assert_array_equal(ms.cluster_sizes_, np.bincount(labels, minlength=len(ms.cluster_centers_)))


@pytest.mark.parametrize("last_on_client", [True, False])
@pytest.mark.parametrize("n_parts", [1, 5, 8, 9, 64, 70])
def test_compute_tree_combines_in_a_fixed_tree(scheduler, n_parts, last_on_client):
    # the grouping (so the rounding of sums) is a tree of SPLIT_EVERY-way combines either
    # way; with last_on_client its last level runs here: no combine task for SPLIT_EVERY
    # parts or fewer
    def nest(*parts):  # local, so the workers get it by value
        return "(" + ",".join(parts) + ")"

    parts = [dask.delayed(str, pure=True)(i) for i in range(n_parts)]
    expected = [str(i) for i in range(n_parts)]
    tasks = 0
    while len(expected) > 1:
        if len(expected) > SPLIT_EVERY or not last_on_client:
            tasks += -(-len(expected) // SPLIT_EVERY)
        expected = [
            nest(*expected[i : i + SPLIT_EVERY]) for i in range(0, len(expected), SPLIT_EVERY)
        ]
    with recording(scheduler) as names:
        got = compute_tree(parts, nest, last_on_client=last_on_client)
    assert got == expected[0]
    assert names.count("nest") == tasks


def test_unsorted_rows_use_the_center_grid_only_for_many_center_units():
    # centers closing in on two modes form two groups: long tiles beat bucketing rows by
    # grid cell; spread-out centers (or weighted rows, or a kernel without groups) use the
    # grid. Either way the sums are the chunks' sums.
    from dshift import kernels
    from dshift._columns import Columns

    rng = np.random.default_rng(8)
    X = np.vstack([rng.normal(m, 1.0, size=(2_000, 3)) for m in (0.0, 6.0)])
    Xd = da.from_array(X[rng.permutation(len(X))], chunks=(1_500, 3))
    tight = np.vstack([rng.normal(m, 0.005, size=(20, 3)) for m in (0.0, 6.0)])
    spread = rng.uniform(-2, 8, size=(40, 3))
    flat = kernels.FLAT

    def unsorted_plan(C, kernel=flat, weighted=False):  # the plan reduce_stats makes
        return kernels.plan(C, 2.0, kernel, Columns(3, weighted), rows_sorted=False)

    groups = unsorted_plan(tight).groups
    assert len(groups.leaders) == 2 and (groups.group_of >= 0).all()  # 2 center units
    alone = unsorted_plan(spread).groups
    assert len(alone.leaders) + (alone.group_of < 0).sum() >= 30
    assert unsorted_plan(tight).strategy == "long tiles"
    assert unsorted_plan(tight, weighted=True).strategy == "center grid"  # 40 units
    assert unsorted_plan(tight, kernels.EPANECHNIKOV).strategy == "center grid"  # 40 units
    assert unsorted_plan(spread).strategy == "center grid"

    class Plans(Callback):  # the strategies of the plans the chunk tasks execute
        def __init__(self):
            super().__init__()
            self.strategies = set()

        def _pretask(self, key, dsk, state):
            args = getattr(dsk[key], "args", ())
            self.strategies.update(a.strategy for a in args if isinstance(a, kernels.Plan))

    for C, strategy in ((tight, "long tiles"), (spread, "center grid")):
        with Plans() as plans:
            got = _iterate.reduce_stats(Xd, C, 2.0, flat, Columns(3), rows_sorted=False)
        assert plans.strategies == {strategy}
        want = kernels.chunk_stats(X, kernels.plan(C, 2.0, flat, Columns(3)))
        assert_array_equal(got.counts, want.counts)
        assert_allclose(got.sums, want.sums, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("persist", [True, False])
def test_centers_too_large_to_embed_are_shipped_once_with_the_same_result(
    scheduler, monkeypatch, persist
):
    # small centers (and grids) ride in every chunk task and the client adds the last
    # partial sums; larger ones become one task the workers fetch, and the partial sums are
    # added on the cluster. Both ways must give the same fit (streamed rows use the center
    # grid). 150 rows in chunks of 40: 4 partial sums.
    X = blobs(seed=21)
    params = dict(bandwidth=1.0, kernel="flat", seeds=X[::4], persist=persist, row_chunks=40)
    with recording(scheduler) as small:
        ref = MeanShift(**params).fit(X)
    monkeypatch.setattr(_iterate, "EMBED_BYTES", 0)
    with recording(scheduler) as large:
        ms = MeanShift(**params).fit(X)
    assert "add_stats" not in small and "add_stats" in large
    if scheduler is not None:  # the cluster runs a shared plan as a task of its own
        assert "Plan" not in small and "Plan" in large
    assert_array_equal(ms.cluster_centers_, ref.cluster_centers_)
    assert_array_equal(np.asarray(ms.labels_), np.asarray(ref.labels_))
    assert ms.n_iter_ == ref.n_iter_


@pytest.mark.parametrize("persist", ["auto", True, False])
@pytest.mark.parametrize("kernel", ["flat", "epanechnikov", "gaussian"])
def test_persist_does_not_change_the_result(kernel, persist):
    # rows in a shuffled order: the kept copy of compact-kernel fits is reordered in space,
    # and the labels must still follow the input's row order
    X = blobs(seed=15)[np.random.default_rng(15).permutation(150)]
    ref = MeanShift(bandwidth=1.5, kernel=kernel, seeding="bin").fit(X)
    ms = MeanShift(bandwidth=1.5, kernel=kernel, seeding="bin", persist=persist)
    ms.fit(da.from_array(X, chunks=(64, 2)))
    assert_array_equal(ms.labels_.compute(), ref.labels_)
    assert_array_equal(ms.labels_.compute(), cdist(X, ms.cluster_centers_).argmin(axis=1))
    assert_allclose(ms.cluster_centers_, ref.cluster_centers_, rtol=1e-10)
    assert ms.n_iter_ == ref.n_iter_


_reads: list[int] = []


def _count_read(block):
    _reads.append(len(block))
    return block


@pytest.mark.parametrize("persist", [True, False])
def test_persist_reads_the_source_once(persist):
    X = blobs(seed=16)
    source = da.from_array(X, chunks=(50, 2)).map_blocks(_count_read, dtype=X.dtype)
    ms = MeanShift(bandwidth=1.5, kernel="gaussian", seeds=X[::30], persist=persist)
    _reads.clear()
    per_step = []
    with dask.config.set(scheduler="threads"):
        for _ in ms.iter_fit(source):
            per_step.append(sum(_reads))
            _reads.clear()
    assert len(per_step) == ms.n_iter_ + 1 >= 3
    if persist:
        assert per_step[0] == len(X)  # the copy is made once
        assert per_step[1:] == [0] * (len(per_step) - 1)
    else:  # streamed: every iteration reads every row
        assert per_step == [len(X)] * len(per_step)


@pytest.fixture
def zarr_points(tmp_path):
    X = blobs(seed=7)
    path = tmp_path / "points.zarr"
    z = zarr.create_array(str(path), shape=X.shape, chunks=(20, 2), dtype=X.dtype)
    z[:] = X
    return X, path


@pytest.mark.parametrize("form", ["zarr.Array", "str", "pathlib", "file-url"])
def test_zarr_inputs_match_numpy_input(zarr_points, form):
    X, path = zarr_points
    source = {
        "zarr.Array": lambda: zarr.open_array(str(path), mode="r"),
        "str": lambda: str(path),
        "pathlib": lambda: path,
        "file-url": lambda: path.as_uri(),
    }[form]()
    if form == "file-url":
        assert source.startswith("file://")
    params = dict(bandwidth=1.5, seeding="bin")
    ref = MeanShift(**params).fit(X)
    ms = MeanShift(**params, row_chunks=50).fit(source)
    assert isinstance(ms.labels_, da.Array)
    # dask chunks are whole multiples of the stored 20-row chunks (none is read twice)
    row_chunks = ms.labels_.chunks[0]
    assert sum(row_chunks) == len(X)
    assert all(c % 20 == 0 for c in row_chunks[:-1])
    assert_array_equal(ms.labels_.compute(), ref.labels_)
    assert_allclose(ms.cluster_centers_, ref.cluster_centers_, rtol=1e-12)
    assert ms.cluster_centers_.dtype == np.float64
    assert_array_equal(ms.predict(source).compute(), ref.labels_)


def test_zarr_input_on_both_schedulers(zarr_points, scheduler):
    X, path = zarr_points
    with recording(scheduler) as names:
        ms = MeanShift(bandwidth=1.5, kernel="epanechnikov").fit(str(path))
        labels = ms.labels_.compute()
    assert "chunk_stats" in names
    ref = MeanShift(bandwidth=1.5, kernel="epanechnikov").fit(X)
    assert_array_equal(labels, ref.labels_)
    assert_allclose(ms.cluster_centers_, ref.cluster_centers_, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("as_dask", [False, True], ids=["numpy", "dask"])
def test_float_dtype_is_kept(dtype, as_dask):
    X = blobs(seed=8, dtype=dtype)
    inp = da.from_array(X, chunks=(64, 2)) if as_dask else X
    ms = MeanShift(bandwidth=1.5).fit(inp)
    assert ms.cluster_centers_.dtype == dtype
    assert len(ms.cluster_centers_) == 3
    labels = np.asarray(ms.labels_)
    assert_array_equal(np.asarray(ms.predict(inp)), labels)
    assert_array_equal(np.bincount(labels), ms.cluster_sizes_)


def test_predict_on_float32_training_data_equals_labels_near_a_tie():
    """predict(X) must label the training points as labels_ (cluster_all=True), also for
    float32 X, whose cluster_centers_ are float32: here the last point is almost exactly
    halfway between the two centers, so rounding the centers to float32 must not be what
    decides its label in only one of the two."""
    X = np.array(
        [
            0.8350515365600586,
            0.3298968970775604,
            0.4639175236225128,
            10.876404762268066,
            10.134831428527832,
            10.337079048156738,
            5.496196746826172,
        ],
        dtype=np.float32,
    )[:, None]
    ms = MeanShift(bandwidth=2.0, kernel="flat", seeds=[[0.5], [10.5]]).fit(X)
    assert ms.cluster_centers_.dtype == np.float32
    assert_array_equal(ms.labels_[:6], [1, 1, 1, 0, 0, 0])
    assert_array_equal(ms.predict(X), ms.labels_)


def test_integer_and_float16_inputs():
    Xi = np.round(blobs(seed=9) * 10).astype(np.int64)
    ms = MeanShift(bandwidth=15.0, kernel="flat").fit(Xi)
    assert ms.cluster_centers_.dtype == np.float64
    ref = MeanShift(bandwidth=15.0, kernel="flat").fit(Xi.astype(np.float64))
    assert_array_equal(ms.labels_, ref.labels_)
    ms16 = MeanShift(bandwidth=1.5).fit(blobs(seed=9).astype(np.float16))
    assert ms16.cluster_centers_.dtype == np.float32


# ---------------------------------------------------------------------------------------
# history_ and iter_fit
# ---------------------------------------------------------------------------------------


def check_history(ms, bandwidth, tol):
    hist = ms.history_
    assert len(hist) == ms.n_iter_ + 1
    assert all(isinstance(s, Step) for s in hist)
    assert [s.iteration for s in hist] == list(range(len(hist)))
    assert [s.elapsed for s in hist] == sorted(s.elapsed for s in hist)
    radius = tol * bandwidth
    prev_centers = ms.seeds_.astype(np.float64)
    prev_active = np.ones(len(prev_centers), dtype=bool)
    for s in hist:
        moved = prev_active & s.alive
        moves = np.linalg.norm(s.centers[moved] - prev_centers[moved], axis=1)
        stopped = ~s.active[moved]
        if ms.kernel != "gaussian":
            # max_shift is the largest move of the centers that were still active
            assert_allclose(s.max_shift, moves.max(), rtol=1e-12, atol=1e-15)
            if s.iteration < ms.max_iter:
                # a center stops exactly when its shift is <= tol * bandwidth
                assert_array_equal(stopped, moves <= radius)
        else:
            # a Gaussian center may first take the place of one within tol * bandwidth,
            # then its step is stretched by at most MAX_RELAX unless it stops
            assert s.max_shift <= moves.max() + radius * (1 + 1e-9)
            assert s.max_shift >= (moves.max() - radius) / MAX_RELAX * (1 - 1e-9)
            if s.iteration < ms.max_iter:
                assert (moves[stopped] <= 2 * radius * (1 + 1e-9)).all()
        if s.iteration == ms.max_iter:
            assert not s.active.any()
        assert not s.active[~s.alive].any()  # dropped seeds are not active
        assert 1 <= s.n_computed <= prev_active.sum()
        assert not (s.active & ~prev_active).any()  # a stopped center never restarts
        prev_centers, prev_active = s.centers, s.active
    assert hist[-1].n_active == 0


@pytest.mark.parametrize("kernel", ["gaussian", "epanechnikov", "flat"])
def test_history_of_a_converged_run(kernel):
    X = blobs(seed=10)
    tol = 1e-3
    ms = MeanShift(bandwidth=1.5, kernel=kernel, seeds=X[::15], tol=tol).fit(X)
    assert ms.n_iter_ < ms.max_iter
    check_history(ms, 1.5, tol)
    shifts = [s.max_shift for s in ms.history_]
    assert shifts[-1] <= tol * 1.5
    assert shifts[0] > tol * 1.5
    if kernel == "gaussian":  # smooth kernel, isolated blobs: the moves shrink steadily
        assert all(a >= b for a, b in zip(shifts, shifts[1:])), shifts


def test_history_when_max_iter_is_reached():
    X = blobs(seed=11)
    ms = MeanShift(bandwidth=1.5, kernel="gaussian", seeds=X[::15], max_iter=1).fit(X)
    assert ms.n_iter_ == 1
    assert len(ms.history_) == 2
    assert ms.history_[-1].max_shift > 1e-3 * 1.5  # stopped by max_iter, not converged
    assert ms.history_[-1].n_active == 0
    check_history(ms, 1.5, 1e-3)


def test_identical_seeds_are_computed_once():
    X = blobs(seed=12)
    seeds = np.repeat(X[:3], 4, axis=0)  # 3 distinct seeds, 4 copies each
    ms = MeanShift(bandwidth=1.5, seeds=seeds).fit(X)
    assert ms.history_[0].n_computed == 3
    c = ms.history_[-1].centers
    for k in range(3):
        assert_array_equal(c[4 * k : 4 * k + 4], np.repeat(c[4 * k : 4 * k + 1], 4, axis=0))


def test_iter_fit_yields_the_steps_and_fits(scheduler):
    X = blobs(seed=13)
    params = dict(bandwidth=1.5, seeding="bin", row_chunks=40)
    ref = MeanShift(**params).fit(X)
    ms = MeanShift(**params)
    with recording(scheduler) as names:
        gen = ms.iter_fit(X)
        first = next(gen)
        assert isinstance(first, Step) and first.iteration == 0
        assert not hasattr(ms, "cluster_centers_")  # fitted only once exhausted
        steps = [first, *gen]
    assert "chunk_stats" in names
    assert len(steps) == len(ref.history_)
    for a, b in zip(steps, ref.history_):
        assert a.iteration == b.iteration
        assert_allclose(a.centers, b.centers, rtol=1e-12)
        assert_array_equal(a.active, b.active)
        assert_array_equal(a.alive, b.alive)
        assert a.n_computed == b.n_computed
        assert a.n_active == int(a.active.sum())
    assert len(ms.history_) == len(steps)
    assert all(x is y for x, y in zip(ms.history_, steps))
    assert len(ms.history_) == ms.n_iter_ + 1
    assert_array_equal(ms.labels_, ref.labels_)
    assert_allclose(ms.cluster_centers_, ref.cluster_centers_)
    assert_array_equal(ms.predict(X), ref.labels_)


# ---------------------------------------------------------------------------------------
# cluster_sizes_ and intensity_
# ---------------------------------------------------------------------------------------


def test_cluster_sizes_and_intensity(scheduler):
    rng = np.random.default_rng(14)
    X = np.concatenate(
        [
            rng.normal([0, 0], 0.3, (120, 2)),
            rng.normal([5, 5], 0.3, (60, 2)),
            rng.normal([0, 6], 0.3, (30, 2)),
        ]
    )
    with recording(scheduler) as names:
        ms = MeanShift(bandwidth=1.2, kernel="flat").fit(da.from_array(X, chunks=(50, 2)))
        labels = ms.labels_.compute()
    assert "chunk_stats" in names
    sizes = ms.cluster_sizes_
    assert sizes.dtype == np.int64
    assert sizes.sum() == len(X)
    assert_array_equal(sizes, np.bincount(labels, minlength=len(ms.cluster_centers_)))
    assert len(ms.intensity_) == len(ms.cluster_centers_) == 3
    assert all(a >= b for a, b in zip(ms.intensity_, ms.intensity_[1:]))
    # biggest blob first: intensities are the points within the bandwidth of each center
    assert_array_equal(sizes, [120, 60, 30])
    # no point lies near a center's bandwidth boundary here, so the intensity (points within
    # the bandwidth at the last evaluation) equals the count around the final center
    within = (cdist(X, ms.cluster_centers_) <= 1.2).sum(axis=0)
    assert_array_equal(ms.intensity_, within)


def test_repeated_fits_of_one_numpy_array_on_the_cluster(dask_client):
    """Non-regression for "lost dependencies": numpy chunks were scattered with
    content-hashed keys, so a second fit of the same array shared keys with the first, and
    releasing the first fit's data could cancel the second fit's tasks (or hang it)."""
    import gc

    X = blobs(seed=21)
    expected = MeanShift(bandwidth=1.5, seeding="bin", row_chunks=40).fit(X).labels_
    for _ in range(8):
        first = MeanShift(bandwidth=1.5, seeding="bin", row_chunks=40).fit(X)
        second = MeanShift(bandwidth=1.5, seeding="bin", row_chunks=40)
        steps = iter(second.iter_fit(X))
        next(steps)
        del first
        gc.collect()
        for _ in steps:
            pass
        assert_array_equal(second.labels_, expected)
