"""Bands on what users decide with, written once for MAP, bootstrap and NUTS results.

Every fit result is read through :func:`draws_of` into one layout: the law's
parameters as ``(chain, draw)`` arrays (a MAP fit is one draw, a bootstrap one
chain of converged resamples, NUTS its chains), the observation scale ``sigma``
and the likelihood.  Everything below is a function of those draws:

* :func:`forecast` -- the *credible* band (uncertainty of the mean law) and the
  *predictive* band (plus observation noise: where a new run would land) at new
  covariates;
* :func:`optimal_bands` -- N*(C), D*(C), tokens per parameter and the loss at the
  optimum, for one law or a weighted validation mix of several fitted laws;
* :func:`compute_to_reach` -- the compute at which the law reaches a target value.

For MAP and bootstrap fits the observation noise is a plug-in: Gaussian in fit
space with the robust residual scale of the MAP fit (``MapResult.residual_scale``).
For NUTS it is the posterior of ``sigma`` under the fitted likelihood.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.allocation import Allocation, _check, mix_compute_optimal
from bayescale.bands import Band, band
from bayescale.law import Law
from bayescale.model import Gaussian, Likelihood
from bayescale.prediction import predict_fit_space

__all__ = ["Draws", "Forecast", "compute_to_reach", "draws_of", "forecast", "optimal_bands", "predictive_draws"]


@dataclasses.dataclass(frozen=True)
class Draws:
    """Parameter draws of one law, ``(chain, draw)``, with the observation model."""

    law: Law
    params: dict[str, np.ndarray]
    sigma: np.ndarray
    likelihood: Likelihood
    kind: str

    @property
    def shape(self) -> tuple[int, int]:
        return self.sigma.shape


def draws_of(result) -> Draws:
    """The draws of a :class:`MapResult`, :class:`BootstrapResult` or :class:`NutsResult`."""
    from bayescale.bootstrap import BootstrapResult
    from bayescale.nuts import NutsResult
    from bayescale.optimization import MapResult

    if isinstance(result, Draws):
        return result
    if isinstance(getattr(result, "draws", None), Draws):  # a SavedFit
        return result.draws
    if isinstance(result, NutsResult):
        return Draws(result.law, result.params, np.asarray(result.sigma), result.likelihood, "nuts")
    if isinstance(result, BootstrapResult):
        params = result.draws
        shape = next(iter(params.values())).shape
        sigma = np.full(shape, result.map.residual_scale)
        return Draws(result.law, params, sigma, Gaussian(), "bootstrap")
    if isinstance(result, MapResult):
        params = {n: np.full((1, 1), v) for n, v in result.params.items()}
        return Draws(result.law, params, np.full((1, 1), result.residual_scale), Gaussian(), "map")
    raise TypeError(f"expected a MapResult, BootstrapResult or NutsResult, got {type(result).__name__}")


@dataclasses.dataclass(frozen=True)
class Forecast:
    """Bands at new covariates ``x``; arrays have the broadcast shape of ``x``.

    ``estimate`` is the median of the credible band (for a MAP fit: the MAP
    prediction).  ``credible`` is the band of the mean law, ``predictive`` adds
    observation noise.
    """

    x: dict[str, np.ndarray]
    estimate: np.ndarray
    credible: Band
    predictive: Band
    kind: str
    discrepancy: object = None
    """The :class:`bayescale.backtest.Discrepancy` that widened ``predictive`` (None: the plain band)."""


_MIN_NOISE = 4000


@functools.partial(jax.jit, static_argnames=("likelihood", "law"))
def _noisy(law: Law, likelihood: Likelihood, key, mu, sigma, extra=None):
    """Observations drawn around ``mu`` (fit space); ``extra`` adds Normal(0, extra) (a law discrepancy)."""
    noise_free = jnp.zeros_like(mu)
    k_obs, k_extra = jax.random.split(key)
    z = likelihood.distribution(noise_free, sigma.reshape(sigma.shape + (1,) * (mu.ndim - sigma.ndim))).sample(k_obs)
    if extra is not None:
        z = z + extra.reshape((1,) * (mu.ndim - extra.ndim) + extra.shape) * jax.random.normal(k_extra, mu.shape)
    return law.response.from_fit(mu + z)


def fitted_data(result):
    """The :class:`~bayescale.Data` a result was fitted to (None if it does not carry it)."""
    for holder in (result, getattr(result, "map", None)):
        found = getattr(holder, "data", None)
        if found is not None and hasattr(found, "x"):
            return found
    return None


def forecast(result, x: Mapping[str, object], *, key, interval: float = 0.9, discrepancy=None) -> Forecast:
    """Credible and predictive bands of ``result`` at covariates ``x``.

    ``discrepancy`` (a :class:`bayescale.backtest.Discrepancy`, from backtests) widens the
    predictive band beyond the largest fitted run by the law's own expected error there: the
    calibrated band.  Without it the band is the plain (posterior-)predictive one.

    >>> import jax, numpy as np
    >>> from bayescale import laws, from_arrays, fit_map, forecast
    >>> C = np.logspace(18, 22, 9)
    >>> fit = fit_map(laws.power_law, from_arrays(laws.power_law, y=1.7 + 900.0 * C**-0.15, C=C))
    >>> f = forecast(fit, {"C": 1e24}, key=jax.random.key(0))
    >>> bool(f.predictive.lo <= f.estimate <= f.predictive.hi)
    True
    """
    mean, pred = predictive_draws(result, x, key=key, discrepancy=discrepancy)
    credible = band(mean, interval)
    d = draws_of(result)
    return Forecast(
        x={k: np.asarray(v, dtype=float) for k, v in x.items()},
        estimate=credible.median,
        credible=credible,
        predictive=band(pred, interval),
        kind=d.kind,
        discrepancy=discrepancy,
    )


def predictive_draws(result, x: Mapping[str, object], *, key, discrepancy=None) -> tuple[np.ndarray, np.ndarray]:
    """Draws of the mean law and of a new observation at ``x``, natural units, ``(chain, draw) + shape``.

    The predictive draws repeat the parameter draws so that at least 4,000 samples carry the
    noise (a MAP fit is one draw).  ``discrepancy`` as in :func:`forecast`.
    """
    d = draws_of(result)
    mu = predict_fit_space(d.law, d.params, x)  # (chain, draw) + shape
    # few draws (a MAP point, a short bootstrap): repeat them so that the noise
    # quantiles of the predictive band rest on at least _MIN_NOISE samples
    reps = -(-_MIN_NOISE // int(np.prod(d.shape)))
    extra = None
    if discrepancy is not None:
        data = fitted_data(result)
        if data is None or discrepancy.along not in data.x:
            raise ValueError(f"a discrepancy along {discrepancy.along!r} needs the result's fitted data "
                             f"(the largest fitted {discrepancy.along})")
        x_along = np.broadcast_to(np.asarray(x[discrepancy.along], dtype=float), mu.shape[2:])
        extra = jnp.asarray(discrepancy.scale(x_along, float(np.max(data.x[discrepancy.along]))))
    with jax.enable_x64(True):
        mean = np.asarray(d.law.response.from_fit(jnp.asarray(mu)))
        pred = np.asarray(_noisy(d.law, d.likelihood, key, jnp.asarray(np.repeat(mu, reps, axis=1)),
                                 jnp.asarray(np.repeat(d.sigma, reps, axis=1)), extra))
    return mean, pred


def _paired(results: Sequence) -> list[Draws]:
    """Draws of several results cut to a common number of (flattened) draws."""
    ds = [draws_of(r) for r in results]
    n = min(int(np.prod(d.shape)) for d in ds)
    out = []
    for d in ds:
        params = {k: np.asarray(v).reshape(-1)[:n][None, :] for k, v in d.params.items()}
        out.append(dataclasses.replace(d, params=params, sigma=np.asarray(d.sigma).reshape(-1)[:n][None, :]))
    return out


def optimal_bands(
    result,
    compute,
    *,
    interval: float = 0.9,
    mix: Sequence[tuple[object, float]] | None = None,
    flops_per_token_param: float = 6.0,
) -> tuple[Allocation, dict[str, Band]]:
    """N*, D*, tokens per parameter and loss at the optimum, with bands.

    ``result`` is one fit of a law of ``N`` and ``D``; or pass ``mix`` as
    ``[(result, weight), ...]`` (and ``result=None``) for the optimum of a weighted
    validation mix.  Draws of separate fits are paired by index (they are
    independent, so any pairing is a valid joint draw).  Returns the allocation
    for every draw, laid out ``(chain, draw) + shape of compute``, and a band per
    quantity.
    """
    if mix is None:
        mix = [(result, 1.0)]
    elif result is not None:
        raise ValueError("give either result or mix, not both")
    ds = _paired([r for r, _ in mix]) if len(mix) > 1 else [draws_of(mix[0][0])]
    alloc = mix_compute_optimal(
        [(d.law, d.params, float(w)) for d, (_, w) in zip(ds, mix)],
        compute,
        flops_per_token_param=flops_per_token_param,
    )
    bands = {
        name: band(getattr(alloc, name), interval) for name in ("N", "D", "tokens_per_param", "loss")
    }
    return alloc, bands


# --------------------------------------------------------------------------- compute to reach a target

_LOG_C_RANGE = (np.log(1e12), np.log(1e32))
_BISECTIONS = 100


@functools.partial(jax.jit, static_argnames=("law", "flops_per_token_param"))
def _reach(law: Law, params, target, flops_per_token_param: float):
    from bayescale.allocation import _optimum

    frontier = set(law.covariate_names) == {"N", "D"}

    def value(log_c):  # the law's cost (loss, or error rate 1 - Q) at the best allocation of C
        if frontier:
            _, cost, _ = _optimum((law,), (params,), jnp.ones(1), log_c, flops_per_token_param)
            return cost
        return law.response.cost(law.predict(params, {"C": jnp.exp(log_c)}))

    target = law.response.cost(target)

    lo, hi = jnp.asarray(_LOG_C_RANGE[0]), jnp.asarray(_LOG_C_RANGE[1])
    v_lo, v_hi = value(lo), value(hi)
    falling = v_hi < v_lo  # a cost falls with compute (unless the law says otherwise)
    reached = jnp.where(falling, v_hi <= target, v_hi >= target)
    already = jnp.where(falling, v_lo <= target, v_lo >= target)

    def step(_, bracket):
        a, b = bracket
        m = 0.5 * (a + b)
        vm = value(m)
        past = jnp.where(falling, vm <= target, vm >= target)
        return jnp.where(past, a, m), jnp.where(past, m, b)

    a, b = jax.lax.fori_loop(0, _BISECTIONS, step, (lo, hi))
    log_c = jnp.where(already, lo, 0.5 * (a + b))
    return jnp.where(reached, jnp.exp(log_c), jnp.inf)


def compute_to_reach(result_or_law, target: float, *, params=None, interval: float = 0.9,
                     flops_per_token_param: float = 6.0):
    """The compute C at which the law reaches ``target`` (a loss or an accuracy).

    For a law of ``C`` this solves ``law(C) = target``; for a law of ``N`` and ``D``
    it follows the compute-optimal frontier (the least compute that reaches the
    target).  Draws that never reach the target below 1e32 FLOPs give ``inf``
    (counted in the band: an upper bound of ``inf`` means "maybe never").

    Pass a fit result (returns ``(values (chain, draw), Band)``) or a law with
    ``params=`` (returns the values).

    >>> from bayescale import laws
    >>> p = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
    >>> f"{float(compute_to_reach(laws.chinchilla, 2.0, params=p)):.3g}"
    '2.43e+23'
    """
    if isinstance(result_or_law, Law):
        law = result_or_law
        if params is None:
            raise ValueError("give params= with a law")
        p = params
    else:
        d = draws_of(result_or_law)
        law, p = d.law, d.params
    names = set(law.covariate_names)
    if names == {"N", "D"}:
        _check(law)
    elif names != {"C"}:
        raise ValueError(f"law {law.name!r} reads {law.covariate_names}; compute_to_reach needs a law of C or of N and D")
    if not np.isfinite(target):
        raise ValueError(f"target must be finite, got {target}")
    with jax.enable_x64(True):
        arrays = {n: jnp.asarray(p[n], dtype=jnp.float64) for n in law.params}
        shape = jnp.broadcast_shapes(*(v.shape for v in arrays.values()))
        flat = {n: jnp.broadcast_to(v, shape).reshape(-1) for n, v in arrays.items()}
        out = jax.vmap(lambda q: _reach(law, q, jnp.asarray(float(target)), flops_per_token_param))(flat)
        values = np.asarray(out).reshape(shape)
    if isinstance(result_or_law, Law):
        return values
    return values, band(values, interval)
