"""Files dshift writes are not written through what an attacker may have planted: a plot
is saved to a file created exclusively beside the PNG, then renamed."""

from __future__ import annotations

import functools

import numpy as np
from sklearn.datasets import make_blobs

from dshift import MeanShift
from dshift.plotting import plot_fit


@functools.cache
def blobs(dtype: str = "float64") -> np.ndarray:
    X, _ = make_blobs(n_samples=400, n_features=3, centers=3, random_state=1)
    X = X.astype(dtype)
    X.setflags(write=False)
    return X


# -- dshift plot -------------------------------------------------------------------------


def test_plot_does_not_follow_a_link_planted_at_a_temporary_name(tmp_path):
    X = blobs()[:, :2]
    model = MeanShift(bandwidth=1.5, kernel="flat").fit(X)
    victim = tmp_path / "unrelated.txt"
    victim.write_text("keep me")
    (tmp_path / ".out.png.tmp").symlink_to(victim)  # the name dshift used to write through
    png = tmp_path / "out.png"
    assert plot_fit(X, model, png, n_points=200) == str(png)
    assert victim.read_text() == "keep me"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not png.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.png.tmp", "out.png", victim.name]


def test_plot_replaces_a_link_at_the_png_path_rather_than_writing_through_it(tmp_path):
    X = blobs()[:, :2]
    model = MeanShift(bandwidth=1.5, kernel="flat").fit(X)
    victim = tmp_path / "unrelated.txt"
    victim.write_text("keep me")
    (tmp_path / "out.png").symlink_to(victim)
    plot_fit(X, model, tmp_path / "out.png", n_points=200)
    assert victim.read_text() == "keep me" and not (tmp_path / "out.png").is_symlink()
