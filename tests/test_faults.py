"""Faults end in one line and a bounded time, never in a hang or a half-written output: a
scheduler killed mid-fit, workers that cannot run dshift, Ctrl-C and SIGTERM.

Non-regression for a client that waited forever in ``Client.gather`` after its scheduler
was SIGKILLed, a ``dshift fit --scheduler`` that printed nothing forever when a worker had
no dshift, and a Ctrl-C during the result write that left the temporary group behind with
``[Errno 39] Directory not empty`` and an asyncio traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from distributed import Client

from dshift import MeanShift, datasets
from dshift._cluster import SchedulerLostError

#: A fault must end the command within this many seconds (the client's 10 s connection
#: timeout, the workers' and the interpreter's shutdown, on a busy machine).
BOUNDED = 90


def _dshift(*argv: str, cwd: Path, **kwargs) -> subprocess.Popen:
    exe = os.path.join(os.path.dirname(sys.executable), "dshift")
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    return subprocess.Popen(
        [exe, *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _wait_for_line(proc: subprocess.Popen, phrase: str) -> list[str]:
    """Read stderr (the status lines) until a line holds ``phrase`` (fails if the process
    ends first)."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if phrase in line:
            return seen
    pytest.fail(f"{phrase!r} never printed:\n{''.join(seen)}{proc.stdout.read()}")


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=BOUNDED)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"no exit within {BOUNDED} s:\n{out}\n{err}")
    return proc.returncode, out, err


#: The status lines a ``dshift fit`` may print on stderr before its error line.
STATUS = (
    "Connected to ",
    "LocalCluster: ",
    "Resumed from checkpoint ",
    "iteration ",
    "Writing labels and centers to ",
)


def _status_lines(err: str) -> list[str]:
    """The lines of ``err`` before its last one, each a status line of ``dshift fit``."""
    lines = err.strip().splitlines()[:-1]
    assert all(line.strip().startswith(STATUS) for line in lines), err
    return lines


def _one_error_line(err: str) -> str:
    """The error, one line: the last line of stderr, after status lines only (no
    traceback, no log record, no second error)."""
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("Error: "), err
    _status_lines(err)
    return lines[-1]


@pytest.fixture(scope="module")
def slow_data(tmp_path_factory) -> str:
    """Blobs whose Gaussian fit runs many iterations (time to act between them)."""
    root = tmp_path_factory.mktemp("slow")
    return datasets.make_blobs(root / "blobs.zarr", 200_000, centers=4, chunk_rows=25_000)


GAUSSIAN = ("--kernel", "gaussian", "--bandwidth", "0.6", "--seeding", "bin", "--max-iter", "400")


# -- a lost scheduler -----------------------------------------------------------------


def _cluster_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def _scheduler_pid(address: str) -> int:
    with Client(address, timeout="30s") as client:
        return client.run_on_scheduler(os.getpid)


def test_a_scheduler_killed_mid_fit_ends_the_cli_with_one_line_naming_the_checkpoint(
    dask_processes, slow_data, tmp_path
):
    ckpt = tmp_path / "fit.ckpt"
    with dask_processes(_cluster_dir(tmp_path, "cluster"), 1) as address:
        pid = _scheduler_pid(address)
        proc = _dshift(
            "fit", slow_data, "out.zarr", *GAUSSIAN, "--checkpoint", str(ckpt),
            "--scheduler", address, cwd=tmp_path,
        )  # fmt: skip
        _wait_for_line(proc, "iteration    2")
        os.kill(pid, signal.SIGKILL)
        code, _, err = _finish(proc)
    assert code == 1
    line = _one_error_line(err)
    assert "Lost the connection to the Dask scheduler" in line, line
    assert str(ckpt) in line and "resumes" in line, line
    assert not (tmp_path / "out.zarr").exists() and ckpt.exists()

    # what the line says works: the same command on a new scheduler resumes and finishes
    with dask_processes(_cluster_dir(tmp_path, "cluster2"), 1) as address:
        proc = _dshift(
            "fit", slow_data, "out.zarr", *GAUSSIAN, "--checkpoint", str(ckpt),
            "--scheduler", address, cwd=tmp_path,
        )  # fmt: skip
        code, out, err = _finish(proc)
    assert code == 0, err
    assert "Resumed from checkpoint" in err and "clusters after" in out, out
    assert zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["centers"].shape[1] == 2


def test_a_scheduler_killed_between_iterations_raises_promptly_in_python(
    dask_processes, slow_data, tmp_path
):
    """The kill lands while the client is between two computations: the next one is
    submitted to a client that is reconnecting (the case that waited forever)."""
    with dask_processes(_cluster_dir(tmp_path, "cluster"), 1) as address:
        pid = _scheduler_pid(address)
        client = Client(address, timeout="10s")
        try:
            model = MeanShift(kernel="gaussian", bandwidth=0.6, seeding="bin", max_iter=400)
            start = None
            with pytest.raises(SchedulerLostError, match="pass a checkpoint"):
                for step in model.iter_fit(slow_data):
                    if step.iteration == 1:
                        os.kill(pid, signal.SIGKILL)
                        start = time.monotonic()
            assert time.monotonic() - start < BOUNDED
        finally:
            client.close(timeout=30)


# -- workers that cannot run dshift ---------------------------------------------------------


PRELOADS = {
    # a worker whose Python cannot import dshift (as if it were not installed there)
    "no-dshift": (
        "import sys\nsys.modules['dshift'] = None\n",
        ("cannot run dshift", "ModuleNotFoundError", "pip install dshift=="),
    ),
    # a worker with another zarr (its version attribute stands for another install)
    "other-zarr": (
        "import zarr\nzarr.__version__ = '2.18.3'\n",
        ("has zarr 2.18.3, this client", "install the same versions"),
    ),
}


@pytest.mark.parametrize("case", list(PRELOADS))
def test_workers_that_cannot_run_dshift_are_refused_at_connect(
    case, dask_processes, slow_data, tmp_path
):
    preload, phrases = PRELOADS[case]
    script = tmp_path / "worker_preload.py"
    script.write_text(preload)
    with dask_processes(
        _cluster_dir(tmp_path, "cluster"), 1, worker_args=("--preload", str(script))
    ) as addr:
        proc = _dshift("fit", slow_data, "out.zarr", *GAUSSIAN, "--scheduler", addr, cwd=tmp_path)
        code, out, err = _finish(proc)
        with Client(addr, timeout="30s") as client, client.as_current():
            with pytest.raises(RuntimeError, match=phrases[0]):
                MeanShift(bandwidth=1.0).fit(np.zeros((10, 2)))
    assert code == 1
    line = _one_error_line(err)
    for phrase in phrases:
        assert phrase in line, line
    assert not any("iteration" in status for status in _status_lines(err))
    assert out == "", out  # an error prints nothing on stdout
    assert not (tmp_path / "out.zarr").exists()


# -- Ctrl-C and SIGTERM -----------------------------------------------------------------------


def _temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".out.zarr"))


#: Runs ``dshift ARGS`` with SIGINT set to argv[1] ("SIG_DFL" or "SIG_IGN"): exec keeps
#: a signal's default or ignored disposition (thread-safe, unlike a ``preexec_fn``).
WITH_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, getattr(signal, sys.argv[1]));"
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def _signal_during_the_write(tmp_path: Path, sig: int, sigint: str) -> subprocess.Popen:
    """``dshift fit`` (SIGINT's disposition: ``sigint``), sent ``sig`` while it writes."""
    data = datasets.make_blobs(tmp_path / "big.zarr", 3_000_000, centers=3, chunk_rows=100_000)
    exe = os.path.join(os.path.dirname(sys.executable), "dshift")
    proc = subprocess.Popen(
        [sys.executable, "-c", WITH_SIGINT, sigint, exe, "fit", data, "out.zarr",
         "--kernel", "flat", "--bandwidth", "2", "--seeding", "bin", "--workers", "2"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for_line(proc, "Writing labels and centers to")  # the fit is done; the write begins
    deadline = time.monotonic() + BOUNDED
    while not _temporaries(tmp_path):  # the temporary group exists: the write is under way
        assert proc.poll() is None and time.monotonic() < deadline, "the write never started"
    proc.send_signal(sig)
    return proc


def test_a_process_that_ignores_sigint_writes_its_result_through_one(tmp_path):
    proc = _signal_during_the_write(tmp_path, signal.SIGINT, "SIG_IGN")  # as with `cmd &`
    code, _, err = _finish(proc)
    assert code == 0, err
    assert "interrupted" not in err and "Traceback" not in err
    assert _temporaries(tmp_path) == []
    assert zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["labels"].shape == (3_000_000,)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_during_the_result_write_removes_the_temporary_group(sig, tmp_path):
    # Ctrl-C as from a terminal: SIGINT at its default (a test runner started in the
    # background would pass it on ignored)
    proc = _signal_during_the_write(tmp_path, sig, "SIG_DFL")
    code, _, err = _finish(proc)
    assert code == (130 if sig == signal.SIGINT else 143), err
    line = _one_error_line(err)
    assert "interrupted" in line and "nothing was left half-written" in line
    assert "Traceback" not in err and "Errno" not in err
    assert _temporaries(tmp_path) == [] and not (tmp_path / "out.zarr").exists()


def test_sigterm_mid_fit_keeps_the_checkpoint_and_the_same_command_resumes(slow_data, tmp_path):
    ckpt = tmp_path / "fit.ckpt"
    argv = ("fit", slow_data, "out.zarr", *GAUSSIAN, "--checkpoint", str(ckpt), "--workers", "1")
    proc = _dshift(*argv, cwd=tmp_path)
    _wait_for_line(proc, "iteration    2")
    proc.send_signal(signal.SIGTERM)
    code, _, err = _finish(proc)
    assert code == 143 and "SIGTERM" in _one_error_line(err), err
    assert ckpt.exists() and not (tmp_path / "out.zarr").exists()
    code, out, err = _finish(_dshift(*argv, cwd=tmp_path))
    assert code == 0 and "Resumed from checkpoint" in err, err
    assert "clusters after" in out, out


def _slow_block(block, block_info=None, *, markers: str):
    """A chunk that takes a while to compute, leaving a marker when it starts and ends."""
    index = block_info[None]["chunk-location"][0]
    Path(markers, f"started-{index}").touch()
    time.sleep(0.3)  # the work the interrupt lands in
    Path(markers, f"done-{index}").touch()
    return block


@pytest.fixture
def ctrl_c():
    """SIGINT raises KeyboardInterrupt in this process, as in a terminal, even when the
    test runner was started with it ignored (in the background)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupted_store_waits_for_the_running_chunk_writes(tmp_path, scheduler, ctrl_c):
    """Python API: no chunk is written after the temporary group is removed."""
    import cloudpickle
    import dask.array as da

    from dshift import _store

    markers = tmp_path / "markers"
    markers.mkdir()
    arr = da.ones((80, 2), chunks=(10, 2)).map_blocks(
        _slow_block, markers=str(markers), dtype=float
    )
    main = threading.main_thread().ident

    def interrupt_when_a_write_runs():
        while not any(markers.iterdir()):
            time.sleep(0.01)
        signal.pthread_kill(main, signal.SIGINT)

    out = tmp_path / "out.zarr"
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        threading.Thread(target=interrupt_when_a_write_runs, daemon=True).start()
        with pytest.raises(KeyboardInterrupt), _store.atomic_group(out) as group:
            _store.store_rows(group, "a", arr)
        names = {p.name for p in markers.iterdir()}
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    started = {n.split("-")[1] for n in names if n.startswith("started")}
    done = {n.split("-")[1] for n in names if n.startswith("done")}
    assert started and started == done, names  # every write that began had ended
    assert len(done) < 8  # and the rest never ran
    assert not out.exists() and _temporaries(tmp_path) == []


def test_a_signal_held_until_the_end_of_the_write_keeps_the_group_unpublished(tmp_path, ctrl_c):
    """Non-regression: a Ctrl-C that arrived while the last chunks were written was
    delivered after the group was published (exit 143 with a complete output)."""
    import numpy as np

    from dshift import _store

    out = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt), _store.atomic_group(out) as group:
        group.create_array("a", data=np.arange(10))
        signal.raise_signal(signal.SIGINT)  # held: nothing is raised here
        group.create_array("b", data=np.arange(10))  # the block goes on to its end
    assert not out.exists() and _temporaries(tmp_path) == []
