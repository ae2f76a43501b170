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
    selection: pd.DataFrame | None = None
    """With ``calibrate="pooled"``: per law its pooled ``tau``, backtest score and weight."""

    @property
    def chosen(self) -> str | None:
        """The law the calibrated forecast uses: the best extrapolator on the backtests."""
        if self.selection is None or self.selection.empty:
            return None
        return str(self.selection.sort_values("backtest_lpd", ascending=False)["law"].iloc[0])

    @property
    def summary(self) -> pd.DataFrame:
        ok = self.table.dropna(subset=["mre"])
        columns = [c for c in ("mre", "mae", "coverage", "coverage_calibrated", "width_ratio", "tau", "elpd_lfo")
                   if c in ok.columns]
        return (
            ok.groupby("law", sort=False)[columns].mean()
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


_MIXTURE_DRAWS = 8000


def _mixture(pending, selection: pd.DataFrame, pooled: dict, plain: dict, *, reference: str, interval: float):
    """Rows ``law="calibrated"``: the weighted mixture of the laws' discrepancy-widened forecasts.

    ``plain`` maps ``(task, law)`` to the scored per-run table of that law's plain band; the
    reference law's gives the width ratio.
    """
    from bayescale.forecast import predictive_draws

    weights = dict(zip(selection.law, selection.weight))
    by_task: dict = {}
    for row, result, test_data, k_score in pending:
        by_task.setdefault(row["task"], {})[row["law"]] = (row, result, test_data, k_score)
    rng = np.random.default_rng(0)
    tail = (1.0 - interval) / 2.0
    rows, runs = [], []
    for t, entries in by_task.items():
        means, preds, test = [], [], None
        for name, (_, result, test_data, k_score) in entries.items():
            take = int(round(weights.get(name, 0.0) * _MIXTURE_DRAWS))
            if take == 0 or name not in pooled:
                continue
            mean, pred = predictive_draws(result, test_data.x, key=k_score, discrepancy=pooled[name])
            mean, pred = mean.reshape(-1, test_data.n), pred.reshape(-1, test_data.n)
            means.append(mean[rng.integers(0, len(mean), take)])
            preds.append(pred[rng.integers(0, len(pred), take)])
            test = test_data
        if test is None or reference not in entries:
            continue
        mean, pred = np.concatenate(means), np.concatenate(preds)
        estimate = np.mean(mean, axis=0)  # the mixture's mean: the weighted average of the laws' forecasts
        lo, hi = np.quantile(pred, [tail, 1.0 - tail], axis=0)
        inside = (test.y >= lo) & (test.y <= hi)
        ref_row = entries[reference][0]
        rel = np.abs(estimate - test.y) / np.abs(test.y)
        table = pd.DataFrame({"row": test.rows, **dict(test.x), "y": test.y, "estimate": estimate, "lo": lo, "hi": hi,
                              "inside": inside, "task": t, "law": "calibrated"})
        ref_lo, ref_hi = (plain[t, reference][c].to_numpy() for c in ("lo", "hi"))
        rows.append({"task": t, "law": "calibrated", "n_fit": ref_row["n_fit"], "n_heldout": test.n,
                     "n_heldout_unscored": ref_row["n_heldout_unscored"], "mre": float(rel.mean()),
                     "mae": float(np.abs(estimate - test.y).mean()), "coverage": float(inside.mean()),
                     "coverage_calibrated": float(inside.mean()),
                     "width_ratio": float(np.median((hi - lo) / np.maximum(ref_hi - ref_lo, 1e-300))),
                     "converged": all(bool(e[0].get("converged", True)) for e in entries.values())})
        runs.append(table)
    return rows, runs


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
    calibrate: str | None = None,
    calibration: Mapping | None = None,
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
    calibrate:
        ``None`` (plain bands only), ``"task"`` or ``"pooled"``: also score the calibrated
        predictive band (:mod:`bayescale.backtest`): each one-stage law is backtested on
        its own fit-side runs (rolling cut-offs, MAP), and the discrepancy ``tau`` is
        learned per task or pooled over the tasks of that law.  Adds ``tau``,
        ``coverage_calibrated`` and ``width_ratio`` to the table; the runs never enter a
        backtest, so the calibrated coverage is out of sample.  ``"pooled"`` also ranks the
        one-stage laws by their backtest score (``selection``) and adds rows
        ``law="calibrated"``: the mixture of the laws' widened forecasts with pseudo-BMA weights
        ``∝ exp(tasks · mean backtest log density)`` (each task counted once: the errors of
        overlapping cut-offs are strongly correlated); its ``width_ratio`` is against the
        plain band of the first law in ``laws``.
    calibration:
        Options for :func:`bayescale.backtest.learn_discrepancy` (``level``, ``max_distance``).
    """
    from bayescale.backtest import backtest, backtest_score, learn_discrepancy
    from bayescale.forecast import fitted_data

    if calibrate not in (None, "task", "pooled"):
        raise ValueError(f"calibrate must be None, 'task' or 'pooled', got {calibrate!r}")
    t0 = time.perf_counter()
    fit = fit or functools.partial(fit_map)
    try:
        mask_all = np.asarray(frame.eval(holdout), dtype=bool)
    except Exception as exc:  # pandas raises many types for a bad expression
        raise DataError(f"holdout {holdout!r} is not a valid condition: {exc}") from None
    tasks = [None] if task is None else list(dict.fromkeys(frame[task]))
    rows, runs, pending, backtests = [], [], [], {}
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
                if calibrate and not law.stages:
                    try:
                        backtests[t, law.name] = backtest(result.law, fitted_data(result))
                    except DataError as exc:
                        row["calibration_error"] = str(exc)
                pending.append((row, result, _test_data(result.law, test, y), keys[k]))
            except DataError as exc:
                row.update(mre=np.nan, mae=np.nan, coverage=np.nan, elpd_lfo=np.nan, converged=False,
                           error=str(exc))
            k += 1
            rows.append(row)
    pooled, selection = {}, None
    if calibrate == "pooled":
        scored = []
        for name in dict.fromkeys(n for _, n in backtests):
            mine = [b for (_, n), b in backtests.items() if n == name]
            pooled[name] = learn_discrepancy(*mine, **(calibration or {}))
            lpd = [backtest_score(b, pooled[name]) for b in mine]
            scored.append(dict(law=name, tau=pooled[name].tau, backtest_lpd=float(np.mean(lpd)),
                               n_errors=pooled[name].n_errors, tasks=len(mine)))
        selection = pd.DataFrame(scored)
        if not selection.empty:  # pseudo-BMA weights; each task counts once (cut-off errors are correlated)
            total = selection.backtest_lpd * selection.tasks
            w = np.exp(total - total.max())
            selection["weight"] = w / w.sum()
    plain = {}
    for row, result, test_data, k_score in pending:
        t, name = row["task"], row["law"]
        discrepancy = pooled.get(name)  # pooled: every task of the law, with or without its own backtest
        if calibrate == "task" and (t, name) in backtests:
            discrepancy = learn_discrepancy(backtests[t, name], **(calibration or {}))
        score = score_heldout(result, test_data, key=k_score, interval=interval, discrepancy=discrepancy)
        row.update({c: score[c] for c in ("mre", "mae", "coverage", "elpd_lfo")})
        if discrepancy is not None:
            row.update({c: score[c] for c in ("coverage_calibrated", "tau", "width_ratio")})
        row["converged"] = bool(getattr(result, "converged", getattr(result, "ok", True)))
        plain[t, name] = score["table"]
        runs.append(score["table"].assign(task=t, law=name))
        if progress:
            print(f"  extrapolation: {t} / {name}: MRE {row['mre']:.4f}", flush=True)
    if selection is not None and not selection.empty:
        extra_rows, extra_runs = _mixture(pending, selection, pooled, plain, reference=laws[0].name,
                                            interval=interval)
        rows += extra_rows
        runs += extra_runs
    return ExtrapolationStudy(
        table=pd.DataFrame(rows),
        runs=pd.concat(runs, ignore_index=True) if runs else pd.DataFrame(),
        holdout=holdout,
        interval=interval,
        seconds=time.perf_counter() - t0,
        selection=selection,
    )
