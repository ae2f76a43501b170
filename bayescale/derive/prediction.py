"""Predictions of a law at new covariates, for one parameter set or many draws.

``params`` maps each parameter name to a scalar or to an array of draws with any
leading shape (``(draw,)``, ``(chain, draw)``); the result has that leading shape
followed by the broadcast shape of the covariates.  The same function serves MAP,
bootstrap and NUTS results.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.derive.checks import check_law, check_params, covariate_values
from bayescale.fit import float64
from bayescale.laws import Law

__all__ = ["predict", "predict_fit_space"]


@functools.partial(jax.jit, static_argnames=("law", "natural"))
def _predict(law: Law, flat_params, x, natural: bool):
    fn = law.predict if natural else law.fn
    return jax.vmap(lambda p: fn(p, x))(flat_params)


def _run(law: Law, params: Mapping[str, object], x: Mapping[str, object], natural: bool, function: str) -> np.ndarray:
    check_law(law, function)
    check_params(law, params, function)
    x = covariate_values(law, x, function)
    p = {n: jnp.asarray(params[n], dtype=jnp.float64) for n in law.params}
    batch = jnp.broadcast_shapes(*(v.shape for v in p.values()))
    flat = {n: jnp.broadcast_to(v, batch).reshape(-1) for n, v in p.items()}
    cov = [jnp.asarray(x[c], dtype=jnp.float64) for c in law.covariate_names]
    shape = jnp.broadcast_shapes(*(c.shape for c in cov))
    xs = {c: jnp.broadcast_to(v, shape) for c, v in zip(law.covariate_names, cov)}
    out = _predict(law, flat, xs, natural)
    return np.asarray(out.reshape(batch + shape))


@float64
def predict(law: Law, params: Mapping[str, object], x: Mapping[str, object]) -> np.ndarray:
    """Prediction in natural units (loss, accuracy).

    >>> from bayescale import laws, predict
    >>> p = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
    >>> float(predict(laws.chinchilla, p, dict(N=7e10, D=1.4e12)).round(3))
    1.973
    """
    return _run(law, params, x, True, "predict")


@float64
def predict_fit_space(law: Law, params: Mapping[str, object], x: Mapping[str, object]) -> np.ndarray:
    """Prediction in the law's fit space (``log L``, ``log(-log Q')``, ...).

    Covariate values outside the law's domain (``C <= 0`` for a law that takes ``log C``), NaN
    or inf are refused (:class:`~bayescale.errors.ArgumentError` naming the covariate and the
    point), in :func:`predict` too.
    """
    return _run(law, params, x, False, "predict_fit_space")
