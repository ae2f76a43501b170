"""The calibrated forecast: the default of ``bs.forecast`` and of ``bayescale forecast``.

:func:`calibrate` learns how wrong the law is beyond the fitted runs from the fit's own
runs (rolling-origin backtests along the direction users extrapolate, a grid posterior under
the default prior of the law's response); :func:`forecast` widens the predictive band by it.
When the runs cannot be backtested (too few, a two-stage law, a fit without data) the
discrepancy is the default prior alone, and its description says so: never a silent zero.

A law that declares ``alternatives`` (``direct`` and ``direct_ceiling``) is averaged with
them: each form is fitted the same way, backtested and widened by its own discrepancy, and
the forecast is the mixture of their draws with pseudo-BMA weights
``∝ exp(n · mean backtest log density)`` over the ``n`` later runs of the backtests.  When some
form cannot be backtested (too few runs) the user's law alone is used.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np

from bayescale.derive import Discrepancy, DiscrepancyPrior, Forecast, band, predictive_draws
from bayescale.derive import forecast as plain_forecast
from bayescale.derive.checks import check_fit, check_interval, covariate_values
from bayescale.derive.forecast import point_forecast
from bayescale.errors import ArgumentTypeError, expect
from bayescale.evaluate.backtest import Backtest, backtest, backtest_score
from bayescale.evaluate.discrepancy import learn_discrepancies, learn_discrepancy, prior_discrepancy
from bayescale.fit import DataError, Fit
from bayescale.fit.map import check_key

__all__ = ["calibrate", "forecast", "forecast_groups"]


def _backtest_of(fit: Fit) -> Backtest | str:
    """The backtest of ``fit``'s law on its runs, or why there is none."""
    if fit.data is None:
        return "the fit carries no data to backtest"
    if fit.parts:
        return "two-stage laws are not backtested"
    try:
        return backtest(fit.law, fit.data)
    except DataError as exc:
        return f"too few runs to backtest: {exc}"


def _learned(fit: Fit, prior: DiscrepancyPrior | None) -> tuple[Discrepancy, Backtest | None]:
    bt = _backtest_of(fit)
    if isinstance(bt, str):
        return prior_discrepancy(fit.law, prior, why=bt), None
    return learn_discrepancy(bt, prior=prior), bt


def calibrate(fit: Fit, *, prior: DiscrepancyPrior | None = None) -> Discrepancy:
    """The law discrepancy of ``fit``, learned from backtests of its law on its own runs.

    ``prior``: default the law's response's (:data:`bayescale.derive.DEFAULT_PRIORS`).  A
    two-stage fit, a fit without data or runs too few to backtest get the prior alone.
    """
    check_fit(fit, "calibrate")
    expect(prior, (DiscrepancyPrior, type(None)), "prior", "calibrate")
    return _learned(fit, prior)[0]


def _alternatives(fit: Fit, key: jax.Array) -> list[Fit]:
    """``fit``'s law's alternative forms fitted the same way to the same runs (those that converge)."""
    if fit.fitter is None or fit.data is None or fit.parts:
        return []
    out = []
    for i, law in enumerate(fit.law.alternatives):
        if not set(law.covariate_names) <= set(fit.data.x):
            continue
        try:
            alt = fit.fitter(law, fit.data, key=jax.random.fold_in(key, i), warn=False)
        except DataError:
            continue
        if alt.ok:
            out.append(alt)
    return out


_MIXTURE_DRAWS = 8000


def _weights(scored: list[tuple[Fit, Discrepancy, Backtest | None]]) -> np.ndarray:
    """Pseudo-BMA weights of the forms from their backtests (all on the first, the user's law, when some
    form could not be backtested: averaging needs the backtests' evidence).
    """
    if any(bt is None for _, _, bt in scored):
        return np.eye(len(scored))[0]
    total = np.array([max(d.n_runs, 1) * backtest_score(bt, d) for _, d, bt in scored])
    total = np.where(np.isfinite(total), total, -np.inf)
    w = np.exp(total - np.max(total))
    return w / w.sum()


def _mixture(scored, w: np.ndarray, x: Mapping[str, np.ndarray], key: jax.Array, interval: float) -> Forecast:
    means, preds, points = [], [], []
    for i, ((fit, disc, _), weight) in enumerate(zip(scored, w)):
        take = int(round(weight * _MIXTURE_DRAWS))
        if take == 0:
            continue
        k_draws, k_mean, k_pred = jax.random.split(jax.random.fold_in(key, i), 3)
        mean, pred = predictive_draws(fit, x, key=k_draws, discrepancy=disc)
        points.append(weight * point_forecast(fit, x, band(mean, interval)))
        mean, pred = mean.reshape((-1,) + mean.shape[2:]), pred.reshape((-1,) + pred.shape[2:])
        means.append(mean[np.asarray(jax.random.randint(k_mean, (take,), 0, len(mean)))])
        preds.append(pred[np.asarray(jax.random.randint(k_pred, (take,), 0, len(pred)))])
    credible = band(np.concatenate(means)[None], interval)
    best = int(np.argmax(w))
    estimate = np.sum(points, axis=0) / np.sum([v for v in w if int(round(v * _MIXTURE_DRAWS))])
    return Forecast(x=x, estimate=estimate, credible=credible, band_name=scored[0][0].band_name,
                    predictive=band(np.concatenate(preds)[None], interval), method=scored[0][0].method,
                    discrepancy=scored[best][1], weights={f.law.name: float(v) for (f, _, _), v in zip(scored, w)})


def forecast(fit: Fit, x: Mapping[str, object], *, key: jax.Array, interval: float = 0.9,
             calibrated: bool = True, discrepancy: Discrepancy | None = None, average: bool = True) -> Forecast:
    """Credible and predictive bands of ``fit`` at ``x``; calibrated and law-form averaged by default.

    ``calibrated=True`` (default) widens the predictive band beyond the fitted runs by
    ``discrepancy``, or by :func:`calibrate` of ``fit`` when none is given;
    ``Forecast.describe()`` says how.  ``average=True`` (default, with no ``discrepancy``
    given) also averages the law's ``alternatives`` forms, fitted by ``fit``'s fitter, with
    weights from their backtests (``Forecast.weights``).  ``calibrated=False``: the fit's own band.

    >>> import jax, numpy as np
    >>> import bayescale as bs
    >>> C = np.logspace(18, 22, 12)
    >>> fit = bs.fit_map(bs.laws.power_law, bs.from_arrays(bs.laws.power_law, y=1.7 + 900.0 * C**-0.15, C=C))
    >>> f = bs.forecast(fit, {"C": 1e24}, key=jax.random.key(0))
    >>> f.discrepancy is not None and bool(f.predictive.lo < f.estimate < f.predictive.hi)
    True
    """
    for name, flag in (("calibrated", calibrated), ("average", average)):
        if not isinstance(flag, bool):
            raise ArgumentTypeError(f"forecast: {name} must be True or False, got {flag!r}")
    expect(discrepancy, (Discrepancy, type(None)), "discrepancy", "forecast")
    if not calibrated or discrepancy is not None:
        return plain_forecast(fit, x, key=key, interval=interval, discrepancy=discrepancy if calibrated else None)
    check_fit(fit, "forecast")
    check_key(key, "forecast")
    interval = check_interval(interval, "forecast")
    x = covariate_values(fit.law, x, "forecast")
    k_fit, k_draw = jax.random.split(key)
    fits = [fit, *(_alternatives(fit, k_fit) if average else [])]
    scored = [(f, *_learned(f, None)) for f in fits]
    return _combine(scored, x, k_draw, interval)


def _combine(scored, x, key: jax.Array, interval: float) -> Forecast:
    if len(scored) == 1:
        return plain_forecast(scored[0][0], x, key=key, interval=interval, discrepancy=scored[0][1])
    return _mixture(scored, _weights(scored), x, key, interval)


def forecast_groups(fits: Mapping[object, Fit], x: Mapping[str, object], *, key: jax.Array, interval: float = 0.9,
                    average: bool = True) -> dict[object, Forecast]:
    """Calibrated forecasts of several groups (tasks, benchmarks, validation sets) that borrow strength.

    ``fits`` maps each group to its fit (same law, e.g. one per benchmark with its chance
    level); ``x`` is where to forecast, the same for every group or a mapping from group to
    covariates.  Each law form's discrepancy is learned over all groups at once
    (:func:`~bayescale.evaluate.learn_discrepancies`: a prior learned across the groups,
    around the default one; a group that cannot be backtested gets that learned prior), then
    every group is forecast as :func:`forecast` would, with its own posterior discrepancy and
    law-form weights.
    """
    if not isinstance(fits, Mapping) or not fits:
        raise ArgumentTypeError("forecast_groups: fits must be a non-empty mapping of group -> Fit")
    if not isinstance(average, bool):
        raise ArgumentTypeError(f"forecast_groups: average must be True or False, got {average!r}")
    for name, fit in fits.items():
        check_fit(fit, "forecast_groups", f"fits[{name!r}]")
    check_key(key, "forecast_groups")
    interval = check_interval(interval, "forecast_groups")
    k_fit, k_draw = jax.random.split(key)
    forms = {g: [f, *(_alternatives(f, jax.random.fold_in(k_fit, i)) if average else [])]
             for i, (g, f) in enumerate(fits.items())}
    tests = {g: [_backtest_of(f) for f in fs] for g, fs in forms.items()}
    names = list(dict.fromkeys(f.law.name for fs in forms.values() for f in fs))
    learned = {}
    for name in names:
        groups = {g: [bt for f, bt in zip(forms[g], tests[g]) if f.law.name == name and isinstance(bt, Backtest)]
                  for g in fits if any(f.law.name == name for f in forms[g])}
        if any(groups.values()):
            learned[name] = learn_discrepancies(groups)
    per_group = bool(x) and all(k in fits for k in x)
    out = {}
    for i, g in enumerate(fits):
        points = covariate_values(fits[g].law, x[g] if per_group else x, "forecast_groups")
        scored = [(f, learned[f.law.name][g] if f.law.name in learned else _learned(f, None)[0],
                   bt if isinstance(bt, Backtest) else None) for f, bt in zip(forms[g], tests[g])]
        out[g] = _combine(scored, points, jax.random.fold_in(k_draw, i), interval)
    return out
