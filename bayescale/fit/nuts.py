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

R-hat (rank-normalised), bulk and tail ESS (:mod:`bayescale.fit.diagnostics`),
divergences and tree-depth hits are computed for every fit; the fit's ``problems``
name it (and ``warn=True`` issues a ``RuntimeWarning``) when R-hat > 1.01, any bulk
ESS < 100·chains, or more than 1 % of transitions diverged.
"""

from __future__ import annotations

import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc
from numpyro.infer.util import potential_energy

from bayescale.fit.data import Data
from bayescale.fit.diagnostics import ess_bulk, ess_tail, rhat
from bayescale.fit.lbfgs import ParallelLbfgs, Solver, minimize
from bayescale.fit.map import fit_arrays, fit_map
from bayescale.fit.model import Likelihood, StudentT, model
from bayescale.fit.precision import float64
from bayescale.fit.result import Fit, Fitter, NutsInfo, map_info, warn_problems
from bayescale.laws import Law

__all__ = ["fit_nuts", "nuts_problems"]


def _sigma_start(map_fit: Fit) -> float:
    scale = map_info(map_fit).residual_scale
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

    u, _, _, _, ok = minimize(f, u0, solver)
    hess = jax.hessian(f)(u)
    cov = jnp.linalg.inv(0.5 * (hess + hess.T))
    return u, cov, ok


class _Progress:
    """Prints ``NUTS: i/total`` on stderr at every tenth of the run (once, whatever the chains)."""

    def __init__(self, total: int):
        self.total = total

    def __call__(self, i) -> None:
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


@float64
def fit_nuts(law: Law, data: Data, *, key: jax.Array, likelihood: Likelihood = StudentT(), chains: int = 4,
             warmup: int = 1000, draws: int = 1000, target_accept: float = 0.95, max_tree_depth: int = 10,
             map_fit: Fit | None = None, chain_method: str | None = None, progress: bool = False,
             warn: bool = True) -> Fit:
    """Sample the posterior of ``law`` on ``data`` by NUTS (float64).

    Parameters
    ----------
    law, data:
        What to fit; the priors are the law's (override with :meth:`Law.with_priors`).
    key:
        A JAX PRNG key.
    likelihood:
        :class:`~bayescale.fit.model.StudentT` (default), :class:`~bayescale.fit.model.Gaussian`
        or :class:`~bayescale.fit.model.HuberLikelihood`.
    chains, warmup, draws:
        Chains and iterations per chain.
    target_accept:
        Target acceptance probability of the step-size adaptation.
    map_fit:
        A :func:`fit_map` result to start from (fitted here if absent).
    chain_method:
        ``"vectorized"`` (one ``vmap`` on one device) or ``"parallel"`` (a chain per
        device); default: parallel when there are at least ``chains`` devices.
    warn:
        Issue a ``RuntimeWarning`` when the chains have problems.

    Returns
    -------
    Fit
        Draws ``(chains, draws)``; :class:`~bayescale.fit.NutsInfo` (R-hat, ESS,
        divergences, the posterior mode) in ``info``.  Never raises for a bad chain:
        ``problems`` says so.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from bayescale import laws, from_arrays, fit_nuts
    >>> C = np.logspace(18, 22, 12)
    >>> y = 900.0 * C**-0.15 * np.exp(0.01 * np.sin(np.arange(12)))
    >>> post = fit_nuts(laws.pure_power_law, from_arrays(laws.pure_power_law, y=y, C=C),
    ...                 key=jax.random.key(0), chains=2, warmup=500, draws=1000)
    >>> round(float(np.median(post.draws["alpha"])), 2), post.info.divergences
    (0.15, 0)
    """
    t0 = time.perf_counter()
    if chains < 1 or warmup < 1 or draws < 1:
        raise ValueError(f"chains, warmup and draws must be positive, got {chains}, {warmup}, {draws}")
    map_fit = map_fit if map_fit is not None else fit_map(law, data, warn=False)
    method = chain_method or ("parallel" if jax.local_device_count() >= chains > 1 else "vectorized")
    x, z = fit_arrays(law, data)
    _, k_jitter, k_run = jax.random.split(key, 3)
    names = _names(law)
    mode_u, chol = _whitening(law, likelihood, map_fit, x, z)
    w0 = jax.random.normal(k_jitter, (chains, mode_u.shape[0]))
    w, diverging, num_steps, step_sizes = _chains(
        law, likelihood, jax.random.split(k_run, chains), w0, x, z, mode_u, chol, warmup=warmup, draws=draws,
        target_accept=float(target_accept), max_tree_depth=max_tree_depth,
        parallel=method == "parallel", progress=bool(progress),
    )
    u = mode_u[None, None, :] + jnp.einsum("cdj,ij->cdi", w, chol)
    natural = {n: np.asarray(v) for n, v in _constrain(law, likelihood, _unflat(names, u)).items()}
    info = _info(law, likelihood, map_fit, natural, mode_u, (diverging, num_steps, step_sizes), chains=chains,
                 warmup=warmup, draws=draws, max_tree_depth=max_tree_depth)
    fitter = Fitter.of(fit_nuts, likelihood=likelihood, chains=chains, warmup=warmup, draws=draws,
                       target_accept=target_accept, max_tree_depth=max_tree_depth, chain_method=chain_method,
                       progress=progress)
    fit = Fit(law=law, data=data, draws={n: natural[n] for n in law.params}, sigma=natural["sigma"],
              likelihood=likelihood, method="nuts", info=info, problems=nuts_problems(info), fitter=fitter,
              seconds=time.perf_counter() - t0)
    return warn_problems(fit, warn)


def _info(law: Law, likelihood: Likelihood, map_fit: Fit, natural: dict, mode_u, sampler: tuple, *, chains: int,
          warmup: int, draws: int, max_tree_depth: int) -> NutsInfo:
    """The chains' diagnostics: R-hat and ESS per site, divergences, tree-depth hits, the mode."""
    diverging, num_steps, step_sizes = sampler
    return NutsInfo(
        point={n: float(np.median(natural[n])) for n in law.params},
        mode={n: float(v) for n, v in _constrain(law, likelihood, _unflat(_names(law), mode_u)).items()},
        map=map_info(map_fit), chains=chains, warmup=warmup, draws=draws,
        divergences=int(np.sum(np.asarray(diverging))),
        tree_depth_hits=int(np.sum(np.asarray(num_steps) >= 2**max_tree_depth - 1)),
        r_hat={n: rhat(v) for n, v in natural.items()}, ess_bulk={n: ess_bulk(v) for n, v in natural.items()},
        ess_tail={n: ess_tail(v) for n, v in natural.items()}, step_size=float(jnp.mean(step_sizes)),
    )


def _whitening(law: Law, likelihood: Likelihood, map_fit: Fit, x, z):
    """The posterior mode (unconstrained) and the Cholesky factor of its Laplace covariance, from the MAP point."""
    names = _names(law)
    u_start = _unconstrained(law, likelihood, dict(map_fit.point, sigma=_sigma_start(map_fit)))
    mode_u, cov, _ = _laplace(law, likelihood, ParallelLbfgs(max_steps=500), x, z,
                              jnp.stack([u_start[n] for n in names]))
    cov = jnp.where(jnp.all(jnp.isfinite(cov)), cov, jnp.diag(jnp.full(mode_u.shape, 1e-4)))
    chol = jnp.linalg.cholesky(cov)
    return mode_u, jnp.where(jnp.all(jnp.isfinite(chol)), chol, jnp.diag(jnp.full(mode_u.shape, 1e-2)))


def nuts_problems(info: NutsInfo) -> tuple[str, ...]:
    """Why NUTS draws should not be trusted: R-hat > 1.01, bulk ESS < 100 per chain, > 1 % divergent."""
    out = []
    r_hat, ess = max(info.r_hat.values()), min(info.ess_bulk.values())
    if not np.isfinite(r_hat) or r_hat > 1.01:
        out.append(f"R-hat {r_hat:.3f} > 1.01")
    if not np.isfinite(ess) or ess < 100 * info.chains:
        out.append(f"bulk ESS {ess:.0f} < {100 * info.chains}")
    divergent = info.divergences / (info.chains * info.draws)
    if divergent > 0.01:
        out.append(f"{info.divergences} divergent transitions ({100 * divergent:.1f} % > 1 %)")
    return tuple(out)


def _unflat(names, u):
    return {n: u[..., i] for i, n in enumerate(names)}


def _unconstrained(law: Law, likelihood: Likelihood, natural: dict) -> dict:
    theta = jnp.stack([jnp.asarray(natural[n], dtype=jnp.float64) for n in law.params])
    u = law.unconstrain(theta)
    out = {n: u[i] for i, n in enumerate(law.params)}
    out["sigma"] = biject_to(likelihood.scale.support).inv(jnp.asarray(natural["sigma"], dtype=jnp.float64))
    return out


def _constrain(law: Law, likelihood: Likelihood, u: dict) -> dict:
    priors = dict(zip(law.params, law.priors), sigma=likelihood.scale)
    return {n: biject_to(priors[n].support)(u[n]) for n in (*law.params, "sigma")}
