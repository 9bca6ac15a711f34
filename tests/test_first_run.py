"""A fit that has to compile the kernels (numba's cache empty) says so first, once; a fit
that finds them in the cache says nothing. Each run is a fresh process with its own
``NUMBA_CACHE_DIR``, so what this test session compiled does not count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from dshift import _first_run
from dshift._first_run import COMPILING
from dshift.kernels._warm import PARTS

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


SERVED = """
import json
import numpy as np
import dshift
from dshift.kernels import _gaussian, _groups, _tile_sums

X = np.random.default_rng(0).normal(size=(3000, 3))
X[1500:] += 8
dshift.MeanShift(bandwidth=1.5, kernel="flat", seeding="bin").fit(X)
dshift.MeanShift(bandwidth=1.5, kernel="gaussian", seeding="bin").fit(X)
kernels = [_tile_sums.tile_sums, _groups.core_and_shell, _groups.offset_sums,
           _groups.add_to_members, _gaussian.gaussian_group, _gaussian.lattice_sums]
print(json.dumps({k.__name__: [sum(k.stats.cache_hits.values()),
                               sum(k.stats.cache_misses.values())] for k in kernels}))
"""


def test_parts_compiled_in_other_processes_serve_the_fit(tmp_path):
    for part in PARTS:
        subprocess.run(
            [sys.executable, "-m", "dshift.kernels._warm", part, "float64"],
            env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)),
            check=True,
            timeout=170,
        )
    figures = json.loads(run(SERVED, tmp_path).stdout)
    # every kernel the parts compiled was loaded from the cache, none compiled again
    assert all(hits >= 1 and misses == 0 for hits, misses in figures.values()), figures


SHARED = """
import json
import numpy as np
from distributed import Client, LocalCluster
from dshift import _first_run

def compiled():
    from dshift.kernels import _gaussian, _groups
    return [bool(k.signatures) for k in (_gaussian.gaussian_group, _groups.core_and_shell)]

with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                  dashboard_address=None) as cluster, Client(cluster) as client:
    _first_run.prepare(False, np.dtype("float64"))
    print(json.dumps(sorted(client.run(compiled).values())))
"""


def test_two_workers_sharing_a_cache_compile_one_part_each(tmp_path):
    # each worker compiled one part: the Gaussian's group routine, or the flat groups' one
    # (the per-center sums both call come first in the flat part, and are shared)
    assert json.loads(run(SHARED, tmp_path).stdout) == [[False, True], [True, False]]


def test_it_is_said_once_and_only_where_a_person_watches(monkeypatch, capsys):
    monkeypatch.setattr(_first_run, "_said", False)
    assert _first_run.say(False) is False  # nobody watches, and INFO is not logged
    assert _first_run.say(True) is True
    assert _first_run.say(True) is False
    assert capsys.readouterr().err.count(COMPILING) == 1


def test_parts_go_to_cold_workers_sharing_a_host_and_a_cache():
    states = {
        "tcp://a:1": ("a", "/cache", True),
        "tcp://a:2": ("a", "/cache", True),
        "tcp://a:3": ("a", "/other", True),  # alone with its cache
        "tcp://b:1": ("b", "/cache", True),  # alone on its host
        "tcp://c:1": ("c", "/cache", False),  # compiled already
        "tcp://c:2": ("c", "/cache", True),
        "tcp://d:1": ("d", None, True),  # numba caches nothing
        "tcp://d:2": ("d", None, True),
    }
    assert _first_run.assignments(states) == {"tcp://a:1": PARTS[0], "tcp://a:2": PARTS[1]}
