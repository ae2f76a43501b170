"""Conversion of any fit result to ArviZ 1.x (:class:`xarray.DataTree`).

One function for MAP, bootstrap and NUTS results (via :func:`bayescale.draws_of`):

* ``posterior``: the law's parameters and ``sigma``, dims ``(chain, draw)``;
* ``log_likelihood``: ``y`` with dims ``(chain, draw, obs)``, the pointwise log
  density of each observation in natural units (for NUTS the posterior of the
  fitted likelihood; for MAP/bootstrap the plug-in Gaussian of
  :mod:`bayescale.forecast`);
* ``observed_data``: ``y`` and the covariates on ``obs`` (row labels of the source
  table as the coordinate);
* ``posterior_predictive``: ``y`` drawn from the observation model at every
  observed covariate;
* ``sample_stats`` for NUTS: ``diverging`` is not kept per draw, but the counts
  and diagnostics are in the tree's attributes.

The tree's attributes name the law, the likelihood and the kind of draws.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.data import Data
from bayescale.forecast import _noisy, draws_of
from bayescale.model import pointwise_log_likelihood
from bayescale.prediction import predict_fit_space

__all__ = ["to_datatree"]


def to_datatree(result, data: Data | None = None, *, key=None):
    """ArviZ ``DataTree`` of ``result``; ``data`` adds the observation groups.

    NUTS results carry their data; for MAP and bootstrap results pass the
    :class:`~bayescale.Data` they were fitted to.  ``key`` seeds the posterior
    predictive draws (default: ``jax.random.key(0)``).
    """
    import arviz_base

    d = draws_of(result)
    if data is None:
        data = getattr(result, "data", None)
    groups: dict[str, dict[str, np.ndarray]] = {
        "posterior": {**{n: np.asarray(v) for n, v in d.params.items()}, "sigma": np.asarray(d.sigma)}
    }
    dims: dict[str, list[str]] = {}
    coords = {}
    if data is not None:
        x = {k: np.asarray(v, dtype=float) for k, v in data.x.items()}
        loglik = getattr(result, "log_likelihood", None)
        if loglik is None:
            with jax.enable_x64(True):
                loglik = np.asarray(pointwise_log_likelihood(d.law, d.likelihood, d.params, d.sigma, x, data.y))
        mu = predict_fit_space(d.law, d.params, x)
        with jax.enable_x64(True):
            yrep = np.asarray(
                _noisy(d.law, d.likelihood, jax.random.key(0) if key is None else key, jnp.asarray(mu),
                       jnp.asarray(d.sigma))
            )
        groups["log_likelihood"] = {"y": np.asarray(loglik)}
        groups["posterior_predictive"] = {"y": yrep}
        groups["observed_data"] = {"y": np.asarray(data.y), **x}
        dims = {"y": ["obs"], **{k: ["obs"] for k in x}}
        coords = {"obs": np.asarray([str(r) for r in data.rows])}
    attrs = {
        "law": d.law.name,
        "law_params": list(d.law.params),
        "law_covariates": list(d.law.covariate_names),
        "response": d.law.response.describe(),
        "likelihood": d.likelihood.describe(),
        "draws_kind": d.kind,
    }
    diagnostics = getattr(result, "diagnostics", {})
    for k, v in diagnostics.items():
        if isinstance(v, (bool, int, float, str)):
            attrs[f"diag_{k}"] = int(v) if isinstance(v, bool) else v
    tree = arviz_base.from_dict(groups, dims=dims, coords=coords)
    tree.attrs.update(attrs)
    return tree
