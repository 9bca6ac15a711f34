"""A fit that has to compile the kernels (numba's cache empty) says so first, once; a fit
that finds them in the cache says nothing. Each run is a fresh process with its own
``NUMBA_CACHE_DIR``, so what this test session compiled does not count."""

from __future__ import annotations

import os
import subprocess
import sys

from dshift._progress import COMPILING

FIT = """
import sys
import numpy as np
import dshift

X = np.concatenate([np.zeros((20, 2)), np.full((20, 2), 9.0)]) + np.linspace(0, 1, 40)[:, None]
if sys.argv[1] == "cluster":  # workers in this process: the same numba cache as the client
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster):
            dshift.MeanShift(bandwidth=2.0, progress=True).fit(X)
else:
    dshift.MeanShift(bandwidth=2.0, progress=True).fit(X)
"""

ASK = """
from distributed import Client, LocalCluster
from dshift import _progress

with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
    with Client(cluster):
        print(_progress.announce_compiling(False), _progress.announce_compiling(True),
              _progress.announce_compiling(True))
"""


def run(script: str, cache_dir, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("NUMBA_DISABLE_JIT", None)
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_first_fit_says_it_compiles_and_later_fits_do_not(tmp_path):
    first = run(FIT, tmp_path, "threads").stderr  # compiles: ~15 s
    assert first.count(COMPILING) == 1
    assert first.index(COMPILING) < first.index("mean shift")  # before the bar
    assert COMPILING not in run(FIT, tmp_path, "threads").stderr
    assert COMPILING not in run(FIT, tmp_path, "cluster").stderr


def test_a_client_asks_its_workers_and_only_a_watched_fit_says_it(tmp_path):
    # the workers' cache is empty: said once, and only where a person watches (nothing is
    # compiled here: the test only asks)
    done = run(ASK, tmp_path)
    assert done.stdout.split() == ["False", "True", "False"]
    assert done.stderr.count(COMPILING) == 1
