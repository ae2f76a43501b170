"""Peak memory of a very large bootstrap: the lane pool bounds memory by its width, not by R.

Usage: python benchmarks/bootstrap_memory.py [RESAMPLES=100000] [STARTS=4]
Prints wall time, resamples per second and the process's peak resident memory (ru_maxrss).
"""

import os
import resource
import sys
import time
from pathlib import Path

import jax
import numpy as np

import bayescale as bs

R = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
S = int(sys.argv[2]) if len(sys.argv) > 2 else 4
root = Path(os.environ.get("BAYESCALE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
runs = bs.datasets.read_chinchilla(root / "chinchilla" / "svg_extracted_data.csv")
data = bs.from_frame(runs, bs.laws.chinchilla, x=["N", "D"], y="L")
m = bs.fit_map(bs.laws.chinchilla, data)
t0 = time.perf_counter()
b = bs.fit_bootstrap(bs.laws.chinchilla, data, key=jax.random.key(0), resamples=R, starts=S, map_fit=m, progress=True)
wall = time.perf_counter() - t0
peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
print(f"{R} resamples x {S} starts: {wall:.0f} s ({R / wall:.0f} resamples/s), failed {b.info.n_failed}, "
      f"pool {b.info.pool_lanes} lanes; peak resident memory {peak_gb:.2f} GB")
print("standard errors:", {k: round(v, 4) for k, v in b.std().items()})
print("alpha 5/50/95 %:", np.quantile(b.draws["alpha"][0], [0.05, 0.5, 0.95]).round(4))
