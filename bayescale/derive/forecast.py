"""Bands at new covariates, written once for every :class:`~bayescale.fit.Fit`.

* the *credible* band: the uncertainty of the mean law (its draws: for MAP the Laplace band);
* the *predictive* band: plus observation noise, where a new run would land -- for NUTS
  the posterior of ``sigma`` under the fitted likelihood, for MAP and bootstrap fits the
  plug-in Gaussian with the MAP fit's robust residual scale;
* the *calibrated* band: the predictive band widened beyond the fitted runs by a
  :class:`~bayescale.derive.discrepancy.Discrepancy` (the law's own error there, learned from
  backtests in :mod:`bayescale.evaluate.backtest`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale.derive.bands import Band, band
from bayescale.derive.checks import check_fit, check_interval, covariate_values
from bayescale.derive.discrepancy import Discrepancy, distance_beyond
from bayescale.derive.prediction import predict, predict_fit_space
from bayescale.errors import ArgumentError, expect
from bayescale.fit import Fit, float64
from bayescale.fit.map import check_key
from bayescale.fit.model import observe

__all__ = ["Forecast", "forecast", "predictive_draws"]


@dataclasses.dataclass(frozen=True)
class Forecast:
    """Bands at new covariates ``x``; arrays have the broadcast shape of ``x``.

    ``estimate`` is the median of the credible band (for a MAP fit: the MAP
    prediction, also when its band is the Laplace approximation).  ``credible`` is the
    band of the mean law, ``predictive`` adds observation noise (and the ``discrepancy``,
    when given: the calibrated band).
    """

    x: dict[str, np.ndarray]
    estimate: np.ndarray
    credible: Band
    predictive: Band
    method: str
    discrepancy: Discrepancy | None = None
    weights: dict[str, float] | None = None
    """Law forms averaged and their weights (from backtests), when the forecast is a law-form average."""
    band_name: str = "credible"
    """What the draws' band is: ``"Laplace"`` (MAP), ``"bootstrap"``, ``"credible"`` (NUTS), ``"point"``."""

    def describe(self) -> str:
        """What the bands are: plain or calibrated, the discrepancy and the law forms' weights."""
        level = f"{self.credible.interval:.0%}"
        kind = "calibrated predictive" if self.discrepancy is not None else "plain predictive"
        lines = [f"{level} intervals: {kind} (lo, hi) and {self.band_name} (credible_lo, credible_hi)"]
        if self.weights:
            lines.append("law forms averaged, weighted by backtest log score: "
                         + ", ".join(f"{k} {v:.2f}" for k, v in self.weights.items()))
        if self.discrepancy is not None:
            lines.append(self.discrepancy.describe())
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """One row per point: the covariates, ``estimate``, ``lo``/``hi`` (predictive), ``credible_lo``/``_hi``."""
        shape = np.shape(self.estimate)
        return pd.DataFrame({**{k: np.broadcast_to(v, shape).ravel() for k, v in self.x.items()},
                             "estimate": np.ravel(self.estimate), "lo": np.ravel(self.predictive.lo),
                             "hi": np.ravel(self.predictive.hi), "credible_lo": np.ravel(self.credible.lo),
                             "credible_hi": np.ravel(self.credible.hi)})


_MIN_NOISE = 4000


def forecast(fit: Fit, x: Mapping[str, object], *, key: jax.Array, interval: float = 0.9,
             discrepancy: Discrepancy | None = None) -> Forecast:
    """Credible and predictive bands of ``fit`` at covariates ``x``.

    ``discrepancy`` (from :func:`bayescale.evaluate.learn_discrepancy`) widens the
    predictive band beyond the largest fitted run by the law's own expected error there:
    the calibrated band.  Without it the band is the plain (posterior-)predictive one.

    >>> import jax, numpy as np
    >>> from bayescale import laws, from_arrays, fit_map, forecast
    >>> C = np.logspace(18, 22, 9)
    >>> fit = fit_map(laws.power_law, from_arrays(laws.power_law, y=1.7 + 900.0 * C**-0.15, C=C))
    >>> f = forecast(fit, {"C": 1e24}, key=jax.random.key(0))
    >>> bool(f.predictive.lo <= f.estimate <= f.predictive.hi)
    True

    Covariates outside the law's domain (``C <= 0`` where the law takes ``log C``), NaN or inf
    are refused with an :class:`~bayescale.errors.ArgumentError` naming the covariate and the point.
    """
    interval = check_interval(interval, "forecast")
    mean, pred = _draws(fit, x, key, discrepancy, "forecast")
    credible = band(mean, interval)
    return Forecast(x=covariate_values(fit.law, x, "forecast"), estimate=point_forecast(fit, x, credible),
                    band_name=fit.band_name,
                    credible=credible, predictive=band(pred, interval), method=fit.method, discrepancy=discrepancy)


def point_forecast(fit: Fit, x: Mapping[str, object], credible: Band) -> np.ndarray:
    """The point forecast: the MAP prediction for a MAP fit (its Laplace draws are symmetric in the
    unconstrained parameters, not in the prediction: a weakly determined fit's median prediction can sit
    far from the optimum's), else the median of the credible band.
    """
    if "laplace" in fit.band.split("+"):
        return np.broadcast_to(predict(fit.law, fit.point, x), np.shape(credible.median)).copy()
    return credible.median


def _extra(fit: Fit, x: Mapping[str, np.ndarray], leading: tuple[int, ...], shape: tuple[int, ...],
           discrepancy: Discrepancy | None, key: jax.Array):
    """Draws of the law's error beyond the fitted runs, ``leading + shape`` (``None`` without a discrepancy)."""
    if discrepancy is None:
        return None
    if fit.data is None:
        raise ArgumentError("a discrepancy needs the fit's data (how far beyond its runs a point is); "
                            "this fit carries none")
    d = distance_beyond(fit.law, fit.data.x, x, shape)
    return discrepancy.sample(key, d, leading)


@float64
def predictive_draws(fit: Fit, x: Mapping[str, object], *, key: jax.Array,
                     discrepancy: Discrepancy | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draws of the mean law and of a new observation at ``x``, natural units, ``(chain, draw) + shape``.

    The predictive draws repeat the parameter draws so that at least 4,000 samples carry the
    noise (a MAP fit has 1,000 Laplace draws, or one with ``laplace_draws=0``).  ``discrepancy`` as in :func:`forecast`.
    """
    return _draws(fit, x, key, discrepancy, "predictive_draws")


@float64
def _draws(fit: Fit, x: Mapping[str, object], key: jax.Array, discrepancy: Discrepancy | None,
           function: str) -> tuple[np.ndarray, np.ndarray]:
    check_fit(fit, function)
    check_key(key, function)
    expect(discrepancy, (Discrepancy, type(None)), "discrepancy", function)
    x = covariate_values(fit.law, x, function)
    mu = predict_fit_space(fit.law, fit.draws, x)  # (chain, draw) + shape
    reps = -(-_MIN_NOISE // fit.n_draws)
    k_obs, k_extra = jax.random.split(key)
    leading = (mu.shape[0], mu.shape[1] * reps)
    extra = _extra(fit, x, leading, mu.shape[2:], discrepancy, k_extra)
    mean = np.asarray(fit.law.response.from_fit(jnp.asarray(mu)))
    pred = np.asarray(observe(fit.law, fit.likelihood, k_obs, jnp.asarray(np.repeat(mu, reps, axis=1)),
                              jnp.asarray(np.repeat(fit.sigma, reps, axis=1)), extra))
    return mean, pred
