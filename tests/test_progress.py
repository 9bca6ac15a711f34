"""The fit's progress bar: where a person watches, off with progress=False."""

from __future__ import annotations

import numpy as np
import pytest

from dshift import MeanShift, _progress

X = np.concatenate([np.zeros((50, 2)), np.full((50, 2), 9.0)]) + np.linspace(0, 1, 100)[:, None]


def test_a_bar_on_stderr_counts_converged_seeds(capfd):
    ms = MeanShift(bandwidth=2.0, progress=True).fit(X)
    out, err = capfd.readouterr()
    assert out == ""
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("mean shift: 100%")
    assert f"{len(ms.seeds_)}/{len(ms.seeds_)}" in final
    assert f"iteration={ms.n_iter_}" in final and "moving=0" in final


@pytest.mark.parametrize("progress", [False, "auto"])
def test_no_bar_when_off_or_nobody_watches(capfd, progress):
    # under pytest stderr is captured, not a terminal, and this is no notebook
    assert not _progress.in_notebook()
    MeanShift(bandwidth=2.0, progress=progress).fit(X)
    assert capfd.readouterr() == ("", "")


def test_auto_follows_the_terminal(monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert _progress.wanted("auto")
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert not _progress.wanted("auto")


def test_progress_is_validated():
    with pytest.raises(ValueError, match="progress must be 'auto', True or False, got 'yes'"):
        MeanShift(progress="yes").fit(X)
