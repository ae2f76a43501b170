"""MAP point fits: multi-start L-BFGS in unconstrained space, batched with ``vmap``.

The recipe, for any :class:`~bayescale.law.Law`:

1. take the law's starts (a fixed grid or computed from the data) in natural
   parameters and map them to the unconstrained space of the priors' supports;
2. evaluate the objective at every start in one batched call (the *screen*);
3. run L-BFGS from the ``keep`` best starts, all lanes in one compiled
   ``vmap``-ed loop, until each lane meets the tolerance (see :class:`Solver`:
   bayescale's vmap-friendly L-BFGS by default, optax's on request);
4. the lowest objective wins.

Screening first matters: under ``vmap`` a loop runs until its slowest lane is
done, so polishing all 4,500 Chinchilla starts takes 196 s while the best 64
reach the same optimum (to 1e-6 in every parameter) in 0.7 s.  Set
``keep=None`` to polish every start.

The compiled programs depend on the law, the objective, the options and the
data *shape* only: a second fit of the same law to new data of the same shape
does not recompile.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bayescale.data import Data
from bayescale.law import Law
from bayescale.objective import Huber

__all__ = ["MapResult", "Solver", "fit_map", "starts_for"]


@dataclasses.dataclass(frozen=True)
class Solver:
    """L-BFGS options (hashable: part of the compilation key).

    A lane stops when the largest gradient entry (unconstrained space) is below
    ``gtol`` or the objective changes by less than ``ftol`` relative to its value
    in one step; it is reported *converged* only if it stopped that way before
    ``max_steps``, its objective is finite, and its gradient is below
    ``accept_gtol·(1 + |f|)``.

    ``backtracking`` swaps optax's zoom line search (strong Wolfe) for Armijo
    backtracking, which usually accepts the L-BFGS step with one evaluation.  Under
    ``vmap`` every lane waits for the lane whose line search takes longest, so it
    can be several times faster in batched fits, but it stalls more often on weakly
    identified problems (see :func:`bayescale.fit_bootstrap`).

    ``parallel_steps`` (the default) selects bayescale's own L-BFGS: the two-loop
    recursion, then an Armijo search that evaluates the objective at all these step
    lengths in one batched call and takes the longest that decreases enough.  Each
    step costs exactly one value-and-gradient and ``len(parallel_steps)`` values,
    whatever the other lanes do: nothing in it branches, so ``vmap`` wastes no
    evaluations.  ``parallel_steps=()`` selects optax's L-BFGS with its zoom line
    search instead (or Armijo backtracking with ``backtracking=True``).  Measured on
    the 240 Chinchilla runs (64 polished starts, warm): 0.7 s versus 19.5 s for the
    optax zoom search, to the same optimum (objective equal to 1e-15).
    """

    max_steps: int = 2000
    gtol: float = 1e-11
    ftol: float = 1e-15
    accept_gtol: float = 1e-5
    memory: int = 10
    max_linesearch_steps: int = 30
    backtracking: bool = False
    parallel_steps: tuple[float, ...] = (1.0, 0.5, 0.1, 1e-2, 1e-3, 1e-4)


@dataclasses.dataclass(frozen=True)
class MapResult:
    """The outcome of :func:`fit_map`.

    Attributes
    ----------
    params:
        Named natural parameters at the best start's optimum.
    objective:
        Objective value there.
    converged:
        Whether the winning lane met the tolerance (see :class:`Solver`).
    steps:
        L-BFGS iterations the winning lane took.
    grad_norm:
        Largest gradient entry in unconstrained space at the optimum.
    n_starts, n_polished, n_agree:
        Starts screened, starts polished, and polished starts whose optimum lies
        within 1e-6 (relative) of the best objective: a small ``n_agree`` means
        the optimum was found from few starts.
    """

    law: Law
    params: dict[str, float]
    objective: float
    converged: bool
    steps: int
    grad_norm: float
    n_obs: int
    n_starts: int
    n_polished: int
    n_agree: int
    dropped: int
    seconds: float
    residual_scale: float = float("nan")
    data: Data | None = None
    parts: tuple = ()

    def predict(self, **x: np.ndarray) -> np.ndarray:
        """Prediction in natural units at covariates ``x`` (by covariate name)."""
        from bayescale.prediction import predict

        return predict(self.law, self.params, x)

    @property
    def diagnostics(self) -> dict[str, object]:
        return {
            "converged": self.converged,
            "objective": self.objective,
            "steps": self.steps,
            "grad_norm": self.grad_norm,
            "n_starts": self.n_starts,
            "n_polished": self.n_polished,
            "n_agree": self.n_agree,
            "n_dropped": self.dropped,
        }


# --------------------------------------------------------------------------- compiled core


def _objective_u(law: Law, objective, u, x, z, w):
    r = law.fn(law.constrain(u), x) - z
    return objective(r, w)


def _optimizer(solver: Solver):
    if solver.backtracking:
        search = optax.scale_by_backtracking_linesearch(
            max_backtracking_steps=solver.max_linesearch_steps, store_grad=True
        )
    else:
        search = optax.scale_by_zoom_linesearch(max_linesearch_steps=solver.max_linesearch_steps)
    return optax.lbfgs(memory_size=solver.memory, linesearch=search)


def _lbfgs_init(fun, u0, solver: Solver):
    """The loop state of one L-BFGS lane started at ``u0``: (u, opt_state, k, f, max|g|, done)."""
    f0, g0 = jax.value_and_grad(fun)(u0)
    done = ~jnp.isfinite(f0)
    if solver.parallel_steps:
        m, p = solver.memory, u0.shape[0]
        state = (g0, jnp.zeros((m, p)), jnp.zeros((m, p)), jnp.zeros(m), jnp.asarray(0), jnp.asarray(0),
                 jnp.asarray(1.0))
    else:
        state = _optimizer(solver).init(u0)
    return (u0, state, jnp.asarray(0), f0, jnp.max(jnp.abs(g0)), done)


def _two_loop(g, s_hist, y_hist, rho, head, filled):
    """L-BFGS direction -H·g from a circular history (newest entry at ``head - 1``)."""
    m = rho.shape[0]

    def backward(i, carry):
        q, alphas = carry
        j = (head - 1 - i) % m
        a = jnp.where(i < filled, rho[j] * jnp.dot(s_hist[j], q), 0.0)
        return q - a * y_hist[j], alphas.at[j].set(a)

    q, alphas = jax.lax.fori_loop(0, m, backward, (g, jnp.zeros(m)))
    newest = (head - 1) % m
    yy = jnp.dot(y_hist[newest], y_hist[newest])
    gamma = jnp.where(filled > 0, jnp.dot(s_hist[newest], y_hist[newest]) / jnp.where(yy > 0, yy, 1.0),
                      1.0 / jnp.maximum(1.0, jnp.sqrt(jnp.dot(g, g))))

    def forward(i, r):
        j = (head - filled + i) % m
        b = rho[j] * jnp.dot(y_hist[j], r)
        return r + jnp.where(i < filled, alphas[j] - b, 0.0) * s_hist[j]

    return -jax.lax.fori_loop(0, m, forward, gamma * q)


def _keep_going(solver: Solver, until):
    """Loop condition of a lane: not stopped, below ``until`` and ``solver.max_steps``."""

    def cond(c):
        _, _, k, _, _, done = c
        return (k < jnp.minimum(until, solver.max_steps)) & ~done

    return cond


def _parallel_lbfgs_run(fun, carry, solver: Solver, until):
    steps = jnp.asarray(solver.parallel_steps)
    m = solver.memory
    value_and_grad = jax.value_and_grad(fun)

    def body(c):
        u, (g, s_hist, y_hist, rho, head, filled, scale), k, f, _, _ = c
        d = _two_loop(g, s_hist, y_hist, rho, head, filled)
        slope = jnp.dot(g, d)
        d = jnp.where(slope < 0, d, -g)  # not a descent direction: fall back to steepest descent
        slope = jnp.where(slope < 0, slope, -jnp.dot(g, g))
        lengths = scale * steps
        trial = jax.vmap(lambda t: fun(u + t * d))(lengths)
        trial = jnp.where(jnp.isfinite(trial), trial, jnp.inf)
        armijo = trial <= f + 1e-4 * lengths * slope
        pick = jnp.where(armijo.any(), jnp.argmax(armijo), jnp.argmin(trial))
        moved = trial[pick] < f
        u_new = jnp.where(moved, u + lengths[pick] * d, u)
        # the window of step lengths follows the problem's scale: down after a failed
        # search, back up (to at most 1) after a full step
        scale = jnp.where(moved, jnp.where(pick == 0, jnp.minimum(1.0, 10.0 * scale), scale), scale * steps[-1])
        f_new, g_new = value_and_grad(u_new)
        s_vec, y_vec = u_new - u, g_new - g
        sy = jnp.dot(s_vec, y_vec)
        keep = moved & (sy > 1e-12 * jnp.sqrt(jnp.dot(s_vec, s_vec) * jnp.dot(y_vec, y_vec)))
        s_hist = jnp.where(keep, s_hist.at[head % m].set(s_vec), s_hist)
        y_hist = jnp.where(keep, y_hist.at[head % m].set(y_vec), y_hist)
        rho = jnp.where(keep, rho.at[head % m].set(1.0 / jnp.where(sy != 0, sy, 1.0)), rho)
        head = jnp.where(keep, (head + 1) % m, head)
        filled = jnp.where(keep, jnp.minimum(filled + 1, m), filled)
        g_max = jnp.max(jnp.abs(g_new))
        flat = moved & (jnp.abs(f - f_new) <= solver.ftol * jnp.abs(f_new))
        stuck = ~moved & (scale < 1e-20)
        done = (g_max <= solver.gtol) | flat | stuck | ~jnp.isfinite(f_new)
        return u_new, (g_new, s_hist, y_hist, rho, head, filled, scale), k + 1, f_new, g_max, done

    return jax.lax.while_loop(_keep_going(solver, until), body, carry)


def _lbfgs_run(fun, carry, solver: Solver, until):
    """Advance one lane until it stops, reaches ``solver.max_steps`` or step ``until``."""
    if solver.parallel_steps:
        return _parallel_lbfgs_run(fun, carry, solver, until)
    opt = _optimizer(solver)
    value_and_grad = optax.value_and_grad_from_state(fun)

    def body(c):
        u, state, k, f_prev, _, _ = c
        f, g = value_and_grad(u, state=state)
        updates, state = opt.update(g, state, u, value=f, grad=g, value_fn=fun)
        u = optax.apply_updates(u, updates)
        f_new = optax.tree.get(state, "value")
        g_max = jnp.max(jnp.abs(optax.tree.get(state, "grad")))
        done = (g_max <= solver.gtol) | (jnp.abs(f_prev - f_new) <= solver.ftol * jnp.abs(f_new))
        done = done | ~jnp.isfinite(f_new)
        return u, state, k + 1, f_new, g_max, done

    return jax.lax.while_loop(_keep_going(solver, until), body, carry)


def _lbfgs_outcome(carry, solver: Solver):
    """(u, f, steps, max|grad|, converged) of a lane's loop state."""
    u, _, k, f, g_max, done = carry
    converged = done & jnp.isfinite(f) & (g_max <= solver.accept_gtol * (1.0 + jnp.abs(f)))
    return u, f, k, g_max, converged


def _lbfgs(fun, u0, solver: Solver):
    """One L-BFGS run from ``u0``; returns (u, f, steps, max|grad|, converged)."""
    carry = _lbfgs_run(fun, _lbfgs_init(fun, u0, solver), solver, solver.max_steps)
    return _lbfgs_outcome(carry, solver)


@functools.partial(jax.jit, static_argnames=("law", "objective"))
def _screen(law: Law, objective, u_starts, x, z, w):
    values = jax.vmap(lambda u: _objective_u(law, objective, u, x, z, w))(u_starts)
    return jnp.where(jnp.isfinite(values), values, jnp.inf)


@functools.partial(jax.jit, static_argnames=("law",))
def _residuals(law: Law, u, x, z):
    return law.fn(law.constrain(u), x) - z


@functools.partial(jax.jit, static_argnames=("law", "objective", "solver"))
def _polish(law: Law, objective, solver: Solver, u_starts, x, z, w):
    """L-BFGS from every row of ``u_starts`` (B, P); ``z`` and ``w`` are (n,) or per lane (B, n)."""

    def one(u0, z_lane, w_lane):
        return _lbfgs(lambda u: _objective_u(law, objective, u, x, z_lane, w_lane), u0, solver)

    z_axis = 0 if z.ndim == 2 else None
    w_axis = 0 if w.ndim == 2 else None
    return jax.vmap(one, in_axes=(0, z_axis, w_axis))(u_starts, z, w)


# --------------------------------------------------------------------------- entry point


def starts_for(law: Law, data: Data) -> np.ndarray:
    """Natural-parameter starts ``(S, P)`` for ``law`` on ``data``.

    The law's own ``starts`` hook if it has one, else 64 quasi-random points
    spread over the central part of each prior (in unconstrained space).
    """
    if law.starts is not None:
        with jax.enable_x64(True):
            z = np.asarray(law.response.to_fit(data.y))
        s = np.asarray(law.starts(data.x, z), dtype=float)
        if s.ndim != 2 or s.shape[1] != law.n_params:
            raise ValueError(f"law {law.name!r}: starts must have shape (S, {law.n_params}), got {s.shape}")
        return s
    return _prior_starts(law, 64)


def _prior_starts(law: Law, count: int) -> np.ndarray:
    """Halton points mapped through each prior's quantiles (deterministic)."""
    primes = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]
    cols = []
    for j, d in enumerate(law.priors):
        base = primes[j % len(primes)]
        q = np.array([_radical_inverse(i + 1, base) for i in range(count)])
        q = 0.1 + 0.8 * q  # central 80 % of the prior
        with jax.enable_x64(True):
            draws = np.asarray(d.sample(jax.random.key(j), (4096,)))
        cols.append(np.quantile(draws, q))
    return np.column_stack(cols)


def robust_scale(r: np.ndarray) -> float:
    """1.4826·MAD of residuals ``r`` (the Gaussian-consistent robust scale)."""
    r = np.asarray(r, dtype=float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan")
    return 1.4826 * float(np.median(np.abs(r - np.median(r))))


def _radical_inverse(i: int, base: int) -> float:
    out, f = 0.0, 1.0 / base
    while i:
        out += f * (i % base)
        i //= base
        f /= base
    return out


def fit_map(
    law: Law,
    data: Data,
    *,
    objective=Huber(1e-3),
    starts: np.ndarray | None = None,
    keep: int | None = 64,
    solver: Solver = Solver(),
) -> MapResult:
    """Fit ``law`` to ``data`` by multi-start L-BFGS (float64).

    Parameters
    ----------
    law, data:
        What to fit (``data`` from :func:`bayescale.from_frame`).
    objective:
        Objective on fit-space residuals; default the papers' summed Huber, delta 1e-3.
    starts:
        ``(S, P)`` natural-parameter starts; default :func:`starts_for`.
    keep:
        Polish the ``keep`` best starts after screening all of them (``None``: all).
    solver:
        L-BFGS options.

    Returns
    -------
    MapResult
        Never raises for a failed optimisation: ``converged`` says so (and a
        ``RuntimeWarning`` is issued).

    Examples
    --------
    >>> import numpy as np
    >>> from bayescale import laws, from_arrays, fit_map
    >>> C = np.logspace(18, 22, 9)
    >>> d = from_arrays(laws.power_law, y=1.7 + 900.0 * C**-0.15, C=C)
    >>> round(fit_map(laws.power_law, d).params["alpha"], 3)
    0.15
    """
    t0 = time.perf_counter()
    theta0 = starts_for(law, data) if starts is None else np.asarray(starts, dtype=float)
    if theta0.ndim != 2 or theta0.shape[1] != law.n_params:
        raise ValueError(f"starts must have shape (S, {law.n_params}), got {theta0.shape}")
    with jax.enable_x64(True):
        x = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in data.x.items()}
        z = jnp.asarray(law.response.to_fit(jnp.asarray(data.y, dtype=jnp.float64)))
        w = jnp.ones_like(z)
        u0 = law.unconstrain(jnp.asarray(theta0))
        values = _screen(law, objective, u0, x, z, w)
        order = np.argsort(np.asarray(values), kind="stable")
        if keep is not None:
            order = order[: max(1, min(keep, len(order)))]
        u, f, k, g, ok = _polish(law, objective, solver, u0[order], x, z, w)
        f = np.where(np.isfinite(np.asarray(f)), np.asarray(f), np.inf)
        best = int(np.argmin(f))
        params = {n: float(v) for n, v in law.constrain(u[best]).items()}
        r = np.asarray(_residuals(law, u[best], x, z))
    f_best = float(f[best])
    result = MapResult(
        law=law,
        params=params,
        objective=f_best,
        converged=bool(ok[best]) and bool(np.isfinite(f_best)),
        steps=int(k[best]),
        grad_norm=float(g[best]),
        n_obs=data.n,
        n_starts=int(theta0.shape[0]),
        n_polished=int(len(order)),
        n_agree=int(np.sum(f <= f_best + 1e-6 * abs(f_best) + 1e-300)),
        dropped=len(data.dropped),
        seconds=time.perf_counter() - t0,
        residual_scale=robust_scale(r),
        data=data,
    )
    if not result.converged:
        warnings.warn(
            f"MAP fit of {law.name!r} did not converge (steps {result.steps}, "
            f"max |grad| {result.grad_norm:.2e}, objective {result.objective:.6g})",
            RuntimeWarning,
            stacklevel=2,
        )
    return result
