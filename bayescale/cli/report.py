"""One report for any fit: the printed table, the JSON payload, the outputs written whole or not at all."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from bayescale.convert import save
from bayescale.convert.files import outputs
from bayescale.fit import Fit


def finite(v) -> float | None:
    """``v`` as a float, or None when it is not finite (JSON has no NaN)."""
    return float(v) if v is not None and math.isfinite(float(v)) else None


def print_fit(fit: Fit, interval: float) -> None:
    """The law, the parameter table (estimate, sd, interval, R-hat and ESS where they exist), the status."""
    law, table = fit.law, fit.summary(interval)
    print(f"law {law.name}: {law.formula}")
    print(f"fit space: {law.response.describe()}   rows used: {fit.n_obs}   method: {fit.method}   "
          f"noise: {fit.likelihood.describe()}")
    width = max(len(str(n)) for n in table.index)
    print(f"  {'param':<{width}}  " + "  ".join(f"{c:>12}" for c in table.columns))
    for name, row in table.iterrows():
        print(f"  {name:<{width}}  " + "  ".join(f"{v:12.6g}" if finite(v) is not None else f"{'-':>12}" for v in row))
    scalars = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fit.info.scalars().items()]
    state = "converged" if fit.ok else "NOT TRUSTED (" + "; ".join(fit.problems) + ")"
    print(f"{fit.method.upper()} {state}: {', '.join(scalars[:9])}")
    print(f"lo/hi: {interval_label(fit, interval)}")
    if fit.data is not None and fit.data.dropped:
        print(f"note: {len(fit.data.dropped)} row(s) at or below chance (or within the margin above it) were "
              "dropped before fitting", file=sys.stderr)


_ABOUT = {"laplace": "the Laplace approximation at the MAP optimum: Gauss-Newton curvature, plug-in noise scale",
          "bootstrap": "refits to resampled runs", "credible": "posterior draws"}


def interval_label(fit: Fit, interval: float) -> str:
    """What the fit's intervals are, in words: ``central 90% Laplace interval over 1,000 draws (...)``."""
    if fit.n_draws < 2:
        return "none: the fit is one point (no interval)"
    about = "; ".join(_ABOUT[part] for part in fit.band.split("+") if part in _ABOUT)
    return (f"central {interval:.0%} {fit.band_name} interval over {fit.n_draws:,} draws"
            + (f" ({about})" if about else ""))


def fit_payload(fit: Fit, interval: float) -> dict:
    """``{"law", "method", "interval_kind", "n_obs", "params": {NAME: {estimate, lo, hi}}, "diagnostics"}``.

    ``interval_kind`` names the intervals: ``laplace`` (MAP), ``bootstrap``, ``credible`` (NUTS),
    ``point`` (one draw: no interval).
    """
    table = fit.summary(interval)
    lo, hi = table.columns[2], table.columns[3]
    return {"law": fit.law.name, "method": fit.method, "interval_kind": fit.band, "n_obs": fit.n_obs,
            "params": {str(n): {"estimate": finite(r["estimate"]), "lo": finite(r[lo]), "hi": finite(r[hi])}
                       for n, r in table.iterrows()},
            "diagnostics": scalars(fit.diagnostics) | {"interval": interval}}


def scalars(d: dict) -> dict:
    """The JSON-able scalar entries of ``d``, non-finite floats as None."""
    return {k: finite(v) if isinstance(v, float) else v for k, v in d.items() if isinstance(v, (bool, int, float, str))}


OUTPUTS = {"json": "--json", "save": "--save", "plot": "--plot"}
INPUTS = ("data", "stage2_data", "saved")


def output_paths(args: argparse.Namespace) -> dict[str, str]:
    """``{flag: path}`` of every output the command line asks for (``demo --out`` is a folder, checked apart)."""
    return {flag: getattr(args, dest) for dest, flag in OUTPUTS.items() if getattr(args, dest, None) is not None}


def input_paths(args: argparse.Namespace) -> list[str]:
    """The files the command reads (the CSV, ``--stage2-data``, ``--from``): no output may be one of them."""
    return [getattr(args, dest) for dest in INPUTS if getattr(args, dest, None)]


def write_outputs(args: argparse.Namespace, payload: dict, fit: Fit | None = None, draw=None) -> None:
    """``--json``, ``--save`` and ``--plot`` as one unit: all written whole, or none (``draw()`` returns the axes)."""
    with outputs(input_paths(args)) as unit:
        if getattr(args, "save", None) and fit is not None:
            unit.label(args.save, "--save")
            save(fit, args.save)
        if getattr(args, "plot", None) and draw is not None:
            ax = draw()
            unit.write(args.plot, lambda tmp: ax.figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight"),
                       "--plot")
        if args.json:
            def write(tmp: str) -> None:
                Path(tmp).write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")

            unit.write(args.json, write, "--json")


def finish(args: argparse.Namespace, problems: str) -> int:
    """Exit 0, or 1 when a fit is flagged (unless ``--allow-warnings``)."""
    if problems:
        print(f"bayescale: the fit is not trustworthy: {problems}", file=sys.stderr)
        return 0 if args.allow_warnings else 1
    return 0
