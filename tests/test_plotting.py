"""The figure of a fit is readable: a legend of clusters and sizes, colours distinct on white,
axes naming the features shown, an iteration count equal to ``n_iter_``, nothing clipped."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb

from dshift import MeanShift, write_result
from dshift._results import read_model
from dshift.plotting import CLUSTER_COLOURS, OTHER_COLOUR, fit_figure, plot_fit

# 12 blobs of decreasing size along the diagonal of 5-d space
SIZES = [800, 600, 500, 400, 300, 300, 200, 150, 100, 80, 60, 40]


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(2 * k, 0.3, (n, 5)) for k, n in enumerate(SIZES)])


@pytest.fixture(scope="module")
def fitted(blobs) -> MeanShift:
    return MeanShift(bandwidth=0.9, kernel="flat", seeding="bin").fit(blobs)


def _linear(colour: str) -> np.ndarray:
    c = np.array(to_rgb(colour))
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _contrast_on_white(colour: str) -> float:
    """WCAG contrast ratio of ``colour`` against white."""
    luminance = _linear(colour) @ [0.2126, 0.7152, 0.0722]
    return 1.05 / (luminance + 0.05)


def _lab(colour: str) -> np.ndarray:
    """CIELAB (D65) coordinates."""
    xyz = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    ) @ _linear(colour)
    xyz = xyz / [0.95047, 1.0, 1.08883]
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_cluster_colours_are_visible_on_white_and_distinct():
    """Non-regression: tab20's pale colours (and tab10's olive and cyan) faded into white."""
    for colour in CLUSTER_COLOURS:
        assert _contrast_on_white(colour) >= 3.0, colour
    everything = [*CLUSTER_COLOURS, OTHER_COLOUR, "#000000"]  # black: the centers
    for a, b in itertools.combinations(everything, 2):
        assert np.linalg.norm(_lab(a) - _lab(b)) >= 30, (a, b)


def test_the_legend_names_the_largest_clusters_with_their_sizes(blobs, fitted):
    fig = fit_figure(blobs, fitted)
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    sizes = np.asarray(fitted.cluster_sizes_)
    largest = np.argsort(-sizes, kind="stable")[: len(CLUSTER_COLOURS)]
    expected = [f"cluster {k}: {sizes[k]:,}" for k in largest]
    rest = len(sizes) - len(largest)
    assert len(sizes) > len(CLUSTER_COLOURS)  # some clusters share the grey entry
    assert texts[: len(largest)] == expected
    others = sizes.sum() - sizes[largest].sum()
    assert texts[len(largest)] == f"{rest} other clusters: {others:,}"
    assert texts[-1] == "centers"
    colours = [h.get_color() for h in legend.legend_handles[: len(largest)]]
    assert colours == list(CLUSTER_COLOURS)


def test_axes_name_the_features_shown_and_titles_count_n_iter(blobs, fitted):
    fig = fit_figure(blobs, fitted, dims=(0, 3))
    points, trajectories = fig.axes
    for ax in (points, trajectories):
        assert ax.get_xlabel() == "feature 0 (of 5)" and ax.get_ylabel() == "feature 3 (of 5)"
    n_iter = fitted.n_iter_
    assert f"after {n_iter} iterations" in points.get_title()
    assert f"over {n_iter} iterations" in trajectories.get_title()
    # every drawn trajectory has the seed and one position per counted iteration
    (paths,) = [c for c in trajectories.collections if isinstance(c, LineCollection)]
    assert {len(p) for p in paths.get_segments()} == {n_iter + 1}
    assert len(fitted.history_) == n_iter + 1  # the step that found convergence is not counted


def test_nothing_is_clipped(blobs, fitted):
    fig = fit_figure(blobs, fitted)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # constrained layout runs at draw time
    renderer = canvas.get_renderer()
    inside = fig.bbox.padded(1)
    artists = [fig.legends[0]] + [ax.title for ax in fig.axes]
    artists += [label for ax in fig.axes for label in (ax.xaxis.label, ax.yaxis.label)]
    for artist in artists:
        box = artist.get_window_extent(renderer)
        assert inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1), artist


def test_one_feature(blobs):
    X = blobs[:, :1]
    model = MeanShift(bandwidth=0.5, kernel="flat", seeding="bin").fit(X)
    fig = fit_figure(X, model)
    points, trajectories = fig.axes
    assert points.get_xlabel() == "feature 0 (of 1)" and points.get_ylabel() == "sampled point"
    assert trajectories.get_ylabel() == "iteration"
    (paths,) = [c for c in trajectories.collections if isinstance(c, LineCollection)]
    # vertically: the seed at iteration 0, its center after iteration i at i
    assert {tuple(p[:, 1]) for p in paths.get_segments()} == {tuple(range(model.n_iter_ + 1))}


def test_axes_name_the_features_when_the_model_knows_their_names(blobs, fitted):
    model = copy.copy(fitted)
    model.feature_names_in_ = np.array(["a", "b", "c", "d", "e"], dtype=object)
    ax = fit_figure(blobs, model, dims=(4, 1), n_points=100).axes[0]
    assert ax.get_xlabel() == "e (feature 4 of 5)" and ax.get_ylabel() == "b (feature 1 of 5)"


def test_points_of_no_cluster_are_shown_as_such(blobs):
    X = np.concatenate([blobs[:, :2], [[100.0, 100.0]]])  # the last point is out of reach
    model = MeanShift(
        bandwidth=0.9, kernel="flat", seeding="bin", min_bin_freq=5, cluster_all=False
    )
    model.fit(X)
    assert np.asarray(model.labels_)[-1] == -1
    texts = [t.get_text() for t in fit_figure(X, model).legends[0].get_texts()]
    assert "no cluster (label -1)" in texts
    model.cluster_all = True
    texts = [t.get_text() for t in fit_figure(X, model).legends[0].get_texts()]
    assert "no cluster (label -1)" not in texts


@pytest.mark.parametrize("dims", [(0, 0), (0, 5), (-1, 2), (1,)])
def test_dims_must_be_two_different_features(blobs, fitted, dims):
    with pytest.raises(ValueError, match=r"dims must be two different feature indices in \[0, 5\)"):
        fit_figure(blobs, fitted, dims=dims)


def test_a_model_read_back_plots_without_trajectories(blobs, fitted, tmp_path):
    write_result(tmp_path / "r.zarr", fitted)
    model = read_model(tmp_path / "r.zarr")
    fig = fit_figure(blobs, model, n_points=500)
    assert len(fig.axes) == 1
    assert f"after {fitted.n_iter_} iterations" in fig.axes[0].get_title()
    assert "500 of 3,530 points shown" in fig.axes[0].get_title()
    path = plot_fit(blobs, model, tmp_path / "c.png", n_points=500)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
