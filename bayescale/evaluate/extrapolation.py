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
are counted in ``n_heldout_unscored``.  ``fitter`` is the fitting method: MAP by default
(bands from the plug-in residual noise only), or ``Fitter.of(fit_nuts)`` / a bootstrap
for parameter uncertainty.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import pandas as pd

from bayescale.derive import Discrepancy, predictive_draws
from bayescale.errors import interruptible
from bayescale.evaluate.backtest import Backtest, backtest, backtest_score
from bayescale.evaluate.comparison import score_heldout
from bayescale.evaluate.discrepancy import learn_discrepancy
from bayescale.fit import Data, DataError, Fit, Fitter, fit_map, fit_two_stage
from bayescale.laws import Law
from bayescale.tables import columns_of, expr, from_frame, two_stage_data

__all__ = ["Calibration", "ExtrapolationStudy", "extrapolation_study"]


@dataclasses.dataclass(frozen=True)
class Calibration:
    """How an extrapolation study calibrates its bands (:mod:`bayescale.evaluate.backtest`).

    ``pooled``: one discrepancy per law over all tasks (and a mixture of the laws'
    widened forecasts, ``law="calibrated"`` rows), else one per task.  ``max_distance``
    goes to :func:`~bayescale.evaluate.learn_discrepancy`.
    """

    pooled: bool = True
    max_distance: float | None = None

    def learn(self, *backtests: Backtest) -> Discrepancy:
        return learn_discrepancy(*backtests, max_distance=self.max_distance)


@dataclasses.dataclass(frozen=True)
class ExtrapolationStudy:
    """Scores per (task, law) in ``table``, per held-out run in ``runs``; ``summary`` averages over tasks."""

    table: pd.DataFrame
    runs: pd.DataFrame
    holdout: str
    interval: float
    seconds: float
    selection: pd.DataFrame | None = None
    """With a pooled :class:`Calibration`: per law its pooled ``tau``, backtest score and weight."""

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


@dataclasses.dataclass(frozen=True)
class _Task:
    name: object
    train: pd.DataFrame
    test: pd.DataFrame
    chance: float
    unscored: int


@dataclasses.dataclass
class _Pending:
    row: dict
    fit: Fit
    test: Data
    key: jax.Array


def _fit_one(law: Law, task: _Task, *, y: str, proxy: str | None, margin: float, fitter: Fitter, key) -> Fit:
    cov = list(law.covariate_names)
    if law.stages:
        if proxy is None:
            raise ValueError(f"law {law.name!r} is two-stage: give proxy= (the validation-loss column)")
        d1, d2, data = two_stage_data(law, task.train, x=cov, proxy=proxy, y=y)
        return fit_two_stage(law, d1, d2, data=data, fitter=fitter, key=key, warn=False)
    train = task.train
    if law.response.chance is not None:
        law = law.with_chance(task.chance)
        train = train[train[y] >= task.chance + margin]
    return fitter(law, from_frame(train, law, x=cov, y=y), key=key, warn=False)


def _test_data(law: Law, test: pd.DataFrame, y: str) -> Data:
    cov = list(law.covariate_names)
    return Data(x={c: test[c].to_numpy(dtype=float) for c in cov}, y=test[y].to_numpy(dtype=float),
                rows=test.index.to_numpy(), columns={**{c: c for c in cov}, "y": y})


def _tasks(frame: pd.DataFrame, holdout: str, task: str | None, chance, y: str) -> list[_Task]:
    """Each task's fitted and held-out runs; held-out runs need chance < y < 1 to be scored."""
    mask_all = expr.mask(holdout, columns_of(frame), what=f"holdout {expr.shown(holdout)} is not a valid condition",
                         rows=len(frame))
    out = []
    for t in ([None] if task is None else list(dict.fromkeys(frame[task]))):
        sel = np.ones(len(frame), bool) if t is None else (frame[task] == t).to_numpy()
        sub, mask = frame[sel], mask_all[sel]
        q = chance.get(t, 0.0) if isinstance(chance, Mapping) else float(chance)
        test = sub[mask]
        representable = (test[y] > q) & (test[y] < 1.0)
        out.append(_Task(t, sub[~mask], test[representable], q, int((~representable).sum())))
    return out


def _fit_all(tasks, laws, *, key, y, proxy, margin, fitter, calibrate):
    """Fit every law on every task; the backtests of one-stage laws when calibrating (Ctrl-C between fits)."""
    with interruptible(len(tasks) * len(laws), "fits") as progress:
        return _fit_each(tasks, laws, key=key, y=y, proxy=proxy, margin=margin, fitter=fitter, calibrate=calibrate,
                         progress=progress)


def _fit_each(tasks, laws, *, key, y, proxy, margin, fitter, calibrate, progress):
    rows: list[dict] = []
    pending: list[_Pending] = []
    backtests: dict = {}
    keys = iter(jax.random.split(key, max(1, len(tasks) * len(laws))))
    for task in tasks:
        for law in laws:
            progress.done = len(rows)
            k = next(keys)
            row = {"task": task.name, "law": law.name, "n_fit": len(task.train), "n_heldout": len(task.test),
                   "n_heldout_unscored": task.unscored}
            rows.append(row)
            try:
                if task.test.empty:
                    raise DataError(f"task {task.name!r}: no held-out run with {task.chance:g} < {y} < 1 to score")
                fit = _fit_one(law, task, y=y, proxy=proxy, margin=margin, fitter=fitter, key=jax.random.fold_in(k, 0))
                if calibrate is not None and not law.stages:
                    try:
                        backtests[task.name, law.name] = backtest(fit.law, fit.data)
                    except DataError as exc:
                        row["calibration_error"] = str(exc)
                pending.append(_Pending(row, fit, _test_data(fit.law, task.test, y), k))
            except DataError as exc:
                row.update(mre=np.nan, mae=np.nan, coverage=np.nan, elpd_lfo=np.nan, converged=False, error=str(exc))
    progress.done = len(rows)
    return rows, pending, backtests


def _pool(backtests: dict, calibration: Calibration) -> tuple[dict, pd.DataFrame]:
    """One discrepancy per law over all tasks, and the laws' pseudo-BMA weights by backtest score."""
    pooled, scored = {}, []
    for name in dict.fromkeys(n for _, n in backtests):
        mine = [b for (_, n), b in backtests.items() if n == name]
        pooled[name] = calibration.learn(*mine)
        lpd = [backtest_score(b, pooled[name]) for b in mine]
        scored.append(dict(law=name, offset=pooled[name].offset, tau=pooled[name].growth,
                           backtest_lpd=float(np.mean(lpd)), n_errors=pooled[name].n_errors, tasks=len(mine)))
    selection = pd.DataFrame(scored)
    if not selection.empty:  # each task counts once (the errors of overlapping cut-offs are correlated)
        total = selection.backtest_lpd * selection.tasks
        w = np.exp(total - total.max())
        selection["weight"] = w / w.sum()
    return pooled, selection


def _score(pending, backtests, pooled, calibration, *, interval, progress):
    runs, plain = [], {}
    for p in pending:
        t, name = p.row["task"], p.row["law"]
        discrepancy = pooled.get(name)  # pooled: every task of the law, with or without its own backtest
        if calibration is not None and not calibration.pooled and (t, name) in backtests:
            discrepancy = calibration.learn(backtests[t, name])
        score = score_heldout(p.fit, p.test, key=p.key, interval=interval, discrepancy=discrepancy)
        p.row.update({c: score[c] for c in ("mre", "mae", "coverage", "elpd_lfo")})
        if discrepancy is not None:
            p.row.update({c: score[c] for c in ("coverage_calibrated", "tau", "width_ratio")})
        p.row["converged"] = p.fit.ok
        plain[t, name] = score["table"]
        runs.append(score["table"].assign(task=t, law=name))
        if progress:
            print(f"  extrapolation: {t} / {name}: MRE {p.row['mre']:.4f}", flush=True)
    return runs, plain


_MIXTURE_DRAWS = 8000


def _mixture(pending, selection: pd.DataFrame, pooled: dict, plain: dict, *, reference: str, interval: float):
    """Rows ``law="calibrated"``: the weighted mixture of the laws' discrepancy-widened forecasts.

    ``plain`` maps ``(task, law)`` to the scored per-run table of that law's plain band; the
    reference law's gives the width ratio.
    """
    weights = dict(zip(selection.law, selection.weight))
    by_task: dict = {}
    for p in pending:
        by_task.setdefault(p.row["task"], {})[p.row["law"]] = p
    tail = (1.0 - interval) / 2.0
    rows, runs = [], []
    for t, entries in by_task.items():
        means, preds, test = [], [], None
        for name, p in entries.items():
            take = int(round(weights.get(name, 0.0) * _MIXTURE_DRAWS))
            if take == 0 or name not in pooled:
                continue
            mean, pred = predictive_draws(p.fit, p.test.x, key=p.key, discrepancy=pooled[name])
            mean, pred = mean.reshape(-1, p.test.n), pred.reshape(-1, p.test.n)
            k_mean, k_pred = jax.random.split(jax.random.fold_in(p.key, 2))
            means.append(mean[np.asarray(jax.random.randint(k_mean, (take,), 0, len(mean)))])
            preds.append(pred[np.asarray(jax.random.randint(k_pred, (take,), 0, len(pred)))])
            test = p.test
        if test is None or reference not in entries:
            continue
        estimate = np.mean(np.concatenate(means), axis=0)  # the weighted average of the laws' forecasts
        lo, hi = np.quantile(np.concatenate(preds), [tail, 1.0 - tail], axis=0)
        inside = (test.y >= lo) & (test.y <= hi)
        ref = entries[reference].row
        rel = np.abs(estimate - test.y) / np.abs(test.y)
        ref_lo, ref_hi = (plain[t, reference][c].to_numpy() for c in ("lo", "hi"))
        rows.append({"task": t, "law": "calibrated", "n_fit": ref["n_fit"], "n_heldout": test.n,
                     "n_heldout_unscored": ref["n_heldout_unscored"], "mre": float(rel.mean()),
                     "mae": float(np.abs(estimate - test.y).mean()), "coverage": float(inside.mean()),
                     "coverage_calibrated": float(inside.mean()),
                     "width_ratio": float(np.median((hi - lo) / np.maximum(ref_hi - ref_lo, 1e-300))),
                     "converged": all(bool(e.row.get("converged", True)) for e in entries.values())})
        runs.append(pd.DataFrame({"row": test.rows, **dict(test.x), "y": test.y, "estimate": estimate, "lo": lo,
                                  "hi": hi, "inside": inside, "task": t, "law": "calibrated"}))
    return rows, runs


def extrapolation_study(
    frame: pd.DataFrame,
    laws: Sequence[Law],
    *,
    y: str,
    holdout: str,
    key: jax.Array,
    task: str | None = None,
    proxy: str | None = None,
    chance: Mapping[str, float] | float = 0.0,
    margin: float = 0.05,
    fitter: Fitter | None = None,
    interval: float = 0.9,
    calibrate: Calibration | None = None,
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
        Condition selecting the runs to forecast (:mod:`bayescale.tables.expr`), e.g. ``"C > 6e21"``.
    key:
        Split over the (task, law) fits and their forecasts.
    chance:
        Q_rand per task (a mapping) or one value for all.
    margin:
        Fit only runs with ``y >= Q_rand + margin`` (chance-normalised laws).
    fitter:
        How every law is fitted (default: MAP, ``Fitter.of(fit_map)``).
    calibrate:
        ``None`` (plain bands only) or a :class:`Calibration`: each one-stage law is also
        backtested on its own fit-side runs (rolling cut-offs, MAP), and the discrepancy
        ``tau`` is learned per task or pooled over the tasks of that law.  Adds ``tau``,
        ``coverage_calibrated`` and ``width_ratio`` to the table; the held-out runs never
        enter a backtest, so the calibrated coverage is out of sample.  Pooled, it also
        ranks the one-stage laws by their backtest score (``selection``) and adds rows
        ``law="calibrated"``: the mixture of the laws' widened forecasts with pseudo-BMA
        weights ``∝ exp(tasks · mean backtest log density)``; its ``width_ratio`` is
        against the plain band of the first law in ``laws``.
    """
    t0 = time.perf_counter()
    tasks = _tasks(frame, holdout, task, chance, y)
    rows, pending, backtests = _fit_all(tasks, laws, key=key, y=y, proxy=proxy, margin=margin,
                                        fitter=fitter or Fitter.of(fit_map), calibrate=calibrate)
    pooled, selection = _pool(backtests, calibrate) if calibrate is not None and calibrate.pooled else ({}, None)
    runs, plain = _score(pending, backtests, pooled, calibrate, interval=interval, progress=progress)
    if selection is not None and not selection.empty:
        extra_rows, extra_runs = _mixture(pending, selection, pooled, plain, reference=laws[0].name, interval=interval)
        rows += extra_rows
        runs += extra_runs
    return ExtrapolationStudy(table=pd.DataFrame(rows), runs=pd.concat(runs, ignore_index=True) if runs else
                              pd.DataFrame(), holdout=holdout, interval=interval, seconds=time.perf_counter() - t0,
                              selection=selection)
