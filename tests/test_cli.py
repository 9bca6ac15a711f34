import os
import subprocess
import sys

import click
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


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_shows_its_default_and_quiet_is_everywhere(command):
    """Every option's help shows its default (an off flag excepted), and every command
    takes --quiet."""
    cmd = main.commands[command]
    ctx = click.Context(cmd, info_name=command, parent=click.Context(main, show_default=True))
    options = {param.name: param for param in cmd.params if isinstance(param, click.Option)}
    assert "quiet" in options
    for name, option in options.items():
        if option.is_flag and not option.secondary_opts and not option.get_default(ctx):
            continue  # --overwrite, --quiet: off unless given
        _, help_text = option.get_help_record(ctx)
        assert "[default: " in help_text, (name, help_text)


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
    # the status on stderr: the cluster and its dashboard, the progress, the output
    assert "iteration    0" in proc.stderr and "max shift" in proc.stderr
    assert "LocalCluster: 1 workers" in proc.stderr
    assert "dashboard: http://127.0.0.1:" in proc.stderr  # bokeh is installed
    assert f"Wrote labels and centers to {out}" in proc.stderr
    # the result on stdout: the clusters found, nothing else
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("3 clusters after ") and len(lines) == 4
    assert all(line.startswith("  cluster ") for line in lines[1:])
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
    assert proc.stdout.startswith("5 clusters after ") and "size" in proc.stdout
    assert "generating centers is within" in proc.stdout
    assert f"Plot: {out / 'clusters.png'}" in proc.stderr
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
    assert result.stdout.count("\n") == 1  # the number, and only the number
    assert float(result.stdout) == pytest.approx(expected, rel=1e-5)

    png = tmp_path / "c.png"
    result = runner.invoke(main, ["plot", str(fitted), data, str(png)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 10_000

    result = runner.invoke(
        main, ["predict", str(tmp_path / "nothing.zarr"), data, str(tmp_path / "p2.zarr")]
    )
    assert result.exit_code == 1 and "is not a dshift result" in result.output


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_fit_quantile_sets_the_estimated_bandwidth_as_meanshift_estimates_it(
    tmp_path, cluster, kernel
):
    """Without --bandwidth, --quantile q gives MeanShift's own estimate (the same sample,
    scaled for the kernel) at q instead of the default 0.3."""
    from dshift import estimate_bandwidth
    from dshift._fit import KERNEL_BANDWIDTH_SCALE

    data = datasets.make_blobs(tmp_path / "b.zarr", 3000, centers=3, chunk_rows=1000)
    runner = CliRunner(env={"DASK_SCHEDULER_ADDRESS": None})
    common = ["--kernel", kernel, "--seeding", "bin", "--max-iter", "50", "-q"]
    common += ["--scheduler", cluster.scheduler_address]
    bandwidths = {}
    for quantile in (None, "0.3", "0.1"):
        out = tmp_path / f"{quantile}.zarr"
        given = ["--quantile", quantile] if quantile else []
        result = runner.invoke(main, ["fit", data, str(out), *common, *given])
        assert result.exit_code == 0, result.output
        bandwidths[quantile] = zarr.open_group(str(out), mode="r").attrs["bandwidth"]
    scale = KERNEL_BANDWIDTH_SCALE[kernel]
    assert bandwidths[None] == bandwidths["0.3"]
    assert bandwidths[None] == pytest.approx(estimate_bandwidth(data, 0.3) * scale, rel=1e-12)
    assert bandwidths["0.1"] == pytest.approx(estimate_bandwidth(data, 0.1) * scale, rel=1e-12)
    assert bandwidths["0.1"] < bandwidths[None]
