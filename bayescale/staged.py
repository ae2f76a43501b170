"""The two-stage route of the downstream-scaling literature, fitted stage by stage.

Stage 1 fits a proxy (a validation loss) against the covariates; stage 2 fits the
target (an accuracy) against the observed proxy.  The prediction composes them:
Q̂(C) = stage2(stage1(C)).  Krajewski et al. (2025) use it as the baseline that
their direct law beats, because the errors of the two stages compound.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import numpy as np
import pandas as pd

from bayescale.data import Data, from_frame
from bayescale.law import Law
from bayescale.objective import Huber
from bayescale.optimization import Solver, fit_map

__all__ = ["combine_stages", "fit_two_stage"]


def fit_two_stage(
    law: Law,
    frame: pd.DataFrame,
    *,
    x: Sequence[str],
    proxy: str,
    y: str,
    where: str | None = None,
    objective=Huber(1e-3),
    keep: int | None = 64,
    solver: Solver = Solver(),
    fit: Callable | None = None,
):
    """Fit a composed law (``laws.two_stage_linear``, ...) stage by stage.

    Parameters
    ----------
    law:
        A law built by :func:`bayescale.compose` (it carries its two stages).
    frame:
        One row per run with the covariate column(s), the proxy column and the target.
    x, proxy, y:
        Covariate column(s) of stage 1, the intermediate (proxy) column, the target column.
    fit:
        ``fit(stage_law, data) -> result`` used for each stage; default MAP with
        ``objective``, ``keep`` and ``solver``.  Pass e.g.
        ``functools.partial(bayescale.fit_nuts, key=key)`` for posterior draws of
        both stages.

    Returns
    -------
    MapResult or NutsResult
        For the composed law on the data ``(x -> y)``: parameters of both stages
        (draws of the two independent stage posteriors paired by index),
        ``parts`` holding the two stage results.
    """
    if len(law.stages) != 2:
        raise ValueError(f"law {law.name!r} is not a two-stage law (build one with bayescale.compose)")
    stage1, stage2 = law.stages
    d1 = from_frame(frame, stage1, x=x, y=proxy, where=where)
    d2 = from_frame(frame, stage2, x=[proxy], y=y, where=where)
    composed = from_frame(frame, law, x=x, y=y, where=where)
    if fit is None:
        fit = functools.partial(fit_map, objective=objective, keep=keep, solver=solver)
    return combine_stages(law, fit(stage1, d1), fit(stage2, d2), composed)


def combine_stages(law: Law, r1, r2, data: Data):
    """One result for the composed ``law`` from its two stage results (same kind)."""
    from bayescale.nuts import NutsResult

    if isinstance(r1, NutsResult):
        from bayescale.model import pointwise_log_likelihood

        n = min(r1.chains * r1.n_draws, r2.chains * r2.n_draws)
        shape = r2.draws["sigma"].shape

        def cut(v):
            return np.asarray(v).reshape(-1)[:n].reshape(shape)

        draws = {**{k: cut(r1.draws[k]) for k in r1.law.params}, **r2.draws, "sigma_1": cut(r1.draws["sigma"])}
        with jax.enable_x64(True):
            loglik = np.asarray(pointwise_log_likelihood(
                law, r2.likelihood, {k: draws[k] for k in law.params}, draws["sigma"], data.x, data.y))

        def merged(a, b):
            return {**{k: a[k] for k in r1.law.params}, "sigma_1": a["sigma"], **b}

        return dataclasses.replace(
            r2, law=law, data=data, draws=draws, log_likelihood=loglik,
            mode={**r1.mode, **r2.mode}, divergences=r1.divergences + r2.divergences,
            tree_depth_hits=r1.tree_depth_hits + r2.tree_depth_hits,
            r_hat=merged(r1.r_hat, r2.r_hat), ess_bulk=merged(r1.ess_bulk, r2.ess_bulk),
            ess_tail=merged(r1.ess_tail, r2.ess_tail), seconds=r1.seconds + r2.seconds, parts=(r1, r2),
        )
    return dataclasses.replace(
        r2,
        law=law,
        params={**r1.params, **r2.params},
        objective=r1.objective + r2.objective,
        converged=r1.converged and r2.converged,
        steps=r1.steps + r2.steps,
        grad_norm=max(r1.grad_norm, r2.grad_norm),
        n_starts=r1.n_starts + r2.n_starts,
        n_polished=r1.n_polished + r2.n_polished,
        n_agree=min(r1.n_agree, r2.n_agree),
        seconds=r1.seconds + r2.seconds,
        data=data,
        parts=(r1, r2),
    )
