"""Rows of uncompressed local Zarr arrays read straight from their chunk files: the same
values as zarr's read for every row range, zarr's read for every other array, and a clear
error (never wrong rows, never a hang) for a damaged chunk file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import BytesCodec

from dshift import MeanShift, _raw_read, _zarr_input
from dshift._zarr_input import CheckedZarrReader


def _array(path: Path, data: np.ndarray, chunks: tuple[int, ...], **kwargs) -> zarr.Array:
    z = zarr.create_array(str(path), shape=data.shape, chunks=chunks, dtype=data.dtype, **kwargs)
    z[...] = data
    return zarr.open_array(str(path), mode="r")


@pytest.mark.parametrize("dtype", ["f4", "f8", "i8", "u1", "bool"])
@pytest.mark.parametrize("shape", [(103,), (103, 3)])
def test_every_row_range_reads_as_zarr_reads_it(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    data = (rng.normal(size=shape) * 50).astype(dtype)
    z = _array(tmp_path / "x.zarr", data, (10, *shape[1:]), compressors=None)
    layout = _raw_read.raw_layout(z)
    assert layout is not None
    starts = [0, 1, 9, 10, 11, 55, 99, 102, 103]
    for start in starts:
        for stop in [s for s in starts if s >= start]:
            got = _raw_read.read_file_rows(layout, start, stop)
            assert got.dtype == data.dtype and got.shape == data[start:stop].shape
            np.testing.assert_array_equal(got, data[start:stop])


def test_reversed_and_empty_row_ranges_open_no_file(tmp_path, monkeypatch):
    data = np.arange(30, dtype="f4").reshape(10, 3)
    layout = _raw_read.raw_layout(_array(tmp_path / "x.zarr", data, (4, 3), compressors=None))
    monkeypatch.setattr(os, "open", lambda *a, **k: pytest.fail("opened a chunk file"))
    for start, stop in [(5, 5), (6, 2), (10, 10)]:
        assert _raw_read.read_file_rows(layout, start, stop).shape == (0, 3)


@pytest.mark.parametrize(
    "case", ["v2 key encoding", "in a group", "chunks larger than the array", "3-d"]
)
def test_other_layouts_read_as_zarr_reads_them(tmp_path, case):
    rng = np.random.default_rng(2)
    data = rng.normal(size=(5, 2, 2) if case == "3-d" else (23, 2))
    kwargs = {"compressors": None}
    chunks = (4, *data.shape[1:])
    if case == "v2 key encoding":
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "."}
    if case == "chunks larger than the array":
        chunks = (40, 2)
    if case == "in a group":
        group = zarr.create_group(str(tmp_path / "g.zarr"))
        z = group.create_array("inner/x", shape=data.shape, chunks=chunks, dtype="f8", **kwargs)
        z[...] = data
    else:
        z = _array(tmp_path / "x.zarr", data, chunks, **kwargs)
    layout = _raw_read.raw_layout(z)
    assert layout is not None
    for start in range(len(data) + 1):
        for stop in range(start, len(data) + 1):
            np.testing.assert_array_equal(
                _raw_read.read_file_rows(layout, start, stop), data[start:stop]
            )


def test_an_array_with_no_values_is_left_to_zarr(tmp_path):
    z = _array(tmp_path / "x.zarr", np.zeros((10, 0)), (4, 1), compressors=None)
    assert _raw_read.raw_layout(z) is None


def test_the_checked_reader_reads_raw_only_whole_row_slices(tmp_path, monkeypatch):
    data = np.arange(60, dtype="f8").reshape(20, 3)
    z = _array(tmp_path / "x.zarr", data, (6, 3), compressors=None)
    reader = CheckedZarrReader(_zarr_input.open_input(z))
    calls = []
    real = _raw_read.read_file_rows
    monkeypatch.setattr(_raw_read, "read_file_rows", lambda *a: calls.append(a[1:]) or real(*a))
    np.testing.assert_array_equal(reader[(slice(4, 17), slice(0, 3))], data[4:17])
    np.testing.assert_array_equal(reader[slice(2, 5)], data[2:5])
    assert calls == [(4, 17), (2, 5)]
    # a column subset, a stride or fancy rows go through zarr
    np.testing.assert_array_equal(reader[(slice(4, 17), slice(0, 2))], data[4:17, :2])
    np.testing.assert_array_equal(reader[(slice(0, 20, 2), slice(0, 3))], data[::2])
    np.testing.assert_array_equal(reader[(np.array([1, 7]), slice(0, 3))], data[[1, 7]])
    assert calls == [(4, 17), (2, 5)]


@pytest.mark.parametrize(
    "kind", ["compressed", "sharded", "split columns", "big-endian", "zarr 2", "memory"]
)
def test_other_arrays_are_left_to_zarr(tmp_path, kind):
    data = np.arange(60, dtype="f8").reshape(20, 3)
    path = tmp_path / "x.zarr"
    if kind == "compressed":
        z = _array(path, data, (6, 3))
    elif kind == "sharded":
        z = _array(path, data, (3, 3), shards=(6, 3), compressors=None)
    elif kind == "split columns":
        z = _array(path, data, (6, 2), compressors=None)
    elif kind == "big-endian":
        other = "big" if sys.byteorder == "little" else "little"
        z = _array(path, data, (6, 3), compressors=None, serializer=BytesCodec(endian=other))
        stored = data[0, :1].astype(">f8" if other == "big" else "<f8").tobytes()
        assert (path / "c" / "0" / "0").read_bytes()[:8] == stored
    elif kind == "zarr 2":
        z = _array(path, data, (6, 3), compressors=None, zarr_format=2)
    else:
        z = zarr.create_array({}, shape=data.shape, chunks=(6, 3), dtype="f8", compressors=None)
        z[...] = data
    assert _raw_read.raw_layout(z) is None


@pytest.mark.parametrize("damage", ["truncated", "longer", "fifo"])
def test_a_damaged_chunk_file_is_an_error_naming_the_array(tmp_path, damage):
    data = np.random.default_rng(1).normal(size=(4_000, 3))
    z = _array(tmp_path / "x.zarr", data, (1_000, 3), compressors=None)
    chunk = tmp_path / "x.zarr" / "c" / "2" / "0"
    raw = chunk.read_bytes()
    if damage == "truncated":
        chunk.write_bytes(raw[:-8])
    elif damage == "longer":
        chunk.write_bytes(raw + raw[:24])
    else:  # a FIFO: zarr's own read would wait for a writer for ever
        chunk.unlink()
        os.mkfifo(chunk)
    reader = CheckedZarrReader(_zarr_input.open_input(z))
    assert reader.layout is not None  # else zarr reads the FIFO, and waits for ever
    np.testing.assert_array_equal(reader[slice(0, 2_000)], data[:2_000])
    with pytest.raises(ValueError, match=r"rows 1500:2500 .*corrupt") as err:
        reader[slice(1_500, 2_500)]
    assert "c/2/0" in str(err.value)
    with pytest.raises(ValueError, match="corrupt, incomplete or unreachable"):
        MeanShift(bandwidth=2.0, n_jobs=1).fit(str(tmp_path / "x.zarr"))


def test_a_directory_in_place_of_a_chunk_is_an_error(tmp_path):
    data = np.arange(30, dtype="f4").reshape(10, 3)
    layout = _raw_read.raw_layout(_array(tmp_path / "x.zarr", data, (4, 3), compressors=None))
    chunk = tmp_path / "x.zarr" / "c" / "1" / "0"
    chunk.unlink()
    chunk.mkdir()
    with pytest.raises(OSError, match="c/1/0 is not a regular file"):
        _raw_read.read_file_rows(layout, 0, 10)


def test_a_file_ending_during_the_read_is_an_error(tmp_path, monkeypatch):
    data = np.arange(30, dtype="f4").reshape(10, 3)
    z = _array(tmp_path / "x.zarr", data, (4, 3), compressors=None)
    layout = _raw_read.raw_layout(z)
    real = os.preadv
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, offset: min(real(fd, bufs, offset), 4))
    np.testing.assert_array_equal(_raw_read.read_file_rows(layout, 1, 9), data[1:9])  # 4 at a time
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, offset: 0)
    with pytest.raises(OSError, match="ended after 0 of 36 bytes"):
        _raw_read.read_file_rows(layout, 1, 4)
