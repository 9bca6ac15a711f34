"""The numeric range dshift supports, and why.

Every kernel compares squared distances with the squared bandwidth, in float64, and every
mean is a weighted sum of offsets divided by a sum of weights. For the answer to be right
these must stay finite (no overflow to inf, whose differences and ratios are NaN) and normal
(no underflow to 0 or to subnormals, which lose precision): a bandwidth of 1e-300 has the
square 1e-600, which is 0 in float64, and a bandwidth of 1e155 the square 1e310, which
overflows. Inside the bounds below:

- coordinates ``|x| <= MAX_ABS = 1e150``: a difference is at most 2e150, its square 4e300,
  and a squared distance over d features at most ``d * 4e300``, finite up to 4e7 features;
- bandwidths (given, estimated or per point) in ``[MIN_BANDWIDTH, MAX_BANDWIDTH] =
  [1e-150, 1e150]``: the squared bandwidth lies in [1e-300, 1e300], finite and normal
  (float64's smallest normal number is 2.2e-308), and so does its inverse;
- the total sample weight ``W`` in ``[MIN_TOTAL_WEIGHT, MAX_TOTAL_WEIGHT] = [1e-150,
  1e150]``: a weighted sum of offsets is at most ``W * 2e150 <= 2e300``, and the weights of
  the points within a bandwidth of 1e-150 times their offsets stay above 1e-300 (a total of
  0 is refused on its own).

Out-of-range data are counted where NaN and inf are counted, in the first pass over the data:
``abs(v) <= MAX_ABS`` is false for NaN and inf too, so one comparison covers the three. Mean
shift is equivariant under scaling: fitting ``X * s`` with ``bandwidth * s`` gives the centers
times s and the same labels, and weights times a constant give the same centers and labels.
Data, bandwidths or weights beyond the range can therefore be rescaled into it.
"""

from __future__ import annotations

import numpy as np

#: Largest absolute value of a coordinate (of X, and of given seeds).
MAX_ABS = 1e150
#: Smallest bandwidth (given, estimated, per point; also ``bin_size``).
MIN_BANDWIDTH = 1e-150
#: Largest bandwidth (given, estimated, per point; also ``bin_size``).
MAX_BANDWIDTH = 1e150
#: Smallest total of the sample weights (other than 0, which is refused on its own).
MIN_TOTAL_WEIGHT = 1e-150
#: Largest total of the sample weights.
MAX_TOTAL_WEIGHT = 1e150

#: The coordinate range, as the messages state it.
X_RANGE = f"|x| <= {MAX_ABS:g}"
#: The bandwidth range, as the messages state it.
BANDWIDTH_RANGE = f"[{MIN_BANDWIDTH:g}, {MAX_BANDWIDTH:g}]"
#: The total weight range, as the messages state it.
WEIGHT_RANGE = f"[{MIN_TOTAL_WEIGHT:g}, {MAX_TOTAL_WEIGHT:g}]"


def count_out_of_range(values: np.ndarray) -> int:
    """Number of NaN, infinite or out-of-range (``|v| > MAX_ABS``) values, in one pass.

    Examples
    --------
    >>> count_out_of_range(np.array([[0.0, np.nan], [np.inf, -1e151], [1e150, -1e150]]))
    3
    >>> count_out_of_range(np.array([np.inf, 3.4e38], dtype=np.float32))
    1
    """
    values = np.asarray(values)
    # a float64 bound: compared with float32 values, a Python float would be cast to float32
    return int(values.size - np.count_nonzero(np.abs(values) <= np.float64(MAX_ABS)))


def bandwidth_in_range(value: float) -> bool:
    """Whether a bandwidth is in ``[MIN_BANDWIDTH, MAX_BANDWIDTH]`` (False for NaN).

    Examples
    --------
    >>> bandwidth_in_range(1e-150), bandwidth_in_range(1e150)
    (True, True)
    >>> bandwidth_in_range(1.1e150), bandwidth_in_range(1e-300), bandwidth_in_range(float("nan"))
    (False, False, False)
    """
    return bool(MIN_BANDWIDTH <= value <= MAX_BANDWIDTH)
