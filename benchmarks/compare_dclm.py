"""Model comparison on the Apple DCLM runs: direct vs BNSL vs two-stage, by LOO and leave-future-out.

Krajewski et al. (2025), DCLM mix, TPR 20, runs with C >= 3e18.  Every law is fitted
by NUTS (Student-t likelihood) on all of these runs for PSIS-LOO / WAIC, and refitted
on C <= 6e21 to score the 8 larger runs (leave-future-out: summed log predictive
density, MRE of the posterior-median forecast, share inside the 90 % predictive band).
The two-stage laws go through the ``dclm`` validation loss (cross-entropy, nats).

All scores are log densities of the accuracy itself (fit-space densities are
Jacobian-corrected), so laws fitted in ``log(-log Q')`` and in ``Q`` are comparable.
Rows at or below chance are removed for every law alike, so all laws see the same runs.

    python benchmarks/compare_dclm.py [--chains 4 --warmup 500 --draws 500] [--benchmarks arc_easy,hellaswag]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import jax
import pandas as pd

import bayescale as bs
from bayescale import laws

DATA = Path(os.environ.get("BAYESCALE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# benchmark -> (metric, chance level)
BENCHMARKS = {
    "arc_easy": ("acc", 0.25),
    "arc_challenge": ("acc", 0.25),
    "hellaswag": ("acc", 0.25),
    "piqa": ("acc", 0.5),
    "sciq": ("acc", 0.25),
    "winogrande": ("acc", 0.5),
    "lambada_openai": ("acc", 0.0),
    "triviaqa_1shot": ("exact_match", 0.0),
}


def runs(frame: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    metric, chance = BENCHMARKS[benchmark]
    sel = frame[(frame.tpr == 20) & (frame.C >= 3e18)]
    acc = sel[(sel.benchmark == benchmark) & (sel.metric_type == metric)][["tokens", "C", "N", "D", "score"]]
    loss = sel[(sel.benchmark == "dclm") & (sel.metric_type == "cross_entropy_loss")][["tokens", "score"]]
    wide = acc.merge(loss.rename(columns={"score": "val_loss"}), on="tokens").rename(columns={"score": "acc"})
    return wide[(wide.acc > chance) & (wide.acc < 1)].sort_values("C").reset_index(drop=True)


def stages(fit: bs.Fit) -> tuple[bs.Fit, ...]:
    """The NUTS fits behind ``fit``: its two stages for a two-stage law, else itself."""
    return fit.parts or (fit,)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ap.add_argument("--out", default=None, help="write the table as CSV here")
    args = ap.parse_args(argv)
    path = DATA / "apple-downstream" / "metrics_dclm_data_mixture.subset.csv"
    if not path.exists():
        sys.exit(f"Apple DCLM data not found at {path}; set BAYESCALE_SHARED_DATA")
    frame = bs.datasets.read_apple_downstream(path)
    tables = []
    t_all = time.perf_counter()
    for i, benchmark in enumerate(args.benchmarks.split(",")):
        _, chance = BENCHMARKS[benchmark]
        wide = runs(frame, benchmark)
        key = jax.random.key(i)
        fitter = bs.Fitter.of(bs.fit_nuts, chains=args.chains, warmup=args.warmup, draws=args.draws)
        t0 = time.perf_counter()
        fits = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for law in (laws.direct, laws.bnsl):
                law = law.with_chance(chance)
                fits[law.name] = fitter(law, bs.from_frame(wide, law, x=["C"], y="acc"), key=key)
            for law in (laws.two_stage_linear, laws.two_stage_logistic):
                d1, d2, d = bs.two_stage_data(law, wide, x=["C"], proxy="val_loss", y="acc")
                fits[law.name] = bs.fit_two_stage(law, d1, d2, data=d, fitter=fitter, key=key)
            table = bs.compare(fits, holdout="C > 6e21", key=jax.random.key(100 + i))
        table.insert(0, "benchmark", benchmark)
        table["r_hat_max"] = [max(p.diagnostics["r_hat_max"] for p in stages(fits[n])) for n in table.law]
        table["divergences"] = [sum(p.info.divergences for p in stages(fits[n])) for n in table.law]
        tables.append(table)
        cols = ["law", "elpd_loo", "se_loo", "pareto_k_bad", "elpd_waic", "elpd_lfo", "mre", "coverage",
                "n_heldout", "rank", "r_hat_max", "divergences"]
        print(f"\n{benchmark} (chance {chance:g}; {len(wide)} runs, held out {int(table.n_heldout.iloc[0])}) "
              f"- {time.perf_counter() - t0:.0f} s")
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    out = pd.concat(tables, ignore_index=True)
    print("\nMean over benchmarks:")
    summary = out.groupby("law")[["elpd_loo", "elpd_lfo", "mre", "coverage"]].mean().sort_values("elpd_lfo", ascending=False)
    print(summary.to_string(float_format=lambda v: f"{v:.4g}"))
    print("Times ranked first by leave-future-out:", out[out["rank"] == 1].law.value_counts().to_dict())
    print(f"total {time.perf_counter() - t_all:.0f} s; {args.chains} chains x ({args.warmup} + {args.draws})")
    if args.out:
        out.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
