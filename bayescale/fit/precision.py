"""float64 at the entry points, and nowhere else.

Scaling-law covariates span 1e7 to 1e24: every public entry point of bayescale runs
under :func:`float64`, so results are float64 whatever the global JAX setting, and no
global setting is changed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax

__all__ = ["float64"]


def float64[**P, R](fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with JAX's 64-bit mode on (restored afterwards)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper
