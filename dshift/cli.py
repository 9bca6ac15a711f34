"""The ``dshift`` command line: generate data, fit, and a one-command demo.

Every command runs on a Dask cluster: ``--scheduler ADDRESS`` connects to a running one,
otherwise an embedded LocalCluster on 127.0.0.1 is started (``--workers``, ``--threads``,
``--memory-limit``). What can be checked without a cluster (parameters, the inputs'
metadata, the outputs' paths, the checkpoint's path) is checked before one starts. Errors
print one line and exit with status 1; an interrupt (Ctrl-C, SIGTERM) removes what was
being written, prints one line and exits with status 130 or 143.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import CancelledError
from typing import Any

import click
import numpy as np
import zarr
from distributed import KilledWorker

from dshift import _checkpoint, _results, _store, datasets
from dshift._cli_cluster import CLUSTER_OPTIONS, cluster_options, dask_client
from dshift._estimator import MeanShift
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


def fit_with_progress(
    model: MeanShift, X: Any, sample_weight: Any = None, point_bandwidth: Any = None
) -> MeanShift:
    """Fit, printing one line per iteration: active centers, max shift, elapsed time."""
    told = False

    def tell_resumed() -> None:
        nonlocal told
        if not told and getattr(model, "resumed_from_", None) is not None:
            click.echo(
                f"Resumed from checkpoint {model.checkpoint} at iteration {model.resumed_from_}"
            )
        told = True

    for step in model.iter_fit(X, sample_weight=sample_weight, point_bandwidth=point_bandwidth):
        tell_resumed()
        click.echo(
            f"  iteration {step.iteration:4d}  active {step.n_active:6d}/{len(step.active):<6d}"
            f" computed {step.n_computed:6d}  max shift {step.max_shift:10.4g}"
            f"  {step.elapsed:7.1f}s"
        )
    tell_resumed()
    return model


def _report(model: MeanShift) -> None:
    click.echo(
        f"{len(model.cluster_centers_)} clusters after {model.n_iter_} iterations "
        f"(bandwidth {model.bandwidth_:.4g}, {model.seeding_} seeding, "
        f"{len(model.seeds_)} seeds):"
    )
    for k, (center, size) in enumerate(zip(model.cluster_centers_, model.cluster_sizes_)):
        coords = ", ".join(f"{v:8.3f}" for v in center[:6])
        more = ", ..." if len(center) > 6 else ""
        size = f"{size:>10d}" if isinstance(size, (int, np.integer)) else f"{size:>10.6g}"
        click.echo(f"  cluster {k:3d}: size {size}  center [{coords}{more}]")


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dshift")
def main() -> None:
    """Mean shift clustering for data larger than memory, on a Dask cluster."""


@main.command("make-blobs")
@click.argument("output")
@click.option("--n-samples", default=1_000_000, show_default=True, type=int)
@click.option("--n-features", default=2, show_default=True, type=int)
@click.option("--centers", default=5, show_default=True, type=int)
@click.option("--cluster-std", default=1.0, show_default=True, type=float)
@click.option("--chunk-rows", default=100_000, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
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
    click.echo(f"Wrote {n_samples} points to {path}")


@main.command("fit")
@click.argument("input_path", metavar="INPUT")
@click.argument("output")
@click.option("--bandwidth", type=float, help="Kernel bandwidth; default: estimated.")
@click.option(
    "--kernel",
    type=click.Choice(["flat", "gaussian", "epanechnikov"]),
    default="gaussian",
    show_default=True,
)
@click.option(
    "--seeding",
    type=click.Choice(["auto", "all", "bin", "sample"]),
    default="auto",
    show_default=True,
)
@click.option("--n-seeds", type=int, help="Seeds drawn with --seeding sample.")
@click.option("--min-bin-freq", default=1, show_default=True, type=int)
@click.option("--max-iter", default=300, show_default=True, type=int)
@click.option("--tol", default=1e-3, show_default=True, type=float)
@click.option("--orphans/--cluster-all", default=False, help="Label -1 points out of reach.")
@click.option("--seed", "random_state", type=int, help="Random seed for sampling.")
@click.option(
    "--algorithm",
    type=click.Choice(["exact", "grid"]),
    default="exact",
    show_default=True,
    help="grid: iterate on occupied grid cells (fast in low dimensions, approximate).",
)
@click.option(
    "--grid-fraction",
    default=0.25,
    show_default=True,
    type=float,
    help="Grid cell edge as a fraction of the bandwidth (--algorithm grid).",
)
@click.option(
    "--label-method",
    type=click.Choice(["nearest", "mode"]),
    default="nearest",
    show_default=True,
    help="mode: label each point by the center its own trajectory reaches.",
)
@click.option(
    "--adaptive-k",
    type=int,
    help="Adaptive bandwidths: each point's is its distance to its k-th nearest neighbour "
    "in a sample (leave out --bandwidth).",
)
@click.option(
    "--point-bandwidth",
    metavar="ZARR",
    help="1-d Zarr array of per-point bandwidths (> 0), one per row of INPUT.",
)
@click.option(
    "--sample-weight",
    metavar="ZARR",
    help="1-d Zarr array of non-negative point weights, one per row of INPUT (a point of "
    "weight w counts as w points).",
)
@click.option(
    "--checkpoint",
    metavar="FILE",
    help="Save the loop's state to FILE after every iteration; if FILE exists, resume from "
    "it (it must come from the same data and parameters).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@cluster_options
def fit_cmd(input_path, output, overwrite, orphans, sample_weight, point_bandwidth, **options):
    """Cluster the Zarr array INPUT; write labels and centers to the Zarr group OUTPUT.

    \b
    Example:
      dshift fit data/blobs.zarr/X result.zarr --kernel flat --bandwidth 2 --seeding bin
    """
    cluster = {k: options.pop(k) for k in CLUSTER_OPTIONS}
    model = MeanShift(cluster_all=not orphans, **options)
    model._validate_params()
    checkpoint = options["checkpoint"]
    inputs = [input_path, sample_weight, point_bandwidth]
    for path in filter(None, inputs):
        open_zarr_array(path)  # exists, and is an array
    if checkpoint is not None:
        _checkpoint.check_path(checkpoint)
        inputs += [checkpoint, _checkpoint.steps_dir(checkpoint)]
    _store.check_writable(output, overwrite=overwrite, inputs=inputs)
    with dask_client(**cluster):
        fit_with_progress(model, input_path, sample_weight, point_bandwidth)
        _report(model)
        stored_rows = open_zarr_array(input_path).chunks[0]
        path = _results.write_result(output, model, overwrite=overwrite, chunk_rows=stored_rows)
    click.echo(f"Wrote labels and centers to {path}")


@main.command("predict")
@click.argument("result")
@click.argument("input_path", metavar="INPUT")
@click.argument("output")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@cluster_options
def predict_cmd(result, input_path, output, overwrite, **cluster):
    """Label the Zarr array INPUT with the centers of the fit RESULT; write Zarr group OUTPUT.

    Each point gets the index of its nearest center (as MeanShift.predict).

    \b
    Example:
      dshift predict result.zarr data/new.zarr/X new-labels.zarr
    """
    _store.check_writable(output, overwrite=overwrite, inputs=[result, input_path])
    model = _results.read_model(result)
    stored_rows = open_zarr_array(input_path).chunks[0]
    with dask_client(**cluster):
        labels = model.predict(input_path)
        with _store.atomic_group(output, overwrite=overwrite) as group:
            n_clusters = len(model.cluster_centers_)
            group.attrs.update({"centers_from": str(result), "n_clusters": n_clusters})
            _store.store_rows(group, "labels", labels, stored_rows)
    click.echo(f"Wrote {labels.shape[0]} labels to {output}")


@main.command("estimate-bandwidth")
@click.argument("input_path", metavar="INPUT")
@click.option("--quantile", default=0.3, show_default=True, type=float)
@click.option("--n-samples", type=int, help="Sample size (default: all up to 10,000).")
@click.option("--seed", default=0, show_default=True, type=int)
@cluster_options
def estimate_bandwidth_cmd(input_path, quantile, n_samples, seed, **cluster):
    """Print a bandwidth for the Zarr array INPUT, estimated on a random sample.

    \b
    Example:
      dshift estimate-bandwidth data/blobs.zarr/X --quantile 0.2
    """
    from dshift._bandwidth import estimate_bandwidth

    open_zarr_array(input_path)  # exists, and is an array: before any cluster starts
    with dask_client(**cluster):
        value = estimate_bandwidth(input_path, quantile, n_samples, random_state=seed)
    click.echo(f"{value:.6g}")


@main.command("plot")
@click.argument("result")
@click.argument("input_path", metavar="INPUT")
@click.argument("png")
@click.option("--n-points", default=20_000, show_default=True, type=int)
@click.option("--overwrite", is_flag=True, help="Replace PNG if it exists.")
def plot_cmd(result, input_path, png, n_points, overwrite):
    """Save a PNG of a sample of INPUT coloured by the centers of RESULT.

    \b
    Example:
      dshift plot result.zarr data/blobs.zarr/X clusters.png
    """
    from dshift.plotting import plot_fit

    _store.check_writable(png, overwrite=overwrite, inputs=[result, input_path])
    click.echo(f"Plot: {plot_fit(input_path, _results.read_model(result), png, n_points=n_points)}")


@main.command("demo")
@click.option("--n-samples", default=1_000_000, show_default=True, type=int)
@click.option("--output", default="demo-output", show_default=True, help="Directory.")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write a PNG.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier demo's output.")
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
        click.echo(f"Generated {n_samples} points in {X} ({time.perf_counter() - start:.1f}s)")
        model = MeanShift(kernel="flat", bandwidth=2.0, seeding="bin", min_bin_freq=10)
        fit_with_progress(model, X)
        _report(model)
        true_centers = zarr.open_array(os.path.join(data, "centers"), mode="r")[:]
        gaps = np.linalg.norm(true_centers[:, None] - model.cluster_centers_[None], axis=2)
        click.echo(
            f"Each of the {len(true_centers)} generating centers is within "
            f"{gaps.min(axis=1).max():.3f} of a found center."
        )
        _results.write_result(result, model, overwrite=overwrite, chunk_rows=250_000)
        click.echo(f"Result (labels, centers, attributes): {os.path.abspath(result)}")
        if plot:
            from dshift.plotting import plot_fit

            plot_fit(X, model, png)
            click.echo(f"Plot: {os.path.abspath(png)}")


if __name__ == "__main__":  # pragma: no cover
    main()
