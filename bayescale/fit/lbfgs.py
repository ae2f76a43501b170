"""L-BFGS built for ``vmap``: pure ``init`` / ``step`` / ``outcome`` over named state.

Two solver values share one interface (``init(fun, u0)``, ``step(fun, state)``,
``run(fun, state, until)``, ``outcome(state)``), so a fitter, the bootstrap's lane pool
and the Laplace step of NUTS drive either without knowing which it is:

* :class:`ParallelLbfgs` (the default) -- the two-loop recursion, then an Armijo search
  that evaluates the objective at every trial step length in one batched call and takes
  the longest that decreases enough.  Each step costs exactly one value-and-gradient and
  ``len(steps)`` values whatever the other lanes do: nothing branches, so ``vmap`` wastes
  no evaluations.
* :class:`OptaxLbfgs` -- optax's L-BFGS with its zoom line search (strong Wolfe), or
  Armijo backtracking with ``backtracking=True``.  Under ``vmap`` its branches become
  selects that evaluate both sides (measured in ``benchmarks/RESULTS.md``).

A lane stops when its largest gradient entry is below ``gtol`` or its objective changes
by less than ``ftol`` (relative) in one step; it is *converged* if it stopped that way
before ``max_steps`` with a finite objective and a gradient below
``accept_gtol·(1 + |f|)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["LbfgsState", "OptaxLbfgs", "OptaxState", "Outcome", "ParallelLbfgs", "Solver", "minimize"]

Array = Any
Objective = Callable[[Array], Array]


class LbfgsState(NamedTuple):
    """One lane of :class:`ParallelLbfgs`: the point, its value and gradient, and the history."""

    u: Array
    value: Array
    grad: Array
    grad_max: Array
    step: Array
    done: Array
    s_hist: Array
    y_hist: Array
    rho: Array
    head: Array
    filled: Array
    scale: Array


class OptaxState(NamedTuple):
    """One lane of :class:`OptaxLbfgs`: the point, its value, and optax's own state."""

    u: Array
    value: Array
    grad_max: Array
    step: Array
    done: Array
    opt_state: Any


class Outcome(NamedTuple):
    """Where a lane ended: point, objective, steps taken, largest gradient entry, converged."""

    u: Array
    value: Array
    steps: Array
    grad_max: Array
    converged: Array


@dataclasses.dataclass(frozen=True)
class _Tolerances:
    max_steps: int = 2000
    gtol: float = 1e-11
    ftol: float = 1e-15
    accept_gtol: float = 1e-5
    memory: int = 10

    def outcome(self, state) -> Outcome:
        """(u, f, steps, max|grad|, converged) of a lane's state."""
        small = state.grad_max <= self.accept_gtol * (1.0 + jnp.abs(state.value))
        ok = state.done & jnp.isfinite(state.value) & small
        return Outcome(state.u, state.value, state.step, state.grad_max, ok)

    def run(self, fun: Objective, state, until=None):
        """Advance one lane until it stops, reaches ``max_steps`` or step ``until``."""
        limit = self.max_steps if until is None else jnp.minimum(until, self.max_steps)
        return jax.lax.while_loop(lambda s: (s.step < limit) & ~s.done, lambda s: self.step(fun, s), state)

    def step(self, fun: Objective, state):  # pragma: no cover - overridden
        raise NotImplementedError


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


@dataclasses.dataclass(frozen=True)
class ParallelLbfgs(_Tolerances):
    """bayescale's L-BFGS: two-loop direction, Armijo search over ``steps`` in one batched call.

    The window of step lengths follows the problem's scale: it moves down after a failed
    search and back up (to at most 1) after a full step.  Hashable: part of the
    compilation key of every fitter.
    """

    steps: tuple[float, ...] = (1.0, 0.5, 0.1, 1e-2, 1e-3, 1e-4)

    def init(self, fun: Objective, u0: Array) -> LbfgsState:
        f0, g0 = jax.value_and_grad(fun)(u0)
        m, p = self.memory, u0.shape[0]
        return LbfgsState(u=u0, value=f0, grad=g0, grad_max=jnp.max(jnp.abs(g0)), step=jnp.asarray(0),
                          done=~jnp.isfinite(f0), s_hist=jnp.zeros((m, p)), y_hist=jnp.zeros((m, p)),
                          rho=jnp.zeros(m), head=jnp.asarray(0), filled=jnp.asarray(0), scale=jnp.asarray(1.0))

    def step(self, fun: Objective, state: LbfgsState) -> LbfgsState:
        s = state
        steps, m = jnp.asarray(self.steps), self.memory
        d = _two_loop(s.grad, s.s_hist, s.y_hist, s.rho, s.head, s.filled)
        slope = jnp.dot(s.grad, d)
        d = jnp.where(slope < 0, d, -s.grad)  # not a descent direction: fall back to steepest descent
        slope = jnp.where(slope < 0, slope, -jnp.dot(s.grad, s.grad))
        lengths = s.scale * steps
        trial = jax.vmap(lambda t: fun(s.u + t * d))(lengths)
        trial = jnp.where(jnp.isfinite(trial), trial, jnp.inf)
        armijo = trial <= s.value + 1e-4 * lengths * slope
        pick = jnp.where(armijo.any(), jnp.argmax(armijo), jnp.argmin(trial))
        moved = trial[pick] < s.value
        u_new = jnp.where(moved, s.u + lengths[pick] * d, s.u)
        scale = jnp.where(moved, jnp.where(pick == 0, jnp.minimum(1.0, 10.0 * s.scale), s.scale), s.scale * steps[-1])
        f_new, g_new = jax.value_and_grad(fun)(u_new)
        s_vec, y_vec = u_new - s.u, g_new - s.grad
        sy = jnp.dot(s_vec, y_vec)
        keep = moved & (sy > 1e-12 * jnp.sqrt(jnp.dot(s_vec, s_vec) * jnp.dot(y_vec, y_vec)))
        slot = s.head % m
        g_max = jnp.max(jnp.abs(g_new))
        flat = moved & (jnp.abs(s.value - f_new) <= self.ftol * jnp.abs(f_new))
        stuck = ~moved & (scale < 1e-20)
        return LbfgsState(
            u=u_new, value=f_new, grad=g_new, grad_max=g_max, step=s.step + 1,
            done=(g_max <= self.gtol) | flat | stuck | ~jnp.isfinite(f_new),
            s_hist=jnp.where(keep, s.s_hist.at[slot].set(s_vec), s.s_hist),
            y_hist=jnp.where(keep, s.y_hist.at[slot].set(y_vec), s.y_hist),
            rho=jnp.where(keep, s.rho.at[slot].set(1.0 / jnp.where(sy != 0, sy, 1.0)), s.rho),
            head=jnp.where(keep, (s.head + 1) % m, s.head),
            filled=jnp.where(keep, jnp.minimum(s.filled + 1, m), s.filled),
            scale=scale,
        )


@dataclasses.dataclass(frozen=True)
class OptaxLbfgs(_Tolerances):
    """optax's L-BFGS: zoom line search (strong Wolfe), or Armijo backtracking.

    ``backtracking=True`` usually accepts the L-BFGS step with one evaluation, but stalls
    more often on weakly identified problems.
    """

    max_linesearch_steps: int = 30
    backtracking: bool = False

    def _optimizer(self):
        if self.backtracking:
            search = optax.scale_by_backtracking_linesearch(max_backtracking_steps=self.max_linesearch_steps,
                                                            store_grad=True)
        else:
            search = optax.scale_by_zoom_linesearch(max_linesearch_steps=self.max_linesearch_steps)
        return optax.lbfgs(memory_size=self.memory, linesearch=search)

    def init(self, fun: Objective, u0: Array) -> OptaxState:
        f0, g0 = jax.value_and_grad(fun)(u0)
        return OptaxState(u=u0, value=f0, grad_max=jnp.max(jnp.abs(g0)), step=jnp.asarray(0),
                          done=~jnp.isfinite(f0), opt_state=self._optimizer().init(u0))

    def step(self, fun: Objective, state: OptaxState) -> OptaxState:
        opt = self._optimizer()
        f, g = optax.value_and_grad_from_state(fun)(state.u, state=state.opt_state)
        updates, opt_state = opt.update(g, state.opt_state, state.u, value=f, grad=g, value_fn=fun)
        u = optax.apply_updates(state.u, updates)
        f_new = optax.tree.get(opt_state, "value")
        g_max = jnp.max(jnp.abs(optax.tree.get(opt_state, "grad")))
        done = (g_max <= self.gtol) | (jnp.abs(state.value - f_new) <= self.ftol * jnp.abs(f_new))
        return OptaxState(u=u, value=f_new, grad_max=g_max, step=state.step + 1, done=done | ~jnp.isfinite(f_new),
                          opt_state=opt_state)


Solver = ParallelLbfgs | OptaxLbfgs


def minimize(fun: Objective, u0: Array, solver: Solver) -> Outcome:
    """One L-BFGS run of ``solver`` from ``u0`` to the end."""
    return solver.outcome(solver.run(fun, solver.init(fun, u0)))
