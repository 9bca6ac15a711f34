"""Fit from and write results to ``s3://``, end to end, against an S3-compatible server
(moto's, in server mode) started by the tests on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import numpy as np
import pytest
import zarr
from moto.server import ThreadedMotoServer
from numpy.testing import assert_allclose, assert_array_equal

import dshift
from dshift import MeanShift

BUCKET = "dshift-test"


@pytest.fixture(scope="module")
def s3():
    """The fsspec options of a fresh S3 server on 127.0.0.1 with one bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)
        yield {"key": "testing", "secret": "testing", "endpoint_url": endpoint}
    finally:
        server.stop()


def blobs():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(c, 0.3, (1500, 2)) for c in (0.0, 5.0, 10.0)])


@pytest.fixture(scope="module")
def points_url(s3):
    url = f"s3://{BUCKET}/points.zarr"
    z = zarr.create_array(url, shape=(4500, 2), chunks=(1000, 2), dtype="f8", storage_options=s3)
    z[:] = blobs()
    return url


def test_fit_from_s3_and_write_the_result_back(scheduler, s3, points_url):
    ref = MeanShift(bandwidth=1.0, bin_seeding=True).fit(blobs())
    ms = MeanShift(bandwidth=1.0, bin_seeding=True, storage_options=s3).fit(points_url)
    assert_allclose(ms.cluster_centers_, ref.cluster_centers_)
    out = dshift.write_result(
        f"s3://{BUCKET}/results/fit-{scheduler is None}.zarr", ms, storage_options=s3
    )
    group = zarr.open_group(out, mode="r", storage_options=s3)
    assert_array_equal(group["labels"][:], ref.labels_)
    assert_allclose(group["centers"][:], ref.cluster_centers_)
    assert group.attrs["input"] == points_url
    # the credentials are not in the result
    assert "storage_options" not in group.attrs["params"]
    assert "testing" not in json.dumps(group.attrs.asdict())


def test_predict_and_weights_from_s3(s3, points_url):
    w_url = f"s3://{BUCKET}/weights.zarr"
    zarr.create_array(w_url, shape=(4500,), chunks=(1000,), dtype="f8", storage_options=s3)[:] = 2.0
    ms = MeanShift(bandwidth=1.0, bin_seeding=True, storage_options=s3)
    ms.fit(points_url, sample_weight=w_url)
    ref = MeanShift(bandwidth=1.0, bin_seeding=True).fit(blobs())
    assert_allclose(ms.cluster_centers_, ref.cluster_centers_)
    assert_array_equal(ms.predict(points_url).compute(), ref.labels_)


def test_cli_fit_with_storage_options(tmp_path, s3, points_url):
    options = [f"key={s3['key']}", f"secret={s3['secret']}", f"endpoint_url={s3['endpoint_url']}"]
    out = f"s3://{BUCKET}/results/cli.zarr"
    cmd = [sys.executable, "-m", "dshift.cli", "fit", points_url, out, "--bandwidth", "1.0"]
    cmd += ["--seeding", "bin", "--workers", "1", "--threads", "2", "--quiet"]
    for option in options:
        cmd += ["--storage-option", option]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170, check=False)
    assert proc.returncode == 0, proc.stderr
    labels = zarr.open_group(out, mode="r", storage_options=s3)["labels"][:]
    assert_array_equal(labels, MeanShift(bandwidth=1.0, bin_seeding=True).fit(blobs()).labels_)


def test_cli_estimate_bandwidth_and_predict_with_storage_options(s3, points_url):
    options = []
    for key in ("key", "secret", "endpoint_url"):
        options += ["--storage-option", f"{key}={s3[key]}"]
    cli = [sys.executable, "-m", "dshift.cli"]
    local = ["--workers", "1", "--threads", "2", "--quiet"]
    proc = subprocess.run(
        [*cli, "estimate-bandwidth", points_url, *options, *local],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) == pytest.approx(dshift.estimate_bandwidth(blobs()), rel=1e-5)
    fitted = f"s3://{BUCKET}/results/for-predict.zarr"
    model = MeanShift(bandwidth=1.0, bin_seeding=True, storage_options=s3).fit(points_url)
    dshift.write_result(fitted, model, storage_options=s3)
    out = f"s3://{BUCKET}/results/predicted.zarr"
    proc = subprocess.run(
        [*cli, "predict", fitted, points_url, out, *options, *local],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    group = zarr.open_group(out, mode="r", storage_options=s3)
    assert_array_equal(group["labels"][:], model.labels_.compute())
    assert group.attrs["centers_from"] == fitted and group.attrs["input"] == points_url
