"""Posterior draws by NUTS over the law's NumPyro model (:mod:`bayescale.model`).

The recipe, for any law:

1. the MAP fit (:func:`bayescale.fit_map`, Huber objective) polishes 64 starts; its
   distinct optima (the MAP point first, at most 8) are refined by L-BFGS to modes of
   the model's log density in the *unconstrained* space NumPyro samples in (priors and
   ``sigma`` included, started at the robust scale 1.4826·MAD of each optimum's
   residuals); the inverse Hessian at each mode is its Laplace covariance, and modes
   within 3 Laplace standard deviations of a better one are the same mode
   (:mod:`bayescale.fit.modes`);
2. chains start at their own draws from the Laplace approximation of a mode: all at the
   best one when its Laplace mass dominates, round-robin over the modes within a factor
   20 of the largest mass when there are several -- chains in connected modes mix during
   warmup, chains in separated modes stay there and are reported (below);
3. NUTS samples ``w`` with ``u = mode + L·w`` (``L`` the Cholesky factor of the
   Laplace covariance of the first mode that gets chains): an affine
   reparameterisation, so the Jacobian is constant, under which the Laplace
   approximation is a standard normal.  Scaling-law posteriors are strongly correlated
   and badly scaled (``log A`` and ``alpha`` of a power law in compute correlate at
   -0.99 and differ in scale by 100x); whitened, they are near-isotropic, which keeps
   divergences rare and lets the dense metric adaptation start from the right scale;
4. NUTS (NumPyro) with chains vectorised on one device, or one chain per device
   when there are enough devices, run in equal chunks of iterations
   (:func:`chunk_length`): NumPyro's functional ``hmc()`` state carries the iteration
   count, the PRNG key and the adaptation from one compiled call to the next, so the
   chunks are one run -- the same key gives the same draws whatever the chunk length --
   while Python regains control between them: Ctrl-C ends in
   :class:`~bayescale.errors.Interrupted` (``interrupted after 300 of 1,000 draws per
   chain``), and ``chains x draws`` beyond the memory budget are refused before any work.

R-hat (rank-normalised), bulk and tail ESS (:mod:`bayescale.fit.diagnostics`),
divergences and tree-depth hits are computed for every fit, and the chains are grouped
by where they ended (:func:`~bayescale.fit.modes.chain_modes`: chain means within one
within-chain sd agree); the fit's ``problems`` name it (and ``warn=True`` issues a
``RuntimeWarning``) when the chains end in more than one mode (``chains disagree: 3
chains at E 1.82, ... (log density -12.3), 1 chain at E 1.705, ...``, best first, with
what to do), R-hat > 1.01, any bulk ESS < 100·chains, or more than 1 % of transitions
diverged.  ``NutsInfo.modes`` holds the groups, ``optima`` and ``starts`` the modes
found before sampling and where each chain started.
"""

from __future__ import annotations

import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.hmc import hmc

from bayescale.errors import ArgumentError, Interrupted, expect, interruptible
from bayescale.fit.budget import budget, require
from bayescale.fit.data import Data
from bayescale.fit.diagnostics import ess_bulk, ess_tail, rhat
from bayescale.fit.map import (
    check_fit_inputs,
    check_key,
    fit_arrays,
    fit_map,
    map_and_optima,
    multi_start,
    positive_int,
)
from bayescale.fit.model import Likelihood, StudentT
from bayescale.fit.modes import (
    Optima,
    chain_modes,
    chain_starts,
    constrained,
    disagreement,
    posterior_optima,
    potential,
    site_names,
)
from bayescale.fit.precision import float64
from bayescale.fit.result import Fit, Fitter, NutsInfo, map_info, warn_problems
from bayescale.laws import Law

__all__ = ["fit_nuts", "nuts_problems"]


def _kernels(law: Law, likelihood: Likelihood, x, z, mode, chol, *, warmup: int, target_accept: float,
             max_tree_depth: int, like=None):
    """NumPyro's NUTS ``(init, sample)`` pair on ``w`` with ``u = mode + chol·w``, configured for ``warmup``.

    ``hmc()``'s ``init_kernel`` stores the settings (warmup length, adaptation, tree depth) in the
    closure that ``sample_kernel`` reads, so every traced program calls it; on a chunk it runs
    under :func:`jax.eval_shape` (the settings are kept, nothing is computed).
    """

    def whitened(w):
        return potential(law, likelihood, x, z, mode + chol @ w)

    init_kernel, sample_kernel = hmc(potential_fn=whitened, algo="NUTS")

    def init(w_init, key):
        return init_kernel(w_init, warmup, dense_mass=True, target_accept_prob=target_accept,
                           max_tree_depth=max_tree_depth, rng_key=key)

    if like is not None:  # (w, key) of a chain: configures sample_kernel, computes nothing
        jax.eval_shape(init, *like)
    return init, sample_kernel


_STATIC = ("law", "likelihood", "warmup", "target_accept", "max_tree_depth", "parallel")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _start_chains(law: Law, likelihood: Likelihood, keys, w0, x, z, mode, chol, *, warmup: int,
                  target_accept: float, max_tree_depth: int, parallel: bool):
    """The NUTS state of every chain at iteration 0 (step size found, adaptation started)."""

    def one(key, w_init):
        init, _ = _kernels(law, likelihood, x, z, mode, chol, warmup=warmup, target_accept=target_accept,
                           max_tree_depth=max_tree_depth)
        return init(w_init, key)

    return jax.pmap(one)(keys, w0) if parallel else jax.vmap(one)(keys, w0)


@functools.partial(jax.jit, static_argnames=(*_STATIC, "length"))
def _advance_chains(law: Law, likelihood: Likelihood, state, x, z, mode, chol, *, warmup: int, length: int,
                    target_accept: float, max_tree_depth: int, parallel: bool):
    """``length`` NUTS iterations of every chain from ``state``: the state after them, and per
    iteration the draws ``(chain, length, P)``, divergences, tree sizes and potential energies.

    One compiled program per (law, likelihood, settings, data shape, chunk length): the data, the
    mode and the whitening factor are arguments, so fitting new data of the same shape -- a
    calibration study, a leave-future-out refit -- does not compile again.  The state carries its
    iteration count, PRNG key and adaptation, so consecutive chunks are exactly one long run.
    """

    def one(s):
        _, sample_kernel = _kernels(law, likelihood, x, z, mode, chol, warmup=warmup, target_accept=target_accept,
                                    max_tree_depth=max_tree_depth, like=(s.z, s.rng_key))

        def step(c, _):
            c = sample_kernel(c)
            return c, (c.z, c.diverging, c.num_steps, c.potential_energy)

        return jax.lax.scan(step, s, None, length=length)

    return jax.pmap(one)(state) if parallel else jax.vmap(one)(state)


def chunk_length(warmup: int, draws: int) -> int:
    """Iterations per compiled call: a tenth of the run, at least 50 and at most 250.

    Python regains control (Ctrl-C, progress) between calls; every call has the same length,
    so one program is compiled (the last call's extra iterations are dropped).
    """
    total = warmup + draws
    return min(total, max(50, min(250, -(-total // 10))))


def _sample(law: Law, likelihood: Likelihood, keys, w0, x, z, mode, chol, *, warmup: int, draws: int,
            target_accept: float, max_tree_depth: int, parallel: bool, progress: bool):
    """Warmup then draws, in equal chunks of :func:`chunk_length` iterations.

    Returns draws ``(chain, draw, P)``, divergences, tree sizes and log densities per draw, and the
    adapted step size of each chain; a Ctrl-C between chunks raises :class:`~bayescale.errors.Interrupted`.
    """
    options = dict(warmup=warmup, target_accept=target_accept, max_tree_depth=max_tree_depth, parallel=parallel)
    chains, n_w, total = w0.shape[0], w0.shape[1], warmup + draws
    length = chunk_length(warmup, draws)
    w = np.empty((chains, draws, n_w))
    diverging = np.empty((chains, draws), bool)
    num_steps = np.empty((chains, draws), np.int64)
    energy = np.empty((chains, draws))
    warmed, shown = False, 0
    with interruptible(draws, "draws per chain") as tally:
        try:
            state = _start_chains(law, likelihood, keys, w0, x, z, mode, chol, **options)
            for begin in range(0, total, length):
                state, out = _advance_chains(law, likelihood, state, x, z, mode, chol, length=length, **options)
                lo, hi = max(begin, warmup), min(begin + length, total)  # iterations of this chunk that are draws
                if hi > lo:
                    for dest, src in zip((w, diverging, num_steps, energy), out):
                        dest[:, lo - warmup:hi - warmup] = np.asarray(src)[:, lo - begin:hi - begin]
                warmed, tally.done = hi >= warmup, max(0, hi - warmup)
                if progress and (10 * hi // total > shown or hi == total):
                    shown = 10 * hi // total
                    print(f"  NUTS: iteration {hi}/{total}", file=sys.stderr, flush=True)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            if not warmed:
                raise Interrupted(f"interrupted during warmup (0 of {draws:,} draws per chain)") from None
            raise
    return w, diverging, num_steps, -energy, np.asarray(state.adapt_state.step_size)


@float64
def fit_nuts(law: Law, data: Data, *, key: jax.Array, likelihood: Likelihood = StudentT(), chains: int = 4,
             warmup: int = 1000, draws: int = 2000, target_accept: float = 0.95, max_tree_depth: int = 10,
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
        Chains and iterations per chain.  2,000 draws: on clean 30-run Chinchilla grids the
        (E, A, alpha) ridge leaves some chains with a bulk ESS near 100, and 1,000 draws gave
        R-hat > 1.01 in 10-14 % of runs, 2,000 in 4 % (``benchmarks/nuts_modes.py``).
    target_accept:
        Target acceptance probability of the step-size adaptation.
    map_fit:
        A :func:`fit_map` result to start from (fitted here if absent); its point is one start of the
        posterior modes, and its fitter's multi-start is run again for the others.
    chain_method:
        ``"vectorized"`` (one ``vmap`` on one device) or ``"parallel"`` (a chain per
        device); default: parallel when there are at least ``chains`` devices.
    warn:
        Issue a ``RuntimeWarning`` when the chains have problems.

    Returns
    -------
    Fit
        Draws ``(chains, draws)``; :class:`~bayescale.fit.NutsInfo` (R-hat, ESS,
        divergences, the posterior mode, the modes the chains started at and ended in) in
        ``info``.  Never raises for a bad chain or chains in different modes: ``problems``
        says so.

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
    _check_nuts(law, data, key, chains, warmup, draws, max_tree_depth, map_fit, chain_method)
    method = chain_method or ("parallel" if jax.local_device_count() >= chains > 1 else "vectorized")
    x, z = fit_arrays(law, data)
    _, k_jitter, k_run = jax.random.split(key, 3)
    map_fit, optima = _optima(law, likelihood, data, map_fit, x, z)
    mode_u, chol, w0, starts = chain_starts(optima, chains, key=k_jitter)
    w, diverging, num_steps, log_density, step_sizes = _sample(
        law, likelihood, jax.random.split(k_run, chains), w0, x, z, mode_u, chol, warmup=warmup, draws=draws,
        target_accept=float(target_accept), max_tree_depth=max_tree_depth,
        parallel=method == "parallel", progress=bool(progress),
    )
    u = mode_u[None, None, :] + jnp.einsum("cdj,ij->cdi", w, chol)
    natural = {n: np.asarray(v) for n, v in constrained(law, likelihood, _unflat(site_names(law), u)).items()}
    info = _info(law, likelihood, map_fit, natural, mode_u, (diverging, num_steps, step_sizes), chains=chains,
                 warmup=warmup, draws=draws, max_tree_depth=max_tree_depth)
    info = info._replace(modes=chain_modes(natural, log_density, law.params), optima=len(optima.u), starts=starts)
    fitter = Fitter.of(fit_nuts, likelihood=likelihood, chains=chains, warmup=warmup, draws=draws,
                       target_accept=target_accept, max_tree_depth=max_tree_depth, chain_method=chain_method,
                       progress=progress)
    fit = Fit(law=law, data=data, draws={n: natural[n] for n in law.params}, sigma=natural["sigma"],
              likelihood=likelihood, method="nuts", info=info, problems=nuts_problems(info), fitter=fitter,
              seconds=time.perf_counter() - t0)
    return warn_problems(fit, warn)


def _check_nuts(law: Law, data: Data, key, chains, warmup, draws, max_tree_depth, map_fit, chain_method) -> None:
    """Arguments, then the memory of the draws, before anything is fitted or allocated."""
    check_fit_inputs(law, data, "fit_nuts")
    check_key(key, "fit_nuts")
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws), ("max_tree_depth", max_tree_depth)):
        positive_int(value, name, "fit_nuts")
    expect(map_fit, (Fit, type(None)), "map_fit", "fit_nuts")
    if chain_method not in (None, "parallel", "vectorized"):
        raise ArgumentError(f"fit_nuts: chain_method must be 'parallel', 'vectorized' or None, got {chain_method!r}")
    # per draw and chain: the whitened draw, its parameters and sigma (natural and unconstrained), the
    # diagnostics' copies; per chain: a few arrays over the rows while a tree is built
    per_draw = 8.0 * 4 * (law.n_params + 1) + 16
    require(chains * (draws * per_draw + 8 * 8.0 * data.n), f"NUTS: {chains} chains x {draws:,} draws",
            f"at most {int(budget() // (chains * per_draw)):,} draws per chain fit: use fewer --draws or chains")


def _optima(law: Law, likelihood: Likelihood, data: Data, map_fit: Fit | None, x, z) -> tuple[Fit, Optima]:
    """The MAP fit (``map_fit`` or fitted here) and the distinct posterior modes its multi-start reaches.

    A given ``map_fit`` is its own fitter's multi-start (the lanes are fitted again, with its settings);
    its point is always among the modes' starts.
    """
    if map_fit is None:
        map_fit, runs = map_and_optima(law, data)
    else:
        map_info(map_fit)  # a MAP fit, or a clear error
        options = dict(map_fit.fitter.options) if map_fit.fitter is not None and map_fit.fitter.fn is fit_map else {}
        options.pop("laplace_draws", None)  # the lanes only: no band needed
        runs = multi_start(law, data, **options)
    return map_fit, posterior_optima(law, likelihood, runs, map_fit.point, x, z)


def _info(law: Law, likelihood: Likelihood, map_fit: Fit, natural: dict, mode_u, sampler: tuple, *, chains: int,
          warmup: int, draws: int, max_tree_depth: int) -> NutsInfo:
    """The chains' diagnostics: R-hat and ESS per site, divergences, tree-depth hits, the mode."""
    diverging, num_steps, step_sizes = sampler
    return NutsInfo(
        point={n: float(np.median(natural[n])) for n in law.params},
        mode={n: float(v) for n, v in constrained(law, likelihood, _unflat(site_names(law), mode_u)).items()},
        map=map_info(map_fit), chains=chains, warmup=warmup, draws=draws,
        divergences=int(np.sum(np.asarray(diverging))),
        tree_depth_hits=int(np.sum(np.asarray(num_steps) >= 2**max_tree_depth - 1)),
        r_hat={n: rhat(v) for n, v in natural.items()}, ess_bulk={n: ess_bulk(v) for n, v in natural.items()},
        ess_tail={n: ess_tail(v) for n, v in natural.items()}, step_size=float(jnp.mean(step_sizes)),
    )


def nuts_problems(info: NutsInfo) -> tuple[str, ...]:
    """Why NUTS draws should not be trusted: chains in different modes (:func:`~bayescale.fit.modes.disagreement`),
    R-hat > 1.01, bulk ESS < 100 per chain, > 1 % divergent.
    """
    out = [line] if (line := disagreement(info.modes)) is not None else []
    r_hat, ess = max(info.r_hat.values()), min(info.ess_bulk.values())
    if not np.isfinite(r_hat) or r_hat > 1.01:
        slow = ": the chains agree on one mode but mix slowly; run a longer warmup or more draws"
        out.append(f"R-hat {r_hat:.3f} > 1.01" + (slow if len(info.modes) == 1 else ""))
    if not np.isfinite(ess) or ess < 100 * info.chains:
        out.append(f"bulk ESS {ess:.0f} < {100 * info.chains}")
    divergent = info.divergences / (info.chains * info.draws)
    if divergent > 0.01:
        out.append(f"{info.divergences} divergent transitions ({100 * divergent:.1f} % > 1 %)")
    return tuple(out)


def _unflat(names, u):
    return {n: u[..., i] for i, n in enumerate(names)}
