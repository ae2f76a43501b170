"""Bootstrap: thousands of resampled MAP fits in one compiled lane pool.

Each resample reweights the observations with multinomial counts (fixed shapes:
no data is copied or reshaped), or, for the residual bootstrap, adds resampled
fit-space residuals to the fitted curve.  Every resample is then fitted from the
same ``S`` starts (the full-data MAP optimum plus the ``S - 1`` best starts of the
law's grid) with the MAP core.  The (resample, start) jobs stream through a pool
of B device lanes (one compiled program, sharded across every attached device):
finished lanes are refilled with the next job, so memory is bounded by B and no
lane waits for the slowest lane of a fixed batch.

Resamples are drawn from per-resample keys split from ``key``: the draws depend
on ``key`` only, not on the pool width or the number of devices.

The draws come back laid out as ``(chain=1, draw=R)``, so the prediction, N*
and band code written for NUTS posteriors serves bootstrap results unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bayescale.errors import ArgumentError, expect, interruptible
from bayescale.fit.budget import budget, chunk, require
from bayescale.fit.data import Data
from bayescale.fit.lbfgs import OptaxLbfgs, ParallelLbfgs, Solver
from bayescale.fit.map import (
    POLISH_FLOATS_PER_ROW,
    check_fit_inputs,
    check_key,
    fit_arrays,
    fit_map,
    objective_u,
    positive_int,
    screen_starts,
    starts_for,
)
from bayescale.fit.objective import Huber, Objective, default_objective
from bayescale.fit.precision import float64
from bayescale.fit.result import BootstrapInfo, Fit, Fitter, map_info, plug_in, warn_problems
from bayescale.laws import Law

__all__ = ["Clusters", "Pairs", "Race", "Residuals", "Scheme", "bootstrap_starts", "fit_bootstrap"]


@dataclasses.dataclass(frozen=True)
class Pairs:
    """Resample runs (rows) with replacement: the classic case bootstrap (Epoch AI's)."""

    residual: ClassVar[bool] = False

    def cluster_labels(self, n: int) -> np.ndarray:
        return np.arange(n)


@dataclasses.dataclass(frozen=True)
class Clusters:
    """Resample whole clusters with replacement, e.g. all metrics of one run together.

    ``labels`` gives a cluster label per row of the data (any hashable values).
    """

    labels: Sequence
    residual: ClassVar[bool] = False

    def cluster_labels(self, n: int) -> np.ndarray:
        labels = np.asarray(self.labels)
        if labels.shape != (n,):
            raise ArgumentError(f"Clusters needs one label per row: {n} rows, {np.shape(labels)} labels")
        return labels


@dataclasses.dataclass(frozen=True)
class Residuals:
    """Residual bootstrap: refit ``ẑ + r*`` where ``r*`` resamples the MAP residuals (fit space).

    Keeps the covariate design fixed; assumes exchangeable errors.
    """

    residual: ClassVar[bool] = True

    def cluster_labels(self, n: int) -> np.ndarray:
        return np.arange(n)


@dataclasses.dataclass(frozen=True)
class Race:
    """Stop a start once, after ``after`` steps, its objective exceeds the best value
    any start of the same resample has reached by more than ``rtol`` (relative).

    A heuristic: L-BFGS never increases a lane's objective, so the running best is
    an upper bound on the resample's optimum, but a lane that is behind could in
    principle still overtake.  Measured on the Chinchilla runs, 200 resamples x 64
    starts: 13.1 s with ``Race(25)``, 20.0 s with ``Race(50)`` (bit-identical
    results) and 250.8 s without racing, whose optima were no lower (objectives
    equal to 1.3e-14, parameters to 3.3e-7).  ``race=None`` runs every start to
    convergence.
    """

    after: int = 25
    rtol: float = 0.05


Scheme = Pairs | Clusters | Residuals


# --------------------------------------------------------------------------- resampling


def _cluster_ids(scheme: Scheme, n: int) -> tuple[np.ndarray, int]:
    _, ids = np.unique(scheme.cluster_labels(n), return_inverse=True)
    return ids.astype(np.int32), int(ids.max()) + 1


def _lane_data(residual: bool, n_clusters: int, keys, z, ids, z_hat, residuals):
    """Targets and weights ``(B, n)`` of the resamples named by ``keys``."""
    n = z.shape[0]
    if residual:
        pick = jax.vmap(lambda k: jax.random.randint(k, (n,), 0, n))(keys)
        return z_hat[None, :] + residuals[pick], jnp.ones((keys.shape[0], n))

    def weights(key):
        chosen = jax.random.randint(key, (n_clusters,), 0, n_clusters)
        return jnp.zeros(n_clusters).at[chosen].add(1.0)[ids]

    return jnp.broadcast_to(z, (keys.shape[0], n)), jax.vmap(weights)(keys)


# --------------------------------------------------------------------------- the lane pool
#
# Under vmap a loop runs until its slowest lane is done, so fitting R x S lanes in
# one call costs R x S x (the slowest lane's steps).  The pool keeps B lanes busy
# instead: each call advances every lane by at most `segment` L-BFGS steps; lanes
# that stopped are refilled (on the device) with the next (resample, start) job.
# One compiled program serves any number of resamples, memory is bounded by B, and
# idle lanes appear only when the queue runs dry.

@functools.lru_cache(maxsize=32)
def _compiled_pool(static: tuple, sharding: NamedSharding):
    """The jitted pool step and lane initialiser for these options, every output on the lane axis."""
    options = dict(static)
    step = jax.jit(functools.partial(_pool_step, **options), out_shardings=sharding)
    init = jax.jit(functools.partial(_pool_init, **options), out_shardings=sharding)
    return step, init


def _lane_objective(law, objective, x, lane_z, lane_w):
    """The objective of one lane: its resample's targets and weights."""
    return lambda u: objective_u(law, objective, u, x, lane_z, lane_w)


def _pool_init(new_u0, new_keys, x, z, ids, z_hat, residuals, *, law, objective, solver, segment, residual, n_clusters):
    del segment
    lane_z, lane_w = _lane_data(residual, n_clusters, new_keys, z, ids, z_hat, residuals)
    lanes = jax.vmap(lambda a, zz, ww: solver.init(_lane_objective(law, objective, x, zz, ww), a))(
        new_u0, lane_z, lane_w
    )
    return lanes, lane_z, lane_w


def _pool_step(state, refill, idle, new_u0, new_keys, x, z, ids, z_hat, residuals, *, law, objective, solver,
               segment, residual, n_clusters):
    fresh = _pool_init(new_u0, new_keys, x, z, ids, z_hat, residuals, law=law, objective=objective, solver=solver,
                       segment=segment, residual=residual, n_clusters=n_clusters)
    (lanes, lane_z, lane_w) = jax.tree.map(
        lambda new, old: jnp.where(refill.reshape(refill.shape + (1,) * (new.ndim - 1)), new, old), fresh, state
    )
    lanes = lanes._replace(done=lanes.done | idle)
    lanes = jax.vmap(
        lambda c, zz, ww: solver.run(_lane_objective(law, objective, x, zz, ww), c, c.step + segment)
    )(lanes, lane_z, lane_w)
    outcome = jax.vmap(solver.outcome)(lanes)
    return (lanes, lane_z, lane_w), (outcome, lanes.done)


# --------------------------------------------------------------------------- entry point


def _mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("lanes",))


@float64
def bootstrap_starts(law: Law, data: Data, map_fit: Fit, starts: int, *, objective: Objective = Huber(1e-3)
                     ) -> np.ndarray:
    """The ``(starts, P)`` unconstrained starts every resample is fitted from.

    Row 0 is the full-data MAP optimum; the others are the best points of the
    law's grid on the full data (the MAP optimum repeats if the grid is smaller).
    """
    x, z = fit_arrays(law, data)
    u_map = law.unconstrain(law.pack({k: jnp.asarray(v) for k, v in map_fit.point.items()}))
    grid = law.unconstrain(jnp.asarray(starts_for(law, data)))
    order = np.argsort(screen_starts(law, objective, grid, x, z, jnp.ones_like(z)), kind="stable")
    u_starts = np.asarray(jnp.concatenate([u_map[None, :], grid[order[: starts - 1]]], axis=0))
    if u_starts.shape[0] < starts:
        u_starts = np.concatenate([u_starts, np.repeat(u_starts[:1], starts - u_starts.shape[0], 0)])
    return u_starts


@float64
def fit_bootstrap(law: Law, data: Data, *, key: jax.Array, resamples: int = 1000, starts: int = 64,
                  scheme: Scheme = Pairs(), objective: Objective | None = None, solver: Solver = ParallelLbfgs(),
                  lanes: int | None = None, segment: int = 25, race: Race | None = Race(), map_fit: Fit | None = None,
                  progress: bool = False, warn: bool = True) -> Fit:
    """Refit ``law`` on ``resamples`` bootstrap resamples of ``data``.

    Parameters
    ----------
    key:
        ``jax.random.key``; the same key gives identical results on any device count and pool width.
    resamples:
        Number of resamples R.
    starts:
        Starts per resample S: the MAP optimum plus the ``S - 1`` best grid starts.
    scheme:
        :class:`Pairs` (default), :class:`Clusters` or :class:`Residuals`.
    lanes:
        Width B of the lane pool (default: about a million lane × observation
        elements, rounded up to the device count), capped by the memory budget
        (:mod:`bayescale.fit.budget`): memory is bounded by B, not R.
    segment:
        L-BFGS steps per pool call between refills.
    race:
        :class:`Race` (default): stop a start early once it is clearly behind the
        best start of its resample.  ``None`` runs every start to convergence.
    solver:
        The MAP path's L-BFGS by default (:class:`~bayescale.fit.lbfgs.ParallelLbfgs`);
        optax's variants are slower under the pool's ``vmap`` and stall more often on
        weakly identified laws (measured in ``benchmarks/RESULTS.md``).
    map_fit:
        A full-data MAP fit to start from (computed if not given).
    progress:
        Print a progress line to stderr every two seconds.
    warn:
        Issue a ``RuntimeWarning`` when the fit has problems (the full-data MAP fit did
        not converge, or more than 10 % of the resamples did not).

    Ctrl-C ends the pool between two calls (:class:`~bayescale.errors.Interrupted`); ``resamples``
    whose results would not fit in the memory budget are refused before anything is allocated.

    Returns
    -------
    Fit
        Draws ``(1, R_ok)``: the converged resamples.  Non-converged ones are counted
        (``info.n_failed``) and kept, with every resample, in ``info.all_draws``.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from bayescale import laws, from_arrays, fit_bootstrap
    >>> C = np.geomspace(1e18, 1e22, 12)
    >>> y = (1.7 + 900.0 * C**-0.15) * np.exp(0.01 * np.random.default_rng(0).standard_normal(12))
    >>> boot = fit_bootstrap(laws.power_law, from_arrays(laws.power_law, y=y, C=C),
    ...                      key=jax.random.key(0), resamples=50, starts=4)
    >>> boot.draws["alpha"].shape, boot.info.n_failed
    ((1, 50), 0)
    """
    t_start = time.perf_counter()
    objective = _check_bootstrap(law, data, key, resamples, starts, lanes, segment, scheme, race, solver, map_fit,
                                 objective)
    per_resample = _resample_bytes(law, resamples)
    if map_fit is None:
        map_fit = fit_map(law, data, objective=objective, keep=max(starts, 64), warn=False)
    ids, n_clusters = _cluster_ids(scheme, data.n)
    mesh = _mesh()
    width = _pool_width(data.n, resamples * starts, lanes, starts, mesh.devices.size,
                        fixed=(len(data.x) + 6) * data.n * 8.0 + resamples * per_resample)
    x, z = fit_arrays(law, data)
    u_starts = bootstrap_starts(law, data, map_fit, starts, objective=objective)
    z_hat = law.fn(law.constrain(jnp.asarray(u_starts[0])), x)
    run = _Pool(law, objective, solver, segment, scheme.residual, n_clusters, width, mesh,
                x, z, jnp.asarray(ids), z_hat, z - z_hat)
    with interruptible(resamples, "resamples") as tally:
        best = run(jax.random.split(key, resamples), u_starts, race, progress=progress, t_start=t_start, tally=tally)
    constrained = jax.vmap(law.constrain)(jnp.asarray(best["u"]))
    every = {n: np.asarray(constrained[n]) for n in law.params}
    fitter = Fitter.of(fit_bootstrap, resamples=resamples, starts=starts, scheme=scheme, objective=objective,
                       solver=solver, lanes=lanes, segment=segment, race=race, progress=progress)
    fit = _result(law, data, map_fit, best, every, run, fitter, scheme, starts, seconds=time.perf_counter() - t_start)
    return warn_problems(fit, warn)


def _check_bootstrap(law, data, key, resamples, starts, lanes, segment, scheme, race, solver, map_fit,
                     objective: Objective | None) -> Objective:
    """The arguments of :func:`fit_bootstrap` checked (errors name them); the objective it uses."""
    check_fit_inputs(law, data, "fit_bootstrap")
    check_key(key, "fit_bootstrap")
    for name, value in (("resamples", resamples), ("starts", starts), ("segment", segment)):
        positive_int(value, name, "fit_bootstrap")
    positive_int(lanes, "lanes", "fit_bootstrap", optional=True)
    expect(scheme, (Pairs, Clusters, Residuals), "scheme", "fit_bootstrap")
    expect(race, (Race, type(None)), "race", "fit_bootstrap")
    expect(solver, (ParallelLbfgs, OptaxLbfgs), "solver", "fit_bootstrap")
    expect(map_fit, (Fit, type(None)), "map_fit", "fit_bootstrap")
    return default_objective(law) if objective is None else objective


def _resample_bytes(law: Law, resamples: int) -> float:
    """Bytes each resample keeps (its key, best point and value, every draw, the converged draws);
    ``resamples`` of them beyond the memory budget are refused before any work.
    """
    per_resample = 8.0 * (4 * law.n_params + 8)
    require(resamples * per_resample, f"{resamples:,} bootstrap resamples of {law.n_params} parameters",
            f"at most {int(budget() // per_resample):,} fit: use fewer --resamples")
    return per_resample


def _pool_width(n: int, jobs: int, lanes: int | None, starts: int, devices: int, *, fixed: float) -> int:
    """Lanes B of the pool: ``lanes`` or about a million lane x row elements, within the memory budget.

    A lane holds its resample's targets and weights and the L-BFGS temporaries over ``n`` rows
    (the MAP polish's measured bytes per lane and row, plus the refill copies).  Refuses, before
    allocating, a table too large for even one lane.
    """
    room = chunk((POLISH_FLOATS_PER_ROW + 8) * 8.0 * n, jobs, fixed=fixed, what=f"a bootstrap lane over {n:,} rows",
                 fix="select fewer rows (--where)")
    width = min(lanes or max(starts, (1 << 20) // max(n, 1)), jobs, room)
    width = -(-width // devices) * devices
    return width if width <= room else max(devices, room // devices * devices)


def _result(law: Law, data: Data, map_fit: Fit, best: dict, every: dict, run: _Pool, fitter: Fitter,
            scheme: Scheme, starts: int, *, seconds: float) -> Fit:
    """The bootstrap's Fit: converged resamples as draws, every resample and the pool's counters in the info."""
    ok = best["converged"]
    resamples = len(ok)
    info = BootstrapInfo(point=map_fit.point, resamples=resamples, starts=starts,
                         n_failed=int(np.sum(~ok)), converged=ok, objective=best["f"], all_draws=every,
                         map=map_info(map_fit), scheme=scheme, compile_seconds=run.compile_seconds,
                         lane_steps=run.lane_steps, pool_calls=run.calls, pool_lanes=run.lanes, pruned=run.pruned,
                         job_steps=run.job_steps)
    _, sigma, likelihood = plug_in(map_fit.point, (1, int(ok.sum())), map_info(map_fit).residual_scale)
    problems = []
    flat = [p for p in map_fit.problems if p.startswith("not identified")]
    if flat:
        problems.append(f"the full-data MAP fit is {flat[0]}")
    elif not map_fit.ok:
        problems.append("the full-data MAP fit did not converge")
    if info.n_failed > 0.1 * resamples:
        problems.append(f"{info.n_failed} of {resamples} resamples did not converge")
    return Fit(law=law, data=data, draws={n: v[ok][None, :] for n, v in every.items()}, sigma=sigma,
               likelihood=likelihood, method="bootstrap", info=info, problems=tuple(problems), fitter=fitter,
               seconds=seconds)


class _Pool:
    """Host side of the lane pool: a queue of (resample, start) jobs over B device lanes."""

    def __init__(self, law, objective, solver, segment, residual, n_clusters, lanes, mesh, x, z, ids, z_hat, residuals):
        self.static = dict(law=law, objective=objective, solver=solver, segment=segment, residual=residual,
                           n_clusters=n_clusters)
        self.sharding = NamedSharding(mesh, PartitionSpec("lanes"))
        self.step, self.init = _compiled_pool(tuple(self.static.items()), self.sharding)
        self.data = (x, z, ids, z_hat, residuals)
        self.lanes = lanes
        self.max_steps = solver.max_steps
        self.compile_seconds = 0.0
        self.lane_steps = 0
        self.job_steps = 0
        self.calls = 0
        self.pruned = 0

    def _put(self, a):
        return jax.device_put(a, self.sharding)

    def __call__(self, keys, u_starts, race, *, progress, t_start, tally):
        n_res, n_starts = keys.shape[0], u_starts.shape[0]
        n_jobs = n_res * n_starts
        B = self.lanes
        best = {"f": np.full(n_res, np.inf), "u": np.tile(u_starts[0], (n_res, 1)),
                "k": np.zeros(n_res, np.int64), "converged": np.zeros(n_res, bool)}
        running_best = np.full(n_res, np.inf)
        finished = np.zeros(n_res, np.int64)
        lane_job = np.full(B, -1)
        next_job = 0
        refill = np.ones(B, bool)
        state = None
        last_report = time.perf_counter()
        key_data = np.asarray(jax.random.key_data(keys))
        while True:
            # assign jobs to the lanes being refilled
            idle = np.zeros(B, bool)
            slots = np.flatnonzero(refill)
            take = min(len(slots), n_jobs - next_job)
            lane_job[slots[:take]] = np.arange(next_job, next_job + take)
            lane_job[slots[take:]] = -1
            idle[slots[take:]] = True
            next_job += take
            if state is not None and not (lane_job >= 0).any():
                break
            jobs = np.maximum(lane_job, 0)
            new_u0 = u_starts[jobs % n_starts]
            new_keys = jax.random.wrap_key_data(key_data[jobs // n_starts])
            args = (self._put(refill), self._put(idle), self._put(new_u0), self._put(new_keys)) + self.data
            if state is None:
                state = self.init(*args[2:])
                t0 = time.perf_counter()
                self._step = self.step.lower(state, *args).compile()
                self.compile_seconds += time.perf_counter() - t0
            state, (outcome, done) = self._step(state, *args)
            u, f, k, ok = outcome.u, outcome.value, outcome.steps, outcome.converged
            self.calls += 1
            u, f, k, ok, done = (np.asarray(a) for a in (u, f, k, ok, done))
            self.lane_steps += B * self.static["segment"]
            active = lane_job >= 0
            res = np.where(active, lane_job // n_starts, 0)
            f = np.where(np.isfinite(f), f, np.inf)
            stopped = active & (done | (k >= self.max_steps))
            # L-BFGS never increases the objective: a lane's current value bounds its final one
            np.minimum.at(running_best, res[active], f[active])
            if race is not None:
                behind = f > running_best[res] + race.rtol * np.abs(running_best[res])
                cut = active & ~stopped & (k >= race.after) & behind
                self.pruned += int(cut.sum())
                stopped |= cut
                ok = ok & ~cut
            self.job_steps += int(k[stopped].sum())
            for lane in np.flatnonzero(stopped):
                r = res[lane]
                finished[r] += 1
                if f[lane] < best["f"][r]:
                    best["f"][r], best["u"][r], best["k"][r], best["converged"][r] = f[lane], u[lane], k[lane], ok[lane]
            refill = stopped | ~active
            tally.done = int((finished == n_starts).sum())
            last_call = next_job == n_jobs and not (active & ~stopped).any()
            if progress and (time.perf_counter() - last_report > 2.0 or last_call):
                last_report = time.perf_counter()
                print(f"bootstrap {self.static['law'].name}: {int((finished == n_starts).sum())}/{n_res} resamples "
                      f"done ({time.perf_counter() - t_start:.1f} s)", file=sys.stderr, flush=True)
        best["converged"] &= np.isfinite(best["f"])
        return best
