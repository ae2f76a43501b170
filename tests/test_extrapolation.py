"""Extrapolation studies: fit on the small runs, forecast the large ones, for many laws and tasks."""

import jax
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import laws
from bayescale.evaluate import extrapolation_study
from bayescale.fit import DataError


def _frame(runs: int = 28):
    """Two tasks that follow the direct law exactly (noise in its fit space), with a loss proxy."""
    rng = np.random.default_rng(0)
    C = np.logspace(18, 22.5, runs)
    parts = []
    for task, (a, alpha, chance) in {"mc": (60.0, 0.09, 0.25), "gen": (400.0, 0.12, 0.0)}.items():
        z = np.log(a) - alpha * np.log(C) + 0.02 * rng.normal(size=C.size)
        acc = chance + (1 - chance) * np.exp(-np.exp(z))
        loss = 1.8 + 900.0 * C**-0.15
        parts.append(pd.DataFrame({"task": task, "C": C, "acc": acc, "val_loss": loss}))
    return pd.concat(parts, ignore_index=True), {"mc": 0.25, "gen": 0.0}


def test_every_law_on_every_task_and_the_true_law_forecasts_best():
    frame, chance = _frame()
    study = extrapolation_study(
        frame, [laws.direct, laws.bnsl, laws.two_stage_linear], y="acc", holdout="C > 1e21",
        key=jax.random.key(0), task="task", proxy="val_loss", chance=chance,
    )
    assert len(study.table) == 6
    held = int((frame.C > 1e21).sum() // 2)
    assert (study.table.n_heldout == held).all()
    mre = study.table.pivot(index="task", columns="law", values="mre")
    assert (mre["direct"] < 0.04).all(), mre
    assert (mre["direct"] < mre["two_stage_linear"]).all(), mre
    assert set(study.runs.columns) >= {"task", "law", "y", "estimate", "lo", "hi", "inside"}
    assert study.summary.index[0] == "direct"
    # MRE is recomputed from the per-run table, not typed in
    direct_mc = study.runs[(study.runs.law == "direct") & (study.runs.task == "mc")]
    expect = np.mean(np.abs(direct_mc.estimate - direct_mc.y) / direct_mc.y)
    assert study.table.set_index(["task", "law"]).loc[("mc", "direct"), "mre"] == pytest.approx(expect)


def test_bands_from_posterior_draws_cover_the_held_out_runs():
    frame, chance = _frame(runs=56)
    fitter = bs.Fitter.of(bs.fit_nuts, chains=2, warmup=300, draws=300)
    study = extrapolation_study(frame, [laws.direct], y="acc", holdout="C > 1e21", key=jax.random.key(0),
                                task="task", chance=chance, fitter=fitter)
    # 36 held-out runs, nominal 90 %: a broken band (MAP-only, or no noise) covers far fewer
    covered = study.runs.inside.mean()
    assert 0.75 <= covered <= 1.0, study.runs


def test_a_bad_holdout_names_the_problem():
    frame, chance = _frame()
    with pytest.raises(DataError, match="holdout"):
        extrapolation_study(frame, [laws.direct], y="acc", holdout="C >>> 3", key=jax.random.key(0), task="task")
