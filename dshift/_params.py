"""MeanShift's parameters: a declarative table of what each accepts, checked by one function.

Each entry of :data:`PARAMETER_CONSTRAINTS` names the kind of value a parameter takes (as
scikit-learn's ``_parameter_constraints``); :func:`validate_params` checks them in the
table's order and raises ``"<name> must be <what>, got <value>."``. Two parameters also have
a range check with a longer message (:data:`RANGE_CHECKS`), run right after their
constraint, so a fit reports the same first error whatever else is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from dshift import _limits, kernels
from dshift._seeding import SEEDINGS, bin_size_range_message

#: ``algorithm`` values: iterate on the points, or on their occupied grid cells.
ALGORITHMS = ("exact", "grid")
#: ``label_method`` values: the nearest center, or the center the point's trajectory reaches.
LABEL_METHODS = ("nearest", "mode")
#: Parameters that decide where or how a fit is computed, not its result.
PLACEMENT_PARAMS = frozenset(
    {"checkpoint", "persist", "row_chunks", "n_jobs", "feature_dim", "progress", "storage_options"}
)


@dataclass(frozen=True)
class Number:
    """A finite number (or integer) bounded below, and maybe above.

    Attributes
    ----------
    text : str
        What the message says the value must be.
    integral : bool
        Integers only (bool excluded); no finiteness test, which would overflow on huge ints.
    low : float
        The lower bound.
    low_inclusive : bool
        ``low`` itself is accepted.
    high : float or None
        The upper bound (inclusive), if any.
    none : bool
        None is accepted.
    bools : bool
        True and False are accepted as the numbers 1 and 0 (not set for integers).
    hint : str
        Appended to the message after the value.

    Examples
    --------
    >>> fraction = Number("a number in (0, 1]", high=1)
    >>> fraction.accepts(0.25), fraction.accepts(0), fraction.accepts(True), fraction.accepts(2)
    (True, False, False, False)
    >>> Number("an integer >= 1", integral=True, low=1, low_inclusive=True).accepts(2.0)
    False
    """

    text: str
    integral: bool = False
    low: float = 0
    low_inclusive: bool = False
    high: float | None = None
    none: bool = False
    bools: bool = False
    hint: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` satisfies the constraint."""
        if value is None:
            return self.none
        if isinstance(value, bool) and not self.bools:
            return False
        if not isinstance(value, Integral if self.integral else Real):
            return False
        if not self.integral and not math.isfinite(value):
            return False
        above = value >= self.low if self.low_inclusive else value > self.low
        return above and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class OneOf:
    """One of a few values (tested with ``in`` on ``values``), listed as ``shown``.

    Examples
    --------
    >>> c = OneOf(("exact", "grid"))
    >>> c.accepts("grid"), c.accepts("fast"), c.text
    (True, False, "one of ['exact', 'grid']")
    """

    values: Collection[Any]
    shown: list[Any] | None = None
    hint: str = ""

    @property
    def text(self) -> str:
        """What the message says the value must be."""
        return f"one of {list(self.values) if self.shown is None else self.shown}"

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is one of the values."""
        return value in self.values


@dataclass(frozen=True)
class Flag:
    """True or False (Python's or numpy's), or the string ``also`` if given.

    Examples
    --------
    >>> Flag("True or False").accepts(np.bool_(True)), Flag("True or False").accepts(1)
    (True, False)
    >>> Flag("'auto', True or False", also="auto").accepts("auto")
    True
    """

    text: str
    also: str | None = None
    hint: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is a boolean or ``also``."""
        if self.also is not None and value == self.also:
            return True
        return isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Jobs:
    """A number of threads as joblib counts them: None, or an integer other than 0
    (-1 is every core, -2 every core but one, ...).

    Examples
    --------
    >>> [Jobs().accepts(v) for v in (None, 2, -1, 0, 1.5, True)]
    [True, True, True, False, False, False]
    """

    text: str = "None or an integer other than 0 (-1: every core)"
    hint: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is None or a non-zero integer."""
        if value is None:
            return True
        return isinstance(value, Integral) and not isinstance(value, bool) and value != 0


@dataclass(frozen=True)
class Options:
    """None, or a dict of keyword options (fsspec's ``storage_options``).

    Examples
    --------
    >>> Options().accepts({"anon": True}), Options().accepts(None), Options().accepts("a=b")
    (True, True, False)
    """

    text: str = "a dict of options for the file system, or None"
    hint: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is None or a mapping."""
        return value is None or isinstance(value, Mapping)


Constraint = Number | OneOf | Flag | Jobs | Options

_POSITIVE_INT_OR_NONE = Number(
    "a positive integer or None", integral=True, low=1, low_inclusive=True, none=True
)

#: What every validated parameter accepts, in the order they are checked.
PARAMETER_CONSTRAINTS: dict[str, Constraint] = {
    "bandwidth": Number(
        "a positive finite number or None",
        none=True,
        hint="; pass e.g. bandwidth=dshift.estimate_bandwidth(X), or None to estimate it",
    ),
    "kernel": OneOf(kernels.KERNELS, shown=sorted(kernels.KERNELS)),
    "label_method": OneOf(LABEL_METHODS),
    "algorithm": OneOf(ALGORITHMS),
    "grid_fraction": Number("a number in (0, 1]", high=1),
    "seeding": OneOf(SEEDINGS),
    "min_bin_freq": Number("an integer >= 1", integral=True, low=1, low_inclusive=True),
    "max_iter": Number("an integer >= 1", integral=True, low=1, low_inclusive=True),
    "adaptive_k": Number(
        "an integer >= 2 or None (the 1st neighbour is the point)",
        integral=True,
        low=2,
        low_inclusive=True,
        none=True,
    ),
    "n_seeds": _POSITIVE_INT_OR_NONE,
    "row_chunks": _POSITIVE_INT_OR_NONE,
    "bin_size": Number("a positive number or None", none=True, bools=True),
    "tol": Number("a non-negative number", low_inclusive=True, bools=True),
    "cluster_all": Flag("True or False"),
    "bin_seeding": Flag("True or False"),
    "persist": Flag("'auto', True or False", also="auto"),
    "progress": Flag("'auto', True or False", also="auto"),
    "n_jobs": Jobs(),
    "storage_options": Options(),
}


def _bandwidth_in_range(bandwidth: float | None) -> None:
    """Refuse a given bandwidth outside dshift's numeric range (see :mod:`dshift._limits`)."""
    if bandwidth is not None and not _limits.bandwidth_in_range(bandwidth):
        raise ValueError(
            f"bandwidth={bandwidth!r} is outside dshift's supported range "
            f"{_limits.BANDWIDTH_RANGE} (see dshift._limits); rescale X and the bandwidth "
            "by the same factor (the centers scale with them), or pass None to estimate it."
        )


def _bin_size_in_range(bin_size: float | None) -> None:
    """Refuse a given bin_size outside dshift's numeric range."""
    if bin_size is not None and not _limits.bandwidth_in_range(bin_size):
        raise ValueError(bin_size_range_message(bin_size))


#: Checks run right after a parameter's constraint passed: its supported numeric range.
RANGE_CHECKS: dict[str, Callable[[Any], None]] = {
    "bandwidth": _bandwidth_in_range,
    "bin_size": _bin_size_in_range,
}


def seeding_of(params: Mapping[str, Any]) -> str:
    """The seeding a fit uses: ``seeding``, or ``"bin"`` for scikit-learn's ``bin_seeding``.

    Raises
    ------
    ValueError
        If ``bin_seeding=True`` contradicts a ``seeding`` other than "auto" or "bin".

    Examples
    --------
    >>> seeding_of({"seeding": "auto", "bin_seeding": True})
    'bin'
    >>> seeding_of({"seeding": "sample", "bin_seeding": False})
    'sample'
    """
    seeding = params["seeding"]
    if not params["bin_seeding"]:
        return seeding
    if seeding not in ("auto", "bin"):
        raise ValueError(
            f"bin_seeding=True asks for bin seeds, but seeding={seeding!r}; pass only one "
            "of them (bin_seeding=True is seeding='bin')."
        )
    return "bin"


def validate_params(params: Mapping[str, Any]) -> None:
    """Check parameters against :data:`PARAMETER_CONSTRAINTS` and :data:`RANGE_CHECKS`.

    Parameters
    ----------
    params : mapping of str to object
        At least every parameter of the table (others are not checked).

    Raises
    ------
    ValueError
        For the first parameter, in the table's order, that does not satisfy its
        constraint or its range check.

    Examples
    --------
    >>> from dshift import MeanShift
    >>> validate_params(MeanShift().get_params())
    >>> validate_params(MeanShift(max_iter=0).get_params())
    Traceback (most recent call last):
    ...
    ValueError: max_iter must be an integer >= 1, got 0.
    >>> validate_params(MeanShift(bin_size=1e-200).get_params())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: bin_size=1e-200 is outside dshift's supported range [1e-150, 1e+150] ...
    """
    for name, constraint in PARAMETER_CONSTRAINTS.items():
        value = params[name]
        if not constraint.accepts(value):
            raise ValueError(f"{name} must be {constraint.text}, got {value!r}{constraint.hint}.")
        if name in RANGE_CHECKS:
            RANGE_CHECKS[name](value)
    seeding_of(params)


def result_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that decide a fit's result (not where or how it is computed).

    Examples
    --------
    >>> sorted(result_params({"bandwidth": 1.0, "persist": True, "checkpoint": None}))
    ['bandwidth']
    """
    return {k: v for k, v in params.items() if k not in PLACEMENT_PARAMS}
