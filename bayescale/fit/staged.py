"""The two-stage route of the downstream-scaling literature, fitted stage by stage.

Stage 1 fits a proxy (a validation loss) against the covariates -- compute, or N and
D; stage 2 fits the target (an accuracy) against the observed proxy.  The prediction
composes them: Q̂ = stage2(stage1(x)).  Krajewski et al. (2025) use it as the baseline
that their direct law beats, because the errors of the two stages compound.

Each stage has its own data (real ladders fit stage 1 on a few final runs and stage 2
on every checkpoint) and its own fitter (any method); the stage fits are combined draw
by draw (:func:`bayescale.fit.combine_stages`).
"""

from __future__ import annotations

import jax

from bayescale.errors import ArgumentError, expect
from bayescale.fit.data import Data
from bayescale.fit.map import check_fit_inputs, check_key, fit_map
from bayescale.fit.precision import float64
from bayescale.fit.result import Fit, Fitter, combine_stages, warn_problems
from bayescale.laws import Law

__all__ = ["fit_two_stage"]


@float64
def fit_two_stage(
    law: Law,
    stage1: Data,
    stage2: Data,
    *,
    data: Data | None = None,
    fitter: Fitter = Fitter.of(fit_map),
    second: Fitter | None = None,
    key: jax.Array | None = None,
    warn: bool = True,
) -> Fit:
    """Fit a composed law (``laws.two_stage_linear``, :func:`bayescale.laws.compose`) stage by stage.

    Parameters
    ----------
    law:
        A law built by :func:`bayescale.laws.compose` (it carries its two stages).
    stage1, stage2:
        The data of each stage: covariates -> proxy, and proxy -> target
        (:func:`bayescale.tables.two_stage_data` builds both from one or two tables).
    data:
        The composed law's own data (covariates -> target), for scoring and plots.
    fitter, second:
        The fitter of stage 1 and of stage 2 (default: the same), e.g.
        ``Fitter.of(fit_nuts, chains=2)``; any pair of methods combines.
    key:
        Needed when a fitter draws random numbers (bootstrap, NUTS); split per stage.

    Returns
    -------
    Fit
        Draws of both stages paired draw by draw; ``parts`` holds the two stage fits and
        ``problems`` theirs, prefixed by the stage.
    """
    expect(law, Law, "law", "fit_two_stage")
    if len(law.stages) != 2:
        raise ArgumentError(f"fit_two_stage: law {law.name!r} is not a two-stage law (build one with "
                            "bayescale.laws.compose)")
    check_fit_inputs(law.stages[0], stage1, "fit_two_stage", "stage1")
    check_fit_inputs(law.stages[1], stage2, "fit_two_stage", "stage2")
    expect(data, (Data, type(None)), "data", "fit_two_stage")
    expect(fitter, Fitter, "fitter", "fit_two_stage")
    expect(second, (Fitter, type(None)), "second", "fit_two_stage")
    if key is None and (fitter.random or (second is not None and second.random)):
        raise ArgumentError("fit_two_stage: a stage's fitter draws random numbers; pass key=jax.random.key(seed)")
    if key is not None:
        check_key(key, "fit_two_stage")
    k1, k2 = jax.random.split(key) if key is not None else (None, None)
    first = fitter(law.stages[0], stage1, key=k1, warn=False)
    last = (second or fitter)(law.stages[1], stage2, key=k2, warn=False)
    return warn_problems(combine_stages(law, first, last, data), warn)
