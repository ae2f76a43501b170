"""Conversion of any :class:`~bayescale.fit.Fit` to ArviZ 1.x (:class:`xarray.DataTree`).

* ``posterior``: the law's parameters and ``sigma``, dims ``(chain, draw)``;
* ``log_likelihood``: ``y`` with dims ``(chain, draw, obs)``, the pointwise log
  density of each observation in natural units (for NUTS the posterior of the
  fitted likelihood; for MAP/bootstrap the plug-in Gaussian);
* ``observed_data``: ``y`` and the covariates on ``obs`` (row labels of the source
  table as the coordinate);
* ``posterior_predictive`` (when a ``key`` is given): ``y`` drawn from the observation
  model at every observed covariate.

The tree's attributes name the law, the likelihood, the method and its diagnostics.
PSIS-LOO (:func:`psis_loo`) lives here too: arviz is imported in this room only.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.fit import Fit, float64
from bayescale.fit.model import means, observe

__all__ = ["psis_loo", "to_datatree"]


@float64
def to_datatree(fit: Fit, *, key: jax.Array | None = None):
    """ArviZ ``DataTree`` of ``fit``; ``key`` adds posterior predictive draws."""
    import arviz_base

    groups: dict[str, dict[str, np.ndarray]] = {
        "posterior": {**{n: np.asarray(v) for n, v in fit.draws.items()}, "sigma": np.asarray(fit.sigma)}
    }
    dims: dict[str, list[str]] = {}
    coords = {}
    if fit.data is not None:
        x = {k: np.asarray(v, dtype=float) for k, v in fit.data.x.items()}
        groups["log_likelihood"] = {"y": fit.log_likelihood()}
        if key is not None:
            mu = means(fit.law, fit.draws, {k: jnp.asarray(v) for k, v in x.items()})
            groups["posterior_predictive"] = {"y": np.asarray(observe(fit.law, fit.likelihood, key, mu,
                                                                      jnp.asarray(fit.sigma)))}
        groups["observed_data"] = {"y": np.asarray(fit.data.y), **x}
        dims = {"y": ["obs"], **{k: ["obs"] for k in x}}
        coords = {"obs": np.asarray([str(r) for r in fit.data.rows])}
    tree = arviz_base.from_dict(groups, dims=dims, coords=coords)
    tree.attrs.update({
        "law": fit.law.name,
        "law_params": list(fit.law.params),
        "law_covariates": list(fit.law.covariate_names),
        "response": fit.law.response.describe(),
        "likelihood": fit.likelihood.describe(),
        "draws_kind": fit.method,
        **{f"diag_{k}": int(v) if isinstance(v, bool) else v for k, v in fit.diagnostics.items()},
    })
    return tree


def psis_loo(log_likelihood: np.ndarray, draws: dict[str, np.ndarray]):
    """PSIS-LOO of pointwise log-likelihoods ``(chain, draw, n)`` via ``arviz_stats.loo``.

    Returns ``(elpd, se, p, elpd_i, pareto_k, good_k)``.
    """
    import arviz_base
    import arviz_stats

    tree = arviz_base.from_dict({"posterior": draws, "log_likelihood": {"y": log_likelihood}}, dims={"y": ["obs"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its Pareto-k warning: counted and reported by the caller
        res = arviz_stats.loo(tree, pointwise=True)
    return (float(res.elpd), float(res.se), float(res.p), np.asarray(res.elpd_i).reshape(-1),
            np.asarray(res.pareto_k).reshape(-1), float(res.good_k))
