"""How a fit packs each point's data into one array: its features, then its weight, then its
own bandwidth (each optional). Every module that reads the packed array asks this object
where a column is, so the rule lives in one place."""

from __future__ import annotations

from typing import NamedTuple


class Columns(NamedTuple):
    """The packed columns of the array a fit iterates on.

    Attributes
    ----------
    n_features : int
        The point's coordinates are columns ``0 .. n_features - 1``.
    weighted : bool
        A column of point weights follows the features.
    adaptive : bool
        A last column holds each point's own bandwidth.

    Examples
    --------
    >>> c = Columns(3, weighted=True, adaptive=True)
    >>> c.weight, c.bandwidth, c.width, c.seeding
    (3, 4, 5, slice(None, 4, None))
    >>> Columns(2).weight, Columns(2).bandwidth
    (-1, -1)
    """

    n_features: int
    weighted: bool = False
    adaptive: bool = False

    @property
    def weight(self) -> int:
        """Index of the weight column, -1 without weights."""
        return self.n_features if self.weighted else -1

    @property
    def bandwidth(self) -> int:
        """Index of the per-point bandwidth column, -1 without adaptive bandwidths."""
        return self.n_features + int(self.weighted) if self.adaptive else -1

    @property
    def width(self) -> int:
        """Number of columns in all."""
        return self.n_features + int(self.weighted) + int(self.adaptive)

    @property
    def seeding(self) -> slice:
        """The columns seeding reads: the points and their weights."""
        return slice(None, self.n_features + int(self.weighted))
