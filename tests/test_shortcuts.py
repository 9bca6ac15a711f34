"""The Gaussian shortcuts of the mean shift loop: stretched steps and seeds that follow a
close seed (``dshift._centers``), checked against their stated properties."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from dshift import MeanShift, kernels
from dshift._centers import (
    MAX_RELAX,
    followers,
    relaxation,
    remove_near_duplicates,
    shortcuts,
)
from dshift._columns import Columns
from dshift._iterate import LoopState, mean_shift_loop


def kde(X, c, h):
    """The (unnormalized) Gaussian kernel density estimate at c."""
    return np.exp(-((X - c) ** 2).sum(axis=1) / (2 * h * h)).sum()


def plain_step(X, c, h):
    w = np.exp(-((X - c) ** 2).sum(axis=1) / (2 * h * h))
    return (w[:, None] * X).sum(axis=0) / w.sum() - c


def test_only_the_gaussian_with_one_bandwidth_takes_shortcuts():
    assert shortcuts(kernels.GAUSSIAN, adaptive=False)
    assert not shortcuts(kernels.GAUSSIAN, adaptive=True)
    assert not shortcuts(kernels.FLAT, adaptive=False)  # scikit-learn's iterations
    assert not shortcuts(kernels.EPANECHNIKOV, adaptive=False)


@pytest.mark.parametrize("seed", range(5))
def test_a_stretched_step_still_raises_the_density(seed):
    """The factor's bound: any stretch below 2 of a Gaussian step is an ascent."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 3)) * rng.uniform(0.5, 3.0, size=3)
    h = rng.uniform(0.3, 2.0)
    for c in rng.normal(size=(20, 3)) * 3:
        s = plain_step(X, c, h)
        base = kde(X, c, h)
        for factor in (1.0, 1.5, MAX_RELAX, 1.99):
            assert kde(X, c + factor * s, h) >= base * (1 - 1e-12)


def test_the_factor_lands_on_the_limit_of_a_steady_line():
    """Plain steps shrinking by a rate q along a line: the factor is 1 / (1 - q), capped."""
    last = np.array([[1.0, 2.0, -1.0]])
    for q, want in [(0.2, 1.25), (0.4, 1 / 0.6), (0.6, MAX_RELAX), (0.95, MAX_RELAX)]:
        got = relaxation(q * last, last, np.ones(1))
        assert got[0] == pytest.approx(want)
    # after a stretched step by f, the plain rate q shows as 1 - f (1 - q): same estimate
    f, q = 1.25, 0.3
    assert relaxation((1 - f * (1 - q)) * last, last, np.full(1, f))[0] == pytest.approx(1 / 0.7)


def test_turns_first_steps_and_overshoots_are_not_stretched():
    last = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    step = np.array([[0.3, 0.5], [0.5, 0.5], [-0.4, 0.0], [1.5, 0.0]])
    got = relaxation(step, last, np.ones(4))
    assert got[:3].tolist() == [1.0, 1.0, 1.0]  # a turn, a first step, a reversal
    assert got[3] == MAX_RELAX  # a growing step along the same line: the cap


def test_factors_stay_in_range_for_any_steps():
    rng = np.random.default_rng(3)
    step, last = rng.normal(size=(2, 1000, 4))
    last[::3] = 0.0
    step[1::7] = last[1::7] * rng.uniform(-2, 2, size=(len(last[1::7]), 1))
    got = relaxation(step, last, rng.uniform(1, MAX_RELAX, size=1000))
    assert ((got >= 1.0) & (got <= MAX_RELAX)).all()


def test_followers_are_the_first_center_of_their_cell_within_the_radius():
    r = 0.01
    C = np.array(
        [
            [0.0025, 0.0025],  # cell (0, 0): the first
            [5.0, 5.0],
            [0.0075, 0.0075],  # cell (0, 0), 0.007 from the first: follows it
            [0.0125, 0.0025],  # next cell, 0.01 from the first: follows no one
            [0.0099, 0.0001],  # cell (0, 0) but 0.0078 away: follows it
            [-0.0001, 0.0025],  # 0.0026 from the first, but in cell (-1, 0)
        ]
    )
    assert followers(C, r).tolist() == [0, 1, 0, 3, 0, 5]
    near = np.array([[0.0025, 0.0025], [0.0099, 0.0099]])  # one cell, 0.01047 apart
    assert followers(near, r).tolist() == [0, 1]


def test_no_followers_where_cells_are_not_exact_or_the_radius_is_zero():
    C = np.array([[1e300, 0.0], [1e300, 1e-9]])
    assert followers(C, 1e-3).tolist() == [0, 1]  # 1e303 cells from 0: not exact
    assert followers(np.zeros((3, 2)), 0.0).tolist() == [0, 1, 2]


def _gaussian_stats(X, h):
    def stats(C):
        return kernels.chunk_stats(X, kernels.plan(C, h, kernels.GAUSSIAN, Columns(X.shape[1])))

    return stats


def _run(X, seeds, h, quick, tol=1e-3):
    state = LoopState.start(seeds)
    steps = list(
        mean_shift_loop(
            _gaussian_stats(X, h), state, max_iter=300, threshold=tol * h, shortcuts=quick
        )
    )
    return state, steps


def test_the_shortcuts_reach_the_same_modes_in_fewer_iterations():
    """Two overlapping blobs make a flat top, where plain Gaussian mean shift crawls."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(400, 2)), rng.normal(size=(400, 2)) + [2.2, 0.0]])
    X = np.concatenate([X, rng.normal(size=(300, 2)) * 0.7 + [9.0, 5.0]])
    seeds = X[::20]
    h = 1.0
    plain, plain_steps = _run(X, seeds, h, quick=False)
    quick, quick_steps = _run(X, seeds, h, quick=True)
    assert len(quick_steps) <= 0.7 * len(plain_steps)
    computed = sum(s.n_computed for s in quick_steps)
    assert computed <= 0.7 * sum(s.n_computed for s in plain_steps)

    def modes(state):
        keep = remove_near_duplicates(state.centers, h)
        return state.centers[keep]

    a, b = modes(plain), modes(quick)
    assert len(a) == len(b) == 2
    gap = np.linalg.norm(a[:, None] - b[None], axis=2).min(axis=1)
    assert gap.max() <= 10 * 1e-3 * h  # within the convergence test's resolution


def test_a_seed_within_the_threshold_follows_and_the_one_followed_moves_as_alone():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + [8.0, 0.0]])
    h, tol = 1.0, 1e-3
    radius = tol * h
    p = (np.floor(np.array([0.7, 0.4]) / radius) + 0.25) * radius  # a quarter into a cell
    close = p + 0.5 * radius  # the same cell, half the radius away
    far = np.array([7.0, 1.0])
    both = MeanShift(kernel="gaussian", bandwidth=h, seeds=np.array([p, close, far])).fit(X)
    alone = MeanShift(kernel="gaussian", bandwidth=h, seeds=np.array([p, far])).fit(X)
    first = both.history_[0]
    assert first.n_computed == 2  # the close seed took p's place before the first pass
    assert_array_equal(first.centers[1], first.centers[0])
    assert_array_equal(both.history_[-1].centers[[0, 2]], alone.history_[-1].centers)
    assert_array_equal(both.cluster_centers_, alone.cluster_centers_)
    assert both.n_iter_ == alone.n_iter_
