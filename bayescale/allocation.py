"""Compute-optimal allocation: N*(C), D*(C) and tokens per parameter.

For any law that reads covariates ``N`` and ``D`` (``chinchilla``, ``tpr``, or a
user's own), and for any weighted *validation mix* of several fitted losses,

    N*(C) = argmin_N  sum_s w_s · L_s(N, C / (6 N)),   D*(C) = C / (6 N*).

``L_s`` is the law's *cost* in natural units: the loss for a loss law, the error rate
``1 - Q`` for an accuracy law (so the optimum maximises accuracy); ``Allocation.loss``
reports that cost at the optimum.

The minimum is found numerically in ``log N`` (a 241-point scan over twelve
e-folds either side of sqrt(C/6), then golden-section and Newton refinement), so one
implementation serves a single law, a mix of laws, one parameter set and arrays
of posterior or bootstrap draws alike (vectorised with ``vmap``, no Python loop
over draws).  For ``chinchilla`` it agrees with the closed form of Hoffmann et al.:
G = (alpha·A/(beta·B))^(1/(alpha+beta)), N* = G·(C/6)^(beta/(alpha+beta)).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.law import Law

__all__ = ["Allocation", "compute_optimal", "mix_compute_optimal"]

_HALF_WIDTH = 12.0  # e-folds either side of sqrt(C/6) scanned for the optimum
_SCAN = 241
_GOLDEN_STEPS = 80
_INVPHI = (np.sqrt(5.0) - 1.0) / 2.0


@dataclasses.dataclass(frozen=True)
class Allocation:
    """Compute-optimal allocation; arrays of shape ``draws_shape + compute_shape``.

    ``interior`` is False where the optimum sits at the edge of the scanned range
    (the law implies no finite optimum there; e.g. an exponent near 0).
    """

    compute: np.ndarray
    N: np.ndarray
    D: np.ndarray
    tokens_per_param: np.ndarray
    loss: np.ndarray
    interior: np.ndarray


def _check(law: Law) -> None:
    if set(law.covariate_names) != {"N", "D"}:
        raise ValueError(
            f"law {law.name!r} reads {law.covariate_names}; compute-optimal allocation needs a law of N and D"
        )


@functools.partial(jax.jit, static_argnames=("laws", "flops_per_token_param"))
def _optimum(laws: tuple[Law, ...], params: tuple, weights, log_c, flops_per_token_param: float):
    """params: tuple of dicts of scalars; log_c: scalar.  Returns (log N*, loss, interior)."""
    log_budget = log_c - jnp.log(flops_per_token_param)  # log(N·D)

    def mix_loss(u):
        x = {"N": jnp.exp(u), "D": jnp.exp(log_budget - u)}
        return sum(w * law.response.cost(law.predict(p, x)) for law, p, w in zip(laws, params, weights))

    centre = 0.5 * log_budget
    grid = centre + jnp.linspace(-_HALF_WIDTH, _HALF_WIDTH, _SCAN)
    values = mix_loss(grid)
    values = jnp.where(jnp.isfinite(values), values, jnp.inf)
    i = jnp.argmin(values)
    lo, hi = grid[jnp.maximum(i - 1, 0)], grid[jnp.minimum(i + 1, _SCAN - 1)]

    def golden(_, bracket):
        a, b = bracket
        c = b - _INVPHI * (b - a)
        d = a + _INVPHI * (b - a)
        left = mix_loss(c) < mix_loss(d)
        return jnp.where(left, a, c), jnp.where(left, d, b)

    a, b = jax.lax.fori_loop(0, _GOLDEN_STEPS, golden, (lo, hi))
    u = 0.5 * (a + b)
    # Golden section resolves u only to ~sqrt(eps) (the loss is flat at its
    # minimum); two Newton steps on d(loss)/du, kept inside the bracket, finish it.
    grad = jax.grad(mix_loss)
    hess = jax.grad(grad)
    for _ in range(2):
        h = hess(u)
        newton = u - grad(u) / h
        u = jnp.where((h > 0) & (newton > lo) & (newton < hi), newton, u)
    interior = (i > 0) & (i < _SCAN - 1) & jnp.isfinite(values[i])
    return u, mix_loss(u), interior


def mix_compute_optimal(
    components: Sequence[tuple[Law, Mapping[str, object], float]],
    compute,
    *,
    flops_per_token_param: float = 6.0,
) -> Allocation:
    """N*, D* minimising a weighted mix of losses ``sum_s w_s L_s(N, C/(6N))``.

    Parameters
    ----------
    components:
        ``(law, params, weight)`` triples; every ``params`` maps names to scalars or
        to arrays of draws of one common leading shape.
    compute:
        Budget(s) C in FLOPs, any shape.
    flops_per_token_param:
        The constant in C = k·N·D (6 for dense transformers).

    Examples
    --------
    >>> from bayescale import laws, mix_compute_optimal
    >>> p = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
    >>> a = mix_compute_optimal([(laws.chinchilla, p, 1.0)], 5.88e23)
    >>> round(float(a.tokens_per_param))
    18
    """
    if not components:
        raise ValueError("give at least one (law, params, weight) component")
    laws = tuple(c[0] for c in components)
    for law in laws:
        _check(law)
    weights = np.array([float(c[2]) for c in components])
    if np.any(weights < 0) or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(f"mix weights must be non-negative and not all zero, got {weights.tolist()}")
    with jax.enable_x64(True):
        params = []
        for law, p, _ in components:
            params.append({n: jnp.asarray(p[n], dtype=jnp.float64) for n in law.params})
        batch = jnp.broadcast_shapes(*(v.shape for p in params for v in p.values()))
        flat = tuple({n: jnp.broadcast_to(v, batch).reshape(-1) for n, v in p.items()} for p in params)
        c = np.asarray(compute, dtype=float)
        if np.any(~np.isfinite(c)) or np.any(c <= 0):
            raise ValueError("compute budgets must be positive and finite")
        log_c = jnp.log(jnp.asarray(c, dtype=jnp.float64)).reshape(-1)
        w = jnp.asarray(weights)

        def per_draw(p):
            return jax.vmap(lambda lc: _optimum(laws, p, w, lc, flops_per_token_param))(log_c)

        u, loss, interior = jax.vmap(per_draw)(flat)
        shape = tuple(batch) + c.shape
        n_opt = np.exp(np.asarray(u)).reshape(shape)
    d_opt = np.broadcast_to(c, shape) / (flops_per_token_param * n_opt)
    return Allocation(
        compute=c,
        N=n_opt,
        D=d_opt,
        tokens_per_param=d_opt / n_opt,
        loss=np.asarray(loss).reshape(shape),
        interior=np.asarray(interior).reshape(shape),
    )


def compute_optimal(law: Law, params: Mapping[str, object], compute, *, flops_per_token_param: float = 6.0) -> Allocation:
    """N*(C), D*(C) and tokens per parameter for one fitted law (see :func:`mix_compute_optimal`).

    >>> from bayescale import laws, compute_optimal
    >>> p = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
    >>> f"{float(compute_optimal(laws.chinchilla, p, 1e23).N):.3g}"
    '2.98e+10'
    """
    return mix_compute_optimal([(law, params, 1.0)], compute, flops_per_token_param=flops_per_token_param)
