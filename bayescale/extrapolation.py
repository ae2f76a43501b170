"""Extrapolation studies: fit on the small runs, forecast the large ones, score every law on every task.

The protocol of Krajewski et al. (2025): split the runs by a condition (``"C > 6e21"``,
``"tpr > 80"``), fit each law on the rest, forecast the held-out runs, and score each
(task, law) by

* MRE = mean |Q̂ - Q| / Q and MAE = mean |Q̂ - Q| of the point forecast (the median of
  the credible band; for a MAP fit the MAP prediction);
* coverage: the share of held-out runs inside the ``interval`` predictive band;
* ``elpd_lfo``: summed log predictive density of the held-out values (natural units).

Any list of laws at once: direct, direct_ceiling, bnsl, tpr, pass_at_k (each reads its
covariate columns by name: ``C``, ``N``, ``D``, ``k``) and the two-stage laws (through
the ``proxy`` column).  For chance-normalised laws only runs with Q >= Q_rand + margin are
fitted, as the paper does; held-out runs are scored if ``Q_rand < Q < 1`` (a relative
error to Q = 0 is undefined), the same runs for every law of a task, and the others
are counted in ``n_heldout_unscored``.  ``fit`` is the fitting
method: MAP by default (bands from the plug-in residual noise only), or
``functools.partial(bayescale.fit_nuts, key=k)`` / a bootstrap for parameter uncertainty.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np
import pandas as pd

from bayescale.comparison import score_heldout
from bayescale.data import Data, DataError, from_frame
from bayescale.law import ChanceAccuracy, Law
from bayescale.optimization import fit_map
from bayescale.staged import fit_two_stage

__all__ = ["ExtrapolationStudy", "extrapolation_study"]


@dataclasses.dataclass(frozen=True)
class ExtrapolationStudy:
    """Scores per (task, law) in ``table``, per held-out run in ``runs``; ``summary`` averages over tasks."""

    table: pd.DataFrame
    runs: pd.DataFrame
    holdout: str
    interval: float
    seconds: float

    @property
    def summary(self) -> pd.DataFrame:
        ok = self.table.dropna(subset=["mre"])
        return (
            ok.groupby("law", sort=False)[["mre", "mae", "coverage", "elpd_lfo"]].mean()
            .assign(tasks=ok.groupby("law", sort=False).size())
            .sort_values("mre")
        )


def _fit_one(law: Law, train: pd.DataFrame, *, y: str, proxy: str | None, chance: float, margin: float,
             fit: Callable):
    cov = list(law.covariate_names)
    if law.stages:
        if proxy is None:
            raise ValueError(f"law {law.name!r} is two-stage: give proxy= (the validation-loss column)")
        return fit_two_stage(law, train, x=cov, proxy=proxy, y=y, fit=fit)
    if isinstance(law.response, ChanceAccuracy):
        law = law.with_chance(chance)
        train = train[train[y] >= chance + margin]
    return fit(law, from_frame(train, law, x=cov, y=y))


def _test_data(law: Law, test: pd.DataFrame, y: str) -> Data:
    cov = list(law.covariate_names)
    return Data(
        x={c: test[c].to_numpy(dtype=float) for c in cov},
        y=test[y].to_numpy(dtype=float),
        rows=test.index.to_numpy(),
        columns={**{c: c for c in cov}, "y": y},
    )


def extrapolation_study(
    frame: pd.DataFrame,
    laws: Sequence[Law],
    *,
    y: str,
    holdout: str,
    key,
    task: str | None = None,
    proxy: str | None = None,
    chance: Mapping[str, float] | float = 0.0,
    margin: float = 0.05,
    fit: Callable | None = None,
    interval: float = 0.9,
    progress: bool = False,
) -> ExtrapolationStudy:
    """Fit every law on the runs outside ``holdout`` and score its forecasts of the runs inside.

    Parameters
    ----------
    frame:
        One row per run (per task, with a ``task`` column), with the covariate columns the
        laws read (``C``, ``N``, ``D``, ``k``), the target ``y`` and, for two-stage laws, ``proxy``.
    laws:
        The laws to compare (their names label the rows).
    holdout:
        ``DataFrame.eval`` condition selecting the runs to forecast, e.g. ``"C > 6e21"``.
    chance:
        Q_rand per task (a mapping) or one value for all.
    margin:
        Fit only runs with ``y >= Q_rand + margin`` (chance-normalised laws).
    fit:
        ``fit(law, data) -> result``; default MAP.
    """
    t0 = time.perf_counter()
    fit = fit or functools.partial(fit_map)
    try:
        mask_all = np.asarray(frame.eval(holdout), dtype=bool)
    except Exception as exc:  # pandas raises many types for a bad expression
        raise DataError(f"holdout {holdout!r} is not a valid condition: {exc}") from None
    tasks = [None] if task is None else list(dict.fromkeys(frame[task]))
    rows, runs = [], []
    keys = jax.random.split(key, max(1, len(tasks) * len(laws)))
    k = 0
    for t in tasks:
        sel = np.ones(len(frame), bool) if t is None else (frame[task] == t).to_numpy()
        sub, mask = frame[sel], mask_all[sel]
        q = chance.get(t, 0.0) if isinstance(chance, Mapping) else float(chance)
        train, test = sub[~mask], sub[mask]
        # relative errors and chance-normalised densities need chance < y < 1; the same
        # held-out runs are scored for every law of a task
        representable = (test[y] > q) & (test[y] < 1.0)
        skipped = int((~representable).sum())
        test = test[representable]
        for law in laws:
            row = {"task": t, "law": law.name, "n_fit": len(train), "n_heldout": len(test),
                   "n_heldout_unscored": skipped}
            try:
                if test.empty:
                    raise DataError(f"task {t!r}: no held-out run with {q:g} < {y} < 1 to score")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    result = _fit_one(law, train, y=y, proxy=proxy, chance=q, margin=margin, fit=fit)
                fitted_law = result.law
                score = score_heldout(result, _test_data(fitted_law, test, y), key=keys[k], interval=interval)
                row.update({c: score[c] for c in ("mre", "mae", "coverage", "elpd_lfo")})
                row["converged"] = bool(getattr(result, "converged", getattr(result, "ok", True)))
                table = score["table"].assign(task=t, law=law.name)
                runs.append(table)
            except DataError as exc:
                row.update(mre=np.nan, mae=np.nan, coverage=np.nan, elpd_lfo=np.nan, converged=False,
                           error=str(exc))
            k += 1
            rows.append(row)
            if progress:
                print(f"  extrapolation: {t} / {law.name}: MRE {row['mre']:.4f}", flush=True)
    return ExtrapolationStudy(
        table=pd.DataFrame(rows),
        runs=pd.concat(runs, ignore_index=True) if runs else pd.DataFrame(),
        holdout=holdout,
        interval=interval,
        seconds=time.perf_counter() - t0,
    )
