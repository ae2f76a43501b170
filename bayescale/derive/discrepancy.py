"""The law's own error beyond the fitted runs: what widens a calibrated band.

On real scaling data the misses of an extrapolation are mostly systematic: the law is a
little wrong, and its error is there as soon as a forecast leaves the fitted runs and grows
with the distance.  A :class:`Discrepancy` says how large, in the law's fit space:

* the *distance* of a point ``x`` beyond the fitted runs is the largest log-ratio over the
  law's log-scale covariates, ``d(x) = max_c max(0, ln(x_c / max fitted x_c))`` -- e-folds
  beyond the fitted hull in whichever covariate goes furthest (``N = 1e12`` at any ``D`` is
  as far as its ``N`` is beyond the largest fitted model);
* beyond the hull (``d > 0``) the law's error has standard deviation
  ``offset + growth · d^power`` -- an ``offset`` that holds just beyond the largest run and a
  ``growth`` per e-fold (``power`` 1, or 2 for an error that grows with the square of the
  distance) -- with Student-t tails of ``df`` degrees of freedom; inside it, none;
* these numbers are uncertain when they rest on few backtest errors: a Discrepancy is a
  weighted set of ``(offset, growth, df)`` triples (a grid posterior, from
  :func:`bayescale.evaluate.learn_discrepancy`), and a forecast draws from all of them.

``DEFAULT_PRIORS`` are the priors of ``(offset, growth)`` per response, learned from the
backtests of the real data sets by ``benchmarks/discrepancy_prior.py``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.errors import ArgumentError
from bayescale.laws import Law

__all__ = ["DEFAULT_PRIORS", "Discrepancy", "DiscrepancyPrior", "distance_beyond", "prior_for"]


@dataclasses.dataclass(frozen=True)
class DiscrepancyPrior:
    """Independent log-normal priors on ``offset`` and ``growth`` (fit space), and where they come from."""

    log_offset: tuple[float, float]
    log_growth: tuple[float, float]
    source: str = "a weak default"

    def log_density(self, offset: np.ndarray, growth: np.ndarray) -> np.ndarray:
        """Log prior density of the grid points, per unit of ``log offset`` and ``log growth``."""
        (m0, s0), (m1, s1) = self.log_offset, self.log_growth
        return -0.5 * (((np.log(offset) - m0) / s0) ** 2 + ((np.log(growth) - m1) / s1) ** 2)


# Learned by benchmarks/discrepancy_prior.py (type-II maximum likelihood over the backtests of the
# groups named in `source`; rerun it to reproduce).  Keys: the response's class name.
DEFAULT_PRIORS: dict[str, DiscrepancyPrior] = {
    "Loss": DiscrepancyPrior((-6.50, 0.75), (-4.75, 0.75),
                             "learned from 26 real groups: Epoch, Gadre et al., Muennighoff et al. (Chinchilla law)"),
    "ChanceAccuracy": DiscrepancyPrior((-4.00, 1.50), (-4.00, 1.50),
                                       "learned from 40 real groups: Gadre et al.'s downstream tasks (direct law)"),
}
WEAK_PRIOR = DiscrepancyPrior((-4.0, 2.0), (-4.0, 2.0), "a weak default (log-normal, sd 2; not learned)")


def prior_for(law: Law) -> DiscrepancyPrior:
    """The default discrepancy prior of ``law``'s response (a weak one for responses not learned)."""
    return DEFAULT_PRIORS.get(type(law.response).__name__, WEAK_PRIOR)


def _log_maxima(law: Law, x: Mapping[str, np.ndarray]) -> dict[str, float]:
    return {c.name: float(np.log(np.max(np.asarray(x[c.name], dtype=float))))
            for c in law.covariates if c.log_scale and c.name in x}


def distance_beyond(law: Law, fitted: Mapping[str, np.ndarray], x: Mapping[str, object], shape=None) -> np.ndarray:
    """E-folds of ``x`` beyond the runs ``fitted``: the largest log-ratio over the law's log-scale covariates.

    ``0`` inside the fitted range of every covariate.  ``shape``: the broadcast shape of ``x`` (default: inferred).
    """
    tops = _log_maxima(law, fitted)
    if not tops:
        raise ArgumentError(f"law {law.name!r} has no log-scale covariate to measure a distance beyond its runs")
    values = {c: np.log(np.asarray(x[c], dtype=float)) for c in tops if c in x}
    if len(values) < len(tops):
        missing = sorted(set(tops) - set(values))
        raise ArgumentError(f"the distance beyond the fitted runs needs every covariate; missing {', '.join(missing)}")
    shape = np.broadcast_shapes(*(v.shape for v in values.values())) if shape is None else shape
    d = np.zeros(shape)
    for c, v in values.items():
        d = np.maximum(d, np.broadcast_to(v - tops[c], shape))
    return d


@dataclasses.dataclass(frozen=True, eq=False)
class Discrepancy:
    """The law's error beyond the fitted runs: sd ``offset + growth·d^power`` at ``d`` e-folds, Student-t(``df``) tails.

    ``offset``, ``growth``, ``df`` and ``power`` are the point values (posterior medians or modes
    when learned); ``grid`` (``(K, 4)`` rows of ``offset, growth, df, power``) with ``weights`` is
    the posterior a
    forecast draws from (default: the point alone).  ``n_errors`` / ``n_runs`` / ``n_origins`` /
    ``n_tasks`` say what it rests on; ``source`` how it was learned; ``along`` the covariate the
    backtests cut along.
    """

    offset: float
    growth: float
    df: float = math.inf
    power: float = 1.0
    along: str = ""
    grid: np.ndarray | None = None
    weights: np.ndarray | None = None
    n_errors: int = 0
    n_runs: int = 0
    n_origins: int = 0
    n_tasks: int = 1
    source: str = "given"
    interval: tuple[tuple[float, float], tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        for name in ("offset", "growth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v) or v < 0:
                raise ArgumentError(f"Discrepancy: {name} must be a finite number >= 0, got {v!r}")
        if isinstance(self.df, bool) or not isinstance(self.df, (int, float, np.number)) or not self.df > 2:
            raise ArgumentError(f"Discrepancy: df must be a number > 2 (math.inf: Gaussian), got {self.df!r}")
        if self.power not in (1, 1.0, 2, 2.0):
            raise ArgumentError(f"Discrepancy: power must be 1 or 2, got {self.power!r}")
        if (self.grid is None) != (self.weights is None):
            raise ArgumentError("Discrepancy: give grid and weights together")

    def sd(self, d) -> np.ndarray:
        """Standard deviation scale of the law's error at distance ``d`` (point values)."""
        d = np.asarray(d, dtype=float)
        return np.where(d > 0, self.offset + self.growth * np.maximum(d, 0.0) ** self.power, 0.0)

    def sample(self, key: jax.Array, d: np.ndarray, leading: tuple[int, ...]) -> jax.Array:
        """Draws of the law's error (fit space) with shape ``leading + d.shape``: one posterior triple per draw."""
        k_pick, k_norm, k_chi = jax.random.split(key, 3)
        grid, p = self.posterior()
        pick = np.asarray(jax.random.choice(k_pick, len(p), shape=leading, p=jnp.asarray(p)))
        shape = leading + tuple(np.shape(d))
        expand = (...,) + (None,) * np.ndim(d)
        offset, growth, df, power = (np.broadcast_to(grid[pick, j][expand], shape) for j in range(4))
        dd = np.broadcast_to(np.asarray(d, dtype=float), shape)
        scale = np.where(dd > 0, offset + growth * np.maximum(dd, 0.0) ** power, 0.0)
        finite = np.isfinite(df)
        half = np.where(finite, df, 1.0) / 2.0
        chi = np.asarray(jax.random.gamma(k_chi, jnp.asarray(half))) / half  # chi2(df) / df
        t_scale = np.where(finite, 1.0 / np.sqrt(chi), 1.0)
        return jnp.asarray(scale * t_scale) * jax.random.normal(k_norm, shape)

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``(K, 4)`` grid of ``offset, growth, df, power`` and its normalised weights (the point alone if none)."""
        if self.grid is None or self.weights is None:
            return np.array([[self.offset, self.growth, self.df, self.power]]), np.array([1.0])
        w = np.asarray(self.weights, dtype=float)
        return np.asarray(self.grid, dtype=float), w / w.sum()

    def describe(self) -> str:
        """One paragraph: how wide, where from, and on how much it rests."""
        tails = "Gaussian tails" if not np.isfinite(self.df) else f"Student-t tails (df {self.df:g})"
        spread = ""
        if self.interval is not None:
            (o_lo, o_hi), (g_lo, g_hi) = self.interval
            spread = f" (90 % ranges: offset {o_lo:.2g}-{o_hi:.2g}, growth {g_lo:.2g}-{g_hi:.2g})"
        rests = (f"learned from {self.n_errors} backtest errors on {self.n_runs} later runs over {self.n_origins} "
                 f"cut-offs along {self.along}" + (f", {self.n_tasks} tasks" if self.n_tasks > 1 else "")
                 if self.n_errors else "no backtest errors")
        per = "per e-fold" if self.power == 1 else "x (e-folds)^2"
        return (f"law discrepancy beyond the fitted runs: sd {self.offset:.3g} at the edge + {self.growth:.3g} {per} "
                f"of the furthest covariate (fit space), {tails}{spread}; {rests}; {self.source}")

    def summary(self) -> dict[str, object]:
        """The numbers a report carries (JSON-ready)."""
        return {"offset": float(self.offset), "growth": float(self.growth),
                "df": None if not np.isfinite(self.df) else float(self.df), "power": float(self.power),
                "along": self.along,
                "n_errors": self.n_errors, "n_runs": self.n_runs, "n_origins": self.n_origins,
                "n_tasks": self.n_tasks, "source": self.source, "describe": self.describe()}
