"""Command line: ``bayescale fit | forecast | optimal | compare | demo``.

Exit codes: 0 success, 2 bad input (one line on stderr naming the column/row and the fix, no
traceback, no output file written), 1 a fit that is flagged (did not converge, chains not
mixed) unless ``--allow-warnings``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import numpy as np

from bayescale.cli.inputs import InputError, fit_table, law_named, numbers, parse_at, parse_mix, prepare
from bayescale.cli.parser import parser
from bayescale.cli.report import finish, fit_payload, print_fit, scalars, write_outputs
from bayescale.demo import run_demo
from bayescale.derive import forecast, optimal_bands
from bayescale.evaluate import backtest, compare, learn_discrepancy
from bayescale.fit import DataError, Fit
from bayescale.plot import plot_forecast, plot_optimal

__all__ = ["main"]


def _fit(args) -> int:
    t0 = time.perf_counter()
    law, frame, x = prepare(args)
    fit = fit_table(args, law, frame, x)
    print_fit(fit, args.interval)
    payload = fit_payload(fit, args.interval) | {"seed": args.seed, "seconds": round(time.perf_counter() - t0, 4)}
    key = jax.random.key(args.seed + 1)
    write_outputs(args, payload, fit, lambda: plot_forecast(fit, interval=args.interval, key=key))
    return finish(args, "; ".join(fit.problems))


def _fitted(args, law, frame_or_fit, x) -> Fit:
    """The fit a forecast or optimum reads: from ``--from``, or fitted to the data file."""
    return frame_or_fit if isinstance(frame_or_fit, Fit) else fit_table(args, law, frame_or_fit, x)


def _discrepancy(fit: Fit, args):
    """The law discrepancy learned from backtests on the fit's own runs (None, with a note, if impossible)."""
    if fit.data is None or fit.parts:
        why = "two-stage laws are not backtested" if fit.parts else "the fit carries no data"
        print(f"note: plain band ({why})", file=sys.stderr)
        return None
    try:
        return learn_discrepancy(backtest(fit.law, fit.data), level=args.interval)
    except (DataError, ValueError) as exc:
        print(f"note: plain band: the runs are too few to backtest ({exc})", file=sys.stderr)
        return None


def _forecast(args) -> int:
    t0 = time.perf_counter()
    fit = _fitted(args, *prepare(args))
    points = parse_at(args.at, fit.law)
    tau = _discrepancy(fit, args) if args.band == "calibrated" else None
    f = forecast(fit, points, key=jax.random.key(args.seed + 1), interval=args.interval, discrepancy=tau)
    table = f.to_frame()
    print(f"law {fit.law.name} ({fit.method}); {args.interval:.0%} intervals: "
          f"{'calibrated' if tau else 'plain'} predictive (lo, hi) and credible")
    if tau is not None:
        print(f"  {tau.describe()}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    payload = {"law": fit.law.name, "method": fit.method, "interval": args.interval, "band": "calibrated" if tau else
               "plain", "points": table.to_dict(orient="records"), "diagnostics": scalars(fit.diagnostics),
               "discrepancy": None if tau is None else {"tau": tau.tau, "along": tau.along, "describe": tau.describe()},
               "seconds": round(time.perf_counter() - t0, 4)}
    write_outputs(args, payload, draw=lambda: plot_forecast(fit, interval=args.interval, discrepancy=tau, points=f,
                                                             key=jax.random.key(args.seed + 1)))
    return finish(args, "; ".join(fit.problems))


def _optimal(args) -> int:
    t0 = time.perf_counter()
    compute = numbers(args.compute, f"--compute {args.compute!r}")
    if args.mix and args.saved:
        raise InputError("--mix fits one law per part of the mix; it needs the data file, not --from")
    if args.by and not args.mix:
        raise InputError("--by names the column that --mix refers to; give --mix too")
    law, frame, x = prepare(args)
    if "size" not in law.roles or "tokens" not in law.roles:
        raise InputError(f"law {law.name!r} reads {', '.join(law.covariate_names)}; optimal needs a law of N and D "
                         "(covariates of role size and tokens)")
    parts = parse_mix(args.mix, args.by, frame) if args.mix else None
    if parts is not None:
        fits = {name: fit_table(args, law, frame[frame[args.by].astype(str) == name], x) for name in parts}
        mix = [(fits[name], w) for name, w in parts.items()]
    else:
        fits = {law.name: _fitted(args, law, frame, x)}
        mix = [(fits[law.name], 1.0)]
    _, bands = optimal_bands(None, compute, interval=args.interval, mix=mix)
    rows = [{"compute": float(c), **{q: {"estimate": float(np.ravel(b.median)[i]), "lo": float(np.ravel(b.lo)[i]),
                                         "hi": float(np.ravel(b.hi)[i])} for q, b in bands.items()}}
            for i, c in enumerate(compute)]
    print(f"law {law.name} ({mix[0][0].method}{f', mix {args.mix} of {args.by}' if parts else ''}); "
          f"median [{args.interval:.0%} interval]")
    for r in rows:
        n, t = r["N"], r["tokens_per_param"]
        print(f"  C={r['compute']:.3g}: N* {n['estimate']:.4g} [{n['lo']:.4g}, {n['hi']:.4g}]  "
              f"D* {r['D']['estimate']:.4g}  tokens/param {t['estimate']:.3g} [{t['lo']:.3g}, {t['hi']:.3g}]")

    payload = {"law": law.name, "method": mix[0][0].method, "interval": args.interval, "optima": rows, "mix": parts,
               "diagnostics": {n: scalars(f.diagnostics) for n, f in fits.items()},
               "seconds": round(time.perf_counter() - t0, 4)}
    grid = np.geomspace(compute.min() / 10.0, compute.max() * 10.0, 40)
    write_outputs(args, payload, draw=lambda: plot_optimal(None, grid, mix=mix, interval=args.interval, marks=compute,
                                                           label=f"mix {args.mix}" if parts else law.name))
    return finish(args, "; ".join(f"{n}: {'; '.join(f.problems)}" for n, f in fits.items() if f.problems))


def _compare(args) -> int:
    t0 = time.perf_counter()
    _, frame, x = prepare(args)
    names = [n.strip() for n in args.laws.split(",") if n.strip()]
    if len(names) < 2 or len(set(names)) < len(names):
        raise InputError(f"--laws {args.laws!r}: name two or more different laws")
    fits = {name: fit_table(args, law_named(name, args.chance, args.stage1), frame, x) for name in names}
    try:
        table = compare(fits, holdout=args.holdout, key=jax.random.key(args.seed + 1), interval=args.interval)
    except ValueError as exc:
        raise InputError(f"{exc} (select the same rows for every law, e.g. with --where)") from None
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    problems = {n: "; ".join(f.problems) for n, f in fits.items() if f.problems}
    payload = {"method": args.method, "holdout": args.holdout, "interval": args.interval,
               "table": [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
                         for row in table.astype(object).to_dict(orient="records")],
               "problems": problems, "seconds": round(time.perf_counter() - t0, 4)}
    write_outputs(args, payload)
    return finish(args, "; ".join(f"{k}: {v}" for k, v in problems.items()))


def _demo(args) -> int:
    run_demo(Path(args.out), keep=args.keep, resamples=args.resamples, starts=args.starts)
    return 0


COMMANDS = {"fit": _fit, "forecast": _forecast, "optimal": _optimal, "compare": _compare, "demo": _demo}


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0, 1 for a flagged fit, 2 for bad input)."""
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"bayescale: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
