"""Learn the default discrepancy priors (``bayescale.derive.DEFAULT_PRIORS``) from real backtests.

    .venv/bin/python benchmarks/discrepancy_prior.py > benchmarks/discrepancy_prior.out.txt

For each response the prior is learned by type-II maximum likelihood (``bayescale.evaluate.learn_prior``,
flat hyperprior) over groups of real runs, each group backtested on its own runs (rolling cut-offs
along the direction users extrapolate; ``bayescale.evaluate.backtest``), MAP fits by least squares:

* ``Loss`` (fit space ``log L``), the Chinchilla law backtested along model size N:
  Epoch's re-extraction of the Chinchilla runs (1 group), Gadre et al. (train corpus x validation
  set: 24 groups), Muennighoff et al.'s single-epoch C4 runs (1 group);
* ``ChanceAccuracy`` (fit space ``log(-log Q')``), the direct law of Krajewski et al. backtested
  along compute C: Gadre et al.'s downstream evaluations (train corpus x task, every task whose
  runs rise at least 0.1 above its chance level; chance from ``eval_metadata.csv``).

The Apple DCLM runs are left out on purpose: they are the held-out test of the calibrated
forecast (issue 14), which must not have tuned its own prior.  ``Accuracy`` (the second stage of
two-stage laws, never backtested) keeps the weak default.  The script prints the priors as the
Python that ``bayescale/derive/discrepancy.py`` holds; the numbers there must match its output.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale import laws
from bayescale.evaluate import backtest
from bayescale.evaluate.discrepancy import _errors, _log_lik, learn_prior

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LSQ = bs.SquaredError()


def _group_lik(law, frame: pd.DataFrame, x: list[str], y: str):
    data = bs.from_frame(frame, law, x=x, y=y)
    bt = backtest(law, data, objective=LSQ)
    errors = _errors([bt], True, None)
    return _log_lik(errors), len(errors), int(errors.row.nunique())


def loss_groups():
    law = laws.chinchilla
    epoch = bs.datasets.read_chinchilla(SHARED / "chinchilla" / "svg_extracted_data.csv")
    yield "epoch chinchilla", law, epoch, ["N", "D"], "L"
    long = bs.datasets.gadre_long()
    for (corpus, val), g in long.groupby(["train_dataset", "val_set"]):
        yield f"gadre {corpus} / {val}", law, g, ["N", "D"], "loss"
    muen = pd.read_csv(SHARED / "datablations-muennighoff" / "c4_runs.csv")
    muen = muen[(muen.epochs <= 1.0) & muen.finished].rename(columns={"params": "N", "tokens": "D"})
    yield "muennighoff c4 single-epoch", law, muen, ["N", "D"], "val_loss"


def accuracy_groups():
    meta = pd.read_csv(SHARED / "gadre-overtraining" / "eval_metadata.csv")
    chance = dict(zip(meta["Eval Task"], meta["Random baseline"] / 100.0))
    evals = pd.read_csv(SHARED / "gadre-overtraining" / "evals_flat.csv")
    models = pd.read_csv(SHARED / "gadre-overtraining" / "models_flat.csv")[["name", "train_dataset", "flops_6ND"]]
    table = models.merge(evals, on="name").rename(columns={"flops_6ND": "C"})
    for task in [c for c in evals.columns if c != "name" and c in chance]:
        q = float(chance[task])
        law = laws.direct.with_chance(q)
        for corpus, g in table.groupby("train_dataset"):
            g = g[np.isfinite(g[task])]
            if g[task].max() - q < 0.1:
                continue
            g = g[(g[task] >= q + 0.05) & (g[task] < 1.0)]
            if len(g) >= 14:
                yield f"gadre {corpus} / {task}", law, g, ["C"], task


def learn(name: str, groups) -> None:
    t0 = time.perf_counter()
    lls = []
    print(f"\n## {name}")
    for label, law, frame, x, y in groups:
        try:
            ll, n_err, n_runs = _group_lik(law, frame, x, y)
        except bs.DataError as exc:
            print(f"  {label}: skipped ({exc})")
            continue
        lls.append(ll)
        print(f"  {label}: {n_err} backtest errors on {n_runs} later runs")
    prior = learn_prior(lls, source=f"learned from {len(lls)} groups")
    (m0, s0), (m1, s1) = prior.log_offset, prior.log_growth
    print(f"{name}: {len(lls)} groups, {time.perf_counter() - t0:.0f} s")
    print(f'    "{name}": DiscrepancyPrior(({m0:.2f}, {s0:.2f}), ({m1:.2f}, {s1:.2f}), '
          f'"learned from {len(lls)} real groups (benchmarks/discrepancy_prior.py)"),')
    print(f"  median offset {np.exp(m0):.3g}, median growth {np.exp(m1):.3g} per e-fold (fit space)")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    learn("Loss", loss_groups())
    learn("ChanceAccuracy", accuracy_groups())
