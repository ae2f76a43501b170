"""Posterior draws by NUTS over the law's NumPyro model (:mod:`bayescale.model`).

The recipe, for any law:

1. the MAP fit (:func:`bayescale.fit_map`, Huber objective) gives a point; the
   robust scale of its residuals (1.4826·MAD) starts ``sigma``;
2. from there L-BFGS finds the mode of the model's log density in the
   *unconstrained* space NumPyro samples in (the posterior mode, priors
   included), and the inverse Hessian there is the Laplace covariance;
3. NUTS samples ``w`` with ``u = mode + L·w`` (``L`` the Cholesky factor of the
   Laplace covariance): an affine reparameterisation, so the Jacobian is
   constant, under which the Laplace approximation is a standard normal.
   Scaling-law posteriors are strongly correlated and badly scaled (``log A`` and
   ``alpha`` of a power law in compute correlate at -0.99 and differ in scale by
   100x); whitened, they are near-isotropic, which keeps divergences rare and lets
   the dense metric adaptation start from the right scale.  Every chain starts at
   its own draw from the Laplace approximation;
4. NUTS (NumPyro) with chains vectorised on one device, or one chain per device
   when there are enough devices.

R-hat (rank-normalised), bulk and tail ESS (ArviZ), divergences and tree-depth
hits are computed for every fit; :attr:`NutsResult.ok` is ``False`` and a
``RuntimeWarning`` is issued when R-hat > 1.01, any bulk ESS < 100·chains, or
more than 1 % of transitions diverged.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.hmc import hmc
from numpyro.infer.util import potential_energy

from bayescale.data import Data
from bayescale.law import Law
from bayescale.model import Likelihood, StudentT, model, pointwise_log_likelihood
from bayescale.optimization import MapResult, Solver, _lbfgs, fit_map

__all__ = ["NutsResult", "fit_nuts"]


@dataclasses.dataclass(frozen=True)
class NutsResult:
    """Posterior draws of one law.

    Attributes
    ----------
    draws:
        ``name -> (chain, draw)`` natural parameters (the law's, plus ``sigma``).
    log_likelihood:
        ``(chain, draw, n)`` pointwise log density of each observation in
        natural units (see :func:`bayescale.model.pointwise_log_likelihood`).
    mode:
        The posterior mode in unconstrained space, mapped to natural parameters.
    map:
        The Huber MAP fit it started from.
    """

    law: Law
    likelihood: Likelihood
    data: Data
    draws: dict[str, np.ndarray]
    log_likelihood: np.ndarray
    mode: dict[str, float]
    map: MapResult
    divergences: int
    tree_depth_hits: int
    r_hat: dict[str, float]
    ess_bulk: dict[str, float]
    ess_tail: dict[str, float]
    chains: int
    warmup: int
    n_draws: int
    max_tree_depth: int
    seconds: float
    step_size: float
    target_accept: float = 0.95
    parts: tuple = ()

    @property
    def n_obs(self) -> int:
        return self.data.n

    @property
    def sigma(self) -> np.ndarray:
        return self.draws["sigma"]

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The law's parameters only, ``(chain, draw)``."""
        return {n: self.draws[n] for n in self.law.params}

    @property
    def r_hat_max(self) -> float:
        return max(self.r_hat.values())

    @property
    def ess_bulk_min(self) -> float:
        return min(self.ess_bulk.values())

    @property
    def ess_tail_min(self) -> float:
        return min(self.ess_tail.values())

    @property
    def divergent_fraction(self) -> float:
        return self.divergences / (self.chains * self.n_draws)

    @property
    def problems(self) -> list[str]:
        """Why the draws should not be trusted (empty when they can be)."""
        out = []
        if not np.isfinite(self.r_hat_max) or self.r_hat_max > 1.01:
            out.append(f"R-hat {self.r_hat_max:.3f} > 1.01")
        if not np.isfinite(self.ess_bulk_min) or self.ess_bulk_min < 100 * self.chains:
            out.append(f"bulk ESS {self.ess_bulk_min:.0f} < {100 * self.chains}")
        if self.divergent_fraction > 0.01:
            out.append(f"{self.divergences} divergent transitions ({100 * self.divergent_fraction:.1f} % > 1 %)")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def diagnostics(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "r_hat_max": self.r_hat_max,
            "ess_bulk_min": self.ess_bulk_min,
            "ess_tail_min": self.ess_tail_min,
            "divergences": self.divergences,
            "tree_depth_hits": self.tree_depth_hits,
            "chains": self.chains,
            "warmup": self.warmup,
            "draws": self.n_draws,
            "step_size": self.step_size,
            "likelihood": self.likelihood.describe(),
            "map_converged": self.map.converged,
        }

    def std(self) -> dict[str, float]:
        return {n: float(np.std(v)) for n, v in self.params.items()}

    def predict(self, **x: np.ndarray) -> np.ndarray:
        """Posterior draws of the mean prediction, ``(chain, draw) + shape of x``."""
        from bayescale.prediction import predict

        return predict(self.law, self.params, x)


def _sigma_start(map_fit: MapResult) -> float:
    scale = map_fit.residual_scale
    return scale if np.isfinite(scale) and scale > 1e-8 else 1e-2


def _names(law: Law) -> tuple[str, ...]:
    """Sample sites in the order NumPyro flattens them (sorted)."""
    return tuple(sorted((*law.params, "sigma")))


def _potential(law: Law, likelihood: Likelihood, x, z, u_flat):
    """Negative log joint density in unconstrained space (Jacobians included)."""
    names = _names(law)
    return potential_energy(model, (law, likelihood, x, z), {}, {n: u_flat[i] for i, n in enumerate(names)})


@functools.partial(jax.jit, static_argnames=("law", "likelihood", "solver"))
def _laplace(law: Law, likelihood: Likelihood, solver: Solver, x, z, u0):
    """Posterior mode (unconstrained) from ``u0`` and the inverse Hessian there."""

    def f(v):
        return _potential(law, likelihood, x, z, v)

    u, _, _, _, ok = _lbfgs(f, u0, solver)
    hess = jax.hessian(f)(u)
    cov = jnp.linalg.inv(0.5 * (hess + hess.T))
    return u, cov, ok


class _Progress:
    """Prints ``NUTS: i/total`` on stderr at every tenth of the run (once, whatever the chains)."""

    def __init__(self, total: int):
        self.total = total

    def __call__(self, i) -> None:
        import sys

        i = int(np.max(np.asarray(i))) + 1
        if i % max(1, self.total // 10) == 0 or i == self.total:
            print(f"  NUTS: iteration {i}/{self.total}", file=sys.stderr, flush=True)

    def __eq__(self, other):
        return isinstance(other, _Progress) and other.total == self.total

    def __hash__(self):
        return hash(("progress", self.total))


@functools.partial(
    jax.jit,
    static_argnames=("law", "likelihood", "warmup", "draws", "target_accept", "max_tree_depth", "parallel",
                     "progress"),
)
def _chains(law: Law, likelihood: Likelihood, keys, w0, x, z, mode, chol, *, warmup: int, draws: int,
            target_accept: float, max_tree_depth: int, parallel: bool, progress: bool):
    """NUTS chains on ``w`` with ``u = mode + chol·w`` (affine: constant Jacobian).

    One compiled program per (law, likelihood, settings, data shape): the data, the
    mode and the whitening factor are arguments, so fitting new data of the same
    shape -- a calibration study, a leave-future-out refit -- does not compile again.
    Returns draws ``(chain, draw, P)``, divergences and tree sizes per draw, and
    the adapted step size of each chain.
    """

    def potential(w):
        return _potential(law, likelihood, x, z, mode + chol @ w)

    init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")

    def one_chain(key, w_init):
        state = init_kernel(w_init, warmup, dense_mass=True, target_accept_prob=target_accept,
                            max_tree_depth=max_tree_depth, rng_key=key)

        def step(s, i):
            s = sample_kernel(s)
            if progress:
                jax.debug.callback(_Progress(warmup + draws), i)
            return s, (s.z, s.diverging, s.num_steps)

        state, (w, diverging, num_steps) = jax.lax.scan(step, state, jnp.arange(warmup + draws))
        return w[warmup:], diverging[warmup:], num_steps[warmup:], state.adapt_state.step_size

    if parallel:
        return jax.pmap(one_chain)(keys, w0)
    return jax.vmap(one_chain)(keys, w0)


def fit_nuts(
    law: Law,
    data: Data,
    *,
    key,
    likelihood: Likelihood = StudentT(),
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    target_accept: float = 0.95,
    max_tree_depth: int = 10,
    map_fit: MapResult | None = None,
    chain_method: str | None = None,
    progress: bool = False,
) -> NutsResult:
    """Sample the posterior of ``law`` on ``data`` by NUTS (float64).

    Parameters
    ----------
    law, data:
        What to fit; the priors are the law's (override with :meth:`Law.with_priors`).
    key:
        A JAX PRNG key.
    likelihood:
        :class:`~bayescale.model.StudentT` (default), :class:`~bayescale.model.Gaussian`
        or :class:`~bayescale.model.HuberLikelihood`.
    chains, warmup, draws:
        Chains and iterations per chain.
    target_accept:
        Target acceptance probability of the step-size adaptation.
    map_fit:
        A :func:`fit_map` result to start from (fitted here if absent).
    chain_method:
        ``"vectorized"`` (all chains in one ``vmap`` on one device) or ``"parallel"``
        (one chain per device); default: parallel when there are at least ``chains``
        devices.

    Returns
    -------
    NutsResult
        Diagnostics included; never raises for a bad chain: :attr:`NutsResult.ok`
        says so and a ``RuntimeWarning`` is issued.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from bayescale import laws, from_arrays, fit_nuts
    >>> C = np.logspace(18, 22, 12)
    >>> y = 900.0 * C**-0.15 * np.exp(0.01 * np.sin(np.arange(12)))
    >>> post = fit_nuts(laws.pure_power_law, from_arrays(laws.pure_power_law, y=y, C=C),
    ...                 key=jax.random.key(0), chains=2, warmup=500, draws=1000)
    >>> round(float(np.median(post.draws["alpha"])), 2), post.divergences
    (0.15, 0)
    """
    t0 = time.perf_counter()
    if chains < 1 or warmup < 1 or draws < 1:
        raise ValueError(f"chains, warmup and draws must be positive, got {chains}, {warmup}, {draws}")
    if map_fit is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            map_fit = fit_map(law, data)
    if chain_method is None:
        chain_method = "parallel" if jax.local_device_count() >= chains > 1 else "vectorized"
    with jax.enable_x64(True):
        x = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in data.x.items()}
        z = law.response.to_fit(jnp.asarray(data.y, dtype=jnp.float64))
        _, k_jitter, k_run = jax.random.split(key, 3)
        start = dict(map_fit.params, sigma=_sigma_start(map_fit))
        names = _names(law)
        u_start = _unconstrained(law, likelihood, start)
        u0 = jnp.stack([u_start[n] for n in names])
        mode_u, cov, _ = _laplace(law, likelihood, Solver(max_steps=500), x, z, u0)
        cov = jnp.where(jnp.all(jnp.isfinite(cov)), cov, jnp.diag(jnp.full(mode_u.shape, 1e-4)))
        chol = jnp.linalg.cholesky(cov)
        chol = jnp.where(jnp.all(jnp.isfinite(chol)), chol, jnp.diag(jnp.full(mode_u.shape, 1e-2)))
        w0 = jax.random.normal(k_jitter, (chains, mode_u.shape[0]))
        w, diverging, num_steps, step_sizes = _chains(
            law, likelihood, jax.random.split(k_run, chains), w0, x, z, mode_u, chol, warmup=warmup, draws=draws,
            target_accept=float(target_accept), max_tree_depth=max_tree_depth,
            parallel=chain_method == "parallel", progress=bool(progress),
        )
        u = mode_u[None, None, :] + jnp.einsum("cdj,ij->cdi", w, chol)
        natural = _constrain(law, likelihood, unflat_draws(names, u))
        out = {n: np.asarray(natural[n]) for n in (*law.params, "sigma")}
        loglik = np.asarray(
            pointwise_log_likelihood(law, likelihood, {n: out[n] for n in law.params}, out["sigma"], x, data.y)
        )
        mode = {n: float(v) for n, v in _constrain(law, likelihood, unflat_draws(names, mode_u)).items()}
        step_size = float(jnp.mean(step_sizes))
    num_steps = np.asarray(num_steps)
    divergences = int(np.sum(np.asarray(diverging)))
    depth_hits = int(np.sum(num_steps >= 2**max_tree_depth - 1))
    r_hat, ess_bulk, ess_tail = _convergence(out)
    result = NutsResult(
        law=law,
        likelihood=likelihood,
        data=data,
        draws=out,
        log_likelihood=loglik,
        mode=mode,
        map=map_fit,
        divergences=divergences,
        tree_depth_hits=depth_hits,
        r_hat=r_hat,
        ess_bulk=ess_bulk,
        ess_tail=ess_tail,
        chains=chains,
        warmup=warmup,
        n_draws=draws,
        max_tree_depth=max_tree_depth,
        seconds=time.perf_counter() - t0,
        step_size=step_size,
        target_accept=target_accept,
    )
    if not result.ok:
        warnings.warn(f"NUTS fit of {law.name!r}: {'; '.join(result.problems)}", RuntimeWarning, stacklevel=2)
    return result


def unflat_draws(names, u):
    return {n: u[..., i] for i, n in enumerate(names)}


def _unconstrained(law: Law, likelihood: Likelihood, natural: dict) -> dict:
    from numpyro.distributions.transforms import biject_to

    priors = dict(zip(law.params, law.priors), sigma=likelihood.scale)
    theta = jnp.stack([jnp.asarray(natural[n], dtype=jnp.float64) for n in law.params])
    u = law.unconstrain(theta)
    out = {n: u[i] for i, n in enumerate(law.params)}
    out["sigma"] = biject_to(priors["sigma"].support).inv(jnp.asarray(natural["sigma"], dtype=jnp.float64))
    return out


def _constrain(law: Law, likelihood: Likelihood, u: dict) -> dict:
    from numpyro.distributions.transforms import biject_to

    priors = dict(zip(law.params, law.priors), sigma=likelihood.scale)
    return {n: biject_to(priors[n].support)(u[n]) for n in (*law.params, "sigma")}


def _convergence(draws: dict[str, np.ndarray]):
    import arviz_stats
    import xarray as xr

    ds = xr.Dataset({n: (("chain", "draw"), v) for n, v in draws.items()})
    r_hat = arviz_stats.rhat(ds)
    bulk = arviz_stats.ess(ds, method="bulk")
    tail = arviz_stats.ess(ds, method="tail")
    names = list(draws)
    return (
        {n: float(r_hat[n]) for n in names},
        {n: float(bulk[n]) for n in names},
        {n: float(tail[n]) for n in names},
    )
