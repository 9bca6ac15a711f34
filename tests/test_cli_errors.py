"""Every bad input the command line can express gets one clear line, and nothing is lost.

Each case runs one ``dshift`` command on a bad input and checks that the command exits
with a non-zero status, prints exactly one error line (``Error: ...``, the last line on
stderr, after the status lines of what had started; click's usage block for a bad
choice), nothing on stdout (no result), no traceback, a message naming the problem and,
where there is one, the remedy, and that nothing was written: the working directory
(outputs, and outputs that already existed) and the inputs are unchanged, byte for byte.
Some cases run again with ``--quiet``: the error line is then all there is.

Most cases run in this process with click's CliRunner, connected with ``--scheduler`` to
the session's LocalCluster (conftest.py), so no cluster is started per case. The cases
where the real process matters (an embedded LocalCluster whose workers share the
terminal, a scheduler that cannot be reached) run the installed entry point.

Not expressible on the command line, and tested through the API in tests/test_errors.py:
object arrays (Zarr 3 cannot store them), dask arrays with unknown chunk sizes (a Zarr
array always knows its chunks), explicit seeds (the CLI has no seeds option) and predict
on an unfitted estimator (here: a RESULT that is not a dshift result).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from dshift import MeanShift, datasets, write_result
from dshift.cli import main

N_ROWS = 600  # rows of every 2-d input; stored in chunks of CHUNK_ROWS
CHUNK_ROWS = 200
UNREACHABLE = "tcp://127.0.0.1:9"  # the discard port: nothing listens there
EMBEDDED = ("--workers", "1", "--threads", "1", "--memory-limit", "1GiB")


@dataclass(frozen=True)
class Case:
    """A command line and the phrases its one error line must contain.

    In ``argv`` and ``phrases``, ``{data}`` is the directory of the prepared inputs and
    ``{work}`` the test's own directory (outputs go there); the word ``CLUSTER`` becomes
    ``--scheduler ADDRESS`` of the shared cluster (with ``process``: ``--scheduler
    scheduler``, or by default the options of a small embedded LocalCluster).
    """

    argv: tuple[str, ...]
    phrases: tuple[str, ...]
    exit_code: int = 1
    process: bool = False  # run the installed entry point in a new process
    scheduler: str | None = None  # with process: connect here instead of a LocalCluster
    max_seconds: float = 120.0  # a hang guard: the process is killed after this + 30 s
    early: bool = False  # refused before any cluster is started or connected to


def fit(data: str, *options: str, out: str = "{work}/out.zarr") -> tuple[str, ...]:
    return ("fit", data, out, *options, "CLUSTER")


NO_NUMBERS = "dshift needs real numbers"
ASTYPE = "X.astype('float64')"
NOT_A_RESULT = ("is not a dshift result", "create one with `dshift fit`")
EXISTS = ("--overwrite", "choose another output path")

CASES: dict[str, Case] = {
    # -- the values of X: counted inside the first pass over the data ------------------
    "fit-nan": Case(
        fit("{data}/nan.zarr", "--bandwidth", "2"),
        ("X contains 3 NaN or infinite value(s)", "remove or impute them"),
    ),
    "fit-inf": Case(
        fit("{data}/inf.zarr", "--bandwidth", "2", "--seeding", "bin"),
        ("X contains 2 NaN or infinite value(s)", "remove or impute them"),
    ),
    "fit-nan-estimated-bandwidth": Case(
        fit("{data}/nan.zarr"),
        ("NaN or infinite values (3 in a sample of 600 rows)", "remove or impute them"),
    ),
    "fit-nan-embedded-cluster": Case(
        fit("{data}/nan.zarr", "--bandwidth", "2"),
        ("X contains 3 NaN or infinite value(s)", "remove or impute them"),
        process=True,
    ),
    # -- shape and dtype of X: from the metadata -------------------------------------------
    "fit-missing-path-early": Case(
        fit("{data}/nope.zarr", "--bandwidth", "2"),
        ("No Zarr array at '{data}/nope.zarr'", "does not exist"),
        process=True,
        early=True,
    ),
    "fit-empty-rows": Case(
        fit("{data}/empty-rows.zarr", "--bandwidth", "2"),
        ("Found array with 0 sample(s) (shape=(0, 2))", "X is empty"),
    ),
    "fit-empty-columns": Case(
        fit("{data}/empty-columns.zarr", "--bandwidth", "2"),
        ("Found array with 0 feature(s) (shape=(5, 0))", "X is empty"),
    ),
    "fit-1d": Case(
        fit("{data}/1d.zarr", "--bandwidth", "2"),
        ("X must be 2-d", "got 1-d with shape (600,)", "X.reshape(-1, 1)"),
    ),
    "fit-3d": Case(
        fit("{data}/3d.zarr", "--bandwidth", "2"),
        (
            "X must be 2-d",
            "got 3-d with shape (300, 2, 2)",
            "Reshape your data to (n_samples, n_features)",
        ),
    ),
    "fit-complex": Case(
        fit("{data}/complex.zarr", "--bandwidth", "2"),
        ("Complex data not supported", "dtype complex128", "stack X.real and X.imag"),
    ),
    "fit-string": Case(
        fit("{data}/string.zarr", "--bandwidth", "2"),
        ("has dtype", NO_NUMBERS, ASTYPE),
    ),
    "fit-bytes": Case(
        fit("{data}/bytes.zarr", "--bandwidth", "2"),
        ("dtype |S4 (bytes)", NO_NUMBERS, ASTYPE),
    ),
    # -- paths -----------------------------------------------------------------------------
    "fit-missing-path": Case(
        fit("{data}/nope.zarr", "--bandwidth", "2"),
        ("No Zarr array at '{data}/nope.zarr'", "does not exist", "Check the path"),
    ),
    "fit-group-not-array": Case(
        fit("{data}/blobs.zarr", "--bandwidth", "2"),
        ("'{data}/blobs.zarr' is a Zarr group, not an array", "pass e.g. {data}/blobs.zarr/X"),
    ),
    "fit-empty-group": Case(
        fit("{data}/empty-group.zarr", "--bandwidth", "2"),
        ("'{data}/empty-group.zarr' is a Zarr group, not an array",),
    ),
    "fit-corrupt-chunk": Case(
        fit("{data}/corrupt.zarr", "--bandwidth", "2"),
        ("corrupt", "'{data}/corrupt.zarr'"),
    ),
    "fit-corrupt-chunk-embedded-cluster": Case(
        fit("{data}/corrupt.zarr", "--bandwidth", "2"),
        ("corrupt", "'{data}/corrupt.zarr'"),
        process=True,
    ),
    "fit-existing-output": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", out="{work}/existing.zarr"),
        ("Output '{work}/existing.zarr' already exists", *EXISTS),
    ),
    # -- outputs that are, hold or lie inside an input; odd output paths --------------------
    "fit-output-is-the-input": Case(
        fit("{data}/blobs.zarr/X", "--overwrite", out="{data}/blobs.zarr/X"),
        ("Output '{data}/blobs.zarr/X' is the input '{data}/blobs.zarr/X'", "never writes over"),
        early=True,
    ),
    "fit-output-holds-the-input": Case(
        fit("{data}/blobs.zarr/X", "--overwrite", out="{data}/blobs.zarr"),
        ("Output '{data}/blobs.zarr' holds the input '{data}/blobs.zarr/X'",),
        early=True,
    ),
    "fit-output-inside-the-input": Case(
        fit("{data}/blobs.zarr/X", out="{data}/blobs.zarr/X/result.zarr"),
        ("'{data}/blobs.zarr/X/result.zarr' lies inside the input '{data}/blobs.zarr/X'",),
        early=True,
    ),
    "fit-output-is-the-sample-weight": Case(
        fit("{data}/blobs.zarr/X", "--sample-weight", "{data}/w.zarr", out="{data}/w.zarr"),
        ("Output '{data}/w.zarr' is the input '{data}/w.zarr'",),
        early=True,
    ),
    "fit-output-is-the-point-bandwidth": Case(
        fit("{data}/blobs.zarr/X", "--point-bandwidth", "{data}/w.zarr", out="{data}/w.zarr/o"),
        ("Output '{data}/w.zarr/o' lies inside the input '{data}/w.zarr'",),
        early=True,
    ),
    "fit-output-is-the-checkpoint": Case(
        fit("{data}/blobs.zarr/X", "--checkpoint", "{work}/fit.ckpt", out="{work}/fit.ckpt"),
        ("Output '{work}/fit.ckpt' is the input '{work}/fit.ckpt'",),
        early=True,
    ),
    "fit-output-is-a-dangling-symlink": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", out="{work}/dangling.zarr"),
        ("Output '{work}/dangling.zarr' is a symbolic link", "does not write through links"),
        early=True,
    ),
    "fit-checkpoint-is-a-fifo": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", "--checkpoint", "{work}/fifo.ckpt"),
        ("checkpoint '{work}/fifo.ckpt' is a FIFO (named pipe), not a regular file",),
        early=True,
    ),
    "fit-checkpoint-steps-is-a-file": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", "--checkpoint", "{work}/s.ckpt"),
        ("'{work}/s.ckpt.steps' is a regular file, not a directory",),
        early=True,
    ),
    "fit-missing-chunk": Case(
        fit("{data}/missing-chunk.zarr", "--bandwidth", "2"),
        ("'{data}/missing-chunk.zarr' has no stored data for rows 200:400", "Rewrite"),
    ),
    "predict-output-is-the-input": Case(
        (
            "predict",
            "{data}/model.zarr",
            "{data}/blobs.zarr/X",
            "{data}/blobs.zarr",
            "--overwrite",
            "CLUSTER",
        ),
        ("Output '{data}/blobs.zarr' holds the input '{data}/blobs.zarr/X'",),
        early=True,
    ),
    "predict-output-is-the-result": Case(
        (
            "predict",
            "{data}/model.zarr",
            "{data}/blobs.zarr/X",
            "{data}/model.zarr",
            "--overwrite",
            "CLUSTER",
        ),
        ("Output '{data}/model.zarr' is the input '{data}/model.zarr'",),
        early=True,
    ),
    "plot-png-inside-the-input": Case(
        ("plot", "{data}/model.zarr", "{data}/blobs.zarr/X", "{data}/blobs.zarr/X/p.png"),
        ("lies inside the input '{data}/blobs.zarr/X'",),
        early=True,
    ),
    "fit-quantile-out-of-range": Case(
        fit("{data}/blobs.zarr/X", "--quantile", "1.5"),
        ("--quantile must be a number between 0 and 1, got 1.5",),
        early=True,
    ),
    "fit-quantile-with-bandwidth": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", "--quantile", "0.2"),
        ("--quantile sets the estimated bandwidth: leave it out with --bandwidth",),
        early=True,
    ),
    # -- the cluster options -----------------------------------------------------------------
    "fit-scheduler-and-scheduler-file": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", "--scheduler-file", "{work}/s.json"),
        ("--scheduler and --scheduler-file are alternatives: pass one of them",),
        early=True,
    ),
    "fit-scheduler-file-is-a-fifo": Case(
        ("fit", "{data}/blobs.zarr/X", "{work}/out.zarr", "--scheduler-file", "{work}/fifo.ckpt"),
        ("--scheduler-file {work}/fifo.ckpt is not a scheduler file", "a regular file"),
        early=True,
    ),
    "fit-scheduler-file-in-a-missing-directory": Case(
        ("fit", "{data}/blobs.zarr/X", "{work}/out.zarr", "--scheduler-file", "{work}/no/s.json"),
        ("--scheduler-file {work}/no/s.json: the directory {work}/no does not exist",),
        early=True,
    ),
    # -- parameters ------------------------------------------------------------------------
    **{
        f"fit-bandwidth-{value}": Case(
            fit("{data}/blobs.zarr/X", "--bandwidth", value),
            (f"bandwidth must be a positive finite number or None, got {shown}", "estimate"),
        )
        for value, shown in [("0", "0.0"), ("-1", "-1.0"), ("nan", "nan"), ("inf", "inf")]
    },
    "fit-unknown-kernel": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", "--kernel", "cosine"),
        ("Invalid value for '--kernel'", "'cosine'", "'flat', 'gaussian', 'epanechnikov'"),
        exit_code=2,
    ),
    "fit-unknown-seeding": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", "--seeding", "grid"),
        ("Invalid value for '--seeding'", "'grid'", "'auto', 'all', 'bin', 'sample'"),
        exit_code=2,
    ),
    "fit-max-iter-0": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", "--max-iter", "0"),
        ("max_iter must be an integer >= 1, got 0",),
    ),
    "fit-min-bin-freq-0": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", "--min-bin-freq", "0"),
        ("min_bin_freq must be an integer >= 1, got 0",),
    ),
    "fit-n-seeds-0": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", "--seeding", "sample", "--n-seeds", "0"),
        ("n_seeds must be a positive integer or None, got 0",),
    ),
    "fit-negative-tol": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2", "--tol", "-1"),
        ("tol must be a non-negative number",),
    ),
    "fit-seeding-all-too-many-points": Case(
        fit("{data}/large.zarr", "--bandwidth", "2", "--seeding", "all"),
        ("limited to 20000 points", "X has 20001", "seeding='bin'"),
    ),
    "fit-min-bin-freq-too-large": Case(
        fit(
            "{data}/blobs.zarr/X", "--bandwidth", "1", "--seeding", "bin", "--min-bin-freq", "1000"
        ),
        ("No grid cell of bin_size=1 holds min_bin_freq=1000 points", "lower min_bin_freq"),
    ),
    "fit-unreachable-scheduler": Case(
        fit("{data}/blobs.zarr/X", "--bandwidth", "2"),
        (f"Could not reach the Dask scheduler at {UNREACHABLE} within 10 s", "check the address"),
        process=True,
        scheduler=UNREACHABLE,
        max_seconds=25.0,  # the 10 s connection timeout, and start-up on a loaded machine
    ),
    # -- predict -----------------------------------------------------------------------------
    "predict-wrong-number-of-features": Case(
        ("predict", "{data}/model.zarr", "{data}/blobs3.zarr/X", "{work}/out.zarr", "CLUSTER"),
        ("X has 3 features, but MeanShift is expecting 2 features", "same columns as in fit"),
    ),
    "predict-result-does-not-exist": Case(
        ("predict", "{data}/nope.zarr", "{data}/blobs.zarr/X", "{work}/out.zarr", "CLUSTER"),
        ("'{data}/nope.zarr'", *NOT_A_RESULT),
    ),
    "predict-result-is-an-empty-group": Case(
        ("predict", "{data}/empty-group.zarr", "{data}/blobs.zarr/X", "{work}/out.zarr", "CLUSTER"),
        ("'{data}/empty-group.zarr'", *NOT_A_RESULT),
    ),
    # the make-blobs group has a 'centers' array, but is not a fit's result
    "predict-result-is-the-data-group": Case(
        ("predict", "{data}/blobs.zarr", "{data}/blobs.zarr/X", "{work}/out.zarr", "CLUSTER"),
        ("'{data}/blobs.zarr'", *NOT_A_RESULT),
    ),
    "predict-result-is-an-array": Case(
        ("predict", "{data}/blobs.zarr/X", "{data}/blobs.zarr/X", "{work}/out.zarr", "CLUSTER"),
        ("'{data}/blobs.zarr/X'", *NOT_A_RESULT),
    ),
    "predict-nan": Case(
        ("predict", "{data}/model.zarr", "{data}/nan.zarr", "{work}/out.zarr", "CLUSTER"),
        ("X contains NaN or infinite values", "remove or impute them"),
    ),
    "predict-nan-embedded-cluster": Case(
        ("predict", "{data}/model.zarr", "{data}/nan.zarr", "{work}/out.zarr", "CLUSTER"),
        ("X contains NaN or infinite values", "remove or impute them"),
        process=True,
    ),
    "predict-missing-input": Case(
        ("predict", "{data}/model.zarr", "{data}/nope.zarr", "{work}/out.zarr", "CLUSTER"),
        ("No Zarr array at '{data}/nope.zarr'", "does not exist"),
    ),
    "predict-existing-output": Case(
        ("predict", "{data}/model.zarr", "{data}/blobs.zarr/X", "{work}/existing.zarr", "CLUSTER"),
        ("Output '{work}/existing.zarr' already exists", *EXISTS),
    ),
    # -- estimate-bandwidth --------------------------------------------------------------
    "estimate-bandwidth-nan": Case(
        ("estimate-bandwidth", "{data}/nan.zarr", "CLUSTER"),
        ("NaN or infinite values (3 in a sample of 600 rows)", "remove or impute them"),
    ),
    "estimate-bandwidth-quantile-1.5": Case(
        ("estimate-bandwidth", "{data}/blobs.zarr/X", "--quantile", "1.5", "CLUSTER"),
        ("quantile must be a number between 0 and 1, got 1.5",),
    ),
    "estimate-bandwidth-n-samples-0": Case(
        ("estimate-bandwidth", "{data}/blobs.zarr/X", "--n-samples", "0", "CLUSTER"),
        ("n_samples must be a positive integer or None, got 0",),
    ),
    "estimate-bandwidth-group-not-array": Case(
        ("estimate-bandwidth", "{data}/blobs.zarr", "CLUSTER"),
        ("is a Zarr group, not an array", "pass e.g. {data}/blobs.zarr/X"),
    ),
    "estimate-bandwidth-1d": Case(
        ("estimate-bandwidth", "{data}/1d.zarr", "CLUSTER"),
        ("got 1-d with shape (600,)", "X.reshape(-1, 1)"),
    ),
    # -- plot (no cluster) ---------------------------------------------------------------
    "plot-result-does-not-exist": Case(
        ("plot", "{data}/nope.zarr", "{data}/blobs.zarr/X", "{work}/out.png"),
        ("'{data}/nope.zarr'", *NOT_A_RESULT),
    ),
    "plot-wrong-number-of-features": Case(
        ("plot", "{data}/model.zarr", "{data}/blobs3.zarr/X", "{work}/out.png"),
        ("X has 3 features, but MeanShift is expecting 2 features",),
    ),
    "plot-nan": Case(
        ("plot", "{data}/model.zarr", "{data}/nan.zarr", "{work}/out.png"),
        ("NaN or infinite values", "remove or impute them"),
    ),
    "plot-existing-png": Case(
        ("plot", "{data}/model.zarr", "{data}/blobs.zarr/X", "{work}/existing.png"),
        ("'{work}/existing.png' already exists", "--overwrite"),
    ),
    # -- make-blobs and demo ---------------------------------------------------------------
    "make-blobs-n-samples-0": Case(
        ("make-blobs", "{work}/out.zarr", "--n-samples", "0", "CLUSTER"),
        ("n_samples must be a positive integer, got 0",),
    ),
    "make-blobs-existing-output": Case(
        ("make-blobs", "{work}/existing.zarr", "--n-samples", "100", "CLUSTER"),
        ("Output '{work}/existing.zarr' already exists", *EXISTS),
    ),
    "demo-n-samples-0": Case(
        ("demo", "--n-samples", "0", "--output", "{work}/demo", "--no-plot", "CLUSTER"),
        ("--n-samples must be a positive integer, got 0",),
    ),
}


# ---------------------------------------------------------------------------------------
# The bad inputs, made once
# ---------------------------------------------------------------------------------------


def _array(path: Path, data: np.ndarray, chunks: tuple[int, ...]) -> None:
    arr = zarr.create_array(str(path), shape=data.shape, chunks=chunks, dtype=data.dtype)
    if data.size:
        arr[...] = data


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    datasets.make_blobs(root / "blobs.zarr", N_ROWS, centers=3, chunk_rows=CHUNK_ROWS)
    datasets.make_blobs(root / "blobs3.zarr", N_ROWS, n_features=3, chunk_rows=CHUNK_ROWS)
    X = zarr.open_array(str(root / "blobs.zarr" / "X"), mode="r")[:].astype(np.float64)

    nan = X.copy()
    nan[5, 0] = nan[250, 1] = nan[599, 0] = np.nan  # 3 values, in 3 chunks
    _array(root / "nan.zarr", nan, (CHUNK_ROWS, 2))
    inf = X.copy()
    inf[10, 1], inf[450, 0] = np.inf, -np.inf
    _array(root / "inf.zarr", inf, (CHUNK_ROWS, 2))

    _array(root / "empty-rows.zarr", np.empty((0, 2)), (CHUNK_ROWS, 2))
    _array(root / "empty-columns.zarr", np.empty((5, 0)), (5, 1))
    _array(root / "1d.zarr", X[:, 0].copy(), (CHUNK_ROWS,))
    _array(root / "3d.zarr", X.reshape(300, 2, 2), (100, 2, 2))
    _array(root / "complex.zarr", (X + 1j).astype(np.complex128), (CHUNK_ROWS, 2))
    _array(root / "string.zarr", X.astype(str).astype(np.dtypes.StringDType()), (CHUNK_ROWS, 2))
    with warnings.catch_warnings():  # fixed-length bytes have no Zarr 3 specification yet
        warnings.simplefilter("ignore")
        _array(root / "bytes.zarr", np.full((N_ROWS, 2), b"1.5", dtype="S4"), (CHUNK_ROWS, 2))
    zarr.create_group(str(root / "empty-group.zarr"))
    # 20,001 rows: only the shape matters (the chunks are stored: a missing one is an error)
    _array(root / "large.zarr", np.ones((20_001, 2)), (5000, 2))

    # a compressed array (zarr's default compressor) with one chunk overwritten by garbage
    _array(root / "corrupt.zarr", X, (CHUNK_ROWS, 2))
    chunk = root / "corrupt.zarr" / "c" / "1" / "0"
    assert chunk.is_file() and zarr.open_array(str(root / "corrupt.zarr")).compressors
    chunk.write_bytes(b"this is not a zstd frame" * 8)

    # a chunk file deleted: Zarr would read it as zeros
    _array(root / "missing-chunk.zarr", X, (CHUNK_ROWS, 2))
    (root / "missing-chunk.zarr" / "c" / "1" / "0").unlink()
    _array(root / "w.zarr", np.ones(N_ROWS), (CHUNK_ROWS,))

    model = MeanShift(bandwidth=2.0, kernel="flat").fit(X)
    write_result(root / "model.zarr", model)
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under root, with a hash of each file's bytes."""
    return {
        str(p.relative_to(root)): (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
        )
        for p in sorted(root.rglob("*"))
    }


def _expand(text: str, **paths: Path) -> str:
    return text.format(**{k: str(v) for k, v in paths.items()})


def _run_process(argv: list[str], cwd: Path, max_seconds: float) -> tuple[int, str, str]:
    exe = os.path.join(os.path.dirname(sys.executable), "dshift")
    proc = subprocess.run(
        [exe, *argv],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        timeout=max_seconds + 30,  # a hang fails the test instead of blocking the suite
        env={k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"},
    )
    return proc.returncode, proc.stdout, proc.stderr


def _run_in_process(argv: list[str]) -> tuple[int, str, str]:
    result = CliRunner(env={"DASK_SCHEDULER_ADDRESS": None}).invoke(main, argv, prog_name="dshift")
    # an exception that escaped click would be a traceback for a user
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


# ---------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------


#: Cases run again with --quiet (errors before and after a cluster started, in this process
#: and in a new one, of each command).
QUIET_CASES = [
    "fit-nan",
    "fit-nan-embedded-cluster",
    "fit-missing-path-early",
    "fit-scheduler-and-scheduler-file",
    "predict-nan",
    "estimate-bandwidth-nan",
    "plot-nan",
    "make-blobs-existing-output",
    "demo-n-samples-0",
]
#: The status lines a command may print on stderr before it fails.
STATUS = ("LocalCluster: ", "Connected to ", "  iteration ", "Bandwidth ", "Generated ", "Writing ")


@pytest.mark.parametrize(
    ("name", "quiet"), [(name, False) for name in CASES] + [(name, True) for name in QUIET_CASES]
)
def test_bad_input_gives_one_clear_line_and_writes_nothing(name, quiet, data, tmp_path, request):
    case = CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(data / "model.zarr", work / "existing.zarr")  # outputs that exist
    (work / "existing.png").write_bytes(b"\x89PNG\r\n\x1a\n an earlier plot")
    (work / "dangling.zarr").symlink_to(work / "nowhere")
    os.mkfifo(work / "fifo.ckpt")  # opening it to read would wait for a writer forever
    (work / "s.ckpt.steps").write_text("not the checkpoint's records")
    if case.process:
        cluster = ["--scheduler", case.scheduler] if case.scheduler else list(EMBEDDED)
    else:
        cluster = ["--scheduler", request.getfixturevalue("cluster").scheduler_address]
    argv = []
    for arg in case.argv:
        argv.extend(cluster if arg == "CLUSTER" else [_expand(arg, data=data, work=work)])
    argv += ["--quiet"] if quiet else []
    phrases = [_expand(p, data=data, work=work) for p in case.phrases]
    before_work, before_data = _snapshot(work), _snapshot(data)

    if case.process:
        code, stdout, stderr = _run_process(argv, tmp_path, case.max_seconds)
    else:
        code, stdout, stderr = _run_in_process(argv)

    shown = f"$ dshift {' '.join(argv)}\n--- stdout\n{stdout}--- stderr\n{stderr}"
    assert code == case.exit_code, shown
    assert "Traceback" not in stdout + stderr, shown
    lines = stderr.strip().splitlines()
    if case.exit_code == 2:  # click's usage error: Usage, Try, blank line, Error
        assert lines[0].startswith(f"Usage: dshift {argv[0]} "), shown
        assert len(lines) == 4 and lines[-1].startswith("Error: "), shown
    else:
        assert lines[-1].startswith("Error: "), shown
        assert all(line.startswith(STATUS) for line in lines[:-1]), shown
    for phrase in phrases:
        assert phrase in lines[-1], f"{phrase!r} missing\n{shown}"
    assert stdout == "" and "Wrote" not in stderr, shown
    if case.early or quiet:  # refused before any cluster was started or connected to
        assert len(lines) == 1 or case.exit_code == 2, shown

    # nothing written, nothing lost: outputs absent, existing outputs and inputs unchanged
    assert not (work / "out.zarr").exists() and not (work / "out.png").exists()
    assert _snapshot(work) == before_work, shown
    assert _snapshot(data) == before_data, shown


def test_the_cases_cover_the_issue():
    """At least 15 cases, and every command that reads user input has some."""
    assert len(CASES) >= 15
    commands = {case.argv[0] for case in CASES.values()}
    assert commands == {"fit", "predict", "estimate-bandwidth", "plot", "make-blobs", "demo"}


def test_an_output_under_a_read_only_directory_is_refused_before_any_cluster(data, tmp_path):
    """Non-regression: a read-only output directory was reported only after the whole fit."""
    readonly = tmp_path / "ro"
    readonly.mkdir()
    exe = os.path.join(os.path.dirname(sys.executable), "dshift")
    argv = [exe, "fit", str(data / "blobs.zarr" / "X"), str(readonly / "out.zarr")]
    argv += ["--bandwidth", "2", *EMBEDDED]
    if os.geteuid() == 0:  # root writes through permissions: mount a read-only file system
        mount = 'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"'
        argv = ["unshare", "--mount", "sh", "-c", mount, str(readonly), *argv]
    else:
        readonly.chmod(0o555)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=150, cwd=tmp_path)
    shown = f"{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 1, shown
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be written" in lines[0] and "read-only" in lines[0], shown
    assert "LocalCluster" not in proc.stdout, shown
