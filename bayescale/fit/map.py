"""MAP point fits: multi-start L-BFGS in unconstrained space, batched with ``vmap``.

The recipe, for any :class:`~bayescale.law.Law`:

1. take the law's starts (a fixed grid or computed from the data) in natural
   parameters and map them to the unconstrained space of the priors' supports;
2. evaluate the objective at every start in one batched call (the *screen*);
3. run L-BFGS from the ``keep`` best starts, all lanes in one compiled
   ``vmap``-ed loop, until each lane meets the tolerance (see
   :mod:`bayescale.fit.lbfgs`: bayescale's vmap-friendly L-BFGS by default, optax's on
   request);
4. the lowest objective wins.

Screening first matters: under ``vmap`` a loop runs until its slowest lane is
done, so polishing all 4,500 Chinchilla starts takes 196 s while the best 64
reach the same optimum (to 1e-6 in every parameter) in 0.7 s.  Set
``keep=None`` to polish every start.

The compiled programs depend on the law, the objective, the options and the
data *shape* only: a second fit of the same law to new data of the same shape
does not recompile.

Memory: the screen and the polish run in equal batches of starts (lanes) sized to the
memory budget (:mod:`bayescale.fit.budget`); a table too large for even one start is
refused before anything is allocated.  Ctrl-C between batches ends in one
:class:`~bayescale.errors.Interrupted` line.

Converged means: the best lane stopped on its tolerances with a finite objective, AND
the law's Gauss-Newton curvature there (``J^T J`` of the fit-space predictions in the
unconstrained parameters) has no flat direction against the residual scale.  A zero
gradient on a flat region -- a parameter the law ignores, data the law cannot reach --
is reported as ``not identified``, naming the parameters, instead of as a converged fit
with arbitrary values.  A parameter run to the lower edge of its support (``E -> 0``) is
not counted as flat: the curve is determined.  Measured margins on real fits (Epoch
Chinchilla, three Gadre sets, DCLM ARC-E / HellaSwag / PIQA; direct, direct_ceiling,
power_law, chinchilla): the smallest eigenvalue sits 1.7e6 to 2e8 times above the flat
threshold.  (A start already at a strict minimum stays converged though its objective
cannot decrease.)

The Laplace band: ``fit.draws`` are ``laplace_draws`` (default 1,000) draws of ``N(u*, Sigma)``
in the unconstrained parameters ``u``, ``Sigma = s^2 (J^T J)^+`` with ``J`` the Jacobian of the
fit-space predictions in ``u`` at the optimum ``u*`` and ``s`` the robust residual scale
(``info.residual_scale``), each draw mapped through the priors' supports
(:func:`laplace_approximation`).  The Gauss-Newton curvature ``J^T J``, not the objective's
Hessian: the default Huber objective has no curvature past its threshold.  Directions with no
curvature (or along a parameter pinned at its lower edge) get no spread.  The draws come from a
fixed quasi-random design (:func:`normal_design`: Halton points through the inverse normal CDF),
not random numbers: ``fit_map`` takes no ``key`` and two fits of the same data give the same draws.
Measured against the bootstrap (tests/test_laplace.py): its standard deviations run 0.65-0.8 times
the bootstrap's, because the Huber fit at delta 1e-3 is least absolute deviations at typical noise
(sampling spread sqrt(pi/2) times least squares', which the Gauss-Newton band describes).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import statistics
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution

from bayescale.errors import ArgumentError, ArgumentTypeError, DataError, expect, interruptible
from bayescale.fit.budget import chunk
from bayescale.fit.data import Data
from bayescale.fit.lbfgs import OptaxLbfgs, Outcome, ParallelLbfgs, Solver, minimize
from bayescale.fit.objective import Objective, default_objective
from bayescale.fit.precision import float64
from bayescale.fit.result import Fit, Fitter, MapInfo, plug_in, robust_scale, warn_problems
from bayescale.laws import Law

__all__ = ["LAPLACE_DRAWS", "MultiStart", "check_fit_inputs", "check_key", "check_law_output", "fit_map",
           "fitted_residuals", "identification", "laplace_approximation", "map_and_optima", "multi_start",
           "normal_design", "not_identified", "objective_u", "polish",
           "polish_starts", "polish_width", "positive_int", "screen", "screen_starts", "screen_width", "starts_for"]

# Device bytes per (start, row) of the batched programs, as multiples of one float64.  XLA's own
# memory_analysis() of the compiled programs (chinchilla, power_law, bnsl; 16-64 starts x 1e5 rows)
# measured 1.0-1.1 for the screen and 8-9 (ParallelLbfgs) or 6-14 (OptaxLbfgs) for the polish; the
# factors below leave room for custom laws whose temporaries XLA fuses less well.
SCREEN_FLOATS_PER_ROW = 4
POLISH_FLOATS_PER_ROW = 24


# --------------------------------------------------------------------------- compiled core


def objective_u(law: Law, objective: Objective, u, x, z, w):
    """The objective at unconstrained parameters ``u``: ``objective(law(u, x) - z, w)``."""
    r = law.fn(law.constrain(u), x) - z
    return objective(r, w)


@functools.partial(jax.jit, static_argnames=("law", "objective"))
def screen(law: Law, objective: Objective, u_starts, x, z, w):
    """The objective at every start ``(S, P)`` in one batched call (``inf`` where not finite)."""
    values = jax.vmap(lambda u: objective_u(law, objective, u, x, z, w))(u_starts)
    return jnp.where(jnp.isfinite(values), values, jnp.inf)


@functools.partial(jax.jit, static_argnames=("law",))
def fitted_residuals(law: Law, u, x, z):
    """Fit-space residuals ``law(u, x) - z`` at unconstrained parameters ``u``."""
    return law.fn(law.constrain(u), x) - z


@functools.partial(jax.jit, static_argnames=("law", "objective", "solver"))
def polish(law: Law, objective: Objective, solver: Solver, u_starts, x, z, w) -> Outcome:
    """L-BFGS from every row of ``u_starts`` (B, P); ``z`` and ``w`` are (n,) or per lane (B, n)."""

    def one(u0, z_lane, w_lane):
        return minimize(lambda u: objective_u(law, objective, u, x, z_lane, w_lane), u0, solver)

    z_axis = 0 if z.ndim == 2 else None
    w_axis = 0 if w.ndim == 2 else None
    return jax.vmap(one, in_axes=(0, z_axis, w_axis))(u_starts, z, w)


@functools.partial(jax.jit, static_argnames=("law",))
def _information(law: Law, u, x, w):
    """``J^T W J`` ``(P, P)``: ``J`` the Jacobian of the fit-space predictions in the unconstrained
    parameters at ``u``, ``W`` the row weights -- the Gauss-Newton curvature, which (unlike the
    Hessian of a Huber objective, zero wherever every residual is past the Huber threshold) is
    singular exactly when some parameter combination leaves every prediction unchanged.
    """
    jac = jax.jacfwd(lambda v: law.fn(law.constrain(v), x))(u)
    return (jac * w[:, None]).T @ jac


# --------------------------------------------------------------------------- batches within the budget


def _equal_chunks(a, width: int):
    """``a`` split along axis 0 into chunks of exactly ``width`` rows (the last padded by repeating
    its final row), so one compiled program serves every chunk; trim the results to ``len(a)``.
    """
    pad = (-a.shape[0]) % width
    if pad:
        a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)])
    return [a[i:i + width] for i in range(0, a.shape[0], width)]


def _fixed_bytes(x, z) -> float:
    """Device bytes every batch needs once: the covariates, targets, weights, residuals and a gradient."""
    return (len(x) + 4) * z.shape[-1] * 8.0


def screen_width(x, z, total: int) -> int:
    """Starts per screen batch within the memory budget (a :class:`~bayescale.errors.MemoryBudgetError`
    when not even one fits).
    """
    n = z.shape[-1]
    return chunk(SCREEN_FLOATS_PER_ROW * 8.0 * n, total, fixed=_fixed_bytes(x, z),
                 what=f"the MAP screen of {n:,} rows", fix="select fewer rows (--where)")


def polish_width(x, z, total: int) -> int:
    """L-BFGS lanes per batch within the memory budget (an error when not even one fits)."""
    n = z.shape[-1]
    return chunk(POLISH_FLOATS_PER_ROW * 8.0 * n, total, fixed=_fixed_bytes(x, z),
                 what=f"L-BFGS on {n:,} rows", fix="select fewer rows (--where)")


def screen_starts(law: Law, objective: Objective, u_starts, x, z, w, width: int | None = None) -> np.ndarray:
    """:func:`screen` over ``(S, P)`` starts in batches of ``width`` (default :func:`screen_width`): ``(S,)``.

    Raises :class:`~bayescale.errors.MemoryBudgetError` before allocating when not even one start
    fits (a huge table).
    """
    total = u_starts.shape[0]
    width = width or screen_width(x, z, total)
    with interruptible(total, "starts screened") as progress:
        values = []
        for part in _equal_chunks(u_starts, width):
            values.append(np.asarray(screen(law, objective, part, x, z, w)))
            progress.done = min(total, progress.done + width)
    return np.concatenate(values)[:total]


def polish_starts(law: Law, objective: Objective, solver: Solver, u_starts, x, z, w,
                  width: int | None = None) -> Outcome:
    """:func:`polish` of ``(B, P)`` starts in batches of ``width`` lanes (default :func:`polish_width`).

    Lanes are independent, but XLA may round a lane differently at another batch width (1e-9 relative
    in the parameters measured; a lane at its step limit may then stop either side of it).  Returns numpy arrays.
    """
    total = u_starts.shape[0]
    width = width or polish_width(x, z, total)
    with interruptible(total, "starts polished") as progress:
        parts = []
        for part in _equal_chunks(u_starts, width):
            parts.append(jax.tree.map(np.asarray, polish(law, objective, solver, part, x, z, w)))
            progress.done = min(total, progress.done + width)
    return Outcome(*(np.concatenate(field)[:total] for field in zip(*parts)))


def fit_arrays(law: Law, data: Data):
    """The fitted data as float64 device arrays: covariates ``x`` and the fit-space response ``z``."""
    x = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in data.x.items()}
    return x, jnp.asarray(law.response.to_fit(jnp.asarray(data.y, dtype=jnp.float64)))


# --------------------------------------------------------------------------- starts


def starts_for(law: Law, data: Data) -> np.ndarray:
    """Natural-parameter starts ``(S, P)`` for ``law`` on ``data``.

    The law's own ``starts`` hook if it has one, else 64 quasi-random points
    spread over the central part of each prior (in unconstrained space).
    """
    if law.starts is not None:
        z = np.asarray(law.response.to_fit(data.y))
        s = np.asarray(law.starts(data.x, z), dtype=float)
        if s.ndim != 2 or s.shape[1] != law.n_params:
            raise ArgumentError(f"law {law.name!r}: starts must have shape (S, {law.n_params}), got {s.shape}")
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
        cols.append(np.asarray(d.icdf(jnp.asarray(q))) if _has_icdf(d) else _quantiles(d, q, j))
    return np.column_stack(cols)


def _radical_inverse(i: int, base: int) -> float:
    out, f = 0.0, 1.0 / base
    while i:
        out += f * (i % base)
        i //= base
        f /= base
    return out


def _has_icdf(d: Distribution) -> bool:
    try:
        d.icdf(jnp.asarray(0.5))
    except NotImplementedError:
        return False
    return True


def _quantiles(d: Distribution, q: np.ndarray, j: int) -> np.ndarray:
    """Quantiles of a prior without a closed-form inverse CDF, from a fixed Monte Carlo sample.

    The key is fixed on purpose: starts are a deterministic design, not a random draw.
    """
    draws = np.asarray(d.sample(jax.random.key(j), (4096,)))
    return np.quantile(draws, q)


# --------------------------------------------------------------------------- checks at every fitter's entry


def positive_int(value, argument: str, function: str, *, optional: bool = False) -> int | None:
    """``value`` as an ``int`` if it is a positive integer (or ``None`` when ``optional``), else an error naming it.

    >>> positive_int(3, "keep", "fit_map")
    3
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "a positive int" + (" or None" if optional else "")
        raise ArgumentTypeError(f"{function}: {argument} must be {kind}, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ArgumentError(f"{function}: {argument} must be at least 1, got {value}")
    return int(value)


def check_key(key, function: str):
    """``key`` if it is one JAX PRNG key (``jax.random.key(0)`` or a legacy ``PRNGKey``), else an error."""
    if isinstance(key, jax.Array):
        typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()
        if typed or (key.dtype == jnp.uint32 and key.shape == (2,)):
            return key
    shape = f" of shape {np.shape(key)}" if hasattr(key, "shape") else ""
    raise ArgumentTypeError(f"{function}: key must be one JAX key such as jax.random.key(0), "
                            f"got {type(key).__name__}{shape}")


def check_fit_inputs(law: Law, data: Data, function: str, argument: str = "data") -> None:
    """What every fitter checks first: a :class:`Law`, :class:`Data` for it (``argument``), a response
    that varies, and a law that returns one value per row (:func:`check_law_output`).
    """
    expect(law, Law, "law", function)
    if not isinstance(data, Data):
        how = "bayescale.from_frame(frame, law, x=[...], y=...)" if type(data).__name__ == "DataFrame" else \
            "bayescale.from_frame(frame, law, x=[...], y=...) or bayescale.from_arrays(law, y=..., **x)"
        raise ArgumentTypeError(f"{function}: {argument} must be Data, got {type(data).__name__}; build it with {how}")
    missing = [c for c in law.covariate_names if c not in data.x]
    if missing:
        raise ArgumentError(f"{function}: law {law.name!r} reads {', '.join(law.covariate_names)} but {argument} has "
                            f"{', '.join(data.x) or 'no covariates'}; build the data for this law (from_frame)")
    y = np.asarray(data.y)
    column = data.columns.get("y", "y") if data.columns else "y"
    if y.ndim != 1 or y.size == 0 or any(np.shape(data.x[c]) != y.shape for c in law.covariate_names):
        shapes = ", ".join(f"{c} {np.shape(data.x[c])}" for c in law.covariate_names)
        raise DataError(f"{function}: the data must hold one value per row in every column; got response "
                        f"{column!r} {y.shape}, {shapes}; build it with bayescale.from_frame")
    if np.ptp(y) == 0:
        raise DataError(f"the response column {column!r} has one value ({y[0]:g}) in all {y.size:,} rows; "
                        "nothing to fit")
    check_law_output(law, data)


@float64
def check_law_output(law: Law, data: Data) -> None:
    """Refuse a law whose function does not return one value per row: shape ``(n,)`` for ``n`` rows.

    A law returning ``(n, 1)`` would broadcast against the ``(n,)`` response into an ``(n, n)``
    residual and be fitted to the wrong objective without a word.  Checked abstractly
    (:func:`jax.eval_shape`: nothing is computed) and once per law and data shape.
    """
    out = _law_output(law, tuple(law.covariate_names), int(np.shape(data.y)[0]))
    n = int(np.shape(data.y)[0])
    if tuple(out.shape) != (n,):
        dims = ", ".join("n" if d == n else str(d) for d in out.shape)
        shown = f"({dims},)" if len(out.shape) == 1 else f"({dims})"
        raise ArgumentError(f"law {law.name!r} returns shape {shown} for n = {n:,} rows; it must return one "
                            "value per row, shape (n,)")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ArgumentError(f"law {law.name!r} returns {out.dtype} values; it must return real floating-point "
                            "values, one per row")


@functools.lru_cache(maxsize=256)
def _law_output(law: Law, names: tuple[str, ...], n: int):
    u = jax.ShapeDtypeStruct((law.n_params,), jnp.float64)
    x = {k: jax.ShapeDtypeStruct((n,), jnp.float64) for k in names}
    try:
        return jax.eval_shape(lambda v, c: law.fn(law.constrain(v), c), u, x)
    except Exception as e:  # a law that cannot even be traced on its covariates: say which law, in one line
        first = (str(e).strip().splitlines() or [""])[0]
        raise ArgumentError(f"law {law.name!r} fails on {n:,} rows of {', '.join(names)}: "
                            f"{type(e).__name__}: {first}") from e


# Flat directions at the optimum.  An eigenvalue of J^T W J below RTOL x the largest (numerically
# singular), or so small that the residual scale s would leave that parameter combination
# undetermined to more than sqrt(SPREAD) = 1,000 units of the unconstrained space (s^2 / lambda >
# SPREAD: a factor e^1000, or 1,000 in an exponent), marks parameters the data do not determine.
_FLAT_RTOL = 1e-12
_FLAT_SPREAD = 1e6


def identification(law: Law, u, x, w, scale: float, information=None) -> tuple[str, ...]:
    """The parameters the data do not determine at the optimum ``u`` (empty: all are determined).

    The Gauss-Newton curvature ``J^T W J`` of the predictions (:func:`_information`, or
    ``information`` when already computed) against the residual scale ``scale``; the parameters
    named are those with the largest components in its flat eigenvectors.
    """
    h = np.asarray(_information(law, jnp.asarray(u), x, w) if information is None else information)
    if not np.all(np.isfinite(h)):
        return ()
    lam, vec = np.linalg.eigh(0.5 * (h + h.T))
    tol = _flat_tolerance(lam, scale)
    keep = ~_along_edge(law, u, vec)
    lam, vec = lam[keep], vec[:, keep]  # directions along a parameter pinned at its lower edge are not flat
    if lam.size == 0:
        return ()
    flat = lam <= tol
    if not flat.any():
        return ()
    weight = np.sqrt(np.sum(vec[:, flat] ** 2, axis=1))
    return tuple(p for p, v in zip(law.params, weight) if v >= 0.5 * weight.max())


def _flat_tolerance(lam: np.ndarray, scale: float) -> float:
    """The eigenvalue of ``J^T W J`` at or below which a direction counts as flat (see ``_FLAT_RTOL``)."""
    return max(_FLAT_RTOL * float(np.max(np.abs(lam), initial=0.0)), float(scale) ** 2 / _FLAT_SPREAD)


def _along_edge(law: Law, u, vec: np.ndarray) -> np.ndarray:
    """Which eigenvectors (columns of ``vec``) run mostly along a parameter pinned at its lower edge."""
    edge = _at_lower_edge(law, np.asarray(u))
    if not edge.any():
        return np.zeros(vec.shape[1], bool)
    return np.abs(vec[edge, :]).max(axis=0) >= 0.5


def _at_lower_edge(law: Law, u: np.ndarray) -> np.ndarray:
    """Parameters driven far below their prior's bulk towards the lower edge of their support.

    ``E -> 0`` in ``E + A C^-alpha``: the data prefer the law without ``E``, the predictions are
    determined, and the flat direction along ``log E`` is the edge of the support, not a parameter
    the data leave free.  Below the prior's 0.1 % quantile by more than that quantile's distance
    from the median, in the unconstrained space.
    """
    lo, mid, bounded = _edge_quantiles(law)
    return bounded & (u < lo - (mid - lo))


@functools.lru_cache(maxsize=256)
def _edge_quantiles(law: Law) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each prior's 0.1 % quantile and median in the unconstrained space, and whether its support is
    bounded below only: computed once per law (the quantiles cost 0.1 s, a fit needs them twice).
    """
    q = np.array([0.001, 0.5])
    theta = np.column_stack([np.asarray(d.icdf(jnp.asarray(q, dtype=jnp.float64))) if _has_icdf(d)
                             else _quantiles(d, q, j) for j, d in enumerate(law.priors)])
    lo, mid = np.asarray(law.unconstrain(jnp.asarray(theta, dtype=jnp.float64)), dtype=float)
    bounded = np.array([getattr(d.support, "lower_bound", None) is not None
                        and getattr(d.support, "upper_bound", None) is None for d in law.priors])
    return lo, mid, bounded


def not_identified(names: tuple[str, ...]) -> str:
    """The problem line of a fit whose parameters ``names`` the data do not determine."""
    them = "them" if len(names) > 1 else "it"
    return (f"not identified: the data do not determine {', '.join(names)} (flat objective at the optimum); "
            f"use a law without {them}, informative priors with NUTS, or data that vary {them}")


# --------------------------------------------------------------------------- the Laplace band

LAPLACE_DRAWS = 1000


@functools.lru_cache(maxsize=16)
def normal_design(count: int, dims: int) -> np.ndarray:
    """A fixed quasi-random standard-normal design ``(count, dims)``: no random numbers, no seed.

    Halton points (unscrambled; bases 2, 3, 5, 7, ... one prime per dimension, indices from 1 so
    that no coordinate is 0) through the inverse normal CDF (:meth:`statistics.NormalDist.inv_cdf`,
    Wichura's AS241), in antithetic pairs ``z, -z`` (rows
    ``2i`` and ``2i + 1``), each column scaled to a unit second moment: the design's mean is exactly
    zero and its variance one for an even ``count``.  Cached and read-only: every call with the same
    shape gives the same array.

    >>> z = normal_design(1000, 3)
    >>> z.shape, bool(abs(z.mean()) < 1e-12), bool(abs(z.std() - 1.0) < 1e-12)
    ((1000, 3), True, True)
    """
    half = -(-count // 2)
    i = np.arange(1, half + 1)
    q = np.column_stack([_radical_inverses(i, b) for b in _primes(dims)]) if dims else np.zeros((half, 0))
    z = np.vectorize(statistics.NormalDist().inv_cdf, otypes=[float])(q)
    out = np.stack([z, -z], axis=1).reshape(2 * half, dims)[:count]
    if count > 1:
        out = out / np.sqrt(np.mean(out**2, axis=0))  # unit second moment per column (Halton thins the tails)
    out.flags.writeable = False
    return out


def _radical_inverses(i: np.ndarray, base: int) -> np.ndarray:
    """:func:`_radical_inverse` of every integer in ``i`` (vectorised)."""
    out, f, i = np.zeros(i.shape), 1.0 / base, i.copy()
    while i.any():
        out += f * (i % base)
        i //= base
        f /= base
    return out


def _primes(count: int) -> list[int]:
    out: list[int] = []
    k = 2
    while len(out) < count:
        if all(k % p for p in out):
            out.append(k)
        k += 1
    return out


@functools.partial(jax.jit, static_argnames=("law",))
def _constrain_rows(law: Law, u):
    """``law.constrain`` of every row of ``u`` ``(R, P)``: natural parameters, each ``(R,)``."""
    return jax.vmap(law.constrain)(u)


def laplace_approximation(law: Law, u, information, scale: float,
                          count: int) -> tuple[dict[str, np.ndarray] | None, str]:
    """``count`` draws ``(1, count)`` of the Laplace approximation at the MAP optimum ``u``, natural parameters.

    In the unconstrained space the draws are ``u + L z``: ``z`` the fixed design
    :func:`normal_design`, ``L L^T = Sigma = s^2 (J^T W J)^+`` with ``J^T W J`` the Gauss-Newton
    curvature ``information`` (:func:`_information`) and ``s`` the residual scale ``scale``; each
    draw is then mapped through ``law.constrain``.  Eigen-directions that are flat (at or below
    the tolerance of :func:`identification`) or run along a parameter pinned at its lower edge get
    no spread.  Returns ``(draws, "")``, or ``(None, why)`` when the curvature or the draws are
    not finite.
    """
    h = np.asarray(information, dtype=float)
    if not (np.all(np.isfinite(h)) and np.isfinite(scale)):
        return None, "the curvature at the optimum is not finite"
    lam, vec = np.linalg.eigh(0.5 * (h + h.T))
    spread = (lam > _flat_tolerance(lam, scale)) & ~_along_edge(law, u, vec)
    root = vec * np.where(spread, float(scale) / np.sqrt(np.where(spread, lam, 1.0)), 0.0)
    u_draws = np.asarray(u, dtype=float)[None, :] + normal_design(count, law.n_params) @ root.T
    theta = _constrain_rows(law, jnp.asarray(u_draws))
    draws = {n: np.asarray(theta[n], dtype=float).reshape(1, count) for n in law.params}
    if not all(np.all(np.isfinite(v)) for v in draws.values()):
        return None, "its draws are not finite (the curvature is too weak for the parameters' range)"
    return draws, ""


def _start_array(starts, law: Law) -> np.ndarray:
    try:
        theta0 = np.asarray(starts, dtype=float)
    except (TypeError, ValueError) as e:
        raise ArgumentError(f"fit_map: starts must be an (S, {law.n_params}) array of numbers ({e})") from None
    if theta0.ndim != 2 or theta0.shape[1] != law.n_params or theta0.shape[0] < 1:
        raise ArgumentError(f"fit_map: starts must have shape (S, {law.n_params}) with S >= 1, got {theta0.shape}")
    return theta0


def _map_problems(info: MapInfo, flat: tuple[str, ...], solved: bool, *, decreased: bool) -> tuple[str, ...]:
    """The MAP fit's problem lines: not identified (flat optimum), not converged, or none."""
    if flat:
        return (not_identified(flat) + ("" if decreased else " (the objective did not decrease from its start)"),)
    if not solved:
        return (f"the MAP fit did not converge (steps {info.steps}, max |grad| {info.grad_norm:.2e}, "
                f"objective {info.objective:.6g})",)
    return ()


# --------------------------------------------------------------------------- entry point


@float64
def fit_map(
    law: Law,
    data: Data,
    *,
    objective: Objective | None = None,
    starts: np.ndarray | None = None,
    keep: int | None = 64,
    solver: Solver = ParallelLbfgs(),
    laplace_draws: int | None = LAPLACE_DRAWS,
    warn: bool = True,
) -> Fit:
    """Fit ``law`` to ``data`` by multi-start L-BFGS (float64), with a Laplace band around the optimum.

    Parameters
    ----------
    law, data:
        What to fit (``data`` from :func:`bayescale.from_frame`).
    objective:
        Objective on fit-space residuals; default the papers' estimator for the law's response
        (:func:`~bayescale.fit.objective.default_objective`: summed Huber, delta 1e-3, for
        losses as Hoffmann et al.; least squares for accuracies as Krajewski et al.).
    starts:
        ``(S, P)`` natural-parameter starts; default :func:`starts_for`.
    keep:
        Polish the ``keep`` best starts after screening all of them (``None``: all).
    solver:
        :class:`~bayescale.fit.lbfgs.ParallelLbfgs` (default) or
        :class:`~bayescale.fit.lbfgs.OptaxLbfgs`.
    laplace_draws:
        How many draws of the Laplace approximation to take (default 1,000); ``0`` or ``None``:
        the optimum alone, one draw ``(1, 1)``.
    warn:
        Issue a ``RuntimeWarning`` when the fit did not converge.

    Returns
    -------
    Fit
        ``point``: the optimum (the mode in the unconstrained space, in natural parameters).
        ``draws`` ``(1, laplace_draws)``: the Laplace band there (``info.band == "laplace"``;
        see the module docstring), the same for the same data (no ``key``); ``sigma`` the
        plug-in residual scale at every draw.  Not identified, or no finite curvature: the
        optimum as one draw ``(1, 1)``, ``band == "point"``.  Never raises for a failed
        optimisation: ``problems`` says so; :class:`~bayescale.fit.MapInfo` in ``info``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayescale import laws, from_arrays, fit_map
    >>> C = np.logspace(18, 22, 9)
    >>> d = from_arrays(laws.power_law, y=1.7 + 900.0 * C**-0.15, C=C)
    >>> round(fit_map(laws.power_law, d).point["alpha"], 3)
    0.15
    """
    t0 = time.perf_counter()
    fit, _ = map_and_optima(law, data, objective=objective, starts=starts, keep=keep, solver=solver,
                            laplace_draws=laplace_draws)
    return warn_problems(dataclasses.replace(fit, seconds=time.perf_counter() - t0), warn)


class MultiStart(NamedTuple):
    """Every polished lane of a multi-start L-BFGS fit (:func:`multi_start`).

    ``outcome`` holds the lanes' end points ``u`` ``(B, P)`` (unconstrained), objectives (``inf``
    where not finite), steps, gradients and convergence; ``screened`` the objective at each lane's
    start; ``n_starts`` how many starts were screened.
    """

    outcome: Outcome
    screened: np.ndarray
    n_starts: int


def multi_start(law: Law, data: Data, *, objective: Objective | None = None, starts: np.ndarray | None = None,
                keep: int | None = 64, solver: Solver = ParallelLbfgs()) -> MultiStart:
    """Screen every start, polish the ``keep`` best by L-BFGS: the lanes of :func:`fit_map`, all of them.

    The same arguments as :func:`fit_map` (checked here); ``fit_nuts`` starts its chains from the
    distinct optima among the lanes.
    """
    check_fit_inputs(law, data, "fit_map")
    objective = default_objective(law) if objective is None else objective
    keep = positive_int(keep, "keep", "fit_map", optional=True)
    expect(solver, (ParallelLbfgs, OptaxLbfgs), "solver", "fit_map")
    theta0 = starts_for(law, data) if starts is None else _start_array(starts, law)
    x, z = fit_arrays(law, data)
    n_polish = theta0.shape[0] if keep is None else min(keep, theta0.shape[0])
    widths = screen_width(x, z, theta0.shape[0]), polish_width(x, z, n_polish)  # refuse before any work
    w = jnp.ones_like(z)
    u0 = law.unconstrain(jnp.asarray(theta0))
    f0 = screen_starts(law, objective, u0, x, z, w, widths[0])
    order = np.argsort(f0, kind="stable")[:n_polish]
    out = polish_starts(law, objective, solver, u0[order], x, z, w, widths[1])
    out = out._replace(value=np.where(np.isfinite(out.value), out.value, np.inf))
    return MultiStart(outcome=out, screened=np.asarray(f0)[order], n_starts=int(theta0.shape[0]))


@float64
def map_and_optima(law: Law, data: Data, *, objective: Objective | None = None, starts: np.ndarray | None = None,
                   keep: int | None = 64, solver: Solver = ParallelLbfgs(),
                   laplace_draws: int | None = LAPLACE_DRAWS) -> tuple[Fit, MultiStart]:
    """:func:`fit_map` (without its warning) and the :class:`MultiStart` lanes it chose from."""
    laplace = 0 if laplace_draws in (None, 0) else int(positive_int(laplace_draws, "laplace_draws", "fit_map") or 0)
    runs = multi_start(law, data, objective=objective, starts=starts, keep=keep, solver=solver)
    x, z = fit_arrays(law, data)
    objective = default_objective(law) if objective is None else objective
    fitter = Fitter.of(fit_map, objective=objective, starts=starts, keep=keep, solver=solver,
                       laplace_draws=laplace_draws)
    fit = _map_result(law, data, runs.outcome, runs.screened, (x, z, jnp.ones_like(z)), laplace, fitter,
                      n_starts=runs.n_starts)
    return fit, runs


def _map_result(law: Law, data: Data, out: Outcome, f0, arrays, laplace: int, fitter: Fitter, *,
                n_starts: int) -> Fit:
    """The MAP fit from the polished lanes ``out`` (``f0``: their starts' objectives): the best lane,
    its identification, its Laplace band (``laplace`` draws) and its problems.
    """
    x, z, w = arrays
    f = np.where(np.isfinite(out.value), out.value, np.inf)
    best = int(np.argmin(f))
    f_best = float(f[best])
    solved = bool(out.converged[best]) and bool(np.isfinite(f_best))
    # converged: stopped on its tolerances AND a strict minimum (a flat region is not converged)
    u_best = jnp.asarray(out.u[best])
    scale = robust_scale(np.asarray(fitted_residuals(law, u_best, x, z)))
    information = np.asarray(_information(law, u_best, x, w))
    flat = identification(law, out.u[best], x, w, scale, information) if solved else ()
    info = MapInfo(
        point={n: float(v) for n, v in law.constrain(u_best).items()},
        objective=f_best,
        converged=solved and not flat,
        steps=int(out.steps[best]),
        grad_norm=float(out.grad_max[best]),
        n_starts=n_starts,
        n_polished=int(len(f)),
        n_agree=int(np.sum(f <= f_best + 1e-6 * abs(f_best) + 1e-300)),
        residual_scale=scale,
    )
    problems = _map_problems(info, flat, solved, decreased=f_best < f0[best])
    info, draws, no_band = _laplace_band(law, info, out.u[best], information, 0 if flat else laplace)
    sigma, likelihood = plug_in(info.point, np.shape(draws[law.params[0]]), info.residual_scale)[1:]
    return Fit(law=law, data=data, draws=draws, sigma=sigma, likelihood=likelihood, method="map", info=info,
               problems=problems + no_band, fitter=fitter)


def _laplace_band(law: Law, info: MapInfo, u, information, count: int):
    """The MAP fit's draws: ``count`` Laplace draws (:func:`laplace_approximation`) with ``band="laplace"``, or
    the optimum as one draw ``(1, 1)`` with ``band="point"`` (``count`` 0, or no finite band: then a
    problem line says why).  Returns ``(info, draws, problems)``.
    """
    problem: tuple[str, ...] = ()
    if count:
        draws, why = laplace_approximation(law, u, information, info.residual_scale, count)
        if draws is not None:
            return info._replace(band="laplace"), draws, ()
        problem = (f"no Laplace band: {why}; the fit is one point",)
    return info._replace(band="point"), plug_in(info.point, (1, 1), info.residual_scale)[0], problem
