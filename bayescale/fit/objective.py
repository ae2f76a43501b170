"""Objectives on fit-space residuals ``r = law(p, x) - z``.

An objective is a small frozen (hashable) value whose ``__call__(r, w)`` returns
the weighted sum over observations; ``w`` are integer-like observation weights
(all ones for a plain fit, multinomial counts for a bootstrap resample).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax.numpy as jnp

__all__ = ["Huber", "Objective", "SquaredError", "default_objective"]


class Objective(Protocol):
    """A hashable value: ``objective(r, w)`` is the weighted sum over observations of residuals ``r``."""

    def __call__(self, r: Any, w: Any) -> Any: ...

    def describe(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class Huber:
    """Summed Huber loss, as Hoffmann et al. (2022) and Besiroglu et al. (2024) fit.

    ``huber(r) = r²/2`` for ``|r| <= delta`` and ``delta·(|r| - delta/2)`` otherwise
    (the convention of ``scipy.special.huber``).  The sum, not the mean: averaging
    makes quasi-Newton methods stop early on this badly conditioned problem.
    """

    delta: float = 1e-3

    def __call__(self, r, w):
        a = jnp.abs(r)
        per_obs = jnp.where(a <= self.delta, 0.5 * r * r, self.delta * (a - 0.5 * self.delta))
        return jnp.sum(w * per_obs)

    def describe(self) -> str:
        return f"summed Huber (delta={self.delta:g}) on fit-space residuals"


@dataclasses.dataclass(frozen=True)
class SquaredError:
    """Half the summed squared residual (plain least squares in fit space)."""

    def __call__(self, r, w):
        return 0.5 * jnp.sum(w * r * r)

    def describe(self) -> str:
        return "summed squared error on fit-space residuals"


def default_objective(law) -> Objective:
    """The papers' estimator for ``law``'s response: ``Huber(delta)`` where the response names a Huber
    threshold (losses: Hoffmann et al.'s 1e-3), least squares otherwise (accuracies: Krajewski et al.).
    """
    delta = getattr(law.response, "huber_delta", None)
    return Huber(delta) if delta else SquaredError()
