"""The probabilistic definition of a fit: a NumPyro model generated from a law.

For a :class:`~bayescale.law.Law` with parameters ``theta`` and an observation
likelihood with scale ``sigma`` (both in the law's fit space, see
:mod:`bayescale.law`)::

    theta_j ~ law.priors[j]                  (overridable: Law.with_priors)
    sigma   ~ likelihood.scale               (LogNormal(-3, 1): median 0.05 in fit space)
    z_i | theta, sigma ~ likelihood(law.fn(theta, x_i), sigma)      i in plate "obs"

``z = response.to_fit(y)`` (``log L`` for a loss, ``log(-log Q')`` for a
chance-normalised accuracy).  Observations sit in a plate, so a pointwise
log-likelihood exists for every draw; :func:`pointwise_log_likelihood` reports it
on the scale of ``y`` (the fit-space density plus ``log |dz/dy|``), so laws with
different responses (a direct accuracy law and a two-stage law) are compared on
the same footing.

Three likelihoods share one small interface (``distribution(mu, sigma)``):

* :class:`Gaussian` -- least squares in fit space with a learned scale;
* :class:`StudentT` -- heavy tails (``df = 4`` by default), robust to the odd
  bad run; the default for NUTS;
* :class:`HuberLikelihood` -- density ``∝ exp(-huber_k(r/sigma))``: at a fixed
  ``sigma`` its mode is the Huber MAP of :class:`bayescale.Huber` with
  ``delta = k·sigma``, so it is the probabilistic reading of the papers' objective.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import ndtr
from numpyro.distributions import constraints

from bayescale.laws import Law

__all__ = [
    "Gaussian",
    "HuberLikelihood",
    "StudentT",
    "Likelihood",
    "log_abs_dz_dy",
    "means",
    "model",
    "observe",
    "pointwise_log_likelihood",
]

_DEFAULT_SCALE = dist.LogNormal(-3.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """``z ~ Normal(mu, sigma)``; ``scale`` is the prior on ``sigma`` (fit space).

    ``learned=False`` marks the plug-in noise of MAP and bootstrap fits (sigma fixed at the
    MAP fit's robust residual scale, not sampled).
    """

    scale: dist.Distribution = _DEFAULT_SCALE
    learned: bool = True

    def distribution(self, mu, sigma):
        return dist.Normal(mu, sigma)

    def describe(self) -> str:
        how = "learned scale" if self.learned else "plug-in scale (the MAP fit's robust residual scale)"
        return f"Gaussian in fit space, {how}"


@dataclasses.dataclass(frozen=True)
class StudentT:
    """``z ~ StudentT(df, mu, sigma)`` with fixed ``df`` (default 4)."""

    df: float = 4.0
    scale: dist.Distribution = _DEFAULT_SCALE

    def distribution(self, mu, sigma):
        return dist.StudentT(self.df, mu, sigma)

    def describe(self) -> str:
        return f"Student-t (df={self.df:g}) in fit space, learned scale"


@dataclasses.dataclass(frozen=True)
class HuberLikelihood:
    """Density ``exp(-huber_k((z - mu)/sigma)) / (sigma·Z(k))``.

    ``huber_k(t) = t²/2`` for ``|t| <= k`` and ``k·|t| - k²/2`` beyond (Gaussian
    centre, Laplace tails); ``Z(k) = sqrt(2π)(2Φ(k) - 1) + 2·exp(-k²/2)/k``.
    ``k = 1.345`` is Huber's 95 %-efficiency choice.
    """

    k: float = 1.345
    scale: dist.Distribution = _DEFAULT_SCALE

    def distribution(self, mu, sigma):
        return _Huber(mu, sigma, self.k)

    def describe(self) -> str:
        return f"Huber-shaped (k={self.k:g}) in fit space, learned scale"


Likelihood = Gaussian | StudentT | HuberLikelihood


class _Huber(dist.Distribution):
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    reparametrized_params = ["loc", "scale"]

    def __init__(self, loc, scale, k, *, validate_args=None):
        self.loc, self.scale = jnp.broadcast_arrays(jnp.asarray(loc), jnp.asarray(scale))
        self.k = float(k)
        centre = math.sqrt(2 * math.pi) * (2 * float(ndtr(self.k)) - 1)
        tails = 2 * math.exp(-0.5 * self.k**2) / self.k
        self._log_z = math.log(centre + tails)
        self._p_centre = centre / (centre + tails)
        super().__init__(batch_shape=jnp.shape(self.loc), validate_args=validate_args)

    def log_prob(self, value):
        t = jnp.abs((value - self.loc) / self.scale)
        rho = jnp.where(t <= self.k, 0.5 * t * t, self.k * t - 0.5 * self.k**2)
        return -rho - jnp.log(self.scale) - self._log_z

    def sample(self, key, sample_shape=()):
        shape = sample_shape + self.batch_shape
        k_region, k_centre, k_tail, k_sign = jax.random.split(key, 4)
        centre = dist.TruncatedNormal(0.0, 1.0, low=-self.k, high=self.k).sample(k_centre, shape)
        tail = self.k + jax.random.exponential(k_tail, shape) / self.k
        sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0)
        t = jnp.where(jax.random.uniform(k_region, shape) < self._p_centre, centre, sign * tail)
        return self.loc + self.scale * t


def model(law: Law, likelihood: Likelihood, x, z=None, n: int | None = None):
    """The NumPyro model of ``law`` (see the module docstring).

    ``x`` maps covariate names to ``(n,)`` arrays; ``z`` is the observed response
    in fit space, or ``None`` to draw from the prior predictive.
    """
    theta = {name: numpyro.sample(name, prior) for name, prior in zip(law.params, law.priors)}
    sigma = numpyro.sample("sigma", likelihood.scale)
    mu = law.fn(theta, x)
    size = mu.shape[-1] if n is None else n
    mu = jnp.broadcast_to(mu, (size,))
    numpyro.deterministic("mu", mu)
    with numpyro.plate("obs", size):
        numpyro.sample("z", likelihood.distribution(mu, sigma), obs=z)


def log_abs_dz_dy(law: Law, y):
    """``log |dz/dy|`` of the response's fit-space map, elementwise."""
    grad = jax.vmap(jax.grad(lambda v: law.response.to_fit(v)))(jnp.ravel(jnp.asarray(y, dtype=float)))
    return jnp.log(jnp.abs(grad)).reshape(jnp.shape(y))


def pointwise_log_likelihood(law: Law, likelihood: Likelihood, params, sigma, x, y):
    """Log density of each observation ``y_i`` (natural units) under each draw.

    ``params`` maps names to arrays of draws of one leading shape (e.g. ``(chain,
    draw)``), ``sigma`` has that shape; the result is ``leading + (n,)``.
    """
    y = jnp.asarray(y, dtype=float)
    z = law.response.to_fit(y)
    jac = log_abs_dz_dy(law, y)
    mu = means(law, params, x)
    scale = jnp.broadcast_to(jnp.asarray(sigma)[..., None], mu.shape)
    return likelihood.distribution(mu, scale).log_prob(jnp.broadcast_to(z, mu.shape)) + jnp.broadcast_to(jac, mu.shape)


def means(law: Law, params, x):
    """Fit-space predictions ``lead + (n,)`` of the draws ``params`` (any common leading shape) at ``x``."""
    lead = jnp.shape(next(iter(params.values())))
    flat = {k: jnp.reshape(jnp.asarray(params[k]), (-1,)) for k in law.params}
    shape = jnp.broadcast_shapes(*(jnp.shape(v) for v in x.values()))
    mu = jax.vmap(lambda p: jnp.broadcast_to(law.fn(p, x), shape))(flat)
    return mu.reshape(lead + mu.shape[1:])


@functools.partial(jax.jit, static_argnames=("likelihood", "law"))
def observe(law: Law, likelihood: Likelihood, key, mu, sigma, extra=None):
    """New observations (natural units) around fit-space means ``mu`` ``(chain, draw) + shape``.

    ``sigma`` has the leading ``(chain, draw)`` shape; ``extra`` (``mu``'s shape), when given,
    is added in fit space: draws of a law discrepancy beyond the fitted runs.
    """
    noise_free = jnp.zeros_like(mu)
    z = likelihood.distribution(noise_free, sigma.reshape(sigma.shape + (1,) * (mu.ndim - sigma.ndim))).sample(key)
    if extra is not None:
        z = z + extra
    return law.response.from_fit(mu + z)
