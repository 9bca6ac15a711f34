"""Where the command line prints what: results on stdout, status on stderr (silenced by
--quiet), the 20 largest clusters, the dashboard's link only when the dashboard works, and
the demo without matplotlib.

Commands run in this process on the session's LocalCluster (``--scheduler``) where the
streams are all that matters, and as new processes where an optional package is made
unimportable (``sys.modules[name] = None`` before dshift's CLI starts) or the embedded
LocalCluster matters.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from dshift import _cli_output, _first_run, datasets
from dshift._cli_cluster import dashboard_link
from dshift._first_run import COMPILING
from dshift.cli import main

EMBEDDED = ("--workers", "1", "--threads", "1", "--memory-limit", "1GiB")
#: Runs dshift's CLI with the packages named in argv[1] (comma-separated) unimportable.
WITHOUT = (
    "import sys; sys.modules.update(dict.fromkeys(sys.argv.pop(1).split(',')));"
    "from dshift.cli import main; main(prog_name='dshift')"
)


def run_without(packages: list[str], *args: str, cwd=None) -> subprocess.CompletedProcess:
    """``dshift ARGS`` in a new process where ``packages`` cannot be imported."""
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, ",".join(packages), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"},
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("output")
    return datasets.make_blobs(root / "b.zarr", 4000, centers=5, chunk_rows=1000)


@pytest.fixture
def invoke(cluster):
    """Run a command in this process on the shared cluster: (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        runner = CliRunner(env={"DASK_SCHEDULER_ADDRESS": None})
        result = runner.invoke(main, [*args, "--scheduler", cluster.scheduler_address])
        assert result.exception is None or isinstance(result.exception, SystemExit)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def test_estimate_bandwidth_prints_only_the_number(invoke, data):
    """Non-regression: BW=$(dshift estimate-bandwidth ...) captured the cluster's banner."""
    code, stdout, stderr = invoke("estimate-bandwidth", data)
    assert code == 0, stderr
    assert re.fullmatch(r"\d+(\.\d+)?\n", stdout), stdout
    assert stderr.startswith("Connected to tcp://127.0.0.1:")
    code, quiet_stdout, quiet_stderr = invoke("estimate-bandwidth", data, "--quiet")
    assert code == 0 and quiet_stdout == stdout and quiet_stderr == ""


def test_fit_prints_the_20_largest_clusters_then_how_many_more(invoke, data, tmp_path):
    """Non-regression: one line per cluster (15,671 lines at a small bandwidth)."""
    out = tmp_path / "out.zarr"
    args = ["fit", data, str(out), "--kernel", "flat", "--bandwidth", "0.4", "--seeding", "bin"]
    code, stdout, stderr = invoke(*args)
    assert code == 0, stderr
    sizes = zarr.open_group(str(out), mode="r")["cluster_sizes"][:]
    k = len(sizes)
    assert k > 25  # the bandwidth is small enough for many clusters
    lines = stdout.splitlines()
    assert len(lines) == 1 + 20 + 1 and lines[0].startswith(f"{k} clusters after ")
    shown = [re.match(r"  cluster +(\d+): size +(\d+)  center \[", line) for line in lines[1:21]]
    labels = [int(m.group(1)) for m in shown]
    assert [int(m.group(2)) for m in shown] == sorted(sizes, reverse=True)[:20]
    assert [sizes[label] for label in labels] == sorted(sizes, reverse=True)[:20]
    rest = np.delete(sizes, labels)
    assert lines[-1] == (
        f"  ... and {k - 20} more clusters (sizes {rest.min()} to {rest.max()}, "
        f"{rest.sum()} in all)"
    )
    # the status went to stderr: progress, the cluster, what was written
    assert "iteration    0" in stderr and f"Wrote labels and centers to {out}" in stderr
    assert stderr.index(f"Writing labels and centers to {out} ...") < stderr.index("Wrote")
    assert "max shift" not in stdout and "Wrote" not in stdout and "Connected" not in stdout

    code, quiet_stdout, quiet_stderr = invoke(*args, "--overwrite", "--quiet")
    assert code == 0 and quiet_stderr == "" and quiet_stdout == stdout


def test_fit_on_a_terminal_shows_a_progress_bar_instead_of_lines(
    invoke, data, tmp_path, monkeypatch
):
    """On a terminal, MeanShift's bar (on stderr); lines are for logs; --quiet: neither."""
    monkeypatch.setattr(_cli_output, "_stderr_is_a_terminal", lambda: True)
    args = ["fit", data, str(tmp_path / "o.zarr"), "--bandwidth", "2", "--seeding", "bin"]
    code, stdout, stderr = invoke(*args)
    assert code == 0, stderr
    assert "mean shift: 100%" in stderr and "seed" in stderr
    assert "  iteration " not in stderr and "Wrote labels and centers" in stderr
    code, quiet_stdout, quiet_stderr = invoke(*args, "--overwrite", "--quiet")
    assert code == 0 and quiet_stderr == "" and quiet_stdout == stdout


def test_fit_with_a_few_clusters_lists_them_all(invoke, data, tmp_path):
    code, stdout, stderr = invoke("fit", data, str(tmp_path / "o.zarr"), "--bandwidth", "2", "-q")
    assert code == 0 and stderr == ""
    assert "more cluster" not in stdout and len(stdout.splitlines()) == 1 + int(stdout.split()[0])


def test_make_blobs_predict_and_plot_print_nothing_on_stdout(invoke, data, tmp_path):
    fitted = str(tmp_path / "fit.zarr")
    assert invoke("fit", data, fitted, "--bandwidth", "2", "-q")[0] == 0
    for args in (
        ("make-blobs", str(tmp_path / "new.zarr"), "--n-samples", "500"),
        ("predict", fitted, data, str(tmp_path / "p.zarr")),
    ):
        code, stdout, stderr = invoke(*args)
        assert code == 0 and stdout == "" and "Wrote " in stderr, stderr
    result = CliRunner().invoke(main, ["plot", fitted, data, str(tmp_path / "c.png")])
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == f"Plot: {tmp_path / 'c.png'}\n"


class _Client:
    """What dashboard_link asks of a client: the link, and whether the scheduler serves
    the dashboard (or an exception, as a scheduler refusing to run functions)."""

    def __init__(self, link: str | None, served: bool | Exception):
        self.dashboard_link, self.served = link, served

    def run_on_scheduler(self, function, *args):
        if isinstance(self.served, Exception):
            raise self.served
        return self.served


@pytest.mark.parametrize(
    ("link", "served", "shown"),
    [
        ("http://127.0.0.1:8787/status", True, True),
        ("http://127.0.0.1:8787/status", False, False),  # the scheduler has no bokeh
        ("http://127.0.0.1:8787/status", RuntimeError("pickle disallowed"), False),
        ("", True, False),  # no dashboard address at all
        (None, True, False),
    ],
)
def test_the_dashboard_link_is_shown_only_when_the_dashboard_is_served(link, served, shown):
    assert dashboard_link(_Client(link, served)) == (link if shown else None)


def test_the_dashboard_link_of_a_real_scheduler(dask_client):
    """The probe runs on a real scheduler (here with bokeh, installed by the test extras)."""
    pytest.importorskip("bokeh")
    assert dashboard_link(dask_client) == dask_client.dashboard_link
    assert dashboard_link(dask_client).startswith("http://127.0.0.1:")


def test_no_dashboard_link_without_bokeh(data):
    """Non-regression: the link was printed, dead, on a plain `pip install dshift`."""
    proc = run_without(["bokeh"], "estimate-bandwidth", data, *EMBEDDED)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("LocalCluster: 1 workers x 1 threads, 1GiB each\n")
    assert "dashboard" not in proc.stderr


def test_demo_without_matplotlib_fits_and_skips_the_plot(tmp_path):
    """Non-regression: `dshift demo` exited 1 after the fit without matplotlib."""
    out = tmp_path / "demo"
    args = ["demo", "--n-samples", "20000", "--output", str(out), *EMBEDDED, "--quiet"]
    proc = run_without(["matplotlib"], *args)
    assert proc.returncode == 0, proc.stderr
    # the note is all there is on stderr with --quiet: it says what was not done
    assert proc.stderr == (
        "Note: no plot: matplotlib is not installed (pip install 'dshift[plots]').\n"
    )
    assert proc.stdout.startswith("5 clusters after ")
    assert zarr.open_group(str(out / "result.zarr"), mode="r")["labels"].shape == (20_000,)
    assert not (out / "clusters.png").exists()

    proc = run_without(
        ["matplotlib"],
        "plot",
        str(out / "result.zarr"),
        str(out / "blobs.zarr/X"),
        str(out / "c.png"),
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "Error: Plotting needs matplotlib: pip install 'dshift[plots]'.\n"


def test_a_fit_that_compiles_says_so_first_in_its_status_lines(invoke, data, tmp_path, monkeypatch):
    # stand-in for a cold numba cache: the fit's first-run step only says that it compiles
    monkeypatch.setattr(_first_run, "prepare", lambda progress, dtype: _first_run.say(progress))
    args = ["fit", data, str(tmp_path / "o.zarr"), "--bandwidth", "2", "--seeding", "bin"]
    monkeypatch.setattr(_first_run, "_said", False)
    code, stdout, stderr = invoke(*args)
    assert code == 0, stderr
    assert stderr.count(COMPILING) == 1 and COMPILING not in stdout
    assert stderr.index(COMPILING) < stderr.index("  iteration    0")
    monkeypatch.setattr(_first_run, "_said", False)
    code, _, quiet_stderr = invoke(*args, "--overwrite", "--quiet")
    assert code == 0 and quiet_stderr == ""
    # the CLI's handler is gone after the fit: nothing more is printed or logged at INFO
    assert not logging.getLogger("dshift._first_run").handlers
