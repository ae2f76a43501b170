"""Peak memory of ``bayescale fit --method map`` on a large table, under the memory budget.

Writes a Chinchilla-like table (N, D, loss: the Hoffmann et al. law with 1 % log-normal noise,
N log-uniform in 1e7..1e11, D log-uniform in 1e9..1e13) to a temporary folder, then runs the
command line in a subprocess, once under the default budget (half of RAM) and once under
``BAYESCALE_MEMORY=1GB``, and prints rows, CSV size, seconds, the child's peak RSS
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``), the budget and the exit status.

Before issue 13 the MAP screen evaluated every start x row at once (4,500 x 200,000 x 8 bytes
per temporary for a 9.6 MB CSV); it now runs in batches that fit the budget, and a table too
large for even one start is refused before anything is allocated.

    python benchmarks/map_memory.py                  # 5,000,000 rows, --keep 1
    python benchmarks/map_memory.py --rows 200000 --keep 64

``--keep`` (starts polished after the screen) bounds the L-BFGS time: every polished start
costs about 8 evaluations of the law over all rows per step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_table(path: Path, rows: int, seed: int = 0) -> None:
    """A Chinchilla-like CSV of ``rows`` runs: N, D and the loss of the fitted law times 1 % noise."""
    rng = np.random.default_rng(seed)
    n = 10.0 ** rng.uniform(7, 11, rows)
    d = 10.0 ** rng.uniform(9, 13, rows)
    loss = (1.82 + 482.0 * n**-0.35 + 2085.0 * d**-0.37) * np.exp(0.01 * rng.standard_normal(rows))
    np.savetxt(path, np.column_stack([n, d, loss]), fmt="%.8g", delimiter=",", header="N,D,loss", comments="")


def run(csv: Path, keep: int, memory: str | None) -> dict:
    """One ``bayescale fit`` in a fresh child; its own peak RSS (children's rusage is per finished child)."""
    env = dict(os.environ)
    env.pop("BAYESCALE_MEMORY", None)
    if memory:
        env["BAYESCALE_MEMORY"] = memory
    cmd = [sys.executable, "-c", "from bayescale.cli.main import main; raise SystemExit(main())",
           "fit", str(csv), "--law", "chinchilla", "--x", "N,D", "--y", "loss", "--method", "map",
           "--keep", str(keep), "--quiet", "--allow-warnings"]
    # each run measures in its own grandchild so that ru_maxrss is that run's peak, not the largest so far
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(p.returncode, time.perf_counter() - t, "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
             "sys.stdout.write(p.stdout[-2000:]); sys.stdout.write(p.stderr[-2000:])")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, env=env)
    head, _, tail = out.stdout.partition("\n")
    rc, seconds, rss_kb = head.split()
    return {"rc": int(rc), "seconds": float(seconds), "peak_rss_gb": int(rss_kb) * 1024 / 1e9, "output": tail}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--keep", type=int, default=1)
    ap.add_argument("--budgets", default="default,1GB", help="comma-separated: 'default' or a BAYESCALE_MEMORY value")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bayescale-map-memory-"))
    try:
        csv = folder / "runs.csv"
        t0 = time.perf_counter()
        write_table(csv, args.rows)
        print(f"rows {args.rows:,}; CSV {csv.stat().st_size / 1e6:.1f} MB (written in {time.perf_counter() - t0:.1f} s); "
              f"RAM {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1e9:.1f} GB; "
              f"{os.cpu_count()} CPUs; --keep {args.keep}", flush=True)
        for memory in args.budgets.split(","):
            r = run(csv, args.keep, None if memory == "default" else memory)
            label = "default (RAM / 2)" if memory == "default" else memory
            lines = [ln for ln in r["output"].splitlines() if ln.strip()]
            print(f"budget {label}: exit {r['rc']}, {r['seconds']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
            for line in lines[-8:]:
                print(f"    {line}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
