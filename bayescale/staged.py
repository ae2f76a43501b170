"""The two-stage route of the downstream-scaling literature, fitted stage by stage.

Stage 1 fits a proxy (a validation loss) against the covariates; stage 2 fits the
target (an accuracy) against the observed proxy.  The prediction composes them:
Q̂(C) = stage2(stage1(C)).  Krajewski et al. (2025) use it as the baseline that
their direct law beats, because the errors of the two stages compound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

from bayescale.data import from_frame
from bayescale.law import Law
from bayescale.objective import Huber
from bayescale.optimization import MapResult, Solver, fit_map

__all__ = ["fit_two_stage"]


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
) -> MapResult:
    """Fit a composed law (``laws.two_stage_linear``, ...) stage by stage.

    Parameters
    ----------
    law:
        A law built by :func:`bayescale.compose` (it carries its two stages).
    frame:
        One row per run with the covariate column(s), the proxy column and the target.
    x, proxy, y:
        Covariate column(s) of stage 1, the intermediate (proxy) column, the target column.

    Returns
    -------
    MapResult
        For the composed law: parameters of both stages, the summed objective,
        ``converged`` only if both stages converged.
    """
    if len(law.stages) != 2:
        raise ValueError(f"law {law.name!r} is not a two-stage law (build one with bayescale.compose)")
    stage1, stage2 = law.stages
    d1 = from_frame(frame, stage1, x=x, y=proxy, where=where)
    d2 = from_frame(frame, stage2, x=[proxy], y=y, where=where)
    r1 = fit_map(stage1, d1, objective=objective, keep=keep, solver=solver)
    r2 = fit_map(stage2, d2, objective=objective, keep=keep, solver=solver)
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
    )
