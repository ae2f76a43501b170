"""Argument checks shared by the functions of a fit's draws: one line naming the argument and the fix.

Every public function of :mod:`bayescale.derive` (and of the rooms below it) checks its
arguments here first: a :class:`~bayescale.fit.Fit` where a fit is expected, covariate values
inside the law's domain (:meth:`~bayescale.laws.Covariate.admissible`), finite numbers, an
``interval`` in (0, 1).  A value outside a law's domain is refused rather than turned into NaN.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from bayescale.errors import ArgumentError, ArgumentTypeError
from bayescale.fit import Fit
from bayescale.laws import Covariate, Law
from bayescale.tables.frame import suggest

__all__ = ["check_fit", "check_interval", "check_law", "check_number", "check_params", "covariate_values",
           "numbers_of", "positive_values"]

_SHOWN = 3


def check_fit(fit, function: str, argument: str = "fit") -> Fit:
    """``fit`` if it is a :class:`~bayescale.fit.Fit`, else an error saying how to get one."""
    if isinstance(fit, Fit):
        return fit
    raise ArgumentTypeError(f"{function}: {argument} must be a Fit (from fit_map, fit_bootstrap, fit_nuts or "
                            f"load), got {type(fit).__name__}")


def check_law(law, function: str, argument: str = "law") -> Law:
    """``law`` if it is a :class:`~bayescale.laws.Law`, else an error."""
    if isinstance(law, Law):
        return law
    raise ArgumentTypeError(f"{function}: {argument} must be a Law (bayescale.laws.chinchilla, get_law('...') or "
                            f"your own Law(...)), got {type(law).__name__}")


def check_number(value, argument: str, function: str, *, positive: bool = False, optional: bool = False):
    """``value`` as a finite ``float`` (``> 0`` when ``positive``; ``None`` passes when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{function}: {argument} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not np.isfinite(v) or (positive and v <= 0):
        raise ArgumentError(f"{function}: {argument} must be a {'positive ' if positive else ''}finite number, "
                            f"got {v:g}")
    return v


def check_interval(interval, function: str, argument: str = "interval") -> float:
    """``interval`` as a ``float`` strictly between 0 and 1 (a band's central probability)."""
    v = check_number(interval, argument, function)
    if not 0.0 < v < 1.0:
        raise ArgumentError(f"{function}: {argument} must lie strictly between 0 and 1 (0.9 for a 90 % band), "
                            f"got {v:g}")
    return v


def numbers_of(value, argument: str, function: str) -> np.ndarray:
    """``value`` (a number, list, array, Series) as a float array, else an error naming ``argument``."""
    if isinstance(value, (str, bytes)):
        raise ArgumentTypeError(f"{function}: {argument} must be numbers, got the text {value!r}")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ArgumentTypeError(f"{function}: {argument} must be numbers ({e})") from None
    if raw.dtype.kind not in "iuf":
        what = "true/false values" if raw.dtype.kind == "b" else f"{raw.dtype} values"
        raise ArgumentTypeError(f"{function}: {argument} must be numbers, got {what} ({type(value).__name__})")
    return raw.astype(float)


def _where(values: np.ndarray, bad: np.ndarray) -> str:
    """``-1e+21 at point 3`` / ``-1, 0 at points 0, 1`` / ``... (5 of 9 points)`` for a message."""
    flat, where = values.reshape(-1), np.flatnonzero(bad.reshape(-1))
    shown = ", ".join(f"{flat[i]:g}" for i in where[:_SHOWN])
    at = ", ".join(str(i) for i in where[:_SHOWN])
    more = f" ({len(where)} of {flat.size} points)" if len(where) > _SHOWN else ""
    return f"got {shown} at point{'s' if len(where) > 1 else ''} {at}{more}"


def _finite(values: np.ndarray, argument: str, function: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise ArgumentError(f"{function}: {argument} must be finite (no NaN or inf); {_where(values, bad)}")


def positive_values(value, argument: str, function: str) -> np.ndarray:
    """``value`` as a float array of positive finite numbers (compute budgets), else an error."""
    v = numbers_of(value, argument, function)
    _finite(v, argument, function)
    if np.any(v <= 0):
        raise ArgumentError(f"{function}: {argument} must be positive (> 0); {_where(v, v <= 0)}")
    return v


def _in_domain(cov: Covariate, values: np.ndarray, function: str) -> None:
    _finite(values, cov.name, function)
    bad = ~cov.admissible(values)
    if bad.any():
        raise ArgumentError(f"{function}: {cov.name} must be {cov.domain()}; {_where(values, bad)}")


def covariate_values(law: Law, x, function: str, argument: str = "x") -> dict[str, np.ndarray]:
    """The law's covariates from ``x`` as float arrays, each inside its domain, their shapes broadcasting.

    ``x`` maps names to numbers or array-likes; a missing name is refused with the closest
    names given (``Did you mean 'C'?``), a value outside the domain with the point it sits at.
    """
    if not isinstance(x, Mapping):
        raise ArgumentTypeError(f"{function}: {argument} must map covariate names to values, e.g. "
                                f"{{{law.covariate_names[0]!r}: [1e22]}}, got {type(x).__name__}")
    out = {}
    for cov in law.covariates:
        if cov.name not in x:
            raise ArgumentError(f"{function}: {argument} has no covariate {cov.name!r}; law {law.name!r} reads "
                                f"{', '.join(law.covariate_names)}.{suggest(cov.name, [str(k) for k in x])}")
        values = numbers_of(x[cov.name], f"{argument}[{cov.name!r}]", function)
        _in_domain(cov, values, function)
        out[cov.name] = values
    try:
        np.broadcast_shapes(*(v.shape for v in out.values()))
    except ValueError:
        shapes = ", ".join(f"{k} {v.shape}" for k, v in out.items())
        raise ArgumentError(f"{function}: the covariates in {argument} have shapes that do not broadcast "
                            f"({shapes}); give arrays of one length or scalars") from None
    return out


def check_params(law: Law, params, function: str, argument: str = "params") -> Mapping:
    """``params`` if it maps every parameter of ``law`` to numbers (scalars or draws), else an error."""
    if not isinstance(params, Mapping):
        raise ArgumentTypeError(f"{function}: {argument} must map parameter names to values (a fit's draws or "
                                f"point), got {type(params).__name__}")
    for name in law.params:
        if name not in params:
            raise ArgumentError(f"{function}: {argument} has no parameter {name!r}; law {law.name!r} has "
                                f"{', '.join(law.params)}.{suggest(name, [str(k) for k in params])}")
        numbers_of(params[name], f"{argument}[{name!r}]", function)
    try:
        np.broadcast_shapes(*(np.shape(params[n]) for n in law.params))
    except ValueError:
        shapes = ", ".join(f"{n} {np.shape(params[n])}" for n in law.params)
        raise ArgumentError(f"{function}: the parameters in {argument} have shapes that do not broadcast "
                            f"({shapes}); give draws of one shape") from None
    return params
