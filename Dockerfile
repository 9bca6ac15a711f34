# One image for the scheduler, the workers and the notebook: the same Python and the same
# pinned dask/distributed/numpy/zarr everywhere (a mismatch breaks distributed's pickling).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    DSHIFT_DATA=/data

WORKDIR /opt/dshift
COPY docker/constraints.txt docker/constraints.txt
COPY pyproject.toml README.md ./
COPY dshift ./dshift
RUN pip install -c docker/constraints.txt ".[plots]" jupyterlab ipykernel \
    && mkdir -p /data /tmp/numba-cache
COPY examples ./examples

EXPOSE 8786 8787 8888
CMD ["dask", "scheduler"]
