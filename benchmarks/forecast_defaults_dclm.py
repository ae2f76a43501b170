"""What a user gets from ``bs.forecast`` / ``bayescale forecast`` with their defaults, on held-out DCLM runs (issue 14).

    .venv/bin/python benchmarks/forecast_defaults_dclm.py [map bootstrap nuts] > benchmarks/forecast_defaults_dclm.out.txt

Apple DCLM mix, TPR 20, 12 benchmarks: fit the direct law (chance level per benchmark) on
3e18 <= C <= 6e21 (runs above chance, as ``--where`` would keep), forecast the 8 runs above
6e21 with the defaults of ``bs.forecast`` (the calibrated band: a discrepancy learned from
backtests of the task's own runs under the default prior, direct and direct_ceiling averaged by
their backtest scores), one task per call; and the same with the discrepancies learned over all 12
tasks at once (``--by benchmark``: ``bs.forecast_groups``).  Prints per task and pooled: coverage of the 90 % band, median width
over the plain band's, MRE of the point forecast.  The DCLM runs did not enter the default prior
(``benchmarks/discrepancy_prior.py``).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd

import bayescale as bs
from bayescale import laws

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_dclm import BENCHMARKS, SHARED  # noqa: E402  (one list of the 12 tasks and their chance levels)

FITTERS = {
    "map": bs.Fitter.of(bs.fit_map),
    "bootstrap": bs.Fitter.of(bs.fit_bootstrap),
    "nuts": bs.Fitter.of(bs.fit_nuts),
}


def tasks():
    raw = bs.datasets.read_apple_downstream(SHARED / "apple-downstream" / "metrics_dclm_data_mixture.subset.csv")
    for bench, (metric, q) in BENCHMARKS.items():
        rows = raw[(raw.benchmark == bench) & (raw.metric_type == metric) & (raw.tpr == 20) & (raw.C >= 3e18)]
        train = rows[(rows.C <= 6e21) & (rows.score > q)]
        test = rows[(rows.C > 6e21) & (rows.score > q) & (rows.score < 1)]
        yield bench, laws.direct.with_chance(q), train, test


def score(fit, test, discrepancy, key, cal=None):
    x = {"C": test.C.to_numpy(float)}
    y = test.score.to_numpy(float)
    cal = cal or bs.forecast(fit, x, key=key, discrepancy=discrepancy)  # discrepancy None: the defaults
    plain = bs.forecast(fit, x, key=key, calibrated=False)
    inside = (y >= cal.predictive.lo) & (y <= cal.predictive.hi)
    width = (cal.predictive.hi - cal.predictive.lo) / (plain.predictive.hi - plain.predictive.lo)
    return dict(n=len(y), inside=int(inside.sum()), plain_inside=int(((y >= plain.predictive.lo)
                                                                       & (y <= plain.predictive.hi)).sum()),
                width_ratio=float(np.median(width)), mre=float(np.mean(np.abs(cal.estimate - y) / y)),
                weight=(cal.weights or {}).get(fit.law.name, 1.0), discrepancy=cal.discrepancy)


def run(method: str) -> pd.DataFrame:
    rows, fits = [], {}
    key = jax.random.key(0)
    for i, (bench, law, train, test) in enumerate(tasks()):
        t0 = time.perf_counter()
        fit = FITTERS[method](law, bs.from_frame(train, law, x=["C"], y="score"), key=jax.random.fold_in(key, i),
                              warn=False)
        fits[bench] = (fit, test)
        r = score(fit, test, None, jax.random.fold_in(key, 100 + i))
        disc = r.pop("discrepancy")
        rows.append(dict(method=method, band="per task", task=bench, **r, offset=disc.offset, growth=disc.growth,
                         df=disc.df, n_runs=disc.n_runs, seconds=time.perf_counter() - t0))
    grouped = bs.forecast_groups({b: f for b, (f, _) in fits.items()},
                                 {b: {"C": t.C.to_numpy(float)} for b, (_, t) in fits.items()}, key=key)
    for i, (bench, (fit, test)) in enumerate(fits.items()):
        r = score(fit, test, None, jax.random.fold_in(key, 100 + i), cal=grouped[bench])
        d = r.pop("discrepancy")
        rows.append(dict(method=method, band="--by benchmark", task=bench, **r, offset=d.offset, growth=d.growth,
                         df=d.df, n_runs=d.n_runs, seconds=np.nan))
    return pd.DataFrame(rows)


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    methods = sys.argv[1:] or ["map"]
    pd.set_option("display.width", 200)
    for method in methods:
        table = run(method)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        for band, g in table.groupby("band", sort=False):
            print(f"{method} / {band}: coverage {g.inside.sum()}/{g.n.sum()} = {g.inside.sum() / g.n.sum():.3f} "
                  f"(plain {g.plain_inside.sum() / g.n.sum():.3f}), median width ratio {g.width_ratio.median():.2f}, "
                  f"MRE {(g.mre * g.n).sum() / g.n.sum():.4f}")
        sys.stdout.flush()
