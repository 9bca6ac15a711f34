"""The examples run as users run them; the notebook and the CLI against a TCP cluster."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import zarr
from nbclient import NotebookClient

from dshift import datasets

EXAMPLES = Path(__file__).parents[1] / "examples"


def run(args, **kw):
    return subprocess.run(
        args, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, **kw
    )


def dshift_cli(*args):
    return run([os.path.join(os.path.dirname(sys.executable), "dshift"), *args])


def test_quickstart_script(tmp_path):
    proc = run([sys.executable, str(EXAMPLES / "quickstart.py"), "40000", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    assert "centers:" in proc.stdout and "cluster sizes:" in proc.stdout
    sizes = eval(proc.stdout.split("cluster sizes:")[1].splitlines()[0])  # a printed list
    assert len(sizes) == 4 and sum(sizes) == 40_000


@pytest.mark.parametrize("extra", [[], ["--with-position"], ["--algorithm", "grid"]])
def test_segment_image_script(tmp_path, extra):
    out = tmp_path / "seg.png"
    proc = run(
        [sys.executable, str(EXAMPLES / "segment_image.py"), str(out), "--scale", "0.2", *extra]
    )
    assert proc.returncode == 0, proc.stderr
    n_segments = int(proc.stdout.split()[0])
    assert 2 <= n_segments < 100
    assert out.stat().st_size > 10_000


def test_notebook_runs_against_a_tcp_cluster(tmp_path, tcp_scheduler, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", tcp_scheduler)
    monkeypatch.setenv("DSHIFT_DATA", str(tmp_path))
    monkeypatch.setenv("DSHIFT_N_SAMPLES", "200000")
    nb = nbformat.read(EXAMPLES / "cluster_notebook.ipynb", as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3", store_widget_state=True).execute()
    outputs = "".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
    )
    assert "5 clusters" in outputs
    # the fit showed its progress bar: a widget, whose text says every seed converged
    bars = [
        o["data"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(bars) == 1 and "mean shift" in bars[0]["text/plain"]
    widgets = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    progress = [w["state"] for w in widgets.values() if w["model_name"] == "FloatProgressModel"]
    assert len(progress) == 1 and progress[0]["value"] == progress[0]["max"] > 0
    texts = [
        w["state"].get("value", "") for w in widgets.values() if w["model_name"] == "HTMLModel"
    ]
    assert any("moving=0" in t for t in texts), texts
    labels = zarr.open_group(str(tmp_path / "result.zarr"), mode="r")["labels"][:]
    assert labels.shape == (200_000,) and set(np.unique(labels)) == set(range(5))


def test_cli_fit_on_a_tcp_cluster(tmp_path, tcp_scheduler):
    data = datasets.make_blobs(tmp_path / "b.zarr", 50_000, centers=3, chunk_rows=10_000)
    proc = dshift_cli(
        "fit",
        data,
        str(tmp_path / "out.zarr"),
        "--kernel",
        "flat",
        "--bandwidth",
        "2",
        "--seeding",
        "bin",
        "--scheduler",
        tcp_scheduler,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"Connected to {tcp_scheduler}" in proc.stderr and "LocalCluster" not in proc.stderr
    labels = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["labels"][:]
    truth = zarr.open_array(str(tmp_path / "b.zarr" / "y"))[:]
    for k in np.unique(labels):
        assert np.bincount(truth[labels == k]).max() / np.sum(labels == k) > 0.95


def test_cli_unreachable_scheduler_fails_fast_with_one_line(tmp_path):
    data = datasets.make_blobs(tmp_path / "b.zarr", 100, chunk_rows=50)
    proc = dshift_cli("fit", data, str(tmp_path / "o.zarr"), "--scheduler", "tcp://127.0.0.1:9")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Could not reach the Dask scheduler" in lines[0]
    assert not (tmp_path / "o.zarr").exists()
