"""``make demo``: Chinchilla's law per training corpus and validation set on the bundled
Gadre et al. (2024) runs, with N* at 1e21 and 1e23 FLOPs and a plot of N*(C).

This is the question of Roberts et al. (2025) asked of public data: does the
validation set used to fit the law (web text vs code) move the compute-optimal
model size?
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

from bayescale import laws
from bayescale.derive import band, compute_optimal
from bayescale.fit import fit_bootstrap, fit_map
from bayescale.plot import plot_compute_optimal
from bayescale.tables import datasets, from_frame

VALIDATION_SETS = {"c4_val": "C4 (web)", "paloma_dolma_100_programing_languages": "code (Paloma 100 PL)"}
BUDGETS = (1e21, 1e23)


def run_demo(out: Path, *, keep: int = 64, resamples: int = 200, starts: int = 16, seed: int = 0) -> dict:
    """Fit, print and plot; returns the table of results (also used by the tests).

    ``seed`` seeds the bootstrap resamples (the same for every fit: a paired bootstrap).
    """
    out.mkdir(parents=True, exist_ok=True)
    runs = datasets.gadre_long()
    law = laws.chinchilla
    rows = []
    n_star_draws = {}
    curves = {}
    styles = {}
    grid = np.geomspace(1e19, 1e24, 60)
    colours = {"c4_original": "tab:blue", "rpj": "tab:orange", "rw_original": "tab:green"}
    print("Chinchilla law L(N, D) = E + A·N^-alpha + B·D^-beta on the Gadre et al. (2024) runs (MIT)")
    print("fit: summed Huber (delta 1e-3) on log loss, classic 4,500-start grid, best 64 polished;")
    print(f"bands: paired bootstrap, {resamples} resamples of the runs x {starts} starts each\n")
    header = f"{'corpus':<12} {'validation':<22} {'E':>6} {'A':>10} {'B':>10} {'alpha':>6} {'beta':>6} " \
             f"{'N*(1e21) [90% band]':>28} {'N*(1e23)':>9} {'D/N(1e23)':>9} {'ok':>3} {'s':>5}"
    print(header)
    for corpus in sorted(runs["train_dataset"].unique()):
        for val, val_label in VALIDATION_SETS.items():
            sub = runs[(runs["train_dataset"] == corpus) & (runs["val_set"] == val)]
            data = from_frame(sub, law, x=["N", "D"], y="loss")
            t0 = time.perf_counter()
            fit = fit_map(law, data, keep=keep)
            at = compute_optimal(law, fit.point, np.array(BUDGETS))
            # the same key and the same run order give both validation sets the same
            # resample weights: a paired bootstrap across validation sets
            boot = fit_bootstrap(law, data, key=jax.random.key(seed), resamples=resamples, starts=starts, map_fit=fit)
            ok = boot.info.converged
            all_draws = {k: v[None, :] for k, v in boot.info.all_draws.items()}
            n_draws = compute_optimal(law, all_draws, np.array(BUDGETS)).N[0]  # (R, budgets)
            n_star_draws[(corpus, val)] = np.where(ok[:, None], n_draws, np.nan)
            bands = band(n_draws[ok][None], 0.9)
            seconds = time.perf_counter() - t0
            p = fit.point
            print(
                f"{corpus:<12} {val_label:<22} {p['E']:6.3f} {p['A']:10.4g} {p['B']:10.4g} {p['alpha']:6.3f} "
                f"{p['beta']:6.3f} {at.N[0]:9.3g} [{bands.lo[0]:8.3g}, {bands.hi[0]:8.3g}] {at.N[1]:9.3g} "
                f"{at.tokens_per_param[1]:9.3g} {'yes' if fit.ok else 'NO':>3} {seconds:5.1f}"
            )
            rows.append(
                dict(corpus=corpus, val_set=val, n_obs=data.n, converged=fit.ok, **p,
                     N_opt_1e21=float(at.N[0]), N_opt_1e23=float(at.N[1]), tpp_1e23=float(at.tokens_per_param[1]),
                     N_opt_1e21_lo=float(bands.lo[0]), N_opt_1e21_hi=float(bands.hi[0]),
                     resamples=resamples, resamples_failed=boot.info.n_failed)
            )
            label = f"{corpus} / {val_label}"
            curves[label] = compute_optimal(law, fit.point, grid)
            styles[label] = {"color": colours.get(corpus), "ls": "-" if val == "c4_val" else "--"}

    ax = plot_compute_optimal(curves, styles=styles)
    ax.set_title("Compute-optimal N*: web (solid) vs code (dashed) validation loss\nGadre et al. (2024) runs, MAP fits")
    path = out / "demo_compute_optimal.png"
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=120)
    print(f"\nwrote {path}")
    web, code = VALIDATION_SETS
    summary = {}
    for corpus in sorted({r["corpus"] for r in rows}):
        n = {r["val_set"]: r for r in rows if r["corpus"] == corpus}
        ratio = n[code]["N_opt_1e21"] / n[web]["N_opt_1e21"]
        paired = n_star_draws[(corpus, code)][:, 0] / n_star_draws[(corpus, web)][:, 0]
        paired = paired[np.isfinite(paired)]
        ratio_band = band(paired[None], 0.9)
        p_smaller = float(np.mean(paired < 1.0))
        summary[corpus] = dict(ratio=ratio, ratio_lo=float(ratio_band.lo), ratio_hi=float(ratio_band.hi),
                               p_code_smaller=p_smaller, paired_draws=int(paired.size))
        print(f"{corpus}: code-loss N* / web-loss N* at 1e21 FLOPs = {ratio:.2f} (90 % band {ratio_band.lo:.2f} to "
              f"{ratio_band.hi:.2f}); P(code N* < web N*) = {p_smaller:.2f} over {paired.size} paired resamples")
    print("Six model sizes per corpus: bands this wide are the honest answer, not a failure of the fit.")
    (out / "demo_results.json").write_text(json.dumps({"fits": rows, "code_vs_web": summary}, indent=2))
    return {"rows": rows, "summary": summary, "plot": str(path)}
