"""Plots over any law (matplotlib is imported here only, lazily).

Every function takes an optional ``ax`` and returns the axes it drew on.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bayescale.allocation import Allocation
from bayescale.data import Data
from bayescale.optimization import MapResult
from bayescale.prediction import predict

__all__ = ["plot_compute_optimal", "plot_fit"]


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(6.4, 4.4)).add_subplot()


def plot_fit(result: MapResult, data: Data, *, along: str | None = None, ax=None, label: str | None = None):
    """Observed points and the fitted curve against one covariate (``along``).

    For laws of several covariates the curve is drawn through each observed
    point's other covariates (points, not a line).
    """
    ax = _axes(ax)
    law = result.law
    along = along or law.covariate_names[-1]
    cov = next(c for c in law.covariates if c.name == along)
    xs = data.x[along]
    ax.scatter(xs, data.y, s=14, color="0.25", label="observed", zorder=3)
    if len(law.covariates) == 1:
        grid = np.geomspace(xs.min(), xs.max(), 200) if cov.log_scale else np.linspace(xs.min(), xs.max(), 200)
        ax.plot(grid, predict(law, result.params, {along: grid}), lw=2, label=label or f"{law.name} (MAP)")
    else:
        ax.scatter(xs, predict(law, result.params, data.x), s=10, marker="x", label=label or f"{law.name} (MAP)")
    if cov.log_scale:
        ax.set_xscale("log")
    ax.set_xlabel(f"{along} [{cov.unit}]" if cov.unit else along)
    ax.set_ylabel(law.response.label)
    ax.legend(frameon=False)
    return ax


def plot_compute_optimal(curves: Mapping[str, Allocation], *, ax=None, styles: Mapping[str, dict] | None = None):
    """N*(C) for several fits (``label -> Allocation`` over a compute grid), log-log."""
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
