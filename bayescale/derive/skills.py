"""Skill-dependent compute optima (Roberts et al. 2025): mixes of skills and IsoFLOP analysis.

* :func:`mix_curve` -- N*(C) of the validation mix ``w·L_b + (1 - w)·L_a`` as the weight
  ``w`` moves from 0 to 1, with bands, and its shift relative to ``w = 0``: the paper's
  "the validation mix moves N* by up to ~50 %", with an interval.
* :func:`isoflop_analysis` -- for each compute budget, the parabola-in-log-N law
  (:data:`bayescale.laws.isoflop`) is fitted to the sizes trained at that budget, its
  vertex N*(C_i) gets draws (bootstrap or posterior), and N*(C) = K·C^a is fitted
  through the vertices draw by draw, so the exponent, K and N* at any budget carry bands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np
import pandas as pd

from bayescale.derive.allocation import compute_optimal, mix_compute_optimal, paired
from bayescale.derive.bands import Band, band
from bayescale.derive.checks import check_fit, check_interval, check_number, numbers_of, positive_values
from bayescale.derive.prediction import predict
from bayescale.errors import ArgumentError, ArgumentTypeError, expect
from bayescale.fit import DataError, Fit, Fitter, float64
from bayescale.fit.map import check_key, positive_int
from bayescale.laws import isoflop
from bayescale.tables import from_frame
from bayescale.tables.frame import suggest

__all__ = ["IsoflopAnalysis", "isoflop_analysis", "isoflop_grid", "mix_curve"]


def mix_curve(fit_a: Fit, fit_b: Fit, weights: Sequence[float], compute: float, *,
              interval: float = 0.9) -> pd.DataFrame:
    """N* of the mix ``(1 - w)·L_a + w·L_b`` at ``compute`` for each weight ``w``.

    Returns one row per weight: ``weight, N_median, N_lo, N_hi`` and the relative shift
    ``shift = N*(w) / N*(0) - 1`` (computed draw by draw, so its band accounts for the
    correlation between the two ends) with ``shift_median, shift_lo, shift_hi``.
    """
    check_fit(fit_a, "mix_curve", "fit_a")
    check_fit(fit_b, "mix_curve", "fit_b")
    interval = check_interval(interval, "mix_curve")
    check_number(compute, "compute", "mix_curve", positive=True)
    w_all = numbers_of(weights, "weights", "mix_curve").reshape(-1)
    outside = (w_all < 0) | (w_all > 1) | ~np.isfinite(w_all)
    if outside.any():
        raise ArgumentError(f"mix_curve: weights must lie in [0, 1]; got {w_all[outside][0]:g} at point "
                            f"{int(np.flatnonzero(outside)[0])}")
    a, b = paired([fit_a, fit_b])

    def n_star(w: float) -> np.ndarray:
        parts = [(fit_a.law, a, 1.0 - w), (fit_b.law, b, w)]
        return np.asarray(mix_compute_optimal([p for p in parts if p[2] > 0.0], compute).N)

    base = n_star(0.0)
    rows = []
    for w in w_all:
        n = n_star(float(w))
        nb, sb = band(n, interval), band(n / base - 1.0, interval)
        rows.append(dict(weight=float(w), N_median=float(nb.median), N_lo=float(nb.lo), N_hi=float(nb.hi),
                         shift_median=float(sb.median), shift_lo=float(sb.lo), shift_hi=float(sb.hi)))
    return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True)
class IsoflopAnalysis:
    """Vertices per budget (``vertices``), the fitted N*(C) = K·C^a and its draws.

    ``exponent`` and ``log_k`` are ``(draw,)`` arrays (one least-squares fit through the
    vertices per joint draw); :meth:`n_star` gives N*(C) draws at any budgets.
    """

    vertices: pd.DataFrame
    exponent: np.ndarray
    log_k: np.ndarray
    interval: float
    curves: dict[float, dict[str, float]] = dataclasses.field(default_factory=dict)
    """Per budget, the median of each parameter of :data:`bayescale.laws.isoflop` (for plots)."""

    @property
    def exponent_band(self) -> Band:
        return band(self.exponent[None, :], self.interval)

    def n_star(self, compute) -> tuple[np.ndarray, Band]:
        c = np.log(np.atleast_1d(positive_values(compute, "compute", "IsoflopAnalysis.n_star")))
        draws = np.exp(self.log_k[:, None] + self.exponent[:, None] * c[None, :])
        return draws, band(draws[None], self.interval)


def isoflop_analysis(
    frame: pd.DataFrame,
    *,
    fitter: Fitter,
    key: jax.Array,
    compute: str = "C",
    size: str = "N",
    y: str = "loss",
    interval: float = 0.9,
    min_sizes: int = 4,
) -> IsoflopAnalysis:
    """IsoFLOP analysis of ``frame`` (one row per run: budget, model size, loss).

    ``fitter`` fits :data:`bayescale.laws.isoflop` per budget and must give draws
    (``Fitter.of(fit_bootstrap, resamples=200)`` or ``Fitter.of(fit_nuts)``); ``key`` is
    split over the budgets.  Budgets with fewer than ``min_sizes`` distinct sizes are skipped (a parabola
    needs at least 3 points, and a vertex outside the trained sizes is an extrapolation:
    it is flagged in the ``inside`` column).  Budgets must be positive and finite.
    """
    _check_isoflop(frame, fitter, key, (compute, size, y), interval, min_sizes)
    rows, vertex_draws, curves = [], [], {}
    groups = list(frame.groupby(compute))
    for (c, group), k in zip(groups, jax.random.split(key, len(groups))):
        if group[size].nunique() < min_sizes:
            continue
        try:
            data = from_frame(group, isoflop, x=[size], y=y)
        except DataError as exc:
            raise DataError(f"budget {c:g}: {exc}") from None
        result = fitter(isoflop, data, key=k, warn=False)
        n_star = np.asarray(result.draws["N_star"]).reshape(-1)
        b = band(n_star[None], interval)
        rows.append(dict(C=float(c), sizes=int(group[size].nunique()), N_star_median=float(b.median),
                         N_star_lo=float(b.lo), N_star_hi=float(b.hi),
                         inside=bool(group[size].min() <= b.median <= group[size].max())))
        vertex_draws.append(n_star)
        curves[float(c)] = {n: float(np.median(v)) for n, v in result.draws.items()}
    if len(rows) < 2:
        raise DataError(f"IsoFLOP analysis needs at least 2 budgets with {min_sizes}+ sizes; found {len(rows)}")
    n = min(len(v) for v in vertex_draws)
    log_n = np.log(np.stack([v[:n] for v in vertex_draws], axis=1))  # (draw, budget)
    log_c = np.log(np.array([r["C"] for r in rows]))
    design = np.column_stack([np.ones_like(log_c), log_c])
    coef, *_ = np.linalg.lstsq(design, log_n.T, rcond=None)  # (2, draw)
    return IsoflopAnalysis(vertices=pd.DataFrame(rows), exponent=coef[1], log_k=coef[0], interval=interval,
                           curves=curves)


def _check_isoflop(frame, fitter, key, columns, interval, min_sizes) -> None:
    function = "isoflop_analysis"
    if not isinstance(frame, pd.DataFrame):
        raise ArgumentTypeError(f"{function}: frame must be a pandas DataFrame (one row per run), "
                                f"got {type(frame).__name__}")
    expect(fitter, Fitter, "fitter", function)
    check_key(key, function)
    check_interval(interval, function)
    if positive_int(min_sizes, "min_sizes", function) < 3:
        raise ArgumentError(f"{function}: min_sizes must be at least 3 (a parabola needs 3 sizes), got {min_sizes}")
    for argument, column in zip(("compute", "size", "y"), columns):
        expect(column, str, argument, function)
        if column not in frame.columns:
            names = [str(c) for c in frame.columns]
            hint = suggest(column, names, f" Columns: {', '.join(names)}")
            raise ArgumentError(f"{function}: {argument} column {column!r} is not in the frame.{hint}")
    positive_values(frame[columns[0]].to_numpy(), f"{columns[0]!r} (compute)", function)


@float64
def isoflop_grid(law, params, budgets, *, key: jax.Array, sizes: int = 7, span: float = 8.0,
                 noise: float = 0.01) -> pd.DataFrame:
    """A synthetic IsoFLOP grid from a known law of N and D: ``C, N, loss`` per run.

    At each budget, ``sizes`` model sizes spread log-evenly over ``[N*/span, N*·span]`` around
    the law's true optimum, each with ``D = C / (6N)`` and multiplicative log-normal noise of
    sd ``noise`` -- a design with a known answer for :func:`isoflop_analysis`.
    """
    budgets = np.atleast_1d(np.asarray(budgets, dtype=float))
    eps = np.asarray(jax.random.normal(key, (budgets.size, sizes)))
    size, tokens = law.roles["size"], law.roles["tokens"]
    rows = []
    for c, e in zip(budgets, eps):
        n_true = float(compute_optimal(law, params, c).N)
        for n, e_i in zip(n_true * np.geomspace(1.0 / span, span, sizes), e):
            loss = float(predict(law, params, {size: n, tokens: c / (6 * n)})) * np.exp(noise * e_i)
            rows.append(dict(C=c, N=n, loss=loss))
    return pd.DataFrame(rows)
