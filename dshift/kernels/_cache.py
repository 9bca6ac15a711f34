"""numba's on-disk cache, keyed on the whole package's source.

numba invalidates a function's cached machine code when that function's own file changes,
not when a function it calls (or inlines) from another module does. The kernels call and
inline one another across modules, so an edit to one module, or an upgrade that changes it,
could leave another module's cached code stale: old arithmetic, silently. At import the
package therefore compares a digest of all its sources with the one stored beside the
cache, and drops the cache when they differ (numba then compiles afresh and caches again).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

STAMP = "dshift-kernels-source.sha256"


def source_digest() -> str:
    """SHA-256 of every module of the package, in name order."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def drop_stale(cache_dir: str | os.PathLike) -> bool:
    """Remove numba's cache files in ``cache_dir`` unless they were made from these sources;
    returns whether any were removed. A directory that cannot be written is left alone
    (numba does not cache there either)."""
    folder = Path(cache_dir)
    stamp = folder / STAMP
    want = source_digest()
    try:
        if stamp.read_text() == want:
            return False
    except OSError:
        pass
    removed = False
    try:
        for cached in list(folder.glob("*.nbi")) + list(folder.glob("*.nbc")):
            cached.unlink(missing_ok=True)
            removed = True
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{STAMP}.{os.getpid()}"
        temporary.write_text(want)
        temporary.replace(stamp)
    except OSError:
        return removed
    return removed


def cache_dir_of(dispatcher) -> str | None:
    """Where numba caches a compiled function of this package (None without a cache)."""
    cache = getattr(dispatcher, "_cache", None)
    return getattr(cache, "_cache_path", None)


def ready(dispatcher: Any) -> bool:
    """Whether calling a compiled kernel needs no compiling in this process: it has been
    compiled or loaded here already, or numba's cache holds code for it that was made on
    this machine (its CPU) from these sources, for some argument types.

    A plain function (``NUMBA_DISABLE_JIT=1``) is always ready. The look into the cache's
    index uses numba's internals; should they change, a missing index file still says
    that the kernel is not ready.
    """
    if not hasattr(dispatcher, "signatures"):
        return True
    if dispatcher.signatures:
        return True
    cache = getattr(dispatcher, "_cache", None)
    index_file = getattr(cache, "_cache_file", None)
    if index_file is None:  # numba has nowhere to cache it: every process compiles it
        return False
    try:
        # {(signature, CPU, hashes of the function's code): data file}; empty when the
        # index is missing or was made from other sources
        index = index_file._load_index()
        codegen = dispatcher.targetctx.codegen()
        _, cpu, code = cache._index_key((), codegen)
        return any(key[1:] == (cpu, code) for key in index)
    except Exception:  # numba's internals changed: whether the index exists tells enough
        return Path(getattr(index_file, "_index_path", "")).is_file()


def needs_compiling() -> bool:
    """Whether a fit in this process would compile its main kernel (the tile loop, which
    every fit on points runs: ~15 s of compiling on a first run) rather than load it."""
    from dshift.kernels._tiles import tile_loop

    return not ready(tile_loop)
