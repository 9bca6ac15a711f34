"""kernels/_groups.py: centers close together share a tile's work (flat kernel)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dshift import kernels
from dshift._columns import Columns
from dshift.kernels._groups import GROUP_RADIUS, center_groups
from tests.reference import packed, ref_chunk_stats, size


def test_center_groups_are_tight_and_cover_every_center():
    rng = np.random.default_rng(21)
    C = np.vstack([rng.normal(m, 0.02, size=(30, 3)) for m in (0.0, 5.0)])
    C = np.vstack([C, rng.uniform(-20, 20, size=(40, 3))])
    g = center_groups(C, 2.0, GROUP_RADIUS)
    assert sorted(g.members.tolist()) == list(range(len(C)))
    assert_array_equal(np.sort(g.group_of[g.members]), g.group_of[g.members])  # grouped
    alone = g.group_of < 0
    assert np.bincount(g.group_of[~alone]).min() >= 2  # a group has several members
    assert alone[60:].sum() >= 35  # the scattered centers stay alone
    for k, (lead, r) in enumerate(zip(g.leaders, g.radius, strict=True)):
        members = C[g.group_of == k]
        dist = np.sqrt(((members - lead) ** 2).sum(axis=1))
        assert (dist == 0).any()  # the leader is a member
        assert dist.max() <= r <= 2.0 * GROUP_RADIUS * (1 + 1e-6)
    assert (center_groups(C, 2.0, 0.0).group_of == -1).all()


@pytest.mark.parametrize("d", [3, 2, 5])
@pytest.mark.parametrize("weighted", [False, True])
def test_grouped_centers_give_the_per_center_sums(d, weighted):
    """Centers closing in on the same modes are taken as groups (core added once, shell
    tested per member): same sums as the dense reference and as without groups, on
    sorted and unsorted rows, through the tiles and the center grid; a point exactly at
    distance bandwidth from a member is still counted."""
    rng = np.random.default_rng(100 + d)
    modes = np.array([np.zeros(d), np.full(d, 2.5)])
    X = np.vstack([rng.normal(m, 0.8, size=(size(3_000, 400), d)) for m in modes])
    bw = 1.5
    n_group = size(25, 10)
    C = np.vstack([rng.normal(m, 0.005, size=(n_group, d)) for m in modes])  # two tight groups
    C = np.vstack([C, rng.normal(size=(6, d))])  # and a few loose centers
    C[[3, 2 * n_group]] = np.round(C[[3, 2 * n_group]] * 1024) / 1024  # c +- bw is exact
    X[7] = C[3] + np.eye(d)[0] * bw  # exactly on a member's boundary
    X[8] = C[2 * n_group] - np.eye(d)[-1] * bw
    grouped = (center_groups(C, bw, GROUP_RADIUS).group_of[: 2 * n_group] >= 0).sum()
    assert grouped >= 0.9 * 2 * n_group  # groups form
    w = rng.integers(0, 3, len(X)).astype(np.float64)
    w[[7, 8]] = 1.0
    sums, weights, counts, *_ = ref_chunk_stats(X, C, bw, "flat", w if weighted else None)
    block = packed(X, w if weighted else None)
    # the strategies that run weighted or plain points; each with and without groups
    strategies = ("pointwise", "center grid") if weighted else kernels.STRATEGIES[:3]
    variants = {}
    for radius in (GROUP_RADIUS, 0.0):
        for rows, B in (("sorted", kernels.spatially_sorted(block, d)), ("stored", block)):
            for strategy in strategies:
                p = kernels.plan(
                    C,
                    bw,
                    kernels.FLAT,
                    Columns(d, weighted),
                    strategy=strategy,
                    group_radius=radius,
                )
                variants[radius, rows, strategy] = kernels.chunk_stats(B, p)
    for got in variants.values():
        assert_array_equal(got.counts, counts)
        assert_allclose(got.weights, weights, rtol=1e-13)
        assert_allclose(got.sums, sums, rtol=1e-11, atol=1e-9)
    assert counts[3] >= 1 and counts[2 * n_group] >= 1


def test_a_tile_inside_every_members_ball_is_added_once_per_group():
    """Tiny tiles near two tight groups of centers: whole tiles inside the core, tiles
    straddling the shell, and the members' sums stay exact."""
    rng = np.random.default_rng(5)
    C = rng.normal(0.0, 0.005, size=(12, 3))
    X = kernels.spatially_sorted(rng.normal(0.0, 0.6, size=(size(20_000, 2_000), 3)))
    for bw in (0.3, 1.0, 3.0):
        p = kernels.plan(C, bw, kernels.FLAT, Columns(3))
        assert p.strategy == "short tiles" and len(p.groups.leaders) >= 1
        got = kernels.chunk_stats(X, p)
        sums, weights, counts, *_ = ref_chunk_stats(X, C, bw, "flat")
        assert_array_equal(got.counts, counts)
        assert_array_equal(got.weights, weights)
        assert_allclose(got.sums, sums, rtol=1e-11, atol=1e-9)
