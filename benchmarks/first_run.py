"""Time to first result: ``import dshift``, a first flat and a first Gaussian fit, with an
empty numba cache and then with the cache they filled.

Each run is a fresh Python process with its own ``NUMBA_CACHE_DIR`` (a new temporary
directory: nothing compiled; the same directory again: everything cached), fitting
``make_blobs(20000, 3, centers=5, random_state=0)`` with ``MeanShift(bandwidth=2,
kernel=..., seeding="bin")``, flat first, then Gaussian. Two modes: dask's threaded
scheduler (no distributed client), and a 2-worker LocalCluster (processes, one thread each;
the workers inherit the environment, so they use the same cache directory). The cluster's
start-up is timed apart and not counted in the total. The fits show their progress bar
(on the captured stderr), as where a person watches; the last column says whether the run
printed "compiling kernels (first run only)" there.

With ``--compiles`` the runs also list what numba compiled during each fit, in the client
and in the workers: each function and signature with its own compile seconds (the
seconds spent compiling the functions it calls are theirs), largest first.

Usage: ``.venv/bin/python benchmarks/first_run.py [--repeat 2] [--modes threads cluster]
[--compiles]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from collections import defaultdict

COMPILING = "compiling kernels (first run only)"
N_SAMPLES = 20_000


def _recorder_class():
    """A numba ``numba:compile`` listener: the seconds each (function, signature) spent
    compiling, its nested compiles (the functions it calls) excluded. numba compiles under
    a process-wide lock, so the compiles of a process nest as a stack. (Made on first use:
    the timed ``import dshift`` must not import numba before dshift does.)"""
    from numba.core import event

    class CompileTimes(event.Listener):
        def __init__(self):
            self.stack = []  # [function, signature, start, seconds of nested compiles]
            self.seconds = defaultdict(float)

        def on_start(self, event):
            dispatcher = event.data["dispatcher"]
            module = getattr(dispatcher.py_func, "__module__", "")
            name = f"{module}.{dispatcher.py_func.__qualname__}"
            signature = ", ".join(str(a) for a in event.data["args"])
            self.stack.append([name, signature, time.perf_counter(), 0.0])

        def on_end(self, event):
            name, signature, start, nested = self.stack.pop()
            spent = time.perf_counter() - start
            self.seconds[(name, signature)] += spent - nested
            if self.stack:
                self.stack[-1][3] += spent

        def take(self):
            """The records so far (function, signature, seconds), largest first; cleared."""
            out = sorted(((n, s, t) for (n, s), t in self.seconds.items()), key=lambda r: -r[2])
            self.seconds.clear()
            return out

    return CompileTimes, event


def _state():
    """A module of this process holding the recorder: the functions below also run on the
    workers, where cloudpickle gives each call its own copy of this script's globals."""
    state = sys.modules.get("_first_run_state")
    if state is None:
        state = sys.modules["_first_run_state"] = types.ModuleType("_first_run_state")
        state.recorder = None
    return state


def _install_recorder():
    state = _state()
    if state.recorder is None:
        cls, event = _recorder_class()
        state.recorder = cls()
        event.register("numba:compile", state.recorder)
    return True


def _take_records():
    recorder = _state().recorder
    return recorder.take() if recorder is not None else []


def child(mode: str, compiles: bool) -> None:
    """One run: time the import and both fits, print the figures as one JSON line."""
    out = {}
    start = time.perf_counter()
    import dshift

    out["import"] = time.perf_counter() - start
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(N_SAMPLES, 3, centers=5, random_state=0)
    client = cluster = None
    records = {}
    if compiles:
        _install_recorder()
    if mode == "cluster":
        from distributed import Client, LocalCluster

        start = time.perf_counter()
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        client = Client(cluster)
        out["cluster start"] = time.perf_counter() - start
        if compiles:
            client.run(_install_recorder)
    for kernel in ("flat", "gaussian"):
        start = time.perf_counter()
        model = dshift.MeanShift(bandwidth=2, kernel=kernel, seeding="bin", progress=True)
        model.fit(X)
        out[kernel] = time.perf_counter() - start
        out[f"{kernel} clusters"] = len(model.cluster_centers_)
        if compiles:
            records[kernel] = {"client": _take_records()}
            if client is not None:
                for worker, taken in client.run(_take_records).items():
                    records[kernel][worker] = taken
    if client is not None:
        client.close()
        cluster.close()
    out["compiles"] = records
    print(json.dumps(out), flush=True)


def run(mode: str, cache_dir: str, compiles: bool) -> dict:
    """A fresh process fitting with ``cache_dir`` as numba's cache; its figures, and
    whether it said that it compiles."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONUNBUFFERED="1")
    command = [sys.executable, os.path.abspath(__file__), "--child", mode]
    if compiles:
        command.append("--compiles")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} run failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["said"] = done.stderr.count(COMPILING)
    return figures


def print_compiles(mode: str, cache: str, records: dict) -> None:
    for kernel, by_process in records.items():
        for process, taken in by_process.items():
            if not taken:
                continue
            total = sum(t for _, _, t in taken)
            print(f"\n{mode}, {cache} cache, {kernel} fit, {process}: {total:.1f} s compiling")
            for name, signature, seconds in taken:
                if seconds >= 0.05:
                    print(f"  {seconds:6.2f} s  {name}({signature})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=["threads", "cluster"])
    parser.add_argument("--compiles", action="store_true", help="list what numba compiled")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.compiles)
        return
    rows = []
    for _ in range(args.repeat):
        for mode in args.modes:
            with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache_dir:
                for cache in ("empty", "warm"):
                    figures = run(mode, cache_dir, args.compiles)
                    rows.append((mode, cache, figures))
                    if args.compiles:
                        print_compiles(mode, cache, figures["compiles"])
    print(f"\n{N_SAMPLES} x 3 blobs, bandwidth 2, bin seeds; seconds\n")
    print(
        "| mode | numba cache | import dshift | cluster start | flat fit | Gaussian fit "
        "| total | says it compiles |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for mode, cache, f in rows:
        total = f["import"] + f["flat"] + f["gaussian"]
        started = f"{f['cluster start']:.1f}" if "cluster start" in f else "—"
        said = {0: "no", 1: "yes"}.get(f["said"], f"{f['said']} times")
        print(
            f"| {mode} | {cache} | {f['import']:.2f} | {started} | {f['flat']:.1f} "
            f"| {f['gaussian']:.1f} | {total:.1f} | {said} |"
        )


if __name__ == "__main__":
    main()
