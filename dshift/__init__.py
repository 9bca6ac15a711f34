"""dshift: mean shift clustering for data larger than memory, on a Dask cluster.

The public names are imported on first use (PEP 562): the workers of a cluster import
dshift to run its chunk tasks, and must not pay for scikit-learn and pandas (which the
estimator needs on the client) in their memory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC = {
    "MeanShift": "dshift._estimator",
    "mean_shift": "dshift._estimator",
    "NotFittedError": "sklearn.exceptions",
    "SchedulerLostError": "dshift._cluster",
    "Step": "dshift._iterate",
    "estimate_bandwidth": "dshift._bandwidth",
    "get_bin_seeds": "dshift._seeding",
    "write_result": "dshift._results",
}

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

if TYPE_CHECKING:
    from sklearn.exceptions import NotFittedError

    from dshift._bandwidth import estimate_bandwidth
    from dshift._cluster import SchedulerLostError
    from dshift._estimator import MeanShift, mean_shift
    from dshift._iterate import Step
    from dshift._results import write_result
    from dshift._seeding import get_bin_seeds


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'dshift' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
