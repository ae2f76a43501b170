"""Quantile bands over draws laid out ``(chain, draw, ...)``: bootstrap and NUTS alike."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bayescale.errors import ArgumentError, ArgumentTypeError

__all__ = ["Band", "band"]


@dataclasses.dataclass(frozen=True)
class Band:
    """Central ``interval`` band: ``lo``, ``median``, ``hi`` with the trailing shape of the values."""

    lo: np.ndarray
    median: np.ndarray
    hi: np.ndarray
    interval: float

    def to_frame(self):
        """One row per element (flattened): ``median``, ``lo``, ``hi``."""
        return pd.DataFrame({"median": np.ravel(self.median), "lo": np.ravel(self.lo), "hi": np.ravel(self.hi)})


def band(values, interval: float = 0.9) -> Band:
    """Equal-tailed band over the two leading (chain, draw) axes.

    >>> import numpy as np
    >>> b = band(np.arange(101.0).reshape(1, 101), 0.9)
    >>> round(float(b.lo), 9), round(float(b.median), 9), round(float(b.hi), 9)
    (5.0, 50.0, 95.0)
    """
    if isinstance(interval, bool) or not isinstance(interval, (int, float, np.number)):
        raise ArgumentTypeError(f"band: interval must be a number in (0, 1), got {type(interval).__name__}")
    if not 0.0 < interval < 1.0:
        raise ArgumentError(f"band: interval must lie strictly between 0 and 1 (0.9 for a 90 % band), got {interval}")
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise ArgumentTypeError(f"band: values must be an array of numbers ({e})") from None
    if v.ndim < 2:
        raise ArgumentError(f"band: values must be laid out (chain, draw, ...), got shape {v.shape}")
    flat = v.reshape((-1,) + v.shape[2:])
    if flat.shape[0] == 0:
        raise ArgumentError("band: no draws to form a band from (did every resample fail?)")
    tail = (1.0 - interval) / 2.0
    lo, med, hi = np.quantile(flat, [tail, 0.5, 1.0 - tail], axis=0)
    return Band(lo=lo, median=med, hi=hi, interval=interval)
