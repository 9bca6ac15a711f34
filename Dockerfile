# One image for the scheduler, the workers and the notebook: the same Python and the same
# pinned dask/distributed/numpy/zarr everywhere (a mismatch breaks distributed's pickling).
FROM python:3.11-slim

# NUMBA_CACHE_DIR: a writable place for the compiled kernels (site-packages is root's);
# the image ships them compiled (below) for the build machine's CPU model.
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    DSHIFT_DATA=/data

WORKDIR /opt/dshift
COPY docker/constraints.txt docker/constraints.txt
COPY pyproject.toml README.md LICENSE ./
COPY dshift ./dshift
# dshift with the plots extra (matplotlib) and the EXTRAS, by default the dashboard
# (bokeh: the scheduler's dashboard on 8787), and JupyterLab for the notebook service. pip
# merges the extras of ".[plots]" and "dshift[...]" into one install of this directory.
# For object stores: docker build --build-arg EXTRAS=dashboard,s3 (or dashboard,gcs) .
ARG EXTRAS=dashboard
RUN pip install -c docker/constraints.txt ".[plots]" jupyterlab ipykernel "dshift[${EXTRAS}]"

# dask-kubernetes' operator and dask-gateway start the commands `dask-scheduler` and
# `dask-worker`, which distributed 2026.8 no longer installs: shims for `dask scheduler`
# and `dask worker`.
RUN printf '#!/bin/sh\nexec dask scheduler "$@"\n' > /usr/local/bin/dask-scheduler \
    && printf '#!/bin/sh\nexec dask worker "$@"\n' > /usr/local/bin/dask-worker \
    && chmod 755 /usr/local/bin/dask-scheduler /usr/local/bin/dask-worker

# Every service runs as an unprivileged user with a numeric id (Kubernetes' runAsNonRoot
# can check it); it owns /data (a new named volume takes this owner) and the numba cache.
RUN useradd --create-home --uid 1000 --user-group dshift \
    && mkdir -p /data /tmp/numba-cache \
    && chown dshift:dshift /data /tmp/numba-cache
COPY --chown=dshift:dshift examples ./examples
USER 1000:1000
# A warm numba cache: the flat and Gaussian kernels for float64 and float32 points,
# compiled here for this CPU model and loaded in ~2 s by every container on it. A worker
# on another CPU model finds no code for its CPU and compiles once, as without this step.
RUN python -c "import numpy as np, dshift; X = np.random.default_rng(0).normal(size=(4000, 3)); \
    [dshift.MeanShift(bandwidth=1.0, kernel=k).fit(X.astype(t)) \
     for k in ('flat', 'gaussian') for t in ('float64', 'float32')]"

EXPOSE 8786 8787 8888
CMD ["dask", "scheduler"]
