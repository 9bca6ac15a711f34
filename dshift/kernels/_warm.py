"""Compiling the kernels in parts, so that two processes can share a first run's work.

A fit's first call of the tile loop compiles every kernel it calls, one after the other
(some 20 s on one core). The largest of them take only plain types and records of float64
arrays, whatever the data's dtype, so they can be compiled by signature, without data, in
separate processes that share numba's cache: each process compiles one part and caches it;
the fit then loads those from the cache and compiles only the rest (the tile loop and
the routines that take the data's own dtype). ``python -m dshift.kernels._warm PART
DTYPE`` compiles one part in a new process.

:data:`PARTS` splits the work in two of about equal compile time: the Gaussian's lattice
and group routines and the labels; the per-center sums, the flat groups' core and shell,
the spatial sort and the binning. Both groups' routines call the per-center sums: each part
is ordered so that the other process has cached them (they come first in theirs) before
they are needed.
"""

from __future__ import annotations

import sys

import numba
import numpy as np
from numba import types

from dshift.kernels._cells import bin_points
from dshift.kernels._gaussian import Lattice, gaussian_group, lattice_sums
from dshift.kernels._groups import Group, add_to_members, core_and_shell, offset_sums
from dshift.kernels._morton import spatially_sorted
from dshift.kernels._neighbours import nearest_labels
from dshift.kernels._tile_sums import Centers, Sums, tile_sums

#: The parts, in the order a process that compiles all of them would take them.
PARTS = ("gaussian", "flat")


def _compile_gaussian(dtype: np.dtype) -> None:
    f2, f1, i1 = np.zeros((2, 3)), np.zeros(3), np.zeros(1, np.int64)
    A2, i, f = numba.typeof(f2), types.int64, types.float64
    centers = numba.typeof(Centers(f2, 1.0, 0, Sums(f2, f1, f1)))
    group = numba.typeof(Group(i1, f1, 1.0))
    X = numba.typeof(np.zeros((2, 3), dtype))
    lattice_sums.compile((X, centers, numba.typeof(Lattice(f1, np.zeros((1, 3), np.int64)))))
    gaussian_group.compile((A2, i, i, f, f, centers, group, A2))  # calls tile_sums
    nearest_labels(np.zeros((2, 3), dtype), f2)  # the labels, of the points and of centers
    nearest_labels(f2, f2)


def _compile_flat(dtype: np.dtype) -> None:
    f2, f1, i1 = np.zeros((2, 3)), np.zeros(3), np.zeros(1, np.int64)
    A2, A1, i, f, none = numba.typeof(f2), numba.typeof(f1), types.int64, types.float64, types.none
    out = Sums(f2, f1, f1)
    centers = numba.typeof(Centers(f2, 1.0, 0, out))
    tile_sums.compile((A2, none, i, i, centers, i, A2, i))
    core_and_shell.compile((A2, none, i, i, centers, numba.typeof(Group(i1, f1, 1.0)), A2))
    offset_sums.compile((A2, none, i, i, A1, A1))
    add_to_members.compile((A2, numba.typeof(i1), f, A1, A1, numba.typeof(out)))
    points = np.random.default_rng(0).random((64, 3)).astype(dtype)
    spatially_sorted(points)  # codes of up to 32 bits: uint32
    spatially_sorted(np.column_stack([points, points[:, :1]]))  # 40 bits: uint64
    bin_points(points, 0.5, nearest=True)  # one table of the cells in range
    bin_points(points * 100, 0.5, nearest=True)  # too wide a range: tile by tile


def compile_part(part: str, dtype: str = "float64") -> None:
    """Compile (or load from numba's cache) the kernels of one of :data:`PARTS`, for
    unweighted points of ``dtype``.

    Examples
    --------
    >>> compile_part("flat")  # the cached code, if any: then nothing is compiled
    """
    if not hasattr(tile_sums, "compile"):  # NUMBA_DISABLE_JIT=1: nothing to compile
        return
    {"gaussian": _compile_gaussian, "flat": _compile_flat}[part](np.dtype(dtype))


if __name__ == "__main__":
    compile_part(*sys.argv[1:3])
