"""What a fitter sees: validated float64 arrays (numpy only).

:func:`bayescale.from_frame` builds a :class:`Data` from a table; everything past it
works on this value and never sees pandas.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from bayescale.errors import DataError

__all__ = ["Data", "DataError"]



@dataclasses.dataclass(frozen=True)
class Data:
    """Validated observations for one law.

    Attributes
    ----------
    x:
        Covariate arrays keyed by the law's covariate names (float64, shape ``(n,)``).
    y:
        The response in natural units (loss, accuracy), shape ``(n,)``.
    rows:
        The row labels of the source table that were kept, for messages and plots.
    columns:
        Source column for each covariate name, and ``"y"`` for the response.
    dropped:
        ``(row label, reason)`` for rows that were removed (e.g. accuracy at or
        below chance, which the chance-normalised space cannot represent).
    """

    x: Mapping[str, np.ndarray]
    y: np.ndarray
    rows: np.ndarray
    columns: Mapping[str, str]
    dropped: tuple[tuple[object, str], ...] = ()

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        return f"Data({self.n} rows: {', '.join(self.x)} -> {self.columns.get('y', 'y')})"

    def select(self, keep) -> Data:
        """The rows where the boolean mask ``keep`` (shape ``(n,)``) is true."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != self.y.shape:
            raise ValueError(f"mask has shape {keep.shape}, data has {self.n} rows")
        return dataclasses.replace(
            self, x={k: v[keep] for k, v in self.x.items()}, y=self.y[keep], rows=self.rows[keep]
        )

    def mask(self, condition: Callable[[Mapping[str, np.ndarray]], object] | np.ndarray) -> np.ndarray:
        """Boolean mask of the rows meeting ``condition``: a callable of the covariate dict or a mask.

        (An expression such as ``"C > 6e21"`` is read by :func:`bayescale.tables.condition`.)
        """
        out = np.asarray(condition(self.x) if callable(condition) else condition, dtype=bool)
        if out.shape != self.y.shape:
            raise DataError("the condition did not give one true/false per row")
        return out

    def rows_in(self, labels) -> np.ndarray:
        """Mask of the rows whose source label is in ``labels``."""
        wanted = set(np.asarray(labels).tolist())
        return np.array([r in wanted for r in self.rows.tolist()], dtype=bool)
