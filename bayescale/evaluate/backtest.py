"""Backtests and extrapolation-aware bands: how far to trust a forecast beyond the largest run.

On real scaling data the misses of an extrapolation are mostly systematic -- the law is a
little wrong, and its error grows with the distance in compute -- not the scatter of the
fitted runs.  A band built from that scatter alone is too narrow exactly where users need it.

* :func:`backtest` -- rolling-origin (leave-future-out) evaluation *on the fit side alone*:
  refit the law on the runs up to each cut-off, forecast the later runs, and record each
  error in fit space with the cut-off fit's residual scale and the extrapolation distance
  ``d = ln(x / x_cut)`` (e-folds of compute beyond the cut-off's largest run).  Each cut-off is
  one multi-start L-BFGS fit (the cut-offs are weight masks over the same rows, so one compiled
  program serves them all), run in turn: Ctrl-C between two cut-offs ends in one
  :class:`~bayescale.errors.Interrupted` line (``interrupted after 3 of 12 cut-offs``).
* :func:`learn_discrepancy` -- the one number the backtests teach: ``tau``, the standard
  deviation of the law's own error per e-fold of extrapolation, by maximum likelihood under
  ``e ~ Normal(0, s² + (tau·d)²)``.  Pass several backtests (tasks) to pool them.
* :class:`~bayescale.derive.Discrepancy` -- given to :func:`bayescale.forecast`, it widens the predictive band
  by ``tau·d`` (in fit space, added in quadrature) at distance ``d`` beyond the result's
  largest fitted run, and not at all inside the fitted range.  Its :meth:`~Discrepancy.describe`
  says why a band is as wide as it is.
* :func:`calibration_report` -- coverage of nominal 50/80/90 % bands and the interval score,
  plain against calibrated, on backtest errors (and on held-out runs when given).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.scipy.special import ndtri
from scipy.special import gammaln
from scipy.stats import t as student_t

from bayescale.derive import Discrepancy, distance_beyond
from bayescale.derive.checks import check_interval, numbers_of
from bayescale.errors import ArgumentError, ArgumentTypeError, Interrupted, expect, interruptible
from bayescale.fit import (
    Data,
    DataError,
    Objective,
    OptaxLbfgs,
    ParallelLbfgs,
    Solver,
    SquaredError,
    float64,
    starts_for,
)
from bayescale.fit.map import (
    check_fit_inputs,
    fit_arrays,
    fitted_residuals,
    polish_starts,
    polish_width,
    positive_int,
    screen_starts,
    screen_width,
)
from bayescale.fit.model import log_abs_dz_dy
from bayescale.laws import Law
from bayescale.tables.frame import suggest

__all__ = ["Backtest", "backtest", "backtest_score", "calibration_report", "default_along"]


@dataclasses.dataclass(frozen=True)
class Backtest:
    """Errors of the cut-off fits on the later runs of the fit side.

    ``errors`` has one row per (cut-off, later run): ``origin`` (the cut-off value of
    ``along``), ``row`` (source row label), ``x`` (the run's ``along`` value), ``distance``
    (``ln(x / x_cut)``), ``error`` (observed minus forecast, fit space), ``scale`` (the
    cut-off fit's robust residual scale), ``param_sd`` (the forecast's standard deviation from
    the cut-off fit's parameter uncertainty, Gauss-Newton), ``n_fit`` and ``converged``.
    """

    law: Law
    along: str
    errors: pd.DataFrame
    origins: pd.DataFrame

    @property
    def standardized(self) -> np.ndarray:
        return (self.errors["error"] / self.errors["scale"]).to_numpy()


def _default_origins(x: np.ndarray, min_runs: int, most: int) -> np.ndarray:
    values = np.unique(x)
    counts = np.array([(x <= v).sum() for v in values])
    candidates = values[(counts >= min_runs) & (values < values.max())]
    if len(candidates) > most:  # evenly spread over the candidates, the last one always kept
        candidates = np.unique(candidates[np.linspace(0, len(candidates) - 1, most).round().astype(int)])
    return candidates


@float64
def backtest(
    law: Law,
    data: Data,
    *,
    along: str | None = None,
    origins: Sequence[float] | None = None,
    min_runs: int | None = None,
    most: int = 30,
    objective: Objective = SquaredError(),
    starts: int = 8,
    solver: Solver = ParallelLbfgs(),
) -> Backtest:
    """Rolling-origin backtest of ``law`` on ``data`` (the runs a user would fit).

    ``origins`` are cut-off values of the covariate ``along`` (default: the law's last
    log-scale covariate, e.g. compute): each cut-off fit uses the runs with ``x <= cut``
    and forecasts the rest.  Default cut-offs: every distinct value with at least
    ``min_runs`` runs at or below it (default ``max(n_params + 3, 10)``) and one run above, thinned
    to at most ``most`` cut-offs spread evenly over them.  Each
    cut-off gets its own multi-start fit (its best ``starts`` grid points, screened on its
    own runs: nothing of the future leaks into a cut-off's fit).
    """
    along, min_runs = _check_backtest(law, data, along, origins, min_runs, most, objective, starts, solver)
    xa = np.asarray(data.x[along], dtype=float)
    cuts = (np.sort(numbers_of(origins, "origins", "backtest").reshape(-1)) if origins is not None
            else _default_origins(xa, min_runs, most))
    cuts = np.array([c for c in cuts if (xa <= c).sum() >= min_runs and (xa > c).any()])
    if len(cuts) == 0:
        raise DataError(f"backtest of {law.name!r}: no cut-off leaves {min_runs}+ runs to fit and one to forecast "
                        f"({data.n} runs); add runs or lower min_runs")
    masks = (xa[None, :] <= cuts[:, None]).astype(float)  # (K, n)
    u_best, ok, f_best = _cutoff_fits(law, data, masks, objective, starts, solver)
    x, z = fit_arrays(law, data)
    resid = np.stack([np.asarray(fitted_residuals(law, jnp.asarray(ub), x, z)) for ub in u_best])  # (K, n): mu - z
    jac = np.asarray(jax.vmap(lambda ub: jax.jacfwd(lambda u: law.fn(law.constrain(u), x))(ub))(
        jnp.asarray(u_best)))  # (K, n, P): how each run's forecast moves with the parameters
    rows, origin_rows = [], []
    for k, cut in enumerate(cuts):
        fitted = masks[k] > 0
        n_k = int(fitted.sum())
        scale = math.sqrt(float(np.sum(resid[k][fitted] ** 2)) / max(n_k - law.n_params, 1))  # unbiased
        distance = distance_beyond(law, {c: v[fitted] for c, v in data.x.items()}, data.x, (data.n,))
        # Gauss-Newton variance of each forecast from the cut-off fit's parameter uncertainty
        usable = bool(ok[k] and np.isfinite(f_best[k]) and np.all(np.isfinite(jac[k])) and np.isfinite(scale))
        param_var = np.full(data.n, np.nan)
        if usable:
            info = jac[k][fitted].T @ jac[k][fitted]
            param_var = scale**2 * np.einsum("np,pq,nq->n", jac[k], np.linalg.pinv(info), jac[k])
        origin_rows.append(dict(origin=float(cut), n_fit=int(fitted.sum()), n_forecast=int((~fitted).sum()),
                                scale=scale, converged=usable))
        for i in np.flatnonzero(~fitted):
            rows.append(dict(origin=float(cut), row=data.rows[i], x=float(xa[i]), y=float(data.y[i]),
                             distance=float(distance[i]),
                             error=float(-resid[k][i]), scale=scale,
                             param_sd=float(np.sqrt(np.maximum(param_var[i], 0.0))),
                             n_fit=int(fitted.sum()), converged=origin_rows[-1]["converged"]))
    return Backtest(law=law, along=along, errors=pd.DataFrame(rows), origins=pd.DataFrame(origin_rows))


def default_along(law: Law) -> str:
    """The direction users extrapolate along: the compute covariate, else model size, else the last log-scale one."""
    roles = law.roles
    for role in ("compute", "size"):
        if role in roles:
            return roles[role]
    return next((c.name for c in reversed(law.covariates) if c.log_scale), law.covariate_names[-1])


def _check_backtest(law, data, along, origins, min_runs, most, objective, starts, solver) -> tuple[str, int]:
    """The checked ``along`` and ``min_runs`` of :func:`backtest`; errors name the argument."""
    check_fit_inputs(law, data, "backtest")
    along = default_along(law) if along is None else along
    expect(along, str, "along", "backtest")
    if along not in law.covariate_names:
        raise ArgumentError(f"backtest: along must be a covariate of law {law.name!r} "
                            f"({', '.join(law.covariate_names)}), got {along!r}.{suggest(along, law.covariate_names)}")
    if origins is not None:
        cuts = numbers_of(origins, "origins", "backtest")
        if not np.all(np.isfinite(cuts)):
            raise ArgumentError(f"backtest: origins must be finite numbers, got {cuts.tolist()}")
    positive_int(most, "most", "backtest")
    positive_int(starts, "starts", "backtest")
    if not callable(objective) or not hasattr(objective, "describe"):
        raise ArgumentTypeError(f"backtest: objective must be an Objective such as SquaredError() or Huber(1e-3), "
                                f"got {type(objective).__name__}")
    expect(solver, (ParallelLbfgs, OptaxLbfgs), "solver", "backtest")
    min_runs = positive_int(min_runs, "min_runs", "backtest", optional=True)
    return along, min_runs or max(law.n_params + 3, 10)


def _cutoff_fits(law: Law, data: Data, masks: np.ndarray, objective: Objective, starts: int, solver: Solver):
    """Every cut-off's multi-start fit, one cut-off after another: best points, converged flags, objectives.

    The batches are sized to the memory budget (refused before any work when even one start
    does not fit); Ctrl-C between cut-offs ends in ``interrupted after k of K cut-offs``.
    """
    x, z = fit_arrays(law, data)
    grid = law.unconstrain(jnp.asarray(starts_for(law, data)))
    keep = min(starts, grid.shape[0])
    widths = screen_width(x, z, grid.shape[0]), polish_width(x, z, keep)
    results = []
    with interruptible(len(masks), "cut-offs") as progress:
        for mask in masks:
            try:
                results.append(_cutoff_fit(law, objective, solver, grid, x, z, jnp.asarray(mask), keep, widths))
            except Interrupted:  # inside one cut-off's batches: count cut-offs, the unit of this work
                raise KeyboardInterrupt from None
            progress.done += 1
    u_best, ok, f_best = (np.stack(r) for r in zip(*results))
    return u_best, ok, f_best


def _cutoff_fit(law: Law, objective: Objective, solver: Solver, grid, x, z, w, keep: int, widths: tuple[int, int]):
    """One cut-off's fit on the runs its weights ``w`` select: its best ``keep`` grid points (screened on
    those runs alone: nothing of the future leaks in) polished; the best point, converged flag, objective.
    """
    values = screen_starts(law, objective, grid, x, z, w, widths[0])
    best = np.argsort(values, kind="stable")[:keep]
    out = polish_starts(law, objective, solver, grid[best], x, z, w, widths[1])
    f = np.where(np.isfinite(out.value), out.value, np.inf)
    pick = int(np.argmin(f))
    return out.u[pick], bool(out.converged[pick]), float(f[pick])


# --------------------------------------------------------------------------- scoring with a discrepancy


def _spread(err: pd.DataFrame, discrepancy: Discrepancy | None) -> tuple[np.ndarray, float]:
    """Each backtest error's forecast scale (noise, parameter spread and the discrepancy) and the tails' df."""
    s2 = err["scale"].to_numpy(dtype=float) ** 2 + err["param_sd"].to_numpy(dtype=float) ** 2
    if discrepancy is None:
        return np.sqrt(s2), math.inf
    return np.sqrt(s2 + discrepancy.sd(err["distance"].to_numpy(dtype=float)) ** 2), float(discrepancy.df)


def _log_density(e: np.ndarray, sd: np.ndarray, df: float) -> np.ndarray:
    if not np.isfinite(df):
        return -0.5 * (np.log(2 * np.pi * sd**2) + (e / sd) ** 2)
    return (gammaln((df + 1) / 2) - gammaln(df / 2) - 0.5 * np.log(df * np.pi) - np.log(sd)
            - (df + 1) / 2 * np.log1p((e / sd) ** 2 / df))


def _half_width(err: pd.DataFrame, discrepancy: Discrepancy | None, level: float) -> np.ndarray:
    """Half-width of each error's central ``level`` band: Gaussian without a discrepancy, else the
    posterior mixture over the discrepancy's ``(offset, growth, df)`` grid (found by bisection).
    """
    s2 = err["scale"].to_numpy(dtype=float) ** 2 + err["param_sd"].to_numpy(dtype=float) ** 2
    if discrepancy is None:
        return _central(level, math.inf) * np.sqrt(s2)
    grid, w = discrepancy.posterior()
    d = err["distance"].to_numpy(dtype=float)[:, None]
    extra = np.where(d > 0, grid[None, :, 0] + grid[None, :, 1] * np.maximum(d, 0.0) ** grid[None, :, 3], 0.0)
    sd = np.sqrt(s2[:, None] + extra**2)
    df = np.where(np.isfinite(grid[:, 2]), grid[:, 2], 1e6)

    def inside(h):  # mixture probability of |e| <= h, per error
        return (2.0 * student_t.cdf(h[:, None] / sd, df[None, :]) - 1.0) @ w

    lo, hi = np.zeros(len(d)), 50.0 * sd.max(axis=1)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        low = inside(mid) < level
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    return hi


def _central(level: float, df: float) -> float:
    """The half-width, in scales, of a central ``level`` band (Gaussian or Student-t)."""
    return float(ndtri(0.5 + level / 2.0)) if not np.isfinite(df) else float(student_t.ppf(0.5 + level / 2.0, df))


@float64
def backtest_score(backtest_result: Backtest, discrepancy: Discrepancy | None = None) -> float:
    """Mean log predictive density of the backtest's later runs, in the response's natural units.

    The forecast density is ``StudentT(df, 0, sqrt(s² + v + sd(d)²))`` in fit space (Gaussian
    without a discrepancy; ``sd(d)`` the discrepancy's point values), Jacobian-corrected
    to the observed ``y`` (``log |dz/dy|``), so laws fitted in different spaces compare on one
    scale.  Higher is better; it ranks law forms by how well they *extrapolate* on the runs the
    user has, which is what the calibrated forecast selects by.
    """
    _check_result(backtest_result, discrepancy, "backtest_score")
    err = backtest_result.errors[backtest_result.errors.converged]
    if err.empty:
        return float("-inf")
    sd, df = _spread(err, discrepancy)
    jac = np.asarray(log_abs_dz_dy(backtest_result.law, jnp.asarray(err["y"].to_numpy(dtype=float))))
    return float(np.mean(_log_density(err["error"].to_numpy(dtype=float), sd, df) + jac))


# --------------------------------------------------------------------------- calibration report


def _check_result(backtest_result, discrepancy, function: str) -> None:
    expect(backtest_result, Backtest, "backtest_result", function)
    expect(discrepancy, (Discrepancy, type(None)), "discrepancy", function)


def _interval_score(lo, hi, y, level):
    alpha = 1.0 - level
    return (hi - lo) + (2.0 / alpha) * np.maximum(lo - y, 0.0) + (2.0 / alpha) * np.maximum(y - hi, 0.0)


def calibration_report(backtest_result: Backtest, discrepancy: Discrepancy | None = None, *,
                       levels: Sequence[float] = (0.5, 0.8, 0.9)) -> pd.DataFrame:
    """Coverage of nominal central bands on the backtest errors, plain and with ``discrepancy``.

    One row per level: ``coverage_plain``, ``coverage_calibrated``, the mean interval score
    (fit space, lower is better) and the median half-width of each band.  Bands are Gaussian in
    fit space with the cut-off fit's noise scale and parameter uncertainty (plain), and with the
    discrepancy added.  When the
    discrepancy was learned from these same backtests the calibrated coverage is in-sample;
    check it on held-out runs too (``bayescale.extrapolation``'s studies do).
    """
    _check_result(backtest_result, discrepancy, "calibration_report")
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence | np.ndarray) or len(levels) == 0:
        raise ArgumentTypeError(f"calibration_report: levels must be a list of band levels such as [0.5, 0.9], "
                                f"got {levels!r}")
    levels = [check_interval(v, "calibration_report", "levels") for v in levels]
    err = backtest_result.errors[backtest_result.errors.converged]
    e = err["error"].to_numpy(dtype=float)
    rows = []
    for level in levels:
        row = {"level": float(level), "n": int(len(e))}
        for name, disc in (("plain", None), ("calibrated", discrepancy)):
            half = _half_width(err, disc, level)
            row[f"coverage_{name}"] = float(np.mean(np.abs(e) <= half))
            row[f"interval_score_{name}"] = float(np.mean(_interval_score(-half, half, e, level)))
            row[f"half_width_{name}"] = float(np.median(half))
        rows.append(row)
    return pd.DataFrame(rows)

