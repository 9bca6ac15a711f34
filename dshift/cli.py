"""The ``dshift`` command line: generate data, fit, predict, plot, and a one-command demo.

**Output.** A command prints its result on stdout and nothing else there: the bandwidth
(``estimate-bandwidth``), the clusters found (``fit``, ``demo``: the 20 largest, then
"... and N more"). How it runs goes to stderr as status lines: the cluster (and the
dashboard's link, when the dashboard works), per-iteration progress, which files were
written. ``--quiet`` silences the status lines; notes (something asked for was skipped)
and errors still print. So ``BW=$(dshift estimate-bandwidth X.zarr)`` captures only the
number and ``dshift fit X.zarr out.zarr > clusters.txt`` only the summary; a command that
only writes files (``make-blobs``, ``predict``, ``plot``) prints nothing on stdout.

**Cluster.** Every command but ``plot`` runs on a Dask cluster: ``--scheduler ADDRESS``
or ``--scheduler-file FILE`` connects to a running one, otherwise an embedded LocalCluster
on 127.0.0.1 is started (``--workers``, ``--threads``, ``--memory-limit``). What can be
checked without a cluster (parameters, the inputs' metadata, the outputs' paths, the
checkpoint's path, the scheduler options) is checked before one starts.

**Errors** print one line on stderr (``Error: ...``, no traceback, also with ``--quiet``)
and exit with status 1 (2 for click's usage errors); an interrupt (Ctrl-C, SIGTERM)
removes what was being written, prints one line and exits with status 130 or 143.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

import click
import numpy as np
import zarr
from distributed import KilledWorker

from dshift import _checkpoint, _limits, _results, _store, datasets
from dshift._bandwidth import estimate_bandwidth
from dshift._cli_cluster import CLUSTER_OPTIONS, cluster_options, dask_client
from dshift._cli_output import fit_with_progress, note, quiet_option, report, status
from dshift._estimator import MeanShift
from dshift._fit import KERNEL_BANDWIDTH_SCALE
from dshift._zarr_input import open_zarr_array


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread runs so that the same cleanup runs as on Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


class _OneLineErrors(click.Group):
    """Turn expected failures (bad input, missing files...) into one-line errors."""

    def invoke(self, ctx: click.Context) -> Any:
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt as exc:
            name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("Ctrl-C", 130)
            click.echo(
                f"Error: interrupted ({name}); nothing was left half-written (an output "
                "appears only when complete). Run the command again to redo it (a fit with "
                "--checkpoint resumes).",
                err=True,
            )
            ctx.exit(code)
        except (
            ValueError,
            TypeError,
            OSError,
            ImportError,
            TimeoutError,
            RuntimeError,  # e.g. data lost with workers again and again
            CancelledError,  # the cluster cancelled the computation
            KilledWorker,  # a task killed its workers (out of memory...)
        ) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise click.ClickException(message) from None
        finally:
            signal.signal(signal.SIGTERM, previous)


#: The quantile MeanShift's own bandwidth estimate uses (``estimate_bandwidth``'s default).
DEFAULT_QUANTILE = inspect.signature(estimate_bandwidth).parameters["quantile"].default


def _can_plot() -> bool:
    """Whether matplotlib (the ``plots`` extra) imports."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        return False
    return True


def _storage_options(
    ctx: click.Context, param: click.Parameter, pairs: tuple[str, ...]
) -> dict[str, Any] | None:
    """``KEY=VALUE`` pairs as fsspec's storage_options; a VALUE that parses as JSON
    (``true``, ``3``, ``{"region_name": "eu-west-1"}``) is taken as that value."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", ctx, param)
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options or None


def storage_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--storage-option KEY=VALUE`` option (repeatable) of commands reading URLs."""
    return click.option(
        "--storage-option",
        "storage_options",
        multiple=True,
        metavar="KEY=VALUE",
        callback=_storage_options,
        help="fsspec option for s3://, gs://... URLs (credentials, endpoint_url...); "
        "repeatable; JSON values are parsed (anon=true).",
        show_default="none",
    )(func)


@click.group(
    cls=_OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(package_name="dshift")
def main() -> None:
    """Mean shift clustering for data larger than memory, on a Dask cluster."""


@main.command("make-blobs")
@click.argument("output")
@click.option("--n-samples", default=1_000_000, type=int)
@click.option("--n-features", default=2, type=int)
@click.option("--centers", default=5, type=int)
@click.option("--cluster-std", default=1.0, type=float)
@click.option("--chunk-rows", default=100_000, type=int)
@click.option("--seed", default=0, type=int)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@quiet_option
@cluster_options
def make_blobs_cmd(
    output, n_samples, n_features, centers, cluster_std, chunk_rows, seed, overwrite, **cluster
):
    """Write Gaussian blobs to the Zarr group OUTPUT (X, y, centers), chunk by chunk.

    \b
    Example:
      dshift make-blobs data/blobs.zarr --n-samples 10000000 --centers 5
    """
    _store.check_writable(output, overwrite=overwrite)
    with dask_client(**cluster):
        path = datasets.make_blobs(
            output,
            n_samples,
            n_features=n_features,
            centers=centers,
            cluster_std=cluster_std,
            chunk_rows=chunk_rows,
            random_state=seed,
            overwrite=overwrite,
        )
    status(f"Wrote {n_samples} points to {path}")


@main.command("fit")
@click.argument("input_path", metavar="INPUT")
@click.argument("output")
@click.option(
    "--bandwidth",
    type=float,
    help="Kernel bandwidth.",
    show_default="estimated on a sample of at most 10,000 points, see --quantile",
)
@click.option(
    "--quantile",
    default=DEFAULT_QUANTILE,
    type=float,
    help="Without --bandwidth: the bandwidth is estimated as the mean distance to the "
    "k-th nearest neighbour, k = quantile x the sample size (as `dshift "
    "estimate-bandwidth`, scaled for the kernel as MeanShift does).",
)
@click.option("--kernel", type=click.Choice(["flat", "gaussian", "epanechnikov"]), default="flat")
@click.option("--seeding", type=click.Choice(["auto", "all", "bin", "sample"]), default="auto")
@click.option("--n-seeds", type=int, help="Seeds drawn with --seeding sample.", show_default="1000")
@click.option("--min-bin-freq", default=1, type=int)
@click.option("--max-iter", default=300, type=int)
@click.option("--tol", default=1e-3, type=float)
@click.option("--orphans/--cluster-all", default=False, help="Label -1 points out of reach.")
@click.option(
    "--seed",
    "random_state",
    type=int,
    help="Random seed for sampling.",
    show_default="none: random seeds, 0 for the bandwidth estimate",
)
@click.option(
    "--algorithm",
    type=click.Choice(["exact", "grid"]),
    default="exact",
    help="grid: iterate on occupied grid cells (fast in low dimensions, approximate).",
)
@click.option(
    "--grid-fraction",
    default=0.25,
    type=float,
    help="Grid cell edge as a fraction of the bandwidth (--algorithm grid).",
)
@click.option(
    "--label-method",
    type=click.Choice(["nearest", "mode"]),
    default="nearest",
    help="mode: label each point by the center its own trajectory reaches.",
)
@click.option(
    "--adaptive-k",
    type=int,
    help="Adaptive bandwidths: each point's is its distance to its k-th nearest neighbour "
    "in a sample (leave out --bandwidth).",
    show_default="none: one bandwidth",
)
@click.option(
    "--point-bandwidth",
    metavar="ZARR",
    help="1-d Zarr array of per-point bandwidths (> 0), one per row of INPUT.",
    show_default="none: one bandwidth",
)
@click.option(
    "--sample-weight",
    metavar="ZARR",
    help="1-d Zarr array of non-negative point weights, one per row of INPUT (a point of "
    "weight w counts as w points).",
    show_default="none: every point weighs 1",
)
@click.option(
    "--checkpoint",
    metavar="FILE",
    help="Save the loop's state to FILE after every iteration; if FILE exists, resume from "
    "it (it must come from the same data and parameters).",
    show_default="none",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@storage_option
@quiet_option
@cluster_options
def fit_cmd(
    input_path, output, overwrite, orphans, sample_weight, point_bandwidth, quantile, **options
):
    """Cluster the Zarr array INPUT; write labels and centers to the Zarr group OUTPUT.

    Prints the clusters found (the 20 largest) on stdout; progress goes to stderr.

    \b
    Example:
      dshift fit data/blobs.zarr/X result.zarr --kernel flat --bandwidth 2 --seeding bin
    """
    cluster = {k: options.pop(k) for k in CLUSTER_OPTIONS}
    model = MeanShift(cluster_all=not orphans, **options)
    model._validate_params()
    estimate = _quantile_given(model, point_bandwidth, quantile)
    checkpoint, so = options["checkpoint"], options["storage_options"]
    inputs = [input_path, sample_weight, point_bandwidth]
    for path in filter(None, inputs):
        open_zarr_array(path, so)  # exists, and is an array
    if checkpoint is not None:
        _checkpoint.check_path(checkpoint)
        inputs += [checkpoint, _checkpoint.steps_dir(checkpoint)]
    _store.check_writable(output, overwrite=overwrite, inputs=inputs, storage_options=so)
    with dask_client(**cluster):
        if estimate:
            model.set_params(bandwidth=_estimated_bandwidth(model, input_path, quantile))
        fit_with_progress(model, input_path, sample_weight, point_bandwidth)
        stored_rows = open_zarr_array(input_path, so).chunks[0]
        status(f"Writing labels and centers to {output} ...")  # labels computed meanwhile
        path = _results.write_result(
            output, model, overwrite=overwrite, chunk_rows=stored_rows, storage_options=so
        )
    status(f"Wrote labels and centers to {path}")
    report(model)


def _quantile_given(model: MeanShift, point_bandwidth: str | None, quantile: float) -> bool:
    """Whether the CLI estimates the bandwidth at ``quantile`` (MeanShift estimates it
    itself at the default quantile); a --quantile given with a bandwidth is refused."""
    if not 0 <= quantile <= 1:
        raise ValueError(f"--quantile must be a number between 0 and 1, got {quantile}.")
    source = click.get_current_context().get_parameter_source("quantile")
    given = source not in (click.core.ParameterSource.DEFAULT, None)
    bandwidths = model.bandwidth is not None or model.adaptive_k or point_bandwidth
    if given and bandwidths:
        raise ValueError(
            "--quantile sets the estimated bandwidth: leave it out with --bandwidth, "
            "--adaptive-k or --point-bandwidth."
        )
    return not bandwidths and quantile != DEFAULT_QUANTILE


def _estimated_bandwidth(model: MeanShift, input_path: str, quantile: float) -> float:
    """The bandwidth MeanShift estimates with ``bandwidth=None`` (same sample, same kernel
    scale), at ``quantile`` instead of the default."""
    seed = 0 if model.random_state is None else model.random_state
    value = float(
        estimate_bandwidth(
            input_path, quantile, random_state=seed, storage_options=model.storage_options
        )
    )
    value *= KERNEL_BANDWIDTH_SCALE[model.kernel]
    if not _limits.bandwidth_in_range(value):
        raise ValueError(
            f"The bandwidth estimated at --quantile {quantile} is {value:g}, outside dshift's "
            f"range {_limits.BANDWIDTH_RANGE} (0: the sampled points' neighbours are "
            "duplicates); pass --bandwidth, a larger --quantile, or rescale INPUT."
        )
    status(f"Bandwidth {value:.6g} (estimated at quantile {quantile})")
    return value


@main.command("predict")
@click.argument("result")
@click.argument("input_path", metavar="INPUT")
@click.argument("output")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@storage_option
@quiet_option
@cluster_options
def predict_cmd(result, input_path, output, overwrite, storage_options, **cluster):
    """Label the Zarr array INPUT with the centers of the fit RESULT; write Zarr group OUTPUT.

    Each point gets the index of its nearest center (as MeanShift.predict). OUTPUT's
    attributes record RESULT and INPUT (absolute) and the number of rows.

    \b
    Example:
      dshift predict result.zarr data/new.zarr/X new-labels.zarr
    """
    so = storage_options
    _store.check_writable(
        output, overwrite=overwrite, inputs=[result, input_path], storage_options=so
    )
    model = _results.read_model(result, storage_options=so)
    model.set_params(storage_options=so)
    stored_rows = open_zarr_array(input_path, so).chunks[0]
    with dask_client(**cluster):
        labels = model.predict(input_path)
        path = _results.write_labels(
            output,
            labels,
            centers_from=result,
            input_path=input_path,
            n_clusters=len(model.cluster_centers_),
            overwrite=overwrite,
            chunk_rows=stored_rows,
            storage_options=so,
        )
    status(f"Wrote {labels.shape[0]} labels to {path}")


@main.command("estimate-bandwidth")
@click.argument("input_path", metavar="INPUT")
@click.option("--quantile", default=DEFAULT_QUANTILE, type=float)
@click.option("--n-samples", type=int, help="Sample size.", show_default="all up to 10,000")
@click.option("--seed", default=0, type=int)
@storage_option
@quiet_option
@cluster_options
def estimate_bandwidth_cmd(input_path, quantile, n_samples, seed, storage_options, **cluster):
    """Print a bandwidth for the Zarr array INPUT, estimated on a random sample.

    The number is the only thing printed on stdout: BW=$(dshift estimate-bandwidth ...).

    \b
    Example:
      dshift estimate-bandwidth data/blobs.zarr/X --quantile 0.2
    """
    open_zarr_array(input_path, storage_options)  # exists, is an array: before any cluster
    with dask_client(**cluster):
        value = estimate_bandwidth(
            input_path, quantile, n_samples, random_state=seed, storage_options=storage_options
        )
    click.echo(f"{value:.6g}")


@main.command("plot")
@click.argument("result")
@click.argument("input_path", metavar="INPUT")
@click.argument("png")
@click.option("--n-points", default=20_000, type=int, help="Points sampled from INPUT.")
@click.option("--overwrite", is_flag=True, help="Replace PNG if it exists.")
@quiet_option
def plot_cmd(result, input_path, png, n_points, overwrite):
    """Save a PNG of a sample of INPUT coloured by the centers of RESULT.

    Needs matplotlib: pip install 'dshift[plots]'.

    \b
    Example:
      dshift plot result.zarr data/blobs.zarr/X clusters.png
    """
    from dshift.plotting import plot_fit

    _store.check_writable(png, overwrite=overwrite, inputs=[result, input_path])
    model = _results.read_model(result)
    status(f"Plot: {os.path.abspath(plot_fit(input_path, model, png, n_points=n_points))}")


@main.command("demo")
@click.option("--n-samples", default=1_000_000, type=int)
@click.option("--output", default="demo-output", help="Directory.")
@click.option(
    "--plot/--no-plot", default=True, help="Write a PNG (skipped, with a note, without matplotlib)."
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier demo's output.")
@quiet_option
@cluster_options
def demo_cmd(n_samples, output, plot, overwrite, **cluster):
    """Generate blobs into local Zarr, cluster them, write the result and a plot.

    \b
    Example:
      dshift demo --n-samples 200000 --output /tmp/demo --overwrite
    """
    data = os.path.join(output, "blobs.zarr")
    result = os.path.join(output, "result.zarr")
    png = os.path.join(output, "clusters.png")
    if n_samples < 1:
        raise ValueError(f"--n-samples must be a positive integer, got {n_samples}.")
    for path in (data, result):
        _store.check_writable(path, overwrite=overwrite)
    os.makedirs(output, exist_ok=True)
    with dask_client(**cluster):
        start = time.perf_counter()
        X = datasets.make_blobs(
            data, n_samples, centers=5, random_state=0, chunk_rows=250_000, overwrite=overwrite
        )
        status(f"Generated {n_samples} points in {X} ({time.perf_counter() - start:.1f}s)")
        model = MeanShift(kernel="flat", bandwidth=2.0, seeding="bin", min_bin_freq=10)
        fit_with_progress(model, X)
        _results.write_result(result, model, overwrite=overwrite, chunk_rows=250_000)
        status(f"Result (labels, centers, attributes): {os.path.abspath(result)}")
        if plot and _can_plot():
            from dshift.plotting import plot_fit

            plot_fit(X, model, png)
            status(f"Plot: {os.path.abspath(png)}")
        elif plot:
            note("no plot: matplotlib is not installed (pip install 'dshift[plots]').")
    report(model)
    true_centers = zarr.open_array(os.path.join(data, "centers"), mode="r")[:]
    gaps = np.linalg.norm(true_centers[:, None] - model.cluster_centers_[None], axis=2)
    click.echo(
        f"Each of the {len(true_centers)} generating centers is within "
        f"{gaps.min(axis=1).max():.3f} of a found center."
    )


if __name__ == "__main__":  # pragma: no cover
    main()
