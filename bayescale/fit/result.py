"""One currency for every fitter: the :class:`Fit`.

MAP, bootstrap, NUTS, two-stage fits and fits loaded from disk are all a :class:`Fit`:
the law, the data, the law's parameter draws with dims ``(chain, draw)`` (a MAP fit the
Laplace draws around its optimum, a bootstrap one chain of converged resamples, NUTS
its chains), the observation scale and likelihood, the method's own diagnostics (``info``, a small
NamedTuple), the problems its fitter found, and the fitter with its settings, so that
``fit.refit(data)`` fits the same way.  Every later stage reads these fields and never
asks which method made them.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from bayescale.fit.data import Data
from bayescale.fit.model import Gaussian, Likelihood, pointwise_log_likelihood
from bayescale.fit.precision import float64
from bayescale.laws import Law

__all__ = ["BootstrapInfo", "ComposedInfo", "Fit", "Fitter", "MapInfo", "Mode", "NutsInfo", "combine_stages",
           "map_info", "plug_in", "robust_scale", "scrambled_order", "warn_problems"]

Array = Any


def _scalars(info: Any) -> dict[str, object]:
    """The bool/int/float/str fields of an info tuple (nested tuples prefixed by their name)."""
    out: dict[str, object] = {}
    for k, v in info._asdict().items():
        if isinstance(v, tuple) and hasattr(v, "_asdict"):
            out.update({f"{k}_{kk}": vv for kk, vv in _scalars(v).items()})
        elif isinstance(v, (bool, int, float, str)):
            out[k] = v
    return out


class MapInfo(NamedTuple):
    """What a multi-start L-BFGS fit reports.

    ``n_agree`` counts polished starts within 1e-6 (relative) of the best objective: a
    small value means few starts found the optimum.  ``band`` says what the fit's draws
    are: ``"laplace"`` (the Laplace approximation at the optimum, see
    :func:`~bayescale.fit.fit_map`) or ``"point"`` (the optimum alone, one draw).
    """

    point: Mapping[str, float]
    objective: float
    converged: bool
    steps: int
    grad_norm: float
    n_starts: int
    n_polished: int
    n_agree: int
    residual_scale: float
    band: str = "point"

    def scalars(self) -> dict[str, object]:
        return _scalars(self)

    def per_param(self) -> dict[str, Mapping[str, float]]:
        return {}


class BootstrapInfo(NamedTuple):
    """What the bootstrap reports: every resample (``all_draws``, ``converged``), the full-data MAP."""

    point: Mapping[str, float]
    resamples: int
    starts: int
    n_failed: int
    converged: np.ndarray
    objective: np.ndarray
    all_draws: Mapping[str, np.ndarray]
    map: MapInfo
    scheme: object
    compile_seconds: float
    lane_steps: int
    pool_calls: int
    pool_lanes: int
    pruned: int
    job_steps: int
    band: str = "bootstrap"

    def scalars(self) -> dict[str, object]:
        out = _scalars(self)
        out["converged_fraction"] = float(np.mean(self.converged))
        return out

    def per_param(self) -> dict[str, Mapping[str, float]]:
        return {}


class Mode(NamedTuple):
    """A group of NUTS chains that agree: which chains, their parameter medians, their mean log density
    (NumPyro's joint log density in the unconstrained space, Jacobians included).
    """

    chains: tuple[int, ...]
    median: Mapping[str, float]
    log_density: float


class NutsInfo(NamedTuple):
    """What NUTS reports: convergence per parameter, divergences, the mode and MAP it started from.

    ``modes``: the groups of chains that agree, highest log density first (one group when the chains
    agree; more is a problem line); ``optima``: how many distinct posterior modes the multi-start MAP
    lanes reached; ``starts``: the mode (index among them, best log density first) each chain started at.
    """

    point: Mapping[str, float]
    mode: Mapping[str, float]
    map: MapInfo
    chains: int
    warmup: int
    draws: int
    divergences: int
    tree_depth_hits: int
    r_hat: Mapping[str, float]
    ess_bulk: Mapping[str, float]
    ess_tail: Mapping[str, float]
    step_size: float
    band: str = "credible"
    modes: tuple[Mode, ...] = ()
    optima: int = 1
    starts: tuple[int, ...] = ()

    def scalars(self) -> dict[str, object]:
        out = _scalars(self)
        out.update(r_hat_max=max(self.r_hat.values()), ess_bulk_min=min(self.ess_bulk.values()),
                   ess_tail_min=min(self.ess_tail.values()))
        return out

    def per_param(self) -> dict[str, Mapping[str, float]]:
        return {"r_hat": self.r_hat, "ess_bulk": self.ess_bulk, "ess_tail": self.ess_tail}


class ComposedInfo(NamedTuple):
    """A composed (two-stage) fit: the point of both stages and their infos (the stage fits are ``Fit.parts``)."""

    point: Mapping[str, float]
    methods: tuple[str, ...]
    stages: tuple[Any, ...] = ()

    @property
    def band(self) -> str:
        """The stages' bands joined by ``+`` (one name when they agree): ``"laplace+credible"``."""
        return "+".join(dict.fromkeys(info.band for info in self.stages))

    def scalars(self) -> dict[str, object]:
        """The stages' diagnostics, prefixed ``stage1_``, ``stage2_``."""
        out: dict[str, object] = {"methods": "+".join(self.methods), "band": self.band}
        for i, info in enumerate(self.stages, 1):
            out.update({f"stage{i}_{k}": v for k, v in info.scalars().items()})
        return out

    def per_param(self) -> dict[str, Mapping[str, float]]:
        """Per-parameter diagnostics of both stages (a stage-2 name wins a clash, e.g. ``sigma``)."""
        out: dict[str, Mapping[str, float]] = {}
        for info in self.stages:
            for k, d in info.per_param().items():
                out[k] = {**out.get(k, {}), **d}
        return out


Info = MapInfo | BootstrapInfo | NutsInfo | ComposedInfo


@dataclasses.dataclass(frozen=True)
class Fitter:
    """A fitting function with its settings: calling it fits another law or data the same way.

    ``random`` says whether it draws random numbers (then a call needs ``key``).  Build
    one with :meth:`of`, e.g. ``Fitter.of(fit_nuts, chains=2, draws=500)``.
    """

    fn: Callable[..., Fit]
    options: tuple[tuple[str, Any], ...]
    random: bool

    @classmethod
    def of(cls, fn: Callable[..., Fit], **options: Any) -> Fitter:
        """``fn`` (``fit_map``, ``fit_bootstrap``, ``fit_nuts``) with these keyword options."""
        return cls(fn, tuple(sorted(options.items())), "key" in inspect.signature(fn).parameters)

    def __call__(self, law: Law, data: Data, *, key: Array | None = None, warn: bool = True) -> Fit:
        options = dict(self.options)
        if self.random:
            if key is None:
                raise ValueError(f"{self.fn.__name__} draws random numbers: pass key=")
            options["key"] = key
        return self.fn(law, data, warn=warn, **options)

    def __repr__(self) -> str:
        return f"Fitter({self.fn.__name__}{''.join(f', {k}={v!r}' for k, v in self.options)})"


@dataclasses.dataclass(frozen=True, repr=False)
class Fit:
    """A fitted law: draws ``(chain, draw)`` of every parameter, whatever the method.

    Attributes
    ----------
    law, data:
        What was fitted (``data`` is ``None`` only for a loaded fit saved without it).
    draws:
        Every law parameter as a ``(chain, draw)`` array: MAP ``(1, R)`` Laplace draws
        (``(1, 1)``, the optimum alone, with ``laplace_draws=0`` or when not identified),
        bootstrap ``(1, R)`` (converged resamples), NUTS ``(chains, draws)``.
    sigma, likelihood:
        The observation scale ``(chain, draw)`` in fit space and its likelihood (MAP and
        bootstrap: the plug-in Gaussian with the MAP fit's robust residual scale).
    method:
        ``"map"``, ``"bootstrap"``, ``"nuts"`` or ``"map+nuts"``-style for composed fits:
        a label, never a switch.
    info:
        The method's own diagnostics (:class:`MapInfo`, :class:`BootstrapInfo`,
        :class:`NutsInfo`, :class:`ComposedInfo`).
    problems:
        Why the fit should not be trusted, written once by its fitter (empty: trusted).
    fitter:
        The fitter with its settings (``None`` for a loaded fit): :meth:`refit` uses it.
    parts:
        The stage fits of a composed (two-stage) law.
    """

    law: Law
    data: Data | None
    draws: Mapping[str, np.ndarray]
    sigma: np.ndarray
    likelihood: Likelihood
    method: str
    info: Info
    problems: tuple[str, ...] = ()
    fitter: Fitter | None = None
    parts: tuple[Fit, ...] = ()
    seconds: float = float("nan")

    # ---- views ------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def point(self) -> dict[str, float]:
        """The method's point estimate: MAP optimum (MAP, bootstrap), posterior median (NUTS)."""
        return dict(self.info.point)

    @property
    def band(self) -> str:
        """What the draws' intervals are: ``"laplace"`` (MAP: the Laplace approximation at the optimum),
        ``"bootstrap"``, ``"credible"`` (NUTS), the stages' joined by ``+`` for a composed fit, or
        ``"point"`` for a single draw (no interval).
        """
        return (self.info.band or self.method) if self.n_draws > 1 else "point"

    @property
    def band_name(self) -> str:
        """How reports and legends name the draws' intervals: ``"Laplace"`` (``band == "laplace"``),
        ``"bootstrap"``, ``"credible"``, ``"Laplace+credible"``, ``"point"``.
        """
        return "+".join("Laplace" if part == "laplace" else part for part in self.band.split("+"))

    @property
    def n_obs(self) -> int:
        return self.data.n if self.data is not None else 0

    @property
    def shape(self) -> tuple[int, int]:
        chains, draws = np.shape(self.sigma)
        return int(chains), int(draws)

    @property
    def n_draws(self) -> int:
        return int(np.prod(self.shape))

    @property
    def diagnostics(self) -> dict[str, object]:
        """The info's scalars with ``ok`` and ``problems``: what the CLI's JSON carries."""
        return {"ok": self.ok, "problems": "; ".join(self.problems), "n_obs": self.n_obs,
                "n_dropped": len(self.data.dropped) if self.data is not None else 0, **self.info.scalars()}

    def std(self) -> dict[str, float]:
        """Standard deviation of each parameter over the draws (bootstrap: standard errors; MAP: Laplace)."""
        return {n: float(np.std(v, ddof=1)) if v.size > 1 else float("nan") for n, v in self.draws.items()}

    @float64
    def log_likelihood(self, data: Data | None = None) -> np.ndarray:
        """Pointwise log density ``(chain, draw, n)`` of ``data`` (default: the fitted data), natural units."""
        data = data if data is not None else self.data
        if data is None:
            raise ValueError("this fit carries no data to score")
        return np.asarray(pointwise_log_likelihood(self.law, self.likelihood, self.draws, self.sigma, data.x, data.y))

    def refit(self, data: Data, *, key: Array | None = None, warn: bool = False,
              parts: tuple[Data, ...] | None = None) -> Fit:
        """The same law fitted to ``data`` by the same fitter with the same settings.

        A composed fit refits each stage on its own rows that appear in ``data`` (by row
        label), or on ``parts`` when given (stages fitted to their own tables).
        """
        if self.parts:
            return _refit_composed(self, data, key=key, warn=warn, parts=parts)
        if self.fitter is None:
            raise ValueError(f"this {self.method} fit of {self.law.name!r} was loaded from disk and has no fitter; "
                             "fit the data again with fit_map / fit_bootstrap / fit_nuts")
        return self.fitter(self.law, data, key=key, warn=warn)

    # ---- reading ------------------------------------------------------------------------
    def summary(self, interval: float = 0.9):
        """One row per parameter: estimate, sd, central ``interval`` and, where they exist, R-hat and ESS.

        The estimate is the method's point (:attr:`point`); sd and interval are over the draws
        (MAP: the Laplace draws; NaN for a single draw).  The noise scale ``sigma`` is a row
        when it was learned (NUTS), not for a plug-in scale.

        ``DataFrame.attrs`` holds ``problems``, ``method``, ``band`` and ``n_obs``.
        """
        import pandas as pd  # the one pandas use of the fit room: a table for people

        tail = (1.0 - interval) / 2.0
        extra = self.info.per_param()
        rows = []
        learned = {"sigma": self.sigma} if np.ptp(self.sigma) > 0 else {}  # a learned noise scale is a parameter
        for name, v in {**self.draws, **learned}.items():
            flat = np.asarray(v, dtype=float).reshape(-1)
            lo, hi = np.quantile(flat, [tail, 1.0 - tail]) if flat.size > 1 else (np.nan, np.nan)
            rows.append({"parameter": name, "estimate": self.point.get(name, float(np.median(flat))),
                         "sd": float(np.std(flat, ddof=1)) if flat.size > 1 else np.nan,
                         f"lo_{interval:.0%}": float(lo), f"hi_{interval:.0%}": float(hi),
                         **{k: float(d.get(name, np.nan)) for k, d in extra.items()}})
        table = pd.DataFrame(rows).set_index("parameter")
        table.attrs.update(problems=list(self.problems), method=self.method, band=self.band, n_obs=self.n_obs)
        return table

    def __repr__(self) -> str:
        point = ", ".join(f"{k}={v:.4g}" for k, v in self.point.items())
        state = "ok" if self.ok else f"{len(self.problems)} problem(s): {'; '.join(self.problems)}"
        chains, draws = self.shape
        return (f"Fit({self.law.name}, {self.method}, {self.n_obs} runs, {chains}x{draws} draws, {state}; "
                f"{point})")

    def _repr_html_(self) -> str:
        caption = f"{self.law.name} ({self.law.formula}) by {self.method} on {self.n_obs} runs"
        if self.problems:
            caption += " &mdash; <b>not trusted:</b> " + "; ".join(self.problems)
        return f"<p>{caption}</p>" + self.summary().to_html(float_format=lambda v: f"{v:.5g}")


# --------------------------------------------------------------------------- composition


def combine_stages(law: Law, first: Fit, second: Fit, data: Data | None) -> Fit:
    """One fit of the composed ``law`` from the fits of its two stages, whatever their methods.

    Draws are combined draw by draw: the two stage posteriors are independent, so any
    pairing is a joint draw; both are cut to the smaller count (a one-draw MAP stage is
    repeated).  The first stage's draws are paired in a fixed scrambled order
    (:func:`scrambled_order`): two MAP stages draw their Laplace bands from one fixed
    quasi-random design, and pairing those point for point would correlate the stages
    perfectly.  The layout is the second stage's when the counts match, else ``(1, n)``.
    The observation model is the second stage's (it predicts the target).
    """
    n1, n2 = first.n_draws, second.n_draws
    n = max(n1, n2) if min(n1, n2) == 1 else min(n1, n2)
    shape = second.shape if n == n2 else (first.shape if n == n1 else (1, n))
    def cut(v: np.ndarray, stage: Fit, order: np.ndarray) -> np.ndarray:
        flat = np.repeat(np.asarray(v).reshape(-1), n if stage.n_draws == 1 else 1)[:n]
        return flat[order].reshape(shape)

    orders = scrambled_order(n), np.arange(n)
    draws = {k: cut(v, stage, order) for stage, order in zip((first, second), orders) for k, v in stage.draws.items()}
    sigma = cut(second.sigma, second, orders[1])
    problems = tuple(f"stage {i}: {p}" for i, s in enumerate((first, second), 1) for p in s.problems)
    point = {**first.point, **second.point}
    methods = (first.method, second.method)
    return Fit(law=law, data=data, draws=draws, sigma=sigma, likelihood=second.likelihood,
               method=methods[0] if methods[0] == methods[1] else "+".join(methods),
               info=ComposedInfo(point=point, methods=methods, stages=(first.info, second.info)), problems=problems,
               fitter=None,
               parts=(first, second), seconds=first.seconds + second.seconds)


def scrambled_order(n: int) -> np.ndarray:
    """A fixed permutation of ``range(n)`` that looks random: the indices sorted by Knuth's multiplicative
    hash ``i * 2654435761 mod 2**32``.  No random numbers: the same ``n`` gives the same order.

    Pairing a quasi-random design with itself in this order leaves the pairs' coordinates
    as uncorrelated as a random pairing would (|r| < 0.1 at 1,000 draws).

    >>> scrambled_order(6).tolist()
    [0, 5, 2, 4, 1, 3]
    """
    i = np.arange(n, dtype=np.uint64)
    return np.argsort((i * np.uint64(2654435761)) % np.uint64(2**32), kind="stable")


def _stage_rows(fit: Fit, data: Data) -> list[Data]:
    """Each stage's own rows that appear (by source row label) in ``data``."""
    out = []
    for i, part in enumerate(fit.parts, 1):
        keep = part.data.rows_in(data.rows) if part.data is not None else np.zeros(0, bool)
        if part.data is None or not keep.any():
            raise ValueError(f"stage {i} of {fit.law.name!r} was fitted to its own table (no row of the new data "
                             "is among its rows); pass parts=(stage1_data, stage2_data)")
        out.append(part.data.select(keep))
    return out


def _refit_composed(fit: Fit, data: Data, *, key, warn: bool, parts: tuple[Data, ...] | None) -> Fit:
    parts = tuple(_stage_rows(fit, data)) if parts is None else parts
    keys = jax.random.split(key, len(fit.parts)) if key is not None else [None] * len(fit.parts)
    new = [part.refit(d, key=k, warn=warn) for part, d, k in zip(fit.parts, parts, keys)]
    return combine_stages(fit.law, new[0], new[1], data)


def warn_problems(fit: Fit, warn: bool) -> Fit:
    """Issue one ``RuntimeWarning`` naming the fit's problems (when ``warn``); return the fit.

    Called last by every fitter, under its :func:`~bayescale.fit.precision.float64` wrapper:
    the warning points at the user's call.
    """
    if warn and fit.problems:
        warnings.warn(f"{fit.method} fit of {fit.law.name!r}: {'; '.join(fit.problems)}", RuntimeWarning, stacklevel=4)
    return fit


def robust_scale(r: np.ndarray) -> float:
    """1.4826·MAD of residuals ``r`` (the Gaussian-consistent robust scale)."""
    r = np.asarray(r, dtype=float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan")
    return 1.4826 * float(np.median(np.abs(r - np.median(r))))


def map_info(fit: Fit) -> MapInfo:
    """The :class:`MapInfo` of a MAP fit (the start of a bootstrap or NUTS run)."""
    if not isinstance(fit.info, MapInfo):
        raise ValueError(f"map_fit must be a fit_map result, got a {fit.method} fit")
    return fit.info


def plug_in(point: Mapping[str, float], shape: tuple[int, int], scale: float):
    """Draws of one point repeated to ``shape``, and the plug-in noise scale there."""
    return ({n: np.full(shape, v) for n, v in point.items()},
            np.full(shape, scale if math.isfinite(scale) else np.nan), Gaussian(learned=False))
