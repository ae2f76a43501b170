"""Composition: a law whose covariate is another law's prediction (the two-stage route)."""

from __future__ import annotations

import functools

from bayescale.errors import ArgumentError, ArgumentTypeError, expect
from bayescale.laws.law import Law

__all__ = ["compose"]


def compose(stage1: Law, stage2: Law, *, name: str | None = None) -> Law:
    """Compose two laws: ``stage2`` reads the natural prediction of ``stage1``.

    ``stage2`` must have exactly one covariate; the composed law reads the
    covariates of ``stage1`` and has the parameters of both (names must differ).
    This is the two-stage predictor Q̂(C) = stage2(stage1(C)); fit it stage by
    stage with :func:`bayescale.fit_two_stage`.  Any stage-1 law serves: a law of
    compute (``pure_power_law``, or ``power_law`` for a constant term), or of N and D
    (``chinchilla``).  The same stages give the same law value (cached), so a second
    composition compiles nothing new.

    Examples
    --------
    >>> from bayescale import laws
    >>> law = compose(laws.chinchilla, laws.stage2_logistic)
    >>> law.name, law.covariate_names
    ('chinchilla>stage2_logistic', ('N', 'D'))
    """
    expect(stage1, Law, "stage1", "compose")
    expect(stage2, Law, "stage2", "compose")
    if name is not None and (not isinstance(name, str) or not name):
        raise ArgumentTypeError(f"compose: name must be a non-empty str or None, got {name!r}")
    if len(stage2.covariates) != 1:
        raise ArgumentError(f"compose: stage 2 law {stage2.name!r} must read exactly one covariate, it reads "
                            f"{', '.join(stage2.covariate_names)}")
    clash = set(stage1.params) & set(stage2.params)
    if clash:
        raise ArgumentError(f"compose: parameter names {sorted(clash)} appear in both stages; rename them in one")
    return _compose(stage1, stage2, name)


@functools.cache
def _compose(stage1: Law, stage2: Law, name: str | None) -> Law:
    proxy = stage2.covariates[0].name

    def fn(p, x):
        return stage2.fn(p, {proxy: stage1.predict(p, x)})

    return Law(
        name=name or f"{stage1.name}>{stage2.name}",
        params=stage1.params + stage2.params,
        covariates=stage1.covariates,
        fn=fn,
        priors=stage1.priors + stage2.priors,
        response=stage2.response,
        starts=None,
        formula=f"{stage2.formula} with L = {stage1.formula.split('=', 1)[-1].strip()}",
        stages=(stage1, stage2),
    )
