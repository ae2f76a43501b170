"""Where NUTS chains start, and which modes they end in.

A scaling-law posterior can have more than one mode: ``E + A N^-alpha`` trades a lower
floor ``E`` against a smaller, flatter power term, and a grid of 30 runs may not rule the
other side out.  The multi-start MAP fit (:func:`~bayescale.fit.map.multi_start`) already
polishes 64 starts; here

1. the distinct lanes (best objective first, at most :data:`LANES`, the MAP point among
   them) are refined by L-BFGS to modes of the model's log density in the unconstrained
   space NumPyro samples in (priors and ``sigma`` included, :func:`refine`), all lanes in
   one compiled ``vmap``; the inverse Hessian at each is its Laplace covariance;
2. modes closer than :data:`SEPARATION` Laplace standard deviations to a better one are
   the same mode; each distinct one gets a Laplace mass ``log p(mode) + ½ log det cov``;
3. :func:`chain_starts` puts every chain at a draw from the Laplace approximation of a
   mode: all at the best one when it dominates (the usual practice: warmup spreads them),
   round-robin over the modes whose masses lie within :data:`COMPARABLE` log units of the
   largest when there are several.  Chains started in modes that are connected mix during
   warmup and R-hat is fine; chains in separated modes stay there and are reported;
4. after sampling, :func:`chain_modes` groups the chains whose means lie within
   :data:`AGREE` pooled within-chain standard deviations (or :data:`NOISE` Monte Carlo
   standard errors) of each other, for every parameter and ``sigma``; more than one group
   is a problem line (:func:`disagreement`) naming each group's medians and mean log
   density, best first.

Log densities are NumPyro's: the joint log density in the unconstrained space, Jacobians
included (``-potential_energy``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import potential_energy

from bayescale.fit.diagnostics import ess_bulk
from bayescale.fit.lbfgs import ParallelLbfgs, Solver, minimize
from bayescale.fit.map import MultiStart, fitted_residuals, polish_width
from bayescale.fit.model import Likelihood, model
from bayescale.fit.result import Mode, robust_scale
from bayescale.laws import Law

__all__ = ["AGREE", "COMPARABLE", "LANES", "NOISE", "SEPARATION", "Mode", "Optima", "chain_modes", "chain_starts",
           "constrained", "disagreement", "posterior_optima", "potential", "refine", "site_names", "unconstrained"]

LANES = 8
"""Lanes refined to posterior modes at once (one compiled program for any number of distinct lanes)."""
SEPARATION = 3.0
"""Two modes are one when either lies within this many Laplace standard deviations (Mahalanobis) of the other."""
COMPARABLE = 3.0
"""Modes whose Laplace mass is within this many log units (a factor 20) of the largest get chains."""
AGREE = 0.5
"""Chains agree when every parameter's chain means differ by less than this many within-chain sd.

Chains that mix have means within about ``2 / sqrt(ESS per chain)`` sd of each other (0.2 sd at an
ESS of 100); R-hat 1.01 is a spread of chain means of about 0.14 sd.
"""
NOISE = 4.0
"""...and chains whose means differ by less than this many Monte Carlo standard errors agree too."""


class Optima(NamedTuple):
    """Distinct posterior modes, best log density first: unconstrained points ``u`` ``(K, P)`` (sites in
    :func:`site_names` order), Cholesky factors of their Laplace covariances ``(K, P, P)``, log
    densities and Laplace log masses ``(K,)``.
    """

    u: np.ndarray
    chol: np.ndarray
    log_density: np.ndarray
    log_mass: np.ndarray


# --------------------------------------------------------------------------- the model in unconstrained space


def site_names(law: Law) -> tuple[str, ...]:
    """Sample sites in the order NumPyro flattens them (sorted)."""
    return tuple(sorted((*law.params, "sigma")))


def potential(law: Law, likelihood: Likelihood, x, z, u_flat):
    """Negative log joint density in unconstrained space (Jacobians included)."""
    names = site_names(law)
    return potential_energy(model, (law, likelihood, x, z), {}, {n: u_flat[i] for i, n in enumerate(names)})


def unconstrained(law: Law, likelihood: Likelihood, natural: Mapping) -> dict:
    """Natural parameters and ``sigma`` (scalars or arrays) in the unconstrained space, by name."""
    theta = jnp.stack([jnp.asarray(natural[n], dtype=jnp.float64) for n in law.params], axis=-1)
    u = law.unconstrain(theta)
    out = {n: u[..., i] for i, n in enumerate(law.params)}
    out["sigma"] = biject_to(likelihood.scale.support).inv(jnp.asarray(natural["sigma"], dtype=jnp.float64))
    return out


def constrained(law: Law, likelihood: Likelihood, u: Mapping) -> dict:
    """Unconstrained values by name back to natural parameters and ``sigma``."""
    priors = dict(zip(law.params, law.priors), sigma=likelihood.scale)
    return {n: biject_to(priors[n].support)(u[n]) for n in (*law.params, "sigma")}


@functools.partial(jax.jit, static_argnames=("law", "likelihood", "solver"))
def refine(law: Law, likelihood: Likelihood, solver: Solver, x, z, u0):
    """L-BFGS on the negative log density from every row of ``u0`` ``(K, P)``, one ``vmap``: the
    modes, the negative log density there, the inverse Hessians (Laplace covariances) and convergence.
    """

    def one(start):
        def f(v):
            return potential(law, likelihood, x, z, v)

        u, value, _, _, ok = minimize(f, start, solver)
        hess = jax.hessian(f)(u)
        return u, value, jnp.linalg.inv(0.5 * (hess + hess.T)), ok

    return jax.vmap(one)(u0)


# --------------------------------------------------------------------------- modes before sampling


def _lanes(law: Law, runs: MultiStart, point: Mapping[str, float], width: int) -> np.ndarray:
    """The MAP point, then the distinct polished lanes by objective: ``width`` rows (padded by the first)."""
    out = runs.outcome
    picks = [np.asarray(law.unconstrain(jnp.asarray([point[n] for n in law.params], dtype=jnp.float64)))]
    for i in np.argsort(out.value, kind="stable"):
        if len(picks) == width or not np.isfinite(out.value[i]):
            break
        if all(np.max(np.abs(out.u[i] - p)) > 1e-3 for p in picks):
            picks.append(np.asarray(out.u[i]))
    return np.stack(picks + picks[:1] * (width - len(picks)))


def _starts(law: Law, likelihood: Likelihood, lanes: np.ndarray, x, z) -> jax.Array:
    """Each lane with ``sigma`` started at the robust scale of its residuals, as site vectors ``(K, P + 1)``."""
    residuals = np.asarray(jax.vmap(lambda v: fitted_residuals(law, v, x, z))(jnp.asarray(lanes)))
    scale = np.array([robust_scale(r) for r in residuals])
    scale = np.where(np.isfinite(scale) & (scale > 1e-8), scale, 1e-2)
    cols = {n: jnp.asarray(lanes[:, i]) for i, n in enumerate(law.params)}
    cols["sigma"] = biject_to(likelihood.scale.support).inv(jnp.asarray(scale))
    return jnp.stack([cols[n] for n in site_names(law)], axis=1)


def _cholesky(cov: np.ndarray) -> np.ndarray | None:
    if not np.all(np.isfinite(cov)):
        return None
    try:
        chol = np.linalg.cholesky(0.5 * (cov + cov.T))
    except np.linalg.LinAlgError:
        return None
    return chol if np.all(np.isfinite(chol)) else None


def _far(delta: np.ndarray, chol: np.ndarray) -> bool:
    """Whether ``delta`` is more than :data:`SEPARATION` standard deviations long under ``chol chol^T``."""
    return float(np.linalg.norm(np.linalg.solve(chol, delta))) > SEPARATION


def posterior_optima(law: Law, likelihood: Likelihood, runs: MultiStart, point: Mapping[str, float], x, z,
                     solver: Solver = ParallelLbfgs(max_steps=500)) -> Optima:
    """The distinct posterior modes reached from the MAP ``point`` and the lanes of ``runs``, best first.

    A lane counts when its log density is finite, its Hessian positive definite and it converged
    (the best lane counts even unconverged: it is the fit's whitening, as before).  When none
    counts, the best lane with a diagonal covariance stands in.  At most :data:`LANES` lanes, fewer
    when the memory budget holds fewer L-BFGS lanes on this many rows (:func:`polish_width`).
    """
    u0 = _starts(law, likelihood, _lanes(law, runs, point, polish_width(x, z, LANES)), x, z)
    u, value, cov, ok = (np.asarray(a) for a in refine(law, likelihood, solver, x, z, u0))
    value = np.where(np.isfinite(value), value, np.inf)
    kept: list[tuple[int, np.ndarray]] = []
    for i in np.argsort(value, kind="stable"):
        chol = _cholesky(cov[i])
        if chol is None or not np.isfinite(value[i]) or not (ok[i] or not kept):
            continue
        if all(_far(u[i] - u[j], c) and _far(u[j] - u[i], chol) for j, c in kept):
            kept.append((int(i), chol))
    if not kept:  # no usable mode: the MAP lane, whitened by a small diagonal covariance
        kept = [(0, np.diag(np.full(u.shape[1], 1e-2)))]
    index = [i for i, _ in kept]
    chol = np.stack([c for _, c in kept])
    log_density = -value[index]
    return Optima(u=u[index], chol=chol, log_density=log_density,
                  log_mass=log_density + np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1))


def chain_starts(optima: Optima, chains: int, *, key: jax.Array):
    """Where each chain starts: the whitening ``(mode, chol)``, the whitened starts ``w0`` ``(chains, P)``
    (``u = mode + chol w``) and the optimum each chain starts at.

    Chains go round-robin over the optima whose Laplace mass lies within :data:`COMPARABLE` of the
    largest (best log density first), each at a draw from its mode's Laplace approximation; the
    whitening is the first of them.  One dominant mode: every chain at its own Laplace draw there.
    """
    comparable = np.flatnonzero(optima.log_mass >= np.max(optima.log_mass) - COMPARABLE)
    starts = comparable[np.arange(chains) % comparable.size]
    ref = int(comparable[0])
    eps = np.asarray(jax.random.normal(key, (chains, optima.u.shape[1])))
    u0 = optima.u[starts] + np.einsum("cij,cj->ci", optima.chol[starts], eps)
    w0 = np.linalg.solve(optima.chol[ref], (u0 - optima.u[ref]).T).T
    return jnp.asarray(optima.u[ref]), jnp.asarray(optima.chol[ref]), jnp.asarray(w0), tuple(int(s) for s in starts)


# --------------------------------------------------------------------------- modes after sampling


def chain_modes(draws: Mapping[str, np.ndarray], log_density: np.ndarray, params: tuple[str, ...]) -> tuple[Mode, ...]:
    """Groups of chains that agree, highest mean log density first.

    Two chains agree when, for every site, their means differ by less than :data:`AGREE` pooled
    within-chain sd or by less than :data:`NOISE` Monte Carlo standard errors of the difference (each
    chain's sd over the square root of its own bulk ESS: a run too short to say where its chains
    are names no modes); a group is every chain linked to it by agreeing pairs.

    ``draws``: every site ``(chain, draw)``; ``log_density`` ``(chain, draw)``; ``params``: the sites
    whose medians a :class:`Mode` names.
    """
    sites = np.stack([np.asarray(v, dtype=float) for v in draws.values()])  # (site, chain, draw)
    means, var = sites.mean(axis=2), sites.var(axis=2)
    within = np.sqrt(np.mean(var, axis=1))
    diff = np.abs(means[:, :, None] - means[:, None, :])
    gap = diff / np.where(within > 0, within, np.inf)[:, None, None]
    ess = np.array([[ess_bulk(chain[None]) for chain in site] for site in sites])
    mcse2 = var / np.maximum(ess, 1.0)
    z = diff / np.sqrt(mcse2[:, :, None] + mcse2[:, None, :] + 1e-300)
    near = np.all((gap < AGREE) | (z < NOISE), axis=0)  # (chain, chain); NaN draws agree with nothing
    group = list(range(near.shape[0]))
    for a, b in zip(*np.nonzero(near)):  # single linkage: merge the groups of every agreeing pair
        old, new = group[b], group[a]
        group = [new if g == old else g for g in group]
    out = []
    for g in dict.fromkeys(group):
        chains = tuple(c for c, h in enumerate(group) if h == g)
        out.append(Mode(chains=chains, median={p: float(np.median(np.asarray(draws[p])[list(chains)])) for p in params},
                        log_density=float(np.mean(log_density[list(chains)]))))
    return tuple(sorted(out, key=lambda m: -m.log_density if np.isfinite(m.log_density) else np.inf))


def disagreement(modes: tuple[Mode, ...]) -> str | None:
    """The problem line of chains in more than one mode (``None`` for one): each group, best first, and
    what to do.
    """
    if len(modes) < 2:
        return None
    groups = ", ".join(
        f"{len(m.chains)} chain{'s' if len(m.chains) > 1 else ''} at "
        f"{', '.join(f'{p} {v:.4g}' for p, v in m.median.items())} (log density {m.log_density:.1f})" for m in modes)
    gap = modes[0].log_density - modes[1].log_density
    if gap >= 1.0:
        advice = (f"the first mode is {gap:.1f} log-density units higher: the other chains are stuck in a minor "
                  f"mode; use the first mode's chains (info.modes[0].chains), a longer warmup, or informative "
                  "priors (Law.with_priors)")
    else:
        advice = (f"the modes are about equally likely ({gap:.1f} log-density units apart): the data do not "
                  "decide between them; use informative priors (Law.with_priors) or more data")
    return f"chains disagree: {groups}; {advice}"
