"""Write one PNG per plot kind of :mod:`bayescale.plot` to ``docs/img/`` (README figures).

    .venv/bin/python docs/make_figures.py [--out docs/img]

Data: the bundled Gadre et al. runs (MIT), a synthetic IsoFLOP grid drawn from a known
Chinchilla law, and -- when ``../shared/data`` is present -- the Apple DCLM downstream runs
(their figures are skipped with a message otherwise).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd

import bayescale as bs
from bayescale import laws
from bayescale import plot as plotting
from bayescale.derive import isoflop_analysis, isoflop_grid
from bayescale.evaluate import Calibration, backtest, extrapolation_study, learn_discrepancy
from bayescale.tables import condition

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _save(fig, out: Path, name: str) -> None:
    path = out / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "img"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore", RuntimeWarning)
    fitter = bs.Fitter.of(bs.fit_nuts, chains=4, warmup=500, draws=500)

    def nuts(law, data):  # every posterior drawn with the same key
        return fitter(law, data, key=jax.random.key(0))

    # Gadre et al.: Chinchilla's law on RedPajama-trained runs, the largest model held out
    runs = bs.datasets.gadre_long()
    web = runs[(runs.train_dataset == "rpj") & (runs.val_set == "paloma_falcon-refinedweb")]
    code = runs[(runs.train_dataset == "rpj") & (runs.val_set == "paloma_dolma_100_programing_languages")]
    everything = bs.from_frame(web, laws.chinchilla, x=["N", "D"], y="loss")
    later = condition(everything, "N * D > 1e20")  # the 6ND > 6e20 FLOPs runs are held out
    post = nuts(laws.chinchilla, everything.select(~later))
    ax = plotting.plot_forecast(post, heldout=everything.select(later), along="D", key=jax.random.key(0))
    ax.set_title("Chinchilla law (NUTS) on Gadre et al. rpj runs, RefinedWeb loss; C > 6e20 held out", fontsize=8)
    _save(ax.figure, out, "forecast_chinchilla")

    ax = plotting.plot_residuals(post, along="D")
    _save(ax.figure, out, "residuals")

    _save(plotting.plot_pairs(post, key=jax.random.key(0)), out, "pairs")

    post_code = nuts(laws.chinchilla, bs.from_frame(code, laws.chinchilla, x=["N", "D"], y="loss"))
    post_web = nuts(laws.chinchilla, bs.from_frame(web, laws.chinchilla, x=["N", "D"], y="loss"))
    ax = plotting.plot_optimal(post_web, label="RefinedWeb loss")
    plotting.plot_optimal(post_code, ax=ax, label="code loss")
    ax.set_title("N*(C) by validation skill, trained on rpj (NUTS, 90 % bands)", fontsize=8)
    _save(ax.figure, out, "optimal")

    # synthetic IsoFLOP grid from a known law
    truth = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
    grid = isoflop_grid(laws.chinchilla, truth, np.geomspace(6e18, 3e21, 5), key=jax.random.key(0))
    iso = isoflop_analysis(grid, fitter=bs.Fitter.of(bs.fit_bootstrap, resamples=400, starts=4), key=jax.random.key(7))
    ax = plotting.plot_isoflop(grid, iso)
    _save(ax.figure, out, "isoflop")

    # Apple DCLM (not redistributable; read from ../shared when present)
    path = SHARED / "apple-downstream" / "metrics_dclm_data_mixture.subset.csv"
    if not path.exists():
        print(f"skipped the downstream figures: {path} is absent")
        return
    raw = bs.datasets.read_apple_downstream(path)
    hs = raw[(raw.benchmark == "hellaswag") & (raw.metric_type == "acc_norm") & (raw.tpr == 20) & (raw.C >= 3e18)]
    law = laws.direct.with_chance(0.25)
    runs = bs.from_frame(hs, law, x=["C"], y="score")
    later = condition(runs, "C > 6e21")
    train, test = runs.select(~later & (runs.y >= 0.3)), runs.select(later)
    post = nuts(law, train)
    ax = plotting.plot_forecast(post, heldout=test, key=jax.random.key(0))
    ax.set_title("direct law (NUTS, plain bands), HellaSwag acc_norm, DCLM TPR 20: fit C <= 6e21", fontsize=8)
    _save(ax.figure, out, "forecast_direct")

    # the same fit with the calibrated band: tau learned from backtests of the 12 benchmarks' fit sides
    benchmarks = {"arc_easy": 0.25, "arc_challenge": 0.25, "sciq": 0.25, "piqa": 0.5, "hellaswag": 0.25,
                  "webqs_1shot": 0.0, "winogrande": 0.5, "lambada_openai": 0.0, "triviaqa_1shot": 0.0,
                  "gsm8k_cot_llama": 0.0, "humaneval-py": 0.0, "lbpp": 0.0}
    metric = {"webqs_1shot": "exact_match", "triviaqa_1shot": "exact_match", "gsm8k_cot_llama": "exact_match",
              "humaneval-py": "pass@1", "lbpp": "pass@1"}
    backtests = []
    for bench, q in benchmarks.items():
        rows = raw[(raw.benchmark == bench) & (raw.metric_type == metric.get(bench, "acc_norm" if bench == "hellaswag"
                                                                             else "acc")) & (raw.tpr == 20)
                   & (raw.C >= 3e18) & (raw.C <= 6e21)]
        task_law = laws.direct.with_chance(q)
        try:
            backtests.append(backtest(task_law, bs.from_frame(rows[rows.score >= q + 0.05], task_law, x=["C"],
                                                              y="score")))
        except bs.DataError:
            continue
    discrepancy = learn_discrepancy(*backtests)
    ax = plotting.plot_forecast(post, heldout=test, discrepancy=discrepancy, key=jax.random.key(0))
    ax.set_title(f"same fit, calibrated band: sd {discrepancy.offset:.3f} + {discrepancy.growth:.3f} per e-fold beyond 6e21 "
                 f"(backtests of {discrepancy.n_tasks} benchmarks)", fontsize=8)
    _save(ax.figure, out, "forecast_direct_calibrated")

    frame = []
    for bench in benchmarks:
        rows = raw[(raw.benchmark == bench) & (raw.metric_type == metric.get(bench, "acc")) & (raw.tpr == 20)
                   & (raw.C >= 3e18)]
        frame.append(rows[["C", "score"]].assign(task=bench))
    frame = pd.concat(frame, ignore_index=True)
    levels = (0.5, 0.8, 0.9)
    plain, calibrated = [], []
    for level in levels:
        s = extrapolation_study(frame, [laws.direct, laws.direct_ceiling], y="score", holdout="C > 6e21",
                                key=jax.random.key(5), task="task", chance=benchmarks,
                                fitter=bs.Fitter.of(bs.fit_map, objective=bs.SquaredError()), interval=level,
                                calibrate=Calibration(pooled=True))
        plain.append(s.runs[s.runs.law == "direct"]["inside"].mean())
        calibrated.append(s.runs[s.runs.law == "calibrated"]["inside"].mean())
    ax = plotting.plot_reliability(levels, [plain, calibrated], labels=["direct law, plain band",
                                                                        "calibrated (discrepancy + law-form mixture)"],
                                   counts=int((s.runs.law == "calibrated").sum()))
    ax.set_title("DCLM, 12 benchmarks, held-out runs above 6e21 FLOPs", fontsize=8)
    _save(ax.figure, out, "reliability")


if __name__ == "__main__":
    main()
