import os
import subprocess
import sys

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from dshift import datasets
from dshift.cli import main

COMMANDS = ["make-blobs", "fit", "predict", "estimate-bandwidth", "plot", "demo"]


def run(*args):
    """Run the installed entry point as a user would: a new process, no stdin."""
    exe = os.path.join(os.path.dirname(sys.executable), "dshift")
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and f"dshift {command}" in result.output


def test_fit_missing_input_is_one_line_error_and_writes_nothing(tmp_path):
    proc = run("fit", str(tmp_path / "nope.zarr"), str(tmp_path / "out.zarr"), "--workers", "1")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "does not exist" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.zarr").exists()


def test_fit_refuses_existing_output_before_fitting(tmp_path):
    data = datasets.make_blobs(tmp_path / "b.zarr", 500, chunk_rows=100)
    out = tmp_path / "out.zarr"
    out.mkdir()
    result = CliRunner().invoke(main, ["fit", data, str(out), "--bandwidth", "2"])
    assert result.exit_code == 1
    assert "already exists" in result.output and "--overwrite" in result.output
    assert "iteration" not in result.output
    assert os.listdir(out) == []


def test_fit_bad_bandwidth_is_one_line_error(tmp_path):
    data = datasets.make_blobs(tmp_path / "b.zarr", 500, chunk_rows=100)
    result = CliRunner().invoke(
        main, ["fit", data, str(tmp_path / "o.zarr"), "--bandwidth", "-1", "--workers", "1"]
    )
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 + result.output.count("LocalCluster")
    assert "bandwidth must be a positive finite number" in result.output
    assert not (tmp_path / "o.zarr").exists()


def test_fit_writes_result_and_shows_progress(tmp_path):
    data = datasets.make_blobs(tmp_path / "b.zarr", 20_000, centers=3, chunk_rows=5000)
    out = tmp_path / "out.zarr"
    proc = run(
        "fit",
        data,
        str(out),
        "--kernel",
        "flat",
        "--bandwidth",
        "2",
        "--seeding",
        "bin",
        "--workers",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "iteration    0" in proc.stdout and "max shift" in proc.stdout
    assert "dashboard: http://127.0.0.1:" in proc.stdout
    group = zarr.open_group(str(out), mode="r")
    labels = group["labels"][:]
    assert labels.shape == (20_000,) and group["labels"].chunks == (5000,)
    truth = zarr.open_array(str(tmp_path / "b.zarr" / "y"))[:]
    # every found cluster is (almost) one true blob
    for k in np.unique(labels):
        assert np.bincount(truth[labels == k]).max() / np.sum(labels == k) > 0.95


def test_demo_generates_fits_writes_and_plots(tmp_path):
    out = tmp_path / "demo"
    proc = run("demo", "--n-samples", "30000", "--output", str(out), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "5 clusters" in proc.stdout and "size" in proc.stdout
    assert (out / "clusters.png").stat().st_size > 10_000
    assert zarr.open_group(str(out / "result.zarr"), mode="r")["labels"].shape == (30_000,)
    again = run("demo", "--n-samples", "30000", "--output", str(out), "--workers", "1")
    assert again.returncode == 1 and "--overwrite" in again.stderr


def test_predict_estimate_bandwidth_and_plot_commands(tmp_path):
    data = datasets.make_blobs(tmp_path / "b.zarr", 6000, centers=3, chunk_rows=1500)
    fitted = tmp_path / "fit.zarr"
    runner = CliRunner()
    args = ["--workers", "1"]
    result = runner.invoke(
        main, ["fit", data, str(fitted), "--kernel", "flat", "--bandwidth", "2", *args]
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "pred.zarr"
    result = runner.invoke(main, ["predict", str(fitted), data, str(out), *args])
    assert result.exit_code == 0, result.output
    predicted = zarr.open_group(str(out), mode="r")["labels"]
    assert predicted.chunks == (1500,)
    np.testing.assert_array_equal(predicted[:], zarr.open_group(str(fitted))["labels"][:])

    result = runner.invoke(main, ["estimate-bandwidth", data, "--quantile", "0.2", *args])
    assert result.exit_code == 0, result.output
    from sklearn.cluster import estimate_bandwidth

    X = zarr.open_array(data)[:]
    expected = estimate_bandwidth(
        X[np.sort(np.random.default_rng(0).choice(6000, 6000, replace=False))], quantile=0.2
    )
    assert float(result.output.strip().splitlines()[-1]) == pytest.approx(expected, rel=1e-5)

    png = tmp_path / "c.png"
    result = runner.invoke(main, ["plot", str(fitted), data, str(png)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 10_000

    result = runner.invoke(
        main, ["predict", str(tmp_path / "nothing.zarr"), data, str(tmp_path / "p2.zarr")]
    )
    assert result.exit_code == 1 and "is not a dshift result" in result.output
