"""kernels/_exp.py: the Gaussian kernel's exponentials."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from dshift import kernels
from dshift._columns import Columns
from dshift.kernels import _exp


@pytest.mark.parametrize("group_radius", [None, 0.0])
def test_gaussian_weights_match_numpy_exp_over_the_whole_range(group_radius):
    # one point at the origin, one center per distance: weights[j] = exp(-d_j^2 / (2 h^2))
    h = 1.0
    exponents = np.concatenate([[0.0, 1e-12, 0.5], np.linspace(0.01, 700.0, 400)])
    C = np.sqrt(2.0 * exponents)[:, None] * np.array([[0.6, 0.8]])
    p = kernels.plan(C, h, kernels.GAUSSIAN, Columns(2), group_radius=group_radius)
    got = kernels.chunk_stats(np.zeros((1, 2)), p)
    d2 = (C**2).sum(axis=1)
    assert_allclose(got.weights, np.exp(-d2 / 2.0), rtol=1e-12, atol=0)
    assert got.weights[0] == 1.0


def test_exp_nonpositive_is_exp_to_1e_13_and_0_below_minus_708():
    x = np.concatenate([-np.geomspace(1e-300, 708.0, 5_000), [0.0, -0.0, -708.0]])
    got = x.copy()
    _exp.exp_nonpositive(got, np.empty_like(got))
    assert_allclose(got, np.exp(x), rtol=1e-13, atol=0)
    assert got[-3] == 1.0
    below = np.array([-708.0001, -745.0, -1e300, -np.inf])
    _exp.exp_nonpositive(below, np.empty(4))
    assert (below == 0.0).all()


@pytest.mark.parametrize(
    "reach, taylor",
    [("TAYLOR_REACH", "exp_taylor"), ("TAYLOR_REACH_WIDE", "exp_taylor13")],
)
def test_gaussian_group_polynomials_are_exp_to_rounding_within_their_reach(reach, taylor):
    limit = getattr(_exp, reach)
    poly = getattr(_exp, taylor)
    for t in np.linspace(-limit, limit, 1001):
        assert abs(poly(t) / np.exp(t) - 1.0) <= 1e-15
    assert abs(poly(3 * limit) / np.exp(3 * limit) - 1.0) > 1e-15  # the reach is needed
