"""Simulation-based calibration: do 80 % credible intervals contain the truth 80 % of the time?

For each library law named, ``--datasets`` data sets are drawn from the law's prior
predictive (Student-t likelihood, the NUTS default) at 12 log-spaced runs, each is
fitted by NUTS, and the central 80 % interval of every parameter, of ``sigma`` and of
the mean law at two extrapolation points (10x and 100x the largest run's covariate)
is checked against the truth.  Prints coverage per quantity and overall, the number
of fits whose diagnostics were flagged, and the uniformity of the ranks.

    python benchmarks/sbc_calibration.py [--laws power_law,chinchilla] [--datasets 50]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from bayescale import laws
from bayescale.evaluate import coverage_study

DESIGNS = {
    ("C",): (dict(C=np.logspace(18, 21, 12)), dict(C=np.array([1e22, 1e23]))),
    ("N", "D"): (
        dict(N=np.repeat(np.logspace(8, 9.5, 4), 3), D=np.tile([10.0, 20.0, 80.0], 4) * np.repeat(np.logspace(8, 9.5, 4), 3)),
        dict(N=np.array([1e10, 7e10]), D=20 * np.array([1e10, 7e10])),
    ),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--laws", default="power_law,chinchilla")
    ap.add_argument("--datasets", type=int, default=50)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for i, name in enumerate(args.laws.split(",")):
        law = laws.get_law(name)
        x, ext = DESIGNS[law.covariate_names]
        t0 = time.perf_counter()
        study = coverage_study(law, x, ext, key=jax.random.key(args.seed + i), datasets=args.datasets,
                               interval=0.8, chains=args.chains, warmup=args.warmup, draws=args.draws)
        ranks = study.table["rank"].to_numpy()
        hist = np.histogram(ranks, bins=5, range=(0, 1))[0]
        print(f"\n{name}: {args.datasets} data sets from the prior predictive, {args.chains} chains x "
              f"({args.warmup} + {args.draws}); {time.perf_counter() - t0:.0f} s; fits flagged by diagnostics: "
              f"{study.flagged}")
        print("  80 % interval coverage per quantity:")
        for q, v in study.coverage.items():
            print(f"    {q:>14}: {v:.2f}")
        print(f"  overall: {study.overall:.3f} over {len(study.table)} (data set, quantity) pairs")
        print(f"  rank histogram (5 bins, expect {len(ranks) / 5:.0f} each): {hist.tolist()}")
        for q, group in study.table.groupby("quantity", sort=False):
            h = np.histogram(group["rank"], bins=5, range=(0, 1))[0]
            print(f"    {q:>14} ranks: {h.tolist()}")
        trusted = study.table[study.table.ok]
        if len(trusted):
            print(f"  coverage over the {trusted.dataset.nunique()} fits not flagged: {trusted.inside.mean():.3f}")


if __name__ == "__main__":
    main()
