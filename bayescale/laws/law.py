"""The one way to declare a scaling law.

A :class:`Law` is a small frozen, hashable value: a name, the ordered parameter
names (the papers' symbols), the covariates it reads, a pure JAX function of
``(params, covariates)`` and default priors whose supports are the only place
where parameter constraints live.  MAP, bootstrap, NUTS, prediction, compute
optima and plots are written once, generically over this value: nothing in
bayescale branches on a law's name.

Fit space
---------
Every law predicts its response in a *fit space* chosen by its
:class:`Response`: ``log L`` for a loss, ``log(-log Q')`` for a chance-normalised
accuracy, or the accuracy itself for the stage-2 laws of the two-stage route.
Residuals, the Huber objective and the likelihood all live in that space; the
response maps observations into it once and maps predictions back.

Parameter space
---------------
Optimisers and samplers work in an unconstrained space obtained from each
prior's support with :func:`numpyro.distributions.transforms.biject_to`
(``log`` for a positive parameter, identity for a real one).  The MAP point that
bayescale reports is the optimum of the objective in that space, mapped back to
the natural parameters; with the Huber objective (no prior term) it is the same
point as the optimum in the natural parameters.
"""

from __future__ import annotations

import dataclasses
import difflib
import keyword
import numbers
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, Protocol

import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution, constraints
from numpyro.distributions.transforms import biject_to

from bayescale.errors import ArgumentError, ArgumentTypeError

Array = Any
LawFn = Callable[[Mapping[str, Array], Mapping[str, Array]], Array]
StartFn = Callable[[Mapping[str, np.ndarray], np.ndarray], np.ndarray]

__all__ = [
    "Accuracy",
    "ChanceAccuracy",
    "Check",
    "Covariate",
    "Law",
    "Loss",
    "Response",
    "Role",
]


# --------------------------------------------------------------------------- responses


class Check(NamedTuple):
    """What a response makes of observed values: rows that are errors, rows it must drop.

    ``invalid`` rows cannot be data of this response at all (``invalid_reason`` says why
    and how to fix it); ``unusable`` rows are valid observations that the fit space cannot
    represent (accuracy at chance), dropped with ``unusable_reason``.
    """

    invalid: np.ndarray
    invalid_reason: str
    unusable: np.ndarray
    unusable_reason: str


class Response(Protocol):
    """How observations map into a law's fit space: the one interface every stage reads.

    ``chance`` is the chance level of a chance-normalised accuracy and ``None`` for every
    other response.
    """

    @property
    def label(self) -> str: ...

    @property
    def chance(self) -> float | None: ...

    def to_fit(self, y: Array) -> Array: ...

    def from_fit(self, z: Array) -> Array: ...

    def describe(self) -> str: ...

    def cost(self, y: Array) -> Array: ...

    def validate(self, y: np.ndarray) -> Check: ...

    @property
    def huber_delta(self) -> float | None:
        """The Huber threshold of the papers' estimator for this response (``None``: least squares)."""
        ...


@dataclasses.dataclass(frozen=True)
class Loss:
    """A positive response fitted on the log scale: ``z = log y``.

    Used for losses (nats/token) and for any positive quantity that a power law
    describes.
    """

    label: str = "loss"
    lower: float = 0.0
    upper: float = float("inf")
    huber_delta: float | None = 1e-3

    def to_fit(self, y: Array) -> Array:
        return jnp.log(y)

    def from_fit(self, z: Array) -> Array:
        return jnp.exp(z)

    def describe(self) -> str:
        return "log y"

    def cost(self, y: Array) -> Array:
        """What compute-optimal allocation minimises: the loss itself."""
        return y

    @property
    def chance(self) -> None:
        return None

    def validate(self, y: np.ndarray) -> Check:
        none = np.zeros(np.shape(y), bool)
        return Check(~(y > self.lower), f"must be > {self.lower:g} (the fit takes its log)", none, "")


@dataclasses.dataclass(frozen=True)
class ChanceAccuracy:
    """An accuracy fitted as ``z = log(-log Q')`` with ``Q' = (Q - Q_rand)/(1 - Q_rand)``.

    This is the space in which Krajewski et al. (2025) fit downstream accuracy:
    ``-log Q'`` behaves like a loss (positive, falling with compute).  ``chance``
    is ``Q_rand`` (0.25 for 4-way multiple choice, 0 for generative tasks).
    Valid observations satisfy ``chance < Q < 1``; runs below ``chance + margin`` are
    dropped with a note, as Krajewski et al. do (``margin`` 0.05): near chance the fit space
    ``log(-log Q')`` magnifies the benchmark's sampling noise without bound.  Fitted by
    least squares (``huber_delta`` None), the authors' estimator.
    """

    chance: float = 0.0
    label: str = "accuracy"
    margin: float = 0.05
    huber_delta: float | None = None

    @property
    def lower(self) -> float:
        return self.chance

    @property
    def upper(self) -> float:
        return 1.0

    def to_fit(self, y: Array) -> Array:
        q = (y - self.chance) / (1.0 - self.chance)
        return jnp.log(-jnp.log(q))

    def from_fit(self, z: Array) -> Array:
        return self.chance + (1.0 - self.chance) * jnp.exp(-jnp.exp(z))

    def describe(self) -> str:
        return f"log(-log Q'), Q_rand={self.chance:g}"

    def cost(self, y: Array) -> Array:
        """What compute-optimal allocation minimises: the error rate ``1 - Q``."""
        return 1.0 - y

    def validate(self, y: np.ndarray) -> Check:
        near = f" or within {self.margin:g} above it" if self.margin > 0 else ""
        return Check(_outside_unit(y), _UNIT, (y <= self.chance) | (y < self.chance + self.margin) | (y >= 1.0),
                     f"at or below chance (Q_rand = {self.chance:g}){near}, or at 1, which log(-log Q') cannot "
                     "represent or magnifies without bound")


_UNIT = "must lie in [0, 1] (percentages? divide by 100)"


def _outside_unit(y: np.ndarray) -> np.ndarray:
    return (y < 0.0) | (y > 1.0)


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """An accuracy in [0, 1] fitted on its own scale: ``z = Q`` (two-stage, stage 2)."""

    label: str = "accuracy"
    lower: float = 0.0
    upper: float = 1.0
    closed: bool = True
    huber_delta: float | None = None

    def to_fit(self, y: Array) -> Array:
        return jnp.asarray(y)

    def from_fit(self, z: Array) -> Array:
        return z

    def describe(self) -> str:
        return "Q"

    def cost(self, y: Array) -> Array:
        """What compute-optimal allocation minimises: the error rate ``1 - Q``."""
        return 1.0 - y

    @property
    def chance(self) -> None:
        return None

    def validate(self, y: np.ndarray) -> Check:
        return Check(_outside_unit(y), _UNIT, np.zeros(np.shape(y), bool), "")


# --------------------------------------------------------------------------- covariates


Role = Literal["size", "tokens", "compute", "other"]


@dataclasses.dataclass(frozen=True)
class Covariate:
    """A covariate the law reads.

    ``role`` says what it is -- ``"size"`` (parameters N), ``"tokens"`` (training tokens D),
    ``"compute"`` (FLOPs C) or ``"other"``; derived quantities (compute-optimal allocation,
    compute to reach a target) read roles, never names.  ``minimum`` is the smallest
    admissible value (the law takes ``log`` of most covariates, so they must be positive);
    ``inclusive`` says whether it is allowed.  ``unit`` labels axes and tables.
    """

    name: str
    unit: str = ""
    minimum: float = 0.0
    inclusive: bool = False
    log_scale: bool = True
    role: Role = "other"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ArgumentTypeError(f"Covariate: name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.unit, str):
            raise ArgumentTypeError(f"covariate {self.name!r}: unit must be a str, got {type(self.unit).__name__}")
        if not isinstance(self.inclusive, bool) or not isinstance(self.log_scale, bool):
            raise ArgumentTypeError(f"covariate {self.name!r}: inclusive and log_scale must be True or False")
        if self.role not in _ROLES:
            raise ArgumentError(f"covariate {self.name!r}: role must be one of {', '.join(_ROLES)}, got {self.role!r}")
        if isinstance(self.minimum, bool) or not isinstance(self.minimum, numbers.Real) \
                or np.isnan(self.minimum) or self.minimum == np.inf:
            raise ArgumentError(f"covariate {self.name!r}: minimum must be a number below inf, got {self.minimum!r}")

    def admissible(self, values: np.ndarray) -> np.ndarray:
        return values >= self.minimum if self.inclusive else values > self.minimum

    def domain(self) -> str:
        """The admissible values in words: ``"> 0 (the law takes its log)"``."""
        bound = f"{'>=' if self.inclusive else '>'} {self.minimum:g}"
        return bound + (" (the law takes its log)" if self.log_scale and self.minimum == 0 else "")


_ROLES = ("size", "tokens", "compute", "other")


# --------------------------------------------------------------------------- the law


@dataclasses.dataclass(frozen=True, repr=False)
class Law:
    """A scaling law declared once.

    Parameters
    ----------
    name:
        Short identifier (``"chinchilla"``); used in tables, saved results and the CLI.
    params:
        Ordered parameter names, the papers' symbols (``("E", "A", "B", "alpha", "beta")``).
    covariates:
        The covariates the law reads, in order (``--x`` columns map to them in order).
    fn:
        Pure JAX function ``fn(p, x) -> z``: ``p`` maps parameter names to scalars,
        ``x`` maps covariate names to arrays, and ``z`` is the prediction in fit space
        (see :class:`Response`).  It must broadcast over ``x``.
    priors:
        One NumPyro distribution per parameter.  Their supports carry the
        constraints (a ``LogNormal`` makes a parameter positive).
    response:
        How observations map into fit space (:class:`Loss`, :class:`ChanceAccuracy`,
        :class:`Accuracy`).
    starts:
        Optional ``starts(x, z) -> (S, P)`` array of starting points in natural
        parameters: a fixed grid, or one computed from the data (``x`` maps
        covariate names to NumPy arrays, ``z`` is the response in fit space).
        Without it, starts are spread over the priors.
    formula:
        Human-readable formula, for tables and plots.
    stages:
        For a law composed of two stages (:func:`bayescale.laws.compose`), the
        stage laws; :func:`bayescale.fit_two_stage` fits them one after the other.
    alternatives:
        Other forms of the same relation (same covariates and response) that the calibrated
        forecast (:func:`bayescale.forecast`) averages with this one, weighted by how well
        each extrapolates in backtests on the user's runs: ``direct`` and ``direct_ceiling``.

    Examples
    --------
    >>> import jax.numpy as jnp, numpyro.distributions as dist
    >>> from bayescale import Law, Covariate, Loss
    >>> kaplan = Law(
    ...     name="kaplan_compute",
    ...     params=("Cc", "alpha"),
    ...     covariates=(Covariate("C", "FLOPs"),),
    ...     fn=lambda p, x: p["alpha"] * (jnp.log(p["Cc"]) - jnp.log(x["C"])),
    ...     priors=(dist.LogNormal(50.0, 5.0), dist.LogNormal(-3.0, 1.0)),
    ...     response=Loss(),
    ... )
    """

    name: str
    params: tuple[str, ...]
    covariates: tuple[Covariate, ...]
    fn: LawFn
    priors: tuple[Distribution, ...]
    response: Response = Loss()
    starts: StartFn | None = None
    formula: str = ""
    stages: tuple[Law, ...] = ()
    alternatives: tuple[Law, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ArgumentTypeError(f"Law: name must be a non-empty str, got {self.name!r}")
        for field in ("params", "covariates", "priors", "stages", "alternatives"):
            value = getattr(self, field)
            if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
                raise ArgumentTypeError(f"law {self.name!r}: {field} must be a tuple, got {type(value).__name__}")
            object.__setattr__(self, field, tuple(value))  # a list would make the law unhashable
        if not callable(self.fn):
            raise ArgumentTypeError(f"law {self.name!r}: fn must be a function fn(p, x), got {type(self.fn).__name__}")
        if self.starts is not None and not callable(self.starts):
            raise ArgumentTypeError(f"law {self.name!r}: starts must be a function starts(x, z) or None, "
                                    f"got {type(self.starts).__name__}")
        missing = [m for m in ("to_fit", "from_fit", "validate", "cost", "describe") if not hasattr(self.response, m)]
        if missing:
            raise ArgumentTypeError(f"law {self.name!r}: response must be a Response such as Loss() or "
                                    f"ChanceAccuracy(0.25), got {type(self.response).__name__}")
        _check_covariates(self)
        _check_params(self)
        if len(self.params) != len(self.priors):
            raise ArgumentError(f"law {self.name!r}: {len(self.params)} parameters but {len(self.priors)} priors; "
                                "give one prior per parameter, in order")
        for name, prior in zip(self.params, self.priors):
            _check_prior(self.name, name, prior)

    def __repr__(self) -> str:
        return f"Law({self.name!r}: {self.formula or ', '.join(self.params)})"

    # ---- names --------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return len(self.params)

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.covariates)

    @property
    def roles(self) -> dict[str, str]:
        """Covariate name by role, for the roles this law declares (``{"size": "N", ...}``)."""
        return {c.role: c.name for c in self.covariates if c.role != "other"}

    def with_chance(self, chance: float) -> Law:
        """The same law with chance level ``Q_rand`` (only for chance-normalised accuracy)."""
        if self.response.chance is None:
            raise ArgumentError(
                f"law {self.name!r} models {self.response.label} in {self.response.describe()} "
                "and has no chance level; --chance applies to accuracy laws"
            )
        if isinstance(chance, bool) or not isinstance(chance, numbers.Real):
            raise ArgumentTypeError(f"with_chance: chance must be a number in [0, 1), got {type(chance).__name__}")
        if not 0.0 <= chance < 1.0:
            raise ArgumentError(f"with_chance: chance level must lie in [0, 1), got {chance}")
        return dataclasses.replace(self, response=dataclasses.replace(self.response, chance=float(chance)),
                                   alternatives=tuple(a.with_chance(chance) for a in self.alternatives))

    def with_priors(self, **priors: Distribution) -> Law:
        """The same law with some priors replaced (by parameter name)."""
        for name in priors:
            if name not in self.params:
                close = difflib.get_close_matches(name, self.params, n=3, cutoff=0.5)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise ArgumentError(f"with_priors: law {self.name!r} has no parameter {name!r}.{hint} "
                                    f"Its parameters: {', '.join(self.params)}")
        new = tuple(priors.get(n, d) for n, d in zip(self.params, self.priors))
        return dataclasses.replace(self, priors=new)

    # ---- evaluation ---------------------------------------------------------------
    def __call__(self, p: Mapping[str, Array], x: Mapping[str, Array]) -> Array:
        """Prediction in fit space (see :class:`Response`)."""
        return self.fn(p, x)

    def predict(self, p: Mapping[str, Array], x: Mapping[str, Array]) -> Array:
        """Prediction in the natural units of the response (loss, accuracy)."""
        return self.response.from_fit(self.fn(p, x))

    # ---- parameter spaces -----------------------------------------------------------
    def unpack(self, theta: Array) -> dict[str, Array]:
        """Natural parameter vector ``(..., P)`` to a dict of named arrays."""
        return {n: theta[..., i] for i, n in enumerate(self.params)}

    def pack(self, p: Mapping[str, Array]) -> Array:
        return jnp.stack([jnp.asarray(p[n]) for n in self.params], axis=-1)

    def constrain(self, u: Array) -> dict[str, Array]:
        """Unconstrained vector ``(P,)`` to named natural parameters."""
        return {
            n: biject_to(d.support)(u[i]) for i, (n, d) in enumerate(zip(self.params, self.priors))
        }

    def unconstrain(self, theta: Array) -> Array:
        """Natural parameter array ``(..., P)`` to unconstrained space.

        Points on the boundary of a support (the classic Chinchilla grid starts
        at ``alpha = 0``) are nudged inside it first, so every start is finite.
        """
        theta = jnp.asarray(theta)
        cols = []
        for i, d in enumerate(self.priors):
            v = _inside(theta[..., i], d.support)
            cols.append(biject_to(d.support).inv(v))
        return jnp.stack(cols, axis=-1)


# Names bayescale uses for itself: the NumPyro model's sites and plate (fit/model.py: sigma, mu, z,
# obs), a saved fit's dimensions (chain, draw) and its observed response and row labels (y, obs).
# A parameter, or a covariate sitting next to y and obs, of one of these names would collide.
RESERVED = frozenset({"sigma", "mu", "z", "obs", "y", "chain", "draw"})
RESERVED_COVARIATES = frozenset({"y", "obs"})


def _check_covariates(law: Law) -> None:
    if not law.covariates:
        raise ArgumentError(f"law {law.name!r}: declare at least one covariate")
    for c in law.covariates:
        if not isinstance(c, Covariate):
            raise ArgumentTypeError(f"law {law.name!r}: covariates must be Covariate values such as "
                                    f"Covariate('C', 'FLOPs'), got {type(c).__name__}")
    names = [c.name for c in law.covariates]
    for name in names:
        if names.count(name) > 1:
            raise ArgumentError(f"law {law.name!r}: covariate {name!r} is declared twice; names must be unique")
        if name in RESERVED_COVARIATES:
            raise ArgumentError(f"law {law.name!r}: covariate name {name!r} is reserved for the response and the row "
                                "labels (y, obs); rename it")


def _check_params(law: Law) -> None:
    for name in law.params:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ArgumentError(f"law {law.name!r}: parameter name {name!r} must be a Python identifier "
                                "(letters, digits, _; not a keyword)")
        if law.params.count(name) > 1:
            raise ArgumentError(f"law {law.name!r}: parameter {name!r} is declared twice; names must be unique")
        if name in RESERVED:
            raise ArgumentError(f"law {law.name!r}: parameter name {name!r} is reserved by bayescale's model "
                                f"({', '.join(sorted(RESERVED))}); rename it, e.g. {name + '_'!r}")
        if name in law.covariate_names:
            raise ArgumentError(f"law {law.name!r}: parameter {name!r} has the name of a covariate; rename one of them")


def _check_prior(law: str, name: str, prior: object) -> None:
    """A prior bayescale can use: a numpyro Distribution over one real number, with finite, valid arguments."""
    where = f"law {law!r}: the prior of {name!r}"
    if not isinstance(prior, Distribution):
        raise ArgumentTypeError(f"{where} must be a numpyro distribution such as dist.Normal(0, 1), "
                                f"got {type(prior).__name__}")
    kind = type(prior).__name__
    if prior.batch_shape != () or prior.event_shape != ():
        raise ArgumentError(f"{where} ({kind}) must be over one number, got batch shape {prior.batch_shape} and "
                            f"event shape {prior.event_shape}; give scalar arguments")
    for arg, constraint in prior.arg_constraints.items():
        try:
            value = np.asarray(getattr(prior, arg), dtype=float)
        except Exception:  # a lazily derived or non-numeric argument: nothing to check here
            continue
        if np.any(np.isnan(value)) or (arg not in ("low", "high") and not np.all(np.isfinite(value))):
            raise ArgumentError(f"{where} ({kind}) has {arg} = {value.tolist()}; its arguments must be finite")
        try:
            valid = bool(np.all(np.asarray(constraint.check(jnp.asarray(value)))))
        except Exception:  # a constraint that depends on other arguments (Uniform's low/high)
            continue
        if not valid:
            shown = type(constraint).__name__.strip("_").lower()
            raise ArgumentError(f"{where} ({kind}) has {arg} = {value.tolist()}, which is not {shown}")
    try:
        biject_to(prior.support)
    except NotImplementedError:
        raise ArgumentError(f"{where} ({kind}) has a support ({prior.support}) with no map to the real line; "
                            "use a continuous prior") from None


def _inside(v: Array, support: constraints.Constraint, margin: float = 1e-3) -> Array:
    lo = getattr(support, "lower_bound", None)
    hi = getattr(support, "upper_bound", None)
    if lo is not None and hi is not None:
        width = hi - lo
        return jnp.clip(v, lo + margin * width, hi - margin * width)
    if lo is not None:
        return jnp.maximum(v, lo + margin)
    if hi is not None:
        return jnp.minimum(v, hi - margin)
    return v
