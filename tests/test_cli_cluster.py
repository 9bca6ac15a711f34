"""``--scheduler-file FILE``: the scheduler file as `dask scheduler --scheduler-file` writes
it, read as untrusted input, waited for while a scheduler is starting, and an alternative to
``--scheduler`` (both is an error before any cluster starts)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from dshift import _cli_cluster, datasets
from dshift._cli_cluster import scheduler_address_from_file
from dshift.cli import main

UNREACHABLE = "tcp://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("scheduler-file")
    return datasets.make_blobs(root / "b.zarr", 2000, centers=3, chunk_rows=500)


def _write(path, content) -> str:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_the_address_is_read_from_the_file(tmp_path):
    info = {"type": "Scheduler", "id": "Scheduler-1", "address": "tls://10.0.0.1:8786"}
    assert scheduler_address_from_file(_write(tmp_path / "s.json", info)) == info["address"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"address": "tcp://127.0', "holds no complete JSON document"),
        ({"type": "Scheduler"}, "holds no scheduler address"),
        ({"address": "127.0.0.1:8786"}, "holds no scheduler address"),  # no protocol
        ({"address": 8786}, "holds no scheduler address"),
        (["tcp://127.0.0.1:8786"], "holds no scheduler address"),
    ],
)
def test_a_file_without_an_address_is_refused_after_the_wait(tmp_path, content, problem):
    path = _write(tmp_path / "s.json", content)
    with pytest.raises(ValueError, match="start the scheduler with `dask scheduler") as info:
        scheduler_address_from_file(path, wait=0.1)
    assert str(info.value).startswith(f"--scheduler-file {path} {problem}")
    assert "(waited 0.1 s)" in str(info.value)


def test_a_missing_file_is_waited_for_then_refused(tmp_path):
    path = str(tmp_path / "s.json")
    with pytest.raises(ValueError, match=r"s\.json does not exist \(waited 0\.1 s\)"):
        scheduler_address_from_file(path, wait=0.1)


def test_a_file_written_while_waiting_is_read(tmp_path, monkeypatch):
    """A scheduler creates its file, then writes it: the half-written file is read again.
    The file is completed at the first pause between two reads (no timing involved)."""
    path = tmp_path / "s.json"
    path.write_text('{"address": "tcp://127')  # created, not yet written whole
    pauses = []

    def pause(seconds):
        pauses.append(seconds)
        path.write_text('{"address": "tcp://127.0.0.1:8786"}')

    monkeypatch.setattr(_cli_cluster.time, "sleep", pause)
    assert scheduler_address_from_file(str(path), wait=60) == "tcp://127.0.0.1:8786"
    assert len(pauses) == 1


@pytest.mark.parametrize("kind", ["fifo", "directory", "huge"])
def test_what_waiting_cannot_fix_is_refused_at_once(tmp_path, kind):
    """A FIFO would block the read, a directory or a huge file is no scheduler file: each
    is refused at the first look (a 600 s wait would time the test out)."""
    path = tmp_path / "s.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_text(json.dumps({"address": "tcp://127.0.0.1:1", "pad": "x" * 100_000}))
    with pytest.raises(ValueError, match="is not a scheduler file: expected a regular file"):
        scheduler_address_from_file(str(path), wait=600)


def test_a_missing_directory_is_refused_at_once(tmp_path):
    with pytest.raises(FileNotFoundError, match="the directory .*/nowhere does not exist"):
        scheduler_address_from_file(str(tmp_path / "nowhere" / "s.json"), wait=600)


def test_the_cli_connects_to_the_scheduler_of_the_file(cluster, data, tmp_path):
    """The file wins over DASK_SCHEDULER_ADDRESS (here unreachable): only the command line
    has to choose one of --scheduler and --scheduler-file."""
    path = _write(tmp_path / "s.json", {"address": cluster.scheduler_address})
    runner = CliRunner(env={"DASK_SCHEDULER_ADDRESS": UNREACHABLE})
    result = runner.invoke(main, ["estimate-bandwidth", data, "--scheduler-file", path])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"Connected to {cluster.scheduler_address}")
    float(result.stdout)


def test_scheduler_and_scheduler_file_together_are_refused(tmp_path, data):
    path = _write(tmp_path / "s.json", {"address": UNREACHABLE})
    runner = CliRunner(env={"DASK_SCHEDULER_ADDRESS": None})
    args = ["estimate-bandwidth", data, "--scheduler", UNREACHABLE, "--scheduler-file", path]
    result = runner.invoke(main, args)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        "Error: --scheduler and --scheduler-file are alternatives: pass one of them.\n"
    )


def test_fit_on_a_dask_scheduler_started_with_a_scheduler_file(dask_processes, data, tmp_path):
    """The real thing: `dask scheduler --scheduler-file` and a `dask worker` (processes on
    127.0.0.1, stopped afterwards), and `dshift fit --scheduler-file` as a new process."""
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    with dask_processes(workdir, 1) as address:
        exe = os.path.join(os.path.dirname(sys.executable), "dshift")
        args = ["fit", data, str(tmp_path / "out.zarr"), "--bandwidth", "2"]
        args += ["--scheduler-file", str(workdir / "scheduler.json")]
        proc = subprocess.run(
            [exe, *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
            env={k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"},
        )
    assert proc.returncode == 0, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"Connected to {address}; dashboard: http://127.0.0.1:"), first
    assert re.match(r"\d+ clusters after \d+ iterations", proc.stdout), proc.stdout
