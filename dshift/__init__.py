"""dshift: mean shift clustering for data larger than memory, on a Dask cluster."""

from sklearn.exceptions import NotFittedError

from dshift._bandwidth import estimate_bandwidth
from dshift._cluster import SchedulerLostError
from dshift._estimator import MeanShift, mean_shift
from dshift._iterate import Step
from dshift._results import write_result
from dshift._seeding import get_bin_seeds

__version__ = "0.1.0"

__all__ = [
    "MeanShift",
    "NotFittedError",
    "SchedulerLostError",
    "Step",
    "__version__",
    "estimate_bandwidth",
    "get_bin_seeds",
    "mean_shift",
    "write_result",
]
