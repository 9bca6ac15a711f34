"""numba's cache is dropped when any module of the kernels package changes."""

from __future__ import annotations

import os
from pathlib import Path

from dshift.kernels import _cache, _plan


def _cached_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".nbi", ".nbc"))


def test_a_cache_made_from_other_sources_is_dropped(tmp_path):
    (tmp_path / "_tiles.tile_loop-1.py311.nbi").write_bytes(b"index")
    (tmp_path / "_tiles.tile_loop-1.py311.1.nbc").write_bytes(b"code")
    (tmp_path / "notes.txt").write_text("kept")
    assert _cache.drop_stale(tmp_path)  # no stamp: made from unknown sources
    assert _cached_files(tmp_path) == []
    assert (tmp_path / "notes.txt").exists()
    assert (tmp_path / _cache.STAMP).read_text() == _cache.source_digest()

    (tmp_path / "_tiles.tile_loop-1.py311.nbi").write_bytes(b"index")
    assert not _cache.drop_stale(tmp_path)  # made from these sources: kept
    assert _cached_files(tmp_path) == ["_tiles.tile_loop-1.py311.nbi"]

    (tmp_path / _cache.STAMP).write_text("0" * 64)  # another version of a module
    assert _cache.drop_stale(tmp_path)
    assert _cached_files(tmp_path) == []


def test_the_digest_covers_every_module_of_the_package(tmp_path, monkeypatch):
    digest = _cache.source_digest()
    assert digest == _cache.source_digest()
    copy = tmp_path / "kernels"
    copy.mkdir()
    for path in Path(_cache.__file__).parent.glob("*.py"):
        (copy / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(_cache, "__file__", str(copy / "_cache.py"))
    assert _cache.source_digest() == digest
    (copy / "_groups.py").write_bytes((copy / "_groups.py").read_bytes() + b"\n# edited\n")
    assert _cache.source_digest() != digest


def test_importing_the_package_stamps_its_cache():
    where = _cache.cache_dir_of(_plan.tile_loop)
    if where is None:  # plain Python functions: nothing is cached
        assert os.environ.get("NUMBA_DISABLE_JIT") == "1"
        return
    assert (Path(where) / _cache.STAMP).read_text() == _cache.source_digest()
