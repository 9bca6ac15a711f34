"""What a result group records: its input (absolute), the number of rows, and for the labels
of ``dshift predict`` the result whose centers gave them; labels chunked like the input's
stored rows (as the README says); results of an older dshift, without these attributes,
still read; the new attributes are checked like the others when read back."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from dshift import MeanShift, datasets, write_result
from dshift._results import read_model
from dshift.cli import main

N_ROWS = 3000
STORED_ROWS = 500


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("results")
    return datasets.make_blobs(root / "b.zarr", N_ROWS, centers=3, chunk_rows=STORED_ROWS)


def test_write_result_records_the_input_and_chunks_labels_like_its_stored_rows(data, tmp_path):
    """Non-regression: labels were chunked like the fit's row chunks (here 1,500 rows),
    not like the input's stored chunks as the README says."""
    model = MeanShift(bandwidth=2.0, kernel="flat", row_chunks=3 * STORED_ROWS).fit(data)
    assert model.labels_.chunks[0][0] == 3 * STORED_ROWS
    path = write_result(tmp_path / "r.zarr", model)
    group = zarr.open_group(path, mode="r")
    assert group["labels"].chunks == (STORED_ROWS,)
    assert group.attrs["input"] == os.path.abspath(data)
    assert group.attrs["n_samples"] == N_ROWS
    np.testing.assert_array_equal(group["labels"][:], np.asarray(model.labels_))


def test_write_result_of_a_numpy_fit_records_no_input(tmp_path):
    X = np.random.default_rng(0).normal(size=(300, 2))
    path = write_result(tmp_path / "r.zarr", MeanShift(bandwidth=1.0, kernel="flat").fit(X))
    attrs = zarr.open_group(path, mode="r").attrs
    assert "input" not in attrs and attrs["n_samples"] == 300


def test_a_result_without_the_new_attributes_still_reads(data, tmp_path):
    model = MeanShift(bandwidth=2.0, kernel="flat").fit(data)
    path = write_result(tmp_path / "r.zarr", model)
    group = zarr.open_group(path, mode="r+")
    old = {k: v for k, v in group.attrs.asdict().items() if k not in ("input", "n_samples")}
    group.attrs.put(old)
    assert "input" not in zarr.open_group(path, mode="r").attrs
    np.testing.assert_array_equal(read_model(path).cluster_centers_, model.cluster_centers_)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("n_samples", "many", "attribute 'n_samples' is 'many'"),
        ("n_samples", True, "attribute 'n_samples' is True"),
        ("n_samples", -5, "attribute 'n_samples' is -5"),
        ("input", 7, "attribute 'input' is 7"),
        ("centers_from", ["a"], "attribute 'centers_from' is ['a']"),
    ],
)
def test_the_new_attributes_are_checked_when_read(data, tmp_path, name, value, message):
    path = write_result(tmp_path / "r.zarr", MeanShift(bandwidth=2.0, kernel="flat").fit(data))
    zarr.open_group(path, mode="r+").attrs[name] = value
    with pytest.raises(ValueError, match="cannot be used") as info:
        read_model(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_results_record_absolute_paths(data, tmp_path, monkeypatch, cluster):
    """fit and predict given relative paths record absolute ones; predicted labels name
    the result whose centers gave them."""
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.dirname(data), "in.zarr")  # a relative way to the same input
    runner = CliRunner(env={"DASK_SCHEDULER_ADDRESS": None})
    common = ["--scheduler", cluster.scheduler_address, "--quiet"]
    args = ["fit", "in.zarr/X", "fit.zarr", "--kernel", "flat", "--bandwidth", "2", *common]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    fitted = zarr.open_group(str(tmp_path / "fit.zarr"), mode="r")
    assert fitted.attrs["input"] == str(tmp_path / "in.zarr" / "X")
    assert fitted.attrs["n_samples"] == N_ROWS and fitted["labels"].chunks == (STORED_ROWS,)

    result = runner.invoke(main, ["predict", "fit.zarr", "in.zarr/X", "pred.zarr", *common])
    assert result.exit_code == 0, result.output
    predicted = zarr.open_group(str(tmp_path / "pred.zarr"), mode="r")
    assert predicted.attrs["centers_from"] == str(tmp_path / "fit.zarr")
    assert predicted.attrs["input"] == str(tmp_path / "in.zarr" / "X")
    assert predicted.attrs["n_samples"] == N_ROWS
    assert predicted.attrs["n_clusters"] == fitted["centers"].shape[0]
    assert predicted["labels"].chunks == (STORED_ROWS,)
    np.testing.assert_array_equal(predicted["labels"][:], fitted["labels"][:])
