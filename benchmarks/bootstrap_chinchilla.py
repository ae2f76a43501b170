"""Bootstrap of the Chinchilla law on Epoch AI's 240 runs: time, standard errors, tokens/param band.

Usage: python benchmarks/bootstrap_chinchilla.py [RESAMPLES] [STARTS] [race|norace]
Needs ../shared/data/chinchilla (or BAYESCALE_SHARED_DATA). Prints what it measured.
"""

import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

import bayescale as bs

R = int(sys.argv[1]) if len(sys.argv) > 1 else 100
S = int(sys.argv[2]) if len(sys.argv) > 2 else 64
race = bs.Race() if (sys.argv[3] if len(sys.argv) > 3 else "race") == "race" else None
root = Path(os.environ.get("BAYESCALE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
runs = bs.datasets.read_chinchilla(root / "chinchilla" / "svg_extracted_data.csv")
data = bs.from_frame(runs, bs.laws.chinchilla, x=["N", "D"], y="L")
print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
      f"devices {jax.devices()}")
t = time.perf_counter()
m = bs.fit_map(bs.laws.chinchilla, data)
print(f"MAP: {time.perf_counter() - t:.1f} s (incl. compile), objective {m.info.objective:.7f}, converged {m.info.converged}")
t = time.perf_counter()
b = bs.fit_bootstrap(bs.laws.chinchilla, data, key=jax.random.key(0), resamples=R, starts=S, map_fit=m, race=race)
wall = time.perf_counter() - t
info = b.info
print(f"bootstrap R={R} S={S} race={race is not None}: {wall:.1f} s wall, compile {info.compile_seconds:.1f} s, "
      f"{(wall - info.compile_seconds) / R * 1e3:.0f} ms per resample; failed {info.n_failed}; pool "
      f"{info.pool_lanes} lanes, {info.pool_calls} calls, {info.pruned} starts stopped by racing")
print("standard errors:", {k: round(v, 4) for k, v in b.std().items()},
      "(Epoch, 4,000 resamples: E 0.03, A 124.6, B 1293, alpha 0.02, beta 0.02)")
print("medians:", {k: round(float(np.median(v)), 4) for k, v in b.draws.items()})
alloc = bs.compute_optimal(bs.laws.chinchilla, b.draws, 5.88e23)
lo, med, hi = np.quantile(alloc.tokens_per_param[0], [0.1, 0.5, 0.9])
point = float(bs.compute_optimal(bs.laws.chinchilla, m.point, 5.88e23).tokens_per_param)
print(f"tokens per parameter at C = 5.88e23: MAP {point:.1f}, bootstrap median {med:.1f}, 80 % band [{lo:.1f}, {hi:.1f}]")
