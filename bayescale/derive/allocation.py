"""Compute-optimal allocation: N*(C), D*(C) and tokens per parameter.

For any law with a covariate of role ``size`` (N) and one of role ``tokens`` (D)
(``chinchilla``, ``tpr``, or a user's own, whatever it names them), and for any
weighted *validation mix* of several fitted losses,

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
import pandas as pd

from bayescale.derive.bands import Band, band
from bayescale.derive.checks import check_fit, check_interval, check_law, check_number, check_params, positive_values
from bayescale.errors import ArgumentError, ArgumentTypeError
from bayescale.fit import Fit, float64
from bayescale.laws import Law

__all__ = ["Allocation", "compute_optimal", "compute_to_reach", "mix_compute_optimal", "optimal_bands", "paired",
           "reach_bands"]

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

    def to_frame(self) -> pd.DataFrame:
        """One row per (draw, budget): ``draw, compute, N, D, tokens_per_param, loss, interior``."""
        budgets = np.ravel(self.compute)
        n_lead = int(np.size(self.N)) // max(budgets.size, 1)
        return pd.DataFrame({"draw": np.repeat(np.arange(n_lead), budgets.size), "compute": np.tile(budgets, n_lead),
                             "N": np.ravel(self.N), "D": np.ravel(self.D),
                             "tokens_per_param": np.ravel(self.tokens_per_param), "loss": np.ravel(self.loss),
                             "interior": np.ravel(self.interior)})


def _check(law: Law, function: str = "compute_optimal") -> None:
    """The law must declare a ``size`` and a ``tokens`` covariate and nothing else."""
    check_law(law, function)
    roles = law.roles
    if "size" not in roles or "tokens" not in roles or len(law.covariates) != 2:
        raise ArgumentError(
            f"{function}: law {law.name!r} reads {', '.join(law.covariate_names)}; compute-optimal allocation needs "
            "a law of model size and tokens only (covariates with role 'size' and 'tokens')"
        )


@functools.partial(jax.jit, static_argnames=("laws", "flops_per_token_param"))
def _optimum(laws: tuple[Law, ...], params: tuple, weights, log_c, flops_per_token_param: float):
    """params: tuple of dicts of scalars; log_c: scalar.  Returns (log N*, loss, interior)."""
    log_budget = log_c - jnp.log(flops_per_token_param)  # log(N·D)

    def mix_loss(u):
        def x(law):
            return {law.roles["size"]: jnp.exp(u), law.roles["tokens"]: jnp.exp(log_budget - u)}

        return sum(w * law.response.cost(law.predict(p, x(law))) for law, p, w in zip(laws, params, weights))

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


@float64
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

    Budgets that are not positive and finite are refused (an
    :class:`~bayescale.errors.ArgumentError` naming the budget and its position).

    Examples
    --------
    >>> from bayescale import laws, mix_compute_optimal
    >>> p = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
    >>> a = mix_compute_optimal([(laws.chinchilla, p, 1.0)], 5.88e23)
    >>> round(float(a.tokens_per_param))
    18
    """
    return _mix_optimal(components, compute, flops_per_token_param, "mix_compute_optimal")


@float64
def _mix_optimal(components, compute, flops_per_token_param, function: str) -> Allocation:
    """:func:`mix_compute_optimal`, naming ``function`` in its errors."""
    laws, weights, c = _components(components, compute, flops_per_token_param, function)
    flops_per_token_param = float(flops_per_token_param)
    params = [{n: jnp.asarray(p[n], dtype=jnp.float64) for n in law.params} for law, p, _ in components]
    batch = jnp.broadcast_shapes(*(v.shape for p in params for v in p.values()))
    flat = tuple({n: jnp.broadcast_to(v, batch).reshape(-1) for n, v in p.items()} for p in params)
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


def _components(components, compute, flops_per_token_param, function: str):
    """The checked ``(laws, weights, budgets)`` of :func:`mix_compute_optimal`'s arguments."""
    if isinstance(components, (str, bytes, Mapping)) or not isinstance(components, Sequence):
        raise ArgumentTypeError(f"{function}: components must be a list of (law, params, weight) triples, "
                                f"got {type(components).__name__}")
    if not components:
        raise ArgumentError(f"{function}: give at least one (law, params, weight) component")
    for i, part in enumerate(components):
        if not isinstance(part, (tuple, list)) or len(part) != 3:
            raise ArgumentTypeError(f"{function}: components[{i}] must be a (law, params, weight) triple, "
                                    f"got {type(part).__name__}")
        _check(part[0], function)
        check_params(part[0], part[1], function, f"components[{i}] params")
        check_number(part[2], f"components[{i}] weight", function)
    weights = np.array([float(part[2]) for part in components])
    if np.any(weights < 0) or weights.sum() <= 0:
        raise ArgumentError(f"{function}: mix weights must be non-negative and not all zero, got {weights.tolist()}")
    check_number(flops_per_token_param, "flops_per_token_param", function, positive=True)
    return tuple(part[0] for part in components), weights, positive_values(compute, "compute", function)


def compute_optimal(law: Law, params: Mapping[str, object], compute, *,
                    flops_per_token_param: float = 6.0) -> Allocation:
    """N*(C), D*(C) and tokens per parameter for one fitted law (see :func:`mix_compute_optimal`).

    >>> from bayescale import laws, compute_optimal
    >>> p = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
    >>> f"{float(compute_optimal(laws.chinchilla, p, 1e23).N):.3g}"
    '2.98e+10'
    """
    return _mix_optimal([(law, params, 1.0)], compute, flops_per_token_param, "compute_optimal")


# --------------------------------------------------------------------------- bands over fits


def paired(fits: Sequence[Fit]) -> list[dict[str, np.ndarray]]:
    """The draws of several fits cut to a common count, laid out ``(1, n)``.

    Separate fits are independent, so pairing their draws by index gives joint draws.
    """
    if isinstance(fits, (str, bytes, Mapping)) or not isinstance(fits, Sequence) or not fits:
        raise ArgumentTypeError(f"paired: fits must be a non-empty list of Fit, got {type(fits).__name__}")
    for i, f in enumerate(fits):
        check_fit(f, "paired", f"fits[{i}]")
    n = min(f.n_draws for f in fits)
    return [{k: np.asarray(v).reshape(-1)[:n][None, :] for k, v in f.draws.items()} for f in fits]


def optimal_bands(
    fit: Fit | None,
    compute,
    *,
    interval: float = 0.9,
    mix: Sequence[tuple[Fit, float]] | None = None,
    flops_per_token_param: float = 6.0,
) -> tuple[Allocation, dict[str, Band]]:
    """N*, D*, tokens per parameter and loss at the optimum, with bands.

    ``fit`` is one fit of a law of model size and tokens; or pass ``mix`` as
    ``[(fit, weight), ...]`` (and ``fit=None``) for the optimum of a weighted validation
    mix.  Draws of separate fits are paired by index (:func:`paired`).  Returns the
    allocation for every draw, laid out ``(chain, draw) + shape of compute``, and a band
    per quantity.
    """
    interval = check_interval(interval, "optimal_bands")
    if mix is None:
        if fit is None:
            raise ArgumentError("optimal_bands: give a fit or a mix")
        mix = [(check_fit(fit, "optimal_bands"), 1.0)]
    elif fit is not None:
        raise ArgumentError("optimal_bands: give either fit or mix, not both")
    if isinstance(mix, (str, bytes, Mapping)) or not isinstance(mix, Sequence) or not mix:
        raise ArgumentTypeError(f"optimal_bands: mix must be a non-empty list of (fit, weight) pairs, "
                                f"got {type(mix).__name__}")
    for i, part in enumerate(mix):
        if not isinstance(part, (tuple, list)) or len(part) != 2:
            raise ArgumentTypeError(f"optimal_bands: mix[{i}] must be a (fit, weight) pair, got {type(part).__name__}")
        check_fit(part[0], "optimal_bands", f"mix[{i}] fit")
    draws = paired([f for f, _ in mix]) if len(mix) > 1 else [mix[0][0].draws]
    alloc = _mix_optimal([(f.law, d, w) for d, (f, w) in zip(draws, mix)], compute, flops_per_token_param,
                         "optimal_bands")
    bands = {name: band(getattr(alloc, name), interval) for name in ("N", "D", "tokens_per_param", "loss")}
    return alloc, bands


# --------------------------------------------------------------------------- compute to reach a target

_LOG_C_RANGE = (np.log(1e12), np.log(1e32))
_BISECTIONS = 100


@functools.partial(jax.jit, static_argnames=("law", "flops_per_token_param"))
def _reach(law: Law, params, target, flops_per_token_param: float):
    frontier = "compute" not in law.roles

    def value(log_c):  # the law's cost (loss, or error rate 1 - Q) at the best allocation of C
        if frontier:
            _, cost, _ = _optimum((law,), (params,), jnp.ones(1), log_c, flops_per_token_param)
            return cost
        return law.response.cost(law.predict(params, {law.roles["compute"]: jnp.exp(log_c)}))

    target = law.response.cost(target)
    lo, hi = jnp.asarray(_LOG_C_RANGE[0]), jnp.asarray(_LOG_C_RANGE[1])
    v_lo, v_hi = value(lo), value(hi)
    falling = v_hi < v_lo  # a cost falls with compute (unless the law says otherwise)
    reached = jnp.where(falling, v_hi <= target, v_hi >= target)
    already = jnp.where(falling, v_lo <= target, v_lo >= target)

    def step(_, bracket):
        a, b = bracket
        m = 0.5 * (a + b)
        past = jnp.where(falling, value(m) <= target, value(m) >= target)
        return jnp.where(past, a, m), jnp.where(past, m, b)

    a, b = jax.lax.fori_loop(0, _BISECTIONS, step, (lo, hi))
    log_c = jnp.where(already, lo, 0.5 * (a + b))
    return jnp.where(reached, jnp.exp(log_c), jnp.inf)


@float64
def compute_to_reach(law: Law, params: Mapping[str, object], target: float, *,
                     flops_per_token_param: float = 6.0) -> np.ndarray:
    """The compute C at which the law reaches ``target`` (a loss or an accuracy).

    For a law of compute alone (a covariate with role ``compute``) this solves
    ``law(C) = target``; for a law of model size and tokens it follows the
    compute-optimal frontier (the least compute that reaches the target).  Draws that
    never reach the target below 1e32 FLOPs give ``inf`` (a loss target below the law's
    irreducible loss ``E``, say), and a target already reached at 1e12 FLOPs gives 1e12, the
    lower end of the search.  A target the response cannot take (a loss <= 0, an accuracy
    outside [0, 1], or at or below the chance level of a chance-normalised accuracy) is
    refused.  ``params`` may hold arrays of draws of any leading shape (see
    :func:`reach_bands` for a fit).

    >>> from bayescale import laws
    >>> p = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
    >>> f"{float(compute_to_reach(laws.chinchilla, p, 2.0)):.3g}"
    '2.43e+23'
    """
    _check_reach(law, params, target, flops_per_token_param, "compute_to_reach")
    arrays = {n: jnp.asarray(params[n], dtype=jnp.float64) for n in law.params}
    shape = jnp.broadcast_shapes(*(v.shape for v in arrays.values()))
    flat = {n: jnp.broadcast_to(v, shape).reshape(-1) for n, v in arrays.items()}
    out = jax.vmap(lambda q: _reach(law, q, jnp.asarray(float(target)), float(flops_per_token_param)))(flat)
    return np.asarray(out).reshape(shape)


def _check_reach(law: Law, params, target, flops_per_token_param, function: str) -> None:
    check_law(law, function)
    if "compute" in law.roles:
        if len(law.covariates) != 1:
            raise ArgumentError(f"{function}: law {law.name!r} reads {', '.join(law.covariate_names)}; it needs a law "
                                "of compute alone or of model size and tokens")
    else:
        _check(law, function)
    check_params(law, params, function)
    check_number(flops_per_token_param, "flops_per_token_param", function, positive=True)
    value = check_number(target, "target", function)
    check = law.response.validate(np.array([value]))
    if check.invalid[0] or check.unusable[0]:
        why = check.invalid_reason if check.invalid[0] else check.unusable_reason
        raise ArgumentError(f"{function}: target {value:g} is outside what law {law.name!r} can reach "
                            f"({law.response.label}: {why})")


def reach_bands(fit: Fit, target: float, *, interval: float = 0.9,
                flops_per_token_param: float = 6.0) -> tuple[np.ndarray, Band]:
    """:func:`compute_to_reach` for every draw of ``fit``: values ``(chain, draw)`` and their band.

    An upper bound of ``inf`` means "maybe never".
    """
    check_fit(fit, "reach_bands")
    interval = check_interval(interval, "reach_bands")
    values = compute_to_reach(fit.law, fit.draws, target, flops_per_token_param=flops_per_token_param)
    return values, band(values, interval)
