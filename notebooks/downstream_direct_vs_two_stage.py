# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Downstream accuracy straight from compute vs the two-stage route (Krajewski et al. 2025)
#
# The paper's main extrapolation table: DCLM mix, tokens per parameter 20, fit every law on
# the runs with 3e18 <= C <= 6e21, forecast the 8 larger runs (up to 3.8e22 FLOPs), score each
# benchmark by MRE and MAE and average over 12 benchmarks.  Then: the direct law's 90 %
# predictive bands (NUTS) and how many held-out runs fall inside; the across-TPR law; pass@k.
#
# Data: `../shared/data/apple-downstream/` (not redistributable; the upstream defects its README
# lists are filtered by `bs.datasets.read_apple_downstream`).  Metric choices, stated: the paper
# does not say whether it used `acc` or `acc_norm` for the multiple-choice tasks, so both are
# reported; GSM8K, TriviaQA and WebQS use `exact_match`; HumanEval and LBPP use `pass@1`.
# Chance levels: 0.25 for 4-way multiple choice (ARC, HellaSwag, SciQ), 0.5 for PIQA and
# Winogrande, 0 for generative tasks.  Chance-normalised laws are fitted on runs with
# Q >= Q_rand + 0.05 only, as in the paper.

# %%
import dataclasses
import json
import os
from pathlib import Path

import jax
import pandas as pd

import bayescale as bs
from bayescale import laws
from bayescale.evaluate import Calibration, ExtrapolationStudy, extrapolation_study

SMALL = os.environ.get("BAYESCALE_NOTEBOOK_SCALE", "full") == "small"
CHAINS, WARMUP, DRAWS = (2, 300, 300) if SMALL else (4, 1000, 1000)
OUT = Path(os.environ.get("BAYESCALE_NOTEBOOK_OUT", Path("notebooks") / "out"))
OUT.mkdir(parents=True, exist_ok=True)
DATA = Path(os.environ.get("BAYESCALE_SHARED_DATA", Path("..") / "shared" / "data"))

# benchmark -> (metric, chance); "acc" tasks with an acc_norm variant are listed in NORM
BENCHMARKS = {
    "arc_easy": ("acc", 0.25), "arc_challenge": ("acc", 0.25), "sciq": ("acc", 0.25), "piqa": ("acc", 0.5),
    "hellaswag": ("acc", 0.25), "webqs_1shot": ("exact_match", 0.0), "winogrande": ("acc", 0.5),
    "lambada_openai": ("acc", 0.0), "triviaqa_1shot": ("exact_match", 0.0), "gsm8k_cot_llama": ("exact_match", 0.0),
    "humaneval-py": ("pass@1", 0.0), "lbpp": ("pass@1", 0.0),
}
NORM = {"arc_easy", "arc_challenge", "sciq", "piqa", "hellaswag"}
# the paper's reported 12-benchmark averages (METHODS.md; approximate), for reference only
PAPER_MRE = {"direct": 0.0196, "bnsl": 0.0271, "two_stage_linear": 0.0667, "two_stage_logistic": 0.0635}

# %%
raw = bs.datasets.read_apple_downstream(DATA / "apple-downstream" / "metrics_dclm_data_mixture.subset.csv")
loss = (raw[(raw.benchmark == "dclm") & (raw.metric_type == "cross_entropy_loss")]
        [["tokens", "tpr", "score"]].rename(columns={"score": "val_loss"}))


def task_frame(variant: str, tpr=(20,)) -> pd.DataFrame:
    parts = []
    for bench, (metric, _chance) in BENCHMARKS.items():
        if variant == "acc_norm" and bench in NORM:
            metric = "acc_norm"
        rows = raw[(raw.benchmark == bench) & (raw.metric_type == metric) & raw.tpr.isin(tpr) & (raw.C >= 3e18)]
        rows = rows[["tokens", "tpr", "C", "N", "D", "score"]].merge(loss, on=["tokens", "tpr"])
        parts.append(rows.assign(task=bench, metric=metric))
    return pd.concat(parts, ignore_index=True)


CHANCE = {b: q for b, (_, q) in BENCHMARKS.items()}
# the small (test-suite) scale draws bands and the across-TPR law for 4 benchmarks only
SUBSET = ["arc_easy", "hellaswag", "piqa", "humaneval-py"] if SMALL else list(BENCHMARKS)
METHODS = [laws.direct, laws.direct_ceiling, laws.bnsl, laws.two_stage_linear, laws.two_stage_logistic]
if SMALL:  # the test-suite scale leaves BNSL (5 parameters, the slowest fits) to the full run
    METHODS = [law for law in METHODS if law is not laws.bnsl]

# %% [markdown]
# ## Per-benchmark MRE of every method (MAP point fits)
#
# Estimator: least squares in each law's fit space, which is what the authors' released code
# does for the direct law (Eq. 2: `lstsq` on log(-log Q')) and for both stages of the two-stage
# baselines.  The summed Huber loss with delta = 1e-3 (the paper's choice for the across-TPR law)
# is almost an L1 fit at these residual sizes; it is reported as a second estimator below,
# because on the sparse generative tasks (LBPP: 5 runs above the 0.05 cut) it picks a very
# different line.

# %%
LSQ = bs.Fitter.of(bs.fit_map, objective=bs.SquaredError())
HUBER = bs.Fitter.of(bs.fit_map, objective=bs.Huber(1e-3))


def study(variant: str, fitter: bs.Fitter, methods=METHODS) -> ExtrapolationStudy:
    frame = task_frame(variant)
    if variant == "acc_norm":  # acc_norm differs only for the multiple-choice tasks
        frame = frame[frame.task.isin(NORM)]
    if fitter is HUBER:  # the second estimator: the subset at the small scale
        frame = frame[frame.task.isin(SUBSET)]
    return extrapolation_study(frame, methods, y="score", holdout="C > 6e21", key=jax.random.key(0),
                               task="task", proxy="val_loss", chance=CHANCE, fitter=fitter)


studies = {"acc": study("acc", LSQ)}
norm = study("acc_norm", LSQ)
shared = studies["acc"]
studies["acc_norm"] = dataclasses.replace(
    norm,
    table=pd.concat([norm.table, shared.table[~shared.table.task.isin(NORM)]], ignore_index=True),
    runs=pd.concat([norm.runs, shared.runs[~shared.runs.task.isin(NORM)]], ignore_index=True),
)
mre = pd.concat({v: s.table.pivot(index="task", columns="law", values="mre") for v, s in studies.items()}, axis=1)
mre.round(4)

# %%
averages = pd.DataFrame({v: s.table.groupby("law")["mre"].mean() for v, s in studies.items()})
averages["paper"] = pd.Series(PAPER_MRE)
huber = study("acc", HUBER, [laws.direct, laws.direct_ceiling])  # 12 benchmarks (4 at the small scale)
averages["acc (Huber 1e-3)"] = huber.table.groupby("law")["mre"].mean()
averages.round(4)

# %% [markdown]
# ## The direct law's 90 % predictive bands (NUTS, Student-t): how many held-out runs fall inside

# %%
nuts = bs.Fitter.of(bs.fit_nuts, chains=CHAINS, warmup=WARMUP, draws=DRAWS, progress=not SMALL)
acc_frame = task_frame("acc")
bands = extrapolation_study(acc_frame[acc_frame.task.isin(SUBSET)], [laws.direct], y="score", holdout="C > 6e21", key=jax.random.key(2),
                            task="task", chance=CHANCE, fitter=nuts)
coverage = bands.runs.groupby("task")["inside"].agg(["sum", "count", "mean"])
coverage

# %% [markdown]
# ## Calibrated bands (issue 7): backtests on the fit side, a learned law discrepancy, law forms by backtest score
#
# The plain bands above hold about half the held-out runs: the misses are systematic (the law is a
# little wrong and the error grows with the distance in compute).  The calibrated forecast learns how
# wrong from the runs the user has: every one-stage law is refitted at rolling compute cut-offs of the
# fit side (3e18 <= C <= 6e21 only; the held-out runs never enter), its errors on the later runs give a
# discrepancy sd tau per e-fold of compute (pooled over the benchmarks, coverage-matched at the band's
# level), and the law forms are mixed with weights from their backtest log scores.  Reported for the
# 50/80/90 % bands: held-out coverage (reliability plot), the median band width relative to the direct
# law's plain band, and the MRE of the mixture's point forecast.

# %%
from bayescale.evaluate import calibration_report  # noqa: E402
from bayescale.plot import plot_reliability  # noqa: E402

CAL_FORMS = [laws.direct, laws.direct_ceiling] if SMALL else [laws.direct, laws.direct_ceiling, laws.bnsl]
cal_frame = acc_frame[acc_frame.task.isin(SUBSET)]
LEVELS = (0.5, 0.8, 0.9)
calibrated = {level: extrapolation_study(cal_frame, CAL_FORMS, y="score", holdout="C > 6e21", key=jax.random.key(5),
                                         task="task", chance=CHANCE, fitter=LSQ, interval=level,
                                         calibrate=Calibration(pooled=True))
              for level in LEVELS}
cal90 = calibrated[0.9]
print(cal90.selection.round(4).to_string(index=False))
reliability = pd.DataFrame({
    "nominal": LEVELS,
    "plain_direct": [s.runs[s.runs.law == "direct"]["inside"].mean() for s in calibrated.values()],
    "calibrated": [s.runs[s.runs.law == "calibrated"]["inside"].mean() for s in calibrated.values()],
    "width_ratio": [s.table[s.table.law == "calibrated"]["width_ratio"].median() for s in calibrated.values()],
})
reliability.round(3)

# %%
per_task = cal90.table.pivot(index="task", columns="law", values="coverage_calibrated")
per_task["plain_direct"] = cal90.table[cal90.table.law == "direct"].set_index("task")["coverage"]
per_task.round(3)

# %% [markdown]
# The calibration report on the backtests themselves (the direct law, one benchmark; in-sample for tau),
# and the reliability plot of the held-out runs (out of sample).

# %%
from bayescale.evaluate import backtest, learn_discrepancy  # noqa: E402

bt_task = SUBSET[0]
bt_rows = acc_frame[(acc_frame.task == bt_task) & (acc_frame.C <= 6e21)]
bt_law = laws.direct.with_chance(CHANCE[bt_task])
bt = backtest(bt_law, bs.from_frame(bt_rows[bt_rows.score >= CHANCE[bt_task] + 0.05], bt_law, x=["C"], y="score"))
report = calibration_report(bt, learn_discrepancy(bt))
ax = plot_reliability(reliability.nominal, [reliability.plain_direct, reliability.calibrated],
                      labels=["direct law, plain band", "calibrated (backtest discrepancy + law-form mixture)"],
                      counts=int(cal90.runs[cal90.runs.law == "calibrated"].shape[0]))
ax.set_title("Held-out DCLM runs above 6e21 FLOPs: nominal vs empirical coverage", fontsize=8)
ax.figure.savefig(OUT / "downstream_reliability.png", dpi=120, bbox_inches="tight")
report.round(3)

# %% [markdown]
# ## Across token-to-parameter ratios: -log Q' = A·N^-alpha + B·D^-beta
#
# All five TPRs; held out: C > 6e21 or TPR > 80 (MAP).

# %%
all_tpr = task_frame("acc", tpr=(10, 20, 40, 80, 160))
across = extrapolation_study(
    all_tpr[all_tpr.task.isin(SUBSET)], [laws.tpr], y="score", holdout="C > 6e21 or tpr > 80",
    key=jax.random.key(3), task="task", chance=CHANCE,
)
across.table[["task", "n_fit", "n_heldout", "mre", "mae"]]

# %% [markdown]
# ## pass@k on HumanEval: fit C < 6e21 and k <= 32, forecast the rest

# %%
he = raw[(raw.benchmark == "humaneval-py") & raw.k.notna() & (raw.tpr == 20) & (raw.C >= 3e18)]
he = he[(he.score > 0) & (he.score < 1)][["C", "k", "score"]].reset_index(drop=True)
passk = extrapolation_study(he, [laws.pass_at_k], y="score", holdout="C >= 6e21 or k > 32", key=jax.random.key(4))
passk.table[["n_fit", "n_heldout", "mre", "mae"]]

# %%
headline = {
    "mre": {v: s.table.set_index(["task", "law"])["mre"].unstack().to_dict() for v, s in studies.items()},
    "average_mre": averages[["acc", "acc_norm"]].to_dict(),
    "average_mre_huber": averages["acc (Huber 1e-3)"].to_dict(),
    "estimator": "least squares in fit space (MAP)",
    "paper_average_mre": PAPER_MRE,
    "direct_coverage_90": {t: {"inside": int(r["sum"]), "heldout": int(r["count"])} for t, r in coverage.iterrows()},
    "direct_coverage_90_all": float(bands.runs["inside"].mean()),
    "across_tpr_mre": float(across.table["mre"].mean()),
    "pass_at_k_mre": float(passk.table["mre"].iloc[0]),
    "calibrated": {
        "forms": [law.name for law in CAL_FORMS],
        "selection": cal90.selection.to_dict(orient="records"),
        "reliability": reliability.to_dict(orient="records"),
        "coverage_90_per_task": per_task["calibrated"].to_dict(),
        "mre_calibrated": float(cal90.table[cal90.table.law == "calibrated"]["mre"].mean()),
        "mre_direct": float(cal90.table[cal90.table.law == "direct"]["mre"].mean()),
        "backtest_report": report.to_dict(orient="records"),
    },
    "scale": "small" if SMALL else "full",
}
(OUT / "downstream_direct_vs_two_stage.json").write_text(json.dumps(headline, indent=2))
pd.concat({v: s.runs for v, s in studies.items()}, names=["variant", "i"]).to_csv(OUT / "downstream_runs.csv")
print(json.dumps({k: headline[k] for k in ("average_mre", "direct_coverage_90_all", "across_tpr_mre",
                                           "pass_at_k_mre")}, indent=1))
