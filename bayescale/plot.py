"""Plots over any law and any draws (matplotlib is imported here only, lazily).

One module for every :class:`~bayescale.fit.Fit` (MAP, bootstrap, NUTS, two-stage,
loaded): every function reads the fit's draws.

* :func:`plot_forecast` -- observed points, the fitted curve, the credible band (the
  mean law) and the predictive band (where a new run would land), held-out runs marked;
* :func:`plot_residuals` -- standardised fit-space residuals against a covariate;
* :func:`plot_pairs` -- pairwise posterior (or bootstrap) draws of a law's parameters;
* :func:`plot_optimal` -- N*(C) with its band, for one fit or a validation mix;
* :func:`plot_isoflop` -- IsoFLOP curves per budget with their vertices and bands;
* :func:`plot_reliability` -- nominal against empirical coverage of bands (calibration);
* :func:`plot_fit`, :func:`plot_compute_optimal`, :func:`plot_bands` -- the simple pieces.

Every function takes an optional ``ax`` (or returns a new figure's axes) and returns
what it drew on.  Covariates declared ``log_scale`` get log axes; labels carry units.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np
import pandas as pd

from bayescale.derive import (
    Allocation,
    Band,
    Discrepancy,
    Forecast,
    IsoflopAnalysis,
    forecast,
    optimal_bands,
    predict,
    predict_fit_space,
)
from bayescale.derive.checks import check_fit, check_interval, check_number, numbers_of, positive_values
from bayescale.errors import ArgumentError, ArgumentTypeError, expect
from bayescale.fit import Data, Fit
from bayescale.fit.map import check_key, positive_int
from bayescale.laws import isoflop
from bayescale.tables.frame import suggest

__all__ = [
    "plot_bands",
    "plot_compute_optimal",
    "plot_fit",
    "plot_forecast",
    "plot_isoflop",
    "plot_optimal",
    "plot_pairs",
    "plot_reliability",
    "plot_residuals",
]

_OBSERVED = dict(s=16, color="0.15", zorder=4)
_HELDOUT = dict(s=30, color="tab:red", marker="D", zorder=5)
_MAX_GROUPS = 8


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _axes(ax):
    if ax is not None:
        return ax
    return _pyplot().figure(figsize=(6.4, 4.4)).add_subplot()


def plot_fit(result: Fit, data: Data, *, along: str | None = None, ax=None, label: str | None = None):
    """Observed points and the fitted curve against one covariate (``along``).

    For laws of several covariates the curve is drawn through each observed
    point's other covariates (points, not a line).
    """
    check_fit(result, "plot_fit", "result")
    expect(data, Data, "data", "plot_fit")
    law = result.law
    cov = _covariate(law, along, "plot_fit")
    along = cov.name
    ax = _axes(ax)
    xs = data.x[along]
    ax.scatter(xs, data.y, s=14, color="0.25", label="observed", zorder=3)
    if len(law.covariates) == 1:
        grid = np.geomspace(xs.min(), xs.max(), 200) if cov.log_scale else np.linspace(xs.min(), xs.max(), 200)
        ax.plot(grid, predict(law, result.point, {along: grid}), lw=2, label=label or f"{law.name} (MAP)")
    else:
        ax.scatter(xs, predict(law, result.point, data.x), s=10, marker="x", label=label or f"{law.name} (MAP)")
    if cov.log_scale:
        ax.set_xscale("log")
    ax.set_xlabel(f"{along} [{cov.unit}]" if cov.unit else along)
    ax.set_ylabel(law.response.label)
    ax.legend(frameon=False)
    return ax


def plot_compute_optimal(curves: Mapping[str, Allocation], *, ax=None, styles: Mapping[str, dict] | None = None):
    """N*(C) for several fits (``label -> Allocation`` over a compute grid), log-log."""
    if not isinstance(curves, Mapping):
        raise ArgumentTypeError(f"plot_compute_optimal: curves must map labels to Allocation values, "
                                f"got {type(curves).__name__}")
    for label, alloc in curves.items():
        expect(alloc, Allocation, f"curves[{label!r}]", "plot_compute_optimal")
    ax = _axes(ax)
    for label, alloc in curves.items():
        ax.plot(alloc.compute, np.asarray(alloc.N), label=label, **(styles or {}).get(label, {}))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C [FLOPs]")
    ax.set_ylabel("compute-optimal parameters N*")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return ax


def plot_bands(x, bands, *, ax=None, xlabel: str = "training compute C [FLOPs]",
               ylabel: str = "compute-optimal parameters N*", logx: bool = True, logy: bool = True):
    """Median line and shaded central band for each ``label -> Band`` over the same ``x``."""
    if not isinstance(bands, Mapping):
        raise ArgumentTypeError(f"plot_bands: bands must map labels to Band values, got {type(bands).__name__}")
    for label, b in bands.items():
        expect(b, Band, f"bands[{label!r}]", "plot_bands")
    x = numbers_of(x, "x", "plot_bands")
    ax = _axes(ax)
    for label, b in bands.items():
        (line,) = ax.plot(x, np.asarray(b.median), label=f"{label} (median)")
        ax.fill_between(x, np.asarray(b.lo), np.asarray(b.hi), color=line.get_color(), alpha=0.2,
                        label=f"{label} {b.interval:.0%} band")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return ax


# --------------------------------------------------------------------------- helpers


def _data_of(fit: Fit, data: Data | None, function: str) -> Data:
    expect(data, (Data, type(None)), "data", function)
    data = data if data is not None else fit.data
    if data is None:
        raise ArgumentError(f"{function}: this fit does not carry its data; pass data=")
    return data


def _covariate(law, along, function: str):
    along = along or law.covariate_names[-1]
    expect(along, str, "along", function)
    try:
        return next(c for c in law.covariates if c.name == along)
    except StopIteration:
        raise ArgumentError(f"{function}: law {law.name!r} has no covariate {along!r} to plot along; it reads "
                            f"{', '.join(law.covariate_names)}.{suggest(along, law.covariate_names)}") from None


def _axis_label(cov) -> str:
    roles = {"compute": "training compute", "size": "parameters", "tokens": "training tokens"}
    text = f"{roles[cov.role]} {cov.name}" if cov.role in roles else cov.name
    return f"{text} [{cov.unit}]" if cov.unit else text


def _grid(cov, lo, hi, n=200):
    return np.geomspace(lo, hi, n) if cov.log_scale else np.linspace(lo, hi, n)


# --------------------------------------------------------------------------- forecast


def plot_forecast(result: Fit, data: Data | None = None, *, key: jax.Array, heldout: Data | None = None,
                  along: str | None = None, upto: float | None = None, interval: float = 0.9, ax=None,
                  label: str | None = None, discrepancy: Discrepancy | None = None, points: Forecast | None = None):
    """Observed runs, the fitted law, its credible and predictive bands, held-out runs.

    ``result`` is any fit (MAP, bootstrap, NUTS, saved); ``data`` defaults to the data it
    carries.  ``heldout`` (a :class:`~bayescale.Data`) is drawn as red diamonds and the
    curve extends over it; ``upto`` extends it further along ``along``.  For a law of one
    covariate the bands are drawn over a grid; for several, one curve per combination of
    the other covariates (up to 8 combinations; beyond that, intervals at the runs).
    ``discrepancy`` (:mod:`bayescale.evaluate.backtest`) draws the calibrated predictive band;
    ``points`` (a :class:`~bayescale.Forecast`) marks forecast points with their predictive
    bands; ``key`` draws the predictive noise.
    """
    check_fit(result, "plot_forecast", "result")
    check_key(key, "plot_forecast")
    interval = check_interval(interval, "plot_forecast")
    expect(heldout, (Data, type(None)), "heldout", "plot_forecast")
    expect(points, (Forecast, type(None)), "points", "plot_forecast")
    expect(discrepancy, (Discrepancy, type(None)), "discrepancy", "plot_forecast")
    upto = check_number(upto, "upto", "plot_forecast", optional=True)
    law = result.law
    data = _data_of(result, data, "plot_forecast")
    cov = _covariate(law, along, "plot_forecast")
    ax = _axes(ax)
    sets = [data] + ([heldout] if heldout is not None else [])
    if points is not None:
        upto = max(upto or 0.0, float(np.max(points.x[cov.name])))
    name = label or f"{law.name} ({result.method})"
    if len(law.covariates) == 1:
        xs = np.concatenate([s.x[cov.name] for s in sets])
        grid = _grid(cov, xs.min(), max(xs.max(), upto or xs.max()))
        f = forecast(result, {cov.name: grid}, key=key, interval=interval, discrepancy=discrepancy)
        kind = "calibrated predictive" if discrepancy is not None else "predictive"
        ax.fill_between(grid, f.predictive.lo, f.predictive.hi, color="tab:blue", alpha=0.15, lw=0,
                        label=f"{interval:.0%} {kind} band")
        ax.fill_between(grid, f.credible.lo, f.credible.hi, color="tab:blue", alpha=0.35, lw=0,
                        label=f"{interval:.0%} {result.band_name} band")
        ax.plot(grid, f.estimate, color="tab:blue", lw=2, label=name)
        ax.axvline(data.x[cov.name].max(), color="0.5", ls=":", lw=1, label="largest fitted run")
    else:
        _group_curves(ax, result, data, sets, cov, upto, key=key, interval=interval, name=name)
    ax.scatter(data.x[cov.name], data.y, label="fitted runs", **_OBSERVED)
    if heldout is not None:
        ax.scatter(heldout.x[cov.name], heldout.y, label="held-out runs", **_HELDOUT)
    if points is not None:
        x = np.broadcast_to(points.x[cov.name], np.shape(points.estimate))
        ax.errorbar(x, points.estimate, yerr=[points.estimate - points.predictive.lo,
                                              points.predictive.hi - points.estimate],
                    fmt="s", color="tab:orange", capsize=4, zorder=6, label="forecast points")
    if cov.log_scale:
        ax.set_xscale("log")
    ax.set_xlabel(_axis_label(cov))
    ax.set_ylabel(f"{law.response.label}" + (" [nats/token]" if law.response.label == "loss" else ""))
    ax.set_title(f"{law.name}: {law.formula}", fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(frameon=False, fontsize=7)
    return ax


def _group_curves(ax, result: Fit, data: Data, sets, cov, upto, *, key, interval, name) -> None:
    """One curve with its credible band per combination of the other covariates (or intervals at the runs)."""
    others = [c for c in result.law.covariate_names if c != cov.name]
    xs = np.concatenate([s.x[cov.name] for s in sets])
    combos = np.unique(np.column_stack([np.concatenate([s.x[o] for s in sets]) for o in others]), axis=0)
    if len(combos) > _MAX_GROUPS:
        f = forecast(result, dict(data.x), key=key, interval=interval)
        ax.errorbar(data.x[cov.name], f.estimate, yerr=[f.estimate - f.predictive.lo, f.predictive.hi - f.estimate],
                    fmt="none", ecolor="tab:blue", alpha=0.5, label=f"{name}: {interval:.0%} predictive band")
        return
    colours = _pyplot().get_cmap("viridis")(np.linspace(0.0, 0.9, len(combos)))
    for combo, colour in zip(combos, colours):
        at = {o: v for o, v in zip(others, combo)}
        mask = np.all([np.concatenate([s.x[o] for s in sets]) == v for o, v in at.items()], axis=0)
        lo, hi = xs[mask].min(), max(xs[mask].max(), upto or 0.0)
        if hi <= lo:  # one run in this group: a short curve around it
            lo, hi = (lo / 2.0, hi * 2.0) if cov.log_scale else (lo - 1.0, hi + 1.0)
        grid = _grid(cov, lo, hi)
        f = forecast(result, {cov.name: grid, **{o: np.full_like(grid, v) for o, v in at.items()}},
                     key=key, interval=interval)
        ax.fill_between(grid, f.credible.lo, f.credible.hi, color=colour, alpha=0.3, lw=0)
        ax.plot(grid, f.estimate, color=colour, lw=1.5, label=", ".join(f"{o}={v:.3g}" for o, v in at.items()))


def plot_residuals(result: Fit, data: Data | None = None, *, along: str | None = None, ax=None):
    """Fit-space residuals of the runs, divided by the fitted scale sigma (medians over draws)."""
    check_fit(result, "plot_residuals", "result")
    law = result.law
    data = _data_of(result, data, "plot_residuals")
    cov = _covariate(law, along, "plot_residuals")
    ax = _axes(ax)
    mu = np.median(predict_fit_space(law, result.draws, data.x).reshape(-1, data.n), axis=0)
    z = np.asarray(law.response.to_fit(data.y))
    r = (z - mu) / float(np.median(result.sigma))
    ax.axhline(0.0, color="0.3", lw=1)
    for level in (-2.0, 2.0):
        ax.axhline(level, color="0.6", lw=1, ls="--")
    ax.scatter(data.x[cov.name], r, **_OBSERVED)
    outside = np.abs(r) > 2.0
    if outside.any():
        for xv, rv, row in zip(data.x[cov.name][outside], r[outside], data.rows[outside]):
            ax.annotate(f"row {row}", (xv, rv), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if cov.log_scale:
        ax.set_xscale("log")
    ax.set_xlabel(_axis_label(cov))
    ax.set_ylabel(f"residual / sigma  ({law.response.describe()})")
    ax.set_title(f"{law.name} ({result.method}): {int(outside.sum())} of {data.n} runs beyond 2 sigma", fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    return ax


def plot_pairs(result: Fit, *, key: jax.Array, params=None, max_points: int = 2000):
    """Pairwise scatter of the draws (lower triangle) and their histograms (diagonal).

    Needs draws (MAP's Laplace draws, bootstrap, NUTS, or a saved one of those), not a single point.
    Parameters spanning more than a decade get log axes; ``key`` picks the ``max_points``
    draws scattered.  Returns the figure.
    """
    check_fit(result, "plot_pairs", "result")
    check_key(key, "plot_pairs")
    positive_int(max_points, "max_points", "plot_pairs")
    if isinstance(params, str):
        raise ArgumentTypeError(f"plot_pairs: params must be a list of parameter names, got the text {params!r}")
    names = list(params or result.law.params)
    for n in names:
        if n not in result.law.params:
            raise ArgumentError(f"plot_pairs: law {result.law.name!r} has no parameter {n!r}; it has "
                                f"{', '.join(result.law.params)}.{suggest(str(n), result.law.params)}")
    flat = {n: np.asarray(result.draws[n]).reshape(-1) for n in names}
    count = len(next(iter(flat.values())))
    if count < 2:
        raise ArgumentError(f"plot_pairs: a {result.method} fit has {count} draw; pair plots need draws (MAP's "
                            "Laplace draws, bootstrap or NUTS)")
    pick = np.asarray(jax.random.permutation(key, count))[:max_points]
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter

    k = len(names)
    fig, axes = plt.subplots(k, k, figsize=(1.9 * k + 1, 1.9 * k + 1), squeeze=False)
    logs = {n: bool(np.all(flat[n] > 0) and flat[n].max() / flat[n].min() > 10.0) for n in names}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                v = flat[a]
                bins = np.geomspace(v.min(), v.max(), 40) if logs[a] else 40
                ax.hist(v, bins=bins, color="tab:blue", alpha=0.7)
                ax.set_yticks([])
            else:
                ax.scatter(flat[b][pick], flat[a][pick], s=2, alpha=0.3, color="tab:blue", rasterized=True)
                if logs[a]:
                    ax.set_yscale("log")
            if logs[b]:
                ax.set_xscale("log")
            if i == k - 1:
                ax.set_xlabel(b)
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(a)
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.tick_params(which="both", labelsize=6)
    fig.suptitle(f"{result.law.name}: {count} {result.method} draws", fontsize=9)
    fig.tight_layout()
    return fig


def plot_optimal(result: Fit | None = None, compute=None, *, mix=None, interval: float = 0.9, ax=None,
                 label: str | None = None, marks=()):
    """N*(C) with its band for one fit of a law of N and D, or a validation ``mix``; ``marks``: budgets to mark."""
    compute = np.geomspace(1e19, 1e25, 40) if compute is None else positive_values(compute, "compute", "plot_optimal")
    marks = positive_values(marks, "marks", "plot_optimal").reshape(-1) if np.size(marks) else ()
    _, bands = optimal_bands(result, compute, interval=interval, mix=mix)
    name = label or (result.law.name if result is not None else "mix")
    ax = plot_bands(compute, {name: bands["N"]}, ax=ax)
    for c in marks:
        ax.axvline(c, color="0.5", ls=":", lw=1)
    return ax


def plot_isoflop(frame, analysis, *, compute: str = "C", size: str = "N", y: str = "loss", ax=None):
    """IsoFLOP curves: the runs of each budget, its fitted parabola and vertex N* with its band."""
    if not isinstance(frame, pd.DataFrame):
        raise ArgumentTypeError(f"plot_isoflop: frame must be a pandas DataFrame, got {type(frame).__name__}")
    expect(analysis, IsoflopAnalysis, "analysis", "plot_isoflop")
    for argument, column in (("compute", compute), ("size", size), ("y", y)):
        if column not in frame.columns:
            raise ArgumentError(f"plot_isoflop: {argument} column {column!r} is not in the frame."
                                f"{suggest(str(column), [str(c) for c in frame.columns])}")
    ax = _axes(ax)
    vertices = analysis.vertices.set_index("C")
    budgets = sorted(analysis.curves)
    colours = _pyplot().get_cmap("plasma")(np.linspace(0.0, 0.85, max(len(budgets), 1)))
    for c, colour in zip(budgets, colours):
        runs = frame[np.isclose(frame[compute], c, rtol=1e-9)]
        ax.scatter(runs[size], runs[y], s=14, color=colour, zorder=3)
        grid = np.geomspace(runs[size].min(), runs[size].max(), 100)
        ax.plot(grid, predict(isoflop, analysis.curves[c], {"N": grid}), color=colour, lw=1.5,
                label=f"C = {c:.2g} FLOPs")
        v = vertices.loc[c]
        ax.errorbar([v.N_star_median], [analysis.curves[c]["L_star"]],
                    xerr=[[v.N_star_median - v.N_star_lo], [v.N_star_hi - v.N_star_median]],
                    fmt="o", color=colour, mec="black", ms=6, capsize=3, zorder=5)
    eb = analysis.exponent_band
    ax.set_xscale("log")
    ax.set_xlabel("parameters N [parameters]")
    ax.set_ylabel(f"{y} [nats/token]")
    ax.set_title(f"IsoFLOP vertices with {analysis.interval:.0%} bands; N* ∝ C^a, a = {float(eb.median):.3f} "
                 f"[{float(eb.lo):.3f}, {float(eb.hi):.3f}]", fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(frameon=False, fontsize=7)
    return ax


def plot_reliability(nominal, empirical, *, labels=None, ax=None, counts=None):
    """Nominal against empirical coverage: calibrated bands lie on the diagonal.

    ``empirical`` is one sequence per method (``labels``), each aligned with ``nominal``.
    """
    nominal = numbers_of(nominal, "nominal", "plot_reliability")
    series = np.atleast_2d(numbers_of(empirical, "empirical", "plot_reliability"))
    if series.shape[-1] != nominal.size:
        raise ArgumentError(f"plot_reliability: each series in empirical must have one value per nominal level "
                            f"({nominal.size}), got {series.shape[-1]}")
    ax = _axes(ax)
    labels = labels or [f"method {i}" for i in range(len(series))]
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="calibrated")
    for lab, e in zip(labels, series):
        ax.plot(nominal, e, marker="o", lw=1.5, label=lab)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage of the band")
    ax.set_ylabel("empirical coverage" + (f" ({counts} held-out points)" if counts else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False, fontsize=7)
    return ax
