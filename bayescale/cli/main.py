"""Command line: ``bayescale fit | forecast | optimal | compare | demo``.

``fit`` (``--save``, ``--plot``), ``forecast`` and ``optimal`` (from a data file or ``--from`` a saved
fit; ``--plot``), ``compare`` (several laws, LOO/WAIC/leave-future-out), ``demo`` (the bundled runs).

Exit codes: 0 success, 2 bad input (one line on stderr naming the column/row and
the fix, no traceback, no output file written), 1 a fit that failed (did not
converge) unless ``--allow-warnings``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

from bayescale._io import atomic_write

__all__ = ["main"]

FIT_EXAMPLE = """\
examples:
  # Chinchilla's parametric law on a table with columns N, D and loss
  bayescale fit runs.csv --law chinchilla --x N,D --y loss --json fit.json

  # derive D from compute, keep only low-loss runs
  bayescale fit svg_extracted_data.csv --law chinchilla \\
      --derive "N=`Model Size`" --derive "D=`Training FLOP` / (6 * N)" \\
      --x N,D --y loss --where "loss < 3.4"

  # downstream accuracy straight from compute (4-way multiple choice)
  bayescale fit evals.csv --law direct --x C --y acc --chance 0.25

  # 90 % bootstrap intervals from 1,000 resamples x 64 starts
  bayescale fit runs.csv --law chinchilla --x N,D --y loss --method bootstrap --resamples 1000

  # posterior by NUTS: 4 chains x 1,000 draws, Student-t observations; save it and plot it
  bayescale fit runs.csv --law chinchilla --x N,D --y loss --method nuts --json post.json \\
      --save post.nc --plot post.png

  # two-stage: compute -> validation loss -> accuracy
  bayescale fit evals.csv --law two_stage_linear --x C --proxy val_loss --y acc
"""


FORECAST_EXAMPLE = """\
examples:
  # accuracy at 1e22 and 1e23 FLOPs from the direct law, posterior bands
  bayescale forecast evals.csv --law direct --x C --y acc --chance 0.25 --at "C=1e22,1e23" --method nuts

  # loss of a 70B model trained on 1.4T tokens, bootstrap bands
  bayescale forecast runs.csv --law chinchilla --x N,D --y loss --at "N=7e10;D=1.4e12" --method bootstrap

  # the same from a fit saved earlier with `bayescale fit ... --save post.nc` (no refit)
  bayescale forecast --from post.nc --at "N=7e10;D=1.4e12"
"""

OPTIMAL_EXAMPLE = """\
examples:
  # N*, D* and tokens per parameter at two budgets, bootstrap intervals
  bayescale optimal runs.csv --law chinchilla --x N,D --y loss --compute 1e21,5.88e23 --method bootstrap

  # N* of a validation mix: 30 % code loss, 70 % web loss (rows picked by the val_set column)
  bayescale optimal runs_long.csv --law chinchilla --x N,D --y loss --compute 1e21 \\
      --by val_set --mix "code=0.3,web=0.7" --method nuts

  # from a saved fit
  bayescale optimal --from post.nc --compute 5.88e23
"""

COMPARE_EXAMPLE = """\
examples:
  # direct vs BNSL vs two-stage on one benchmark, scored on the runs above 6e21 FLOPs (default: NUTS)
  bayescale compare arc_easy.csv --laws direct,bnsl,two_stage_linear --x C --y acc --chance 0.25 \\
      --proxy val_loss --holdout "C > 6e21" --where "acc > 0.25"
"""

_LIKELIHOODS = {"student-t": "StudentT", "gaussian": "Gaussian", "huber": "HuberLikelihood"}


class InputError(Exception):
    """Bad input at the command line: reported as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    from bayescale.laws import LAWS

    parser = argparse.ArgumentParser(
        prog="bayescale",
        description="Fit scaling laws of language models, with honest uncertainty.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    commands = {
        "fit": ("fit a law to a CSV table and print its parameters",
                "Fit a scaling law to a tidy CSV table (one row per run).", FIT_EXAMPLE),
        "forecast": ("fit a law and forecast new runs, with intervals",
                     "Fit a scaling law and forecast it at new covariates (estimate, lo, hi per point).",
                     FORECAST_EXAMPLE),
        "optimal": ("compute-optimal N*, D* and tokens per parameter, with intervals",
                    "Fit a law of N and D and report the compute-optimal allocation at given budgets.",
                    OPTIMAL_EXAMPLE),
        "compare": ("rank several laws on the same runs: LOO, WAIC, held-out error",
                    "Fit several laws to the same runs and rank them (PSIS-LOO, WAIC, leave-future-out).",
                    COMPARE_EXAMPLE),
    }
    cmds = {}
    for name, (help_line, description, example) in commands.items():
        cmds[name] = sub.add_parser(name, help=help_line, description=description, epilog=example,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_fit_arguments(cmds[name], LAWS, several=name == "compare")
    cmds["fit"].add_argument("--save", metavar="PATH", help="save the fit (ArviZ NetCDF) for forecast/optimal --from")
    cmds["fit"].add_argument("--plot", metavar="PATH", help="write a PNG: runs, fitted law, credible and predictive bands")
    cmds["forecast"].add_argument("--plot", metavar="PATH",
                                  help="write a PNG: runs, the law and its bands out to the forecast points (marked)")
    cmds["optimal"].add_argument("--plot", metavar="PATH", help="write a PNG of N*(C) with its band around the budgets")
    for name in ("forecast", "optimal"):
        cmds[name].add_argument("--from", dest="saved", metavar="PATH",
                                help="use a fit saved by `bayescale fit --save` instead of fitting DATA")
    cmds["compare"].add_argument("--holdout", help='rows to forecast after refitting on the rest, e.g. "C > 6e21"')
    cmds["compare"].set_defaults(method="nuts")
    cmds["forecast"].add_argument("--at", required=True, metavar="COL=V1,V2[;COL=..]",
                                  help='points to forecast, e.g. "C=1e22,1e23" or "N=7e10;D=1.4e12"')
    cmds["forecast"].add_argument("--band", choices=["calibrated", "plain"], default="calibrated",
                                  help="calibrated (default): widen the predictive band beyond the largest fitted "
                                       "run by the law's own error, learned from backtests on the fitted runs; "
                                       "plain: the (posterior-)predictive band of the fit alone")
    optimal = cmds["optimal"]
    optimal.add_argument("--compute", required=True, metavar="C1,C2", help="budgets in FLOPs, e.g. 1e21,5.88e23")
    optimal.add_argument("--mix", metavar="NAME=W,..",
                         help="optimum of a weighted validation mix: fit the law to the rows of each NAME in --by "
                              "and weight the losses (weights are normalised to sum to 1)")
    optimal.add_argument("--by", metavar="COL", help="column whose values --mix names (e.g. val_set)")

    demo = sub.add_parser("demo", help="fit the bundled Gadre et al. runs and write a plot")
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--keep", type=int, default=64, help="starts polished per fit")
    demo.add_argument("--resamples", type=int, default=200, help="bootstrap resamples per fit (default 200)")
    demo.add_argument("--starts", type=int, default=16, help="bootstrap starts per resample (default 16)")
    return parser


def _add_fit_arguments(cmd, laws, several: bool = False) -> None:
    cmd.add_argument("data", nargs="?", help="CSV file, one row per run (or per run x metric)")
    if several:
        cmd.add_argument("--laws", help=f"comma-separated law names: {', '.join(laws)}")
    else:
        cmd.add_argument("--law", help=f"law name: {', '.join(laws)}")
    cmd.add_argument("--x", help="covariate column(s), comma-separated, in the law's order")
    cmd.add_argument("--y", help="response column (loss or accuracy)")
    cmd.add_argument("--where", help='pandas query selecting rows, e.g. "loss < 3.4"')
    cmd.add_argument("--derive", action="append", default=[], metavar="NAME=EXPR",
                     help="add a column computed with pandas eval before fitting (repeatable)")
    cmd.add_argument("--chance", type=float, help="chance level Q_rand of an accuracy law (e.g. 0.25)")
    cmd.add_argument("--proxy", help="intermediate (loss) column of a two-stage law")
    cmd.add_argument("--method", default="map", choices=["map", "bootstrap", "nuts"],
                     help="fitting method (default: map)")
    cmd.add_argument("--keep", type=int, default=64, help="starts polished after screening the grid (default 64)")
    cmd.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    cmd.add_argument("--starts", type=int, default=64, help="bootstrap starts per resample (default 64)")
    cmd.add_argument("--chains", type=int, default=4, help="NUTS chains (default 4)")
    cmd.add_argument("--warmup", type=int, default=1000, help="NUTS warmup iterations per chain (default 1000)")
    cmd.add_argument("--draws", type=int, default=1000, help="NUTS draws per chain (default 1000)")
    cmd.add_argument("--likelihood", default="student-t", choices=sorted(_LIKELIHOODS),
                     help="NUTS observation model in fit space (default student-t, df 4)")
    cmd.add_argument("--interval", type=float, default=0.9, help="central interval for lo/hi (default 0.9)")
    cmd.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap (MAP is deterministic)")
    cmd.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    cmd.add_argument("--json", help="write the result as JSON to this path")
    cmd.add_argument("--allow-warnings", action="store_true", help="exit 0 even if the fit did not converge")


def _read_table(path: str):
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise InputError(f"data file {path!r} does not exist")
    if p.is_dir():
        raise InputError(f"data path {path!r} is a folder; give a CSV file")
    try:
        frame = pd.read_csv(p)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"cannot read {path!r} as CSV: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise InputError(f"{path!r} has no data rows")
    return frame


def _derive(frame, specs: list[str]):
    for spec in specs:
        name, sep, expr = spec.partition("=")
        if not sep or not name.strip() or not expr.strip():
            raise InputError(f"--derive {spec!r} must look like NAME=EXPR, e.g. \"D=C / (6 * N)\"")
        try:
            frame[name.strip()] = frame.eval(expr)
        except Exception as exc:  # pandas raises many types for a bad expression
            raise InputError(f"--derive {spec!r} could not be evaluated: {exc}") from None
    return frame


def write_json_atomic(path: str, payload: dict) -> None:
    """Write JSON so that ``path`` holds either the old file or the whole new one."""
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise InputError(f"cannot write {path!r}: folder {str(target.parent)!r} does not exist")
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(payload, fh, indent=2, allow_nan=False)
            fh.write("\n")

    atomic_write(target, write)


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


def result_payload(result, *, method: str, seconds: float, bands=None, extra_diagnostics=None, extra=None,
                   estimates=None) -> dict:
    diagnostics = {
        k: (_finite_or_none(v) if isinstance(v, float) else v)
        for k, v in {**result.diagnostics, **(extra_diagnostics or {})}.items()
    }
    bands = bands or {}
    return {
        "law": result.law.name,
        "method": method,
        "n_obs": result.n_obs,
        "params": {
            n: {
                "estimate": _finite_or_none(v),
                "lo": _finite_or_none(bands[n][0]) if n in bands else None,
                "hi": _finite_or_none(bands[n][1]) if n in bands else None,
            }
            for n, v in (estimates or result.params).items()
        },
        "diagnostics": diagnostics,
        "seconds": round(seconds, 4),
        **(extra or {}),
    }


def _print_table(result, bands=None, out=sys.stdout) -> None:
    law = result.law
    print(f"law {law.name}: {law.formula}", file=out)
    print(f"fit space: {law.response.describe()}   rows used: {result.n_obs}", file=out)
    width = max(len(n) for n in law.params)
    print(f"  {'param':<{width}}  {'estimate':>14}  {'lo':>12}  {'hi':>12}", file=out)
    for name, value in result.params.items():
        lo, hi = (f"{b:12.6g}" for b in bands[name]) if bands else (f"{'-':>12}",) * 2
        print(f"  {name:<{width}}  {value:>14.6g}  {lo}  {hi}", file=out)
    state = "converged" if result.converged else "NOT CONVERGED"
    print(
        f"MAP {state}: objective {result.objective:.8g}, {result.steps} steps, max|grad| {result.grad_norm:.2e}, "
        f"{result.n_agree}/{result.n_polished} polished starts agree ({result.n_starts} screened)",
        file=out,
    )


def _cmd_fit(args) -> int:
    t0 = time.perf_counter()
    law, frame, x = _prepare(args)
    if args.method == "bootstrap" and law.stages:
        raise InputError(f"--method bootstrap is not available for the two-stage law {law.name!r} yet; use --method map")
    if args.method == "nuts":
        return _fit_nuts(args, law, frame, x, t0)
    result = _fitted(argparse.Namespace(**{**vars(args), "method": "map"}), law, frame, x)
    data = result.data
    bands, extra_diag, failed, kept = None, None, not result.converged, result
    if args.method == "bootstrap":
        import jax

        from bayescale.bootstrap import fit_bootstrap

        boot = kept = fit_bootstrap(law, data, key=jax.random.key(args.seed), resamples=args.resamples,
                                    starts=args.starts, map_fit=result, progress=not args.quiet)
        from bayescale.bands import band

        if boot.n_failed < boot.resamples:
            bands = {}
            for name, draws in boot.draws.items():
                b = band(draws, args.interval)
                bands[name] = (float(b.lo), float(b.hi))
        extra_diag = {k: v for k, v in boot.diagnostics.items() if k not in ("map_converged", "map_objective")}
        extra_diag["interval"] = args.interval
        failed |= boot.n_failed > 0.1 * boot.resamples
        if boot.n_failed:
            print(f"note: {boot.n_failed} of {boot.resamples} resamples did not converge and are excluded from the "
                  "intervals", file=sys.stderr)
    seconds = time.perf_counter() - t0
    _print_table(result, bands)
    if bands:
        print(f"lo/hi: central {args.interval:.0%} bootstrap interval over {args.resamples} resamples "
              f"x {args.starts} starts (estimate: the full-data MAP fit)")
    if result.dropped:
        print(f"note: {result.dropped} row(s) at or below chance were dropped before fitting", file=sys.stderr)
    if args.json:
        payload = result_payload(result, method=args.method, seconds=seconds, bands=bands,
                                 extra_diagnostics=extra_diag, extra={"seed": args.seed})
        write_json_atomic(args.json, payload)
    _save_outputs(args, kept)
    if failed:
        print("bayescale: the fit did not converge (see diagnostics)", file=sys.stderr)
        return 0 if args.allow_warnings else 1
    return 0


def _fit_nuts(args, law, frame, x, t0) -> int:
    import numpy as np

    import bayescale
    from bayescale.bands import band

    likelihood = getattr(bayescale, _LIKELIHOODS[args.likelihood])()
    post = _fitted(args, law, frame, x)
    bands, medians = {}, {}
    for name, draws in post.draws.items():
        b = band(draws, args.interval)
        bands[name] = (float(b.lo), float(b.hi))
        medians[name] = float(np.median(draws))
    seconds = time.perf_counter() - t0
    width = max(len(n) for n in medians)
    print(f"law {law.name}: {law.formula}")
    print(f"fit space: {law.response.describe()}   rows used: {post.n_obs}   likelihood: {likelihood.describe()}")
    print(f"  {'param':<{width}}  {'median':>14}  {'lo':>12}  {'hi':>12}  {'R-hat':>6}  {'ESS bulk':>8}")
    for name, value in medians.items():
        lo, hi = bands[name]
        print(f"  {name:<{width}}  {value:>14.6g}  {lo:12.6g}  {hi:12.6g}  {post.r_hat[name]:6.3f}  "
              f"{post.ess_bulk[name]:8.0f}")
    print(f"lo/hi: central {args.interval:.0%} posterior interval; {args.chains} chains x {args.draws} draws "
          f"({args.warmup} warmup); divergences {post.divergences}; {seconds:.1f} s")
    if args.json:
        diag = {k: v for k, v in post.diagnostics.items() if k != "problems"}
        diag["problems"] = "; ".join(post.problems)
        diag["interval"] = args.interval
        payload = result_payload(post, method="nuts", seconds=seconds, bands=bands, extra_diagnostics=diag,
                                 extra={"seed": args.seed}, estimates=medians)
        write_json_atomic(args.json, payload)
    _save_outputs(args, post)
    if not post.ok:
        print(f"bayescale: the posterior is not trustworthy: {'; '.join(post.problems)}", file=sys.stderr)
        return 0 if args.allow_warnings else 1
    return 0


def _fitted(args, law, frame, x):
    """The fit of ``law`` by ``args.method`` (MAP, bootstrap or NUTS), for forecast and optimal."""
    import functools

    import jax

    import bayescale
    from bayescale.data import DataError, from_frame
    from bayescale.staged import fit_two_stage

    key = jax.random.key(args.seed)
    if args.method == "nuts":
        fit = functools.partial(bayescale.fit_nuts, key=key, chains=args.chains, warmup=args.warmup, draws=args.draws,
                                likelihood=getattr(bayescale, _LIKELIHOODS[args.likelihood])(), progress=not args.quiet)
    elif args.method == "bootstrap":
        if law.stages:
            raise InputError(f"--method bootstrap is not available for the two-stage law {law.name!r} yet")
        fit = functools.partial(bayescale.fit_bootstrap, key=key, resamples=args.resamples, starts=args.starts,
                                progress=not args.quiet)
    else:
        fit = functools.partial(bayescale.fit_map, keep=args.keep)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if law.stages:
                if not args.proxy:
                    raise InputError(f"law {law.name!r} is two-stage: name the intermediate loss column with --proxy")
                return fit_two_stage(law, frame, x=x, proxy=args.proxy, y=args.y, where=args.where, fit=fit)
            if args.proxy and args.command != "compare":  # compare may mix one- and two-stage laws
                raise InputError(f"--proxy applies to two-stage laws only; {law.name!r} is not one")
            return fit(law, from_frame(frame, law, x=x, y=args.y, where=args.where))
    except DataError as exc:
        raise InputError(str(exc)) from None


def _trouble(result) -> str:
    """Why a fit should not be trusted ("" if it can be)."""
    problems = getattr(result, "problems", None)
    if problems is not None:
        return "; ".join(problems)
    if hasattr(result, "n_failed"):
        failed = result.n_failed > 0.1 * result.resamples or not result.map.converged
        return f"{result.n_failed} of {result.resamples} resamples failed" if failed else ""
    return "" if result.converged else "the MAP fit did not converge"


def _parse_at(spec: str, law) -> dict:
    import numpy as np

    points: dict[str, np.ndarray] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, sep, values = part.partition("=")
        name = name.strip()
        if not sep or not values.strip():
            raise InputError(f"--at {spec!r}: each part must look like COL=V1,V2 (got {part!r})")
        if name not in law.covariate_names:
            raise InputError(f"--at {spec!r}: {name!r} is not a covariate of law {law.name!r} "
                             f"(it reads {', '.join(law.covariate_names)})")
        try:
            points[name] = np.array([float(v) for v in values.split(",")])
        except ValueError:
            raise InputError(f"--at {spec!r}: values of {name!r} must be numbers") from None
        if not np.all(np.isfinite(points[name])) or np.any(points[name] <= 0):
            raise InputError(f"--at {spec!r}: values of {name!r} must be positive and finite")
    missing = [c for c in law.covariate_names if c not in points]
    if missing:
        raise InputError(f"--at {spec!r}: give values for {', '.join(missing)} too")
    sizes = {len(v) for v in points.values()} - {1}
    if len(sizes) > 1:
        raise InputError(f"--at {spec!r}: covariates need the same number of values (or one value)")
    n = max(len(v) for v in points.values())
    return {k: np.broadcast_to(v, (n,)).copy() for k, v in points.items()}


def _law(name: str, chance):
    from bayescale.law import ChanceAccuracy
    from bayescale.laws import get_law

    try:
        law = get_law(name)
    except KeyError as exc:
        raise InputError(exc.args[0]) from None
    if chance is not None and (isinstance(law.response, ChanceAccuracy) or not getattr(law, "stages", ())):
        try:
            law = law.with_chance(chance)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    return law


def _prepare(args):
    """The law, the table and the covariate columns the command names (``--from``: the saved law, no table)."""
    for flag in ("keep", "resamples", "starts", "chains", "warmup", "draws"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if not 0.0 < args.interval < 1.0:
        raise InputError(f"--interval must lie in (0, 1), got {args.interval}")
    for flag in ("json", "save", "plot"):
        _output_path(f"--{flag}", getattr(args, flag, None))
    if getattr(args, "saved", None):
        if args.data:
            raise InputError(f"give either a data file ({args.data!r}) or --from {args.saved!r}, not both")
        ignored = [f"--{f}" for f in ("law", "x", "y", "where", "chance", "proxy") if getattr(args, f, None)]
        if ignored:
            raise InputError(f"--from {args.saved!r} uses the saved law and rows; drop {', '.join(ignored)}")
        return _load(args.saved).law, None, None
    if not args.data:
        raise InputError("give the data file (a CSV with one row per run)"
                         + (" or --from a saved fit" if hasattr(args, "saved") else ""))
    missing = [f"--{f}" for f in ("laws" if hasattr(args, "laws") else "law", "x", "y") if not getattr(args, f, None)]
    if missing:
        raise InputError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required with a data file")
    law = _law(args.law, args.chance) if hasattr(args, "law") else None
    frame = _derive(_read_table(args.data), args.derive)
    return law, frame, [c.strip() for c in args.x.split(",") if c.strip()]


def _load(path: str):
    from bayescale.saved import SavedFitError, load

    try:
        return load(path)
    except SavedFitError as exc:
        raise InputError(str(exc)) from None


def _output_path(flag: str, path: str | None) -> None:
    """Check before fitting that ``path`` can be written (its folder exists)."""
    if path and not Path(path).resolve().parent.is_dir():
        raise InputError(f"cannot write {flag} {path!r}: folder {str(Path(path).parent)!r} does not exist")


def _save_outputs(args, result, draw=None) -> None:
    """``--save`` and ``--plot``, each written whole or not at all.

    ``draw()`` returns the axes of the plot (default: the fit with its bands).
    """
    if getattr(args, "save", None):
        from bayescale.saved import save

        save(result, args.save)
    if getattr(args, "plot", None):
        from bayescale.plotting import plot_forecast

        ax = draw() if draw is not None else plot_forecast(result, interval=args.interval)
        atomic_write(args.plot, lambda tmp: ax.figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))


def _finish(args, payload: dict, trouble: str) -> int:
    if args.json:
        write_json_atomic(args.json, payload)
    if trouble:
        print(f"bayescale: the fit is not trustworthy: {trouble}", file=sys.stderr)
        return 0 if args.allow_warnings else 1
    return 0


def _cmd_forecast(args) -> int:
    import jax
    import numpy as np

    from bayescale.forecast import forecast

    t0 = time.perf_counter()
    law, frame, x = _prepare(args)
    points = _parse_at(args.at, law)
    result = _load(args.saved) if args.saved else _fitted(args, law, frame, x)
    method = result.kind if args.saved else args.method
    discrepancy = _discrepancy(result, args) if args.band == "calibrated" else None
    f = forecast(result, points, key=jax.random.key(args.seed + 1), interval=args.interval, discrepancy=discrepancy)
    rows = []
    band_name = "calibrated" if discrepancy is not None else "plain"
    print(f"law {law.name} ({method}); {args.interval:.0%} intervals: {band_name} predictive (lo, hi) and credible")
    if discrepancy is not None:
        print(f"  {discrepancy.describe()}")
    for i in range(len(f.estimate)):
        row = {**{k: float(v[i]) for k, v in points.items()}, "estimate": float(f.estimate[i]),
               "lo": float(f.predictive.lo[i]), "hi": float(f.predictive.hi[i]),
               "credible_lo": float(f.credible.lo[i]), "credible_hi": float(f.credible.hi[i])}
        rows.append(row)
        where = ", ".join(f"{k}={row[k]:.4g}" for k in points)
        print(f"  {where}: {row['estimate']:.5g}  [{row['lo']:.5g}, {row['hi']:.5g}]  "
              f"credible [{row['credible_lo']:.5g}, {row['credible_hi']:.5g}]")
    def draw():
        from bayescale.plotting import plot_forecast

        along = law.covariate_names[-1]
        ax = plot_forecast(result, along=along, upto=float(np.max(points[along])), interval=args.interval,
                           discrepancy=discrepancy)
        ax.errorbar(points[along], f.estimate, yerr=[f.estimate - f.predictive.lo, f.predictive.hi - f.estimate],
                    fmt="s", color="tab:orange", capsize=4, zorder=6, label="forecast points")
        ax.legend(frameon=False, fontsize=7)
        return ax

    _save_outputs(args, result, draw)
    payload = {"law": law.name, "method": method, "interval": args.interval, "points": rows, "band": band_name,
               "discrepancy": None if discrepancy is None else {"tau": discrepancy.tau, "along": discrepancy.along,
                                                                "describe": discrepancy.describe()},
               "diagnostics": {k: v for k, v in result.diagnostics.items() if isinstance(v, (bool, int, float, str))},
               "seconds": round(time.perf_counter() - t0, 4)}
    return _finish(args, payload, _trouble(result))


def _discrepancy(result, args):
    """The law discrepancy learned from backtests on the result's own runs (None, with a note, if impossible)."""
    from bayescale.backtest import backtest, learn_discrepancy
    from bayescale.data import DataError
    from bayescale.forecast import fitted_data

    data = fitted_data(result)
    law = result.law
    if data is None or law.stages:
        why = "two-stage laws are not backtested yet" if law.stages else "the result carries no data"
        print(f"note: plain band ({why})", file=sys.stderr)
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return learn_discrepancy(backtest(law, data), level=args.interval)
    except (DataError, ValueError) as exc:
        print(f"note: plain band: the runs are too few to backtest ({exc})", file=sys.stderr)
        return None


def _cmd_optimal(args) -> int:
    import numpy as np

    from bayescale.forecast import optimal_bands

    t0 = time.perf_counter()
    law, frame, x = _prepare(args)
    if set(law.covariate_names) != {"N", "D"}:
        raise InputError(f"law {law.name!r} reads {', '.join(law.covariate_names)}; optimal needs a law of N and D")
    try:
        compute = np.array([float(v) for v in args.compute.split(",")])
    except ValueError:
        raise InputError(f"--compute {args.compute!r} must be comma-separated numbers, e.g. 1e21,5.88e23") from None
    if not np.all(np.isfinite(compute)) or np.any(compute <= 0):
        raise InputError(f"--compute {args.compute!r}: budgets must be positive and finite")
    if args.mix and args.saved:
        raise InputError("--mix fits one law per part of the mix; it needs the data file, not --from")
    if args.mix:
        parts = _parse_mix(args.mix, args.by, frame)
        fits = {name: _fitted(args, law, frame[frame[args.by].astype(str) == name], x) for name in parts}
        _, bands = optimal_bands(None, compute, interval=args.interval,
                                 mix=[(fits[name], w) for name, w in parts.items()])
        method, trouble = args.method, "; ".join(f"{n}: {_trouble(r)}" for n, r in fits.items() if _trouble(r))
        diagnostics = {name: _scalars(r.diagnostics) for name, r in fits.items()}
    else:
        if args.by:
            raise InputError("--by names the column that --mix refers to; give --mix too")
        result = _load(args.saved) if args.saved else _fitted(args, law, frame, x)
        _, bands = optimal_bands(result, compute, interval=args.interval)
        method, trouble, diagnostics = (result.kind if args.saved else args.method), _trouble(result), \
            _scalars(result.diagnostics)
    def draw():
        from bayescale.plotting import plot_optimal

        grid = np.geomspace(compute.min() / 10.0, compute.max() * 10.0, 40)
        if args.mix:
            ax = plot_optimal(None, grid, mix=[(fits[name], w) for name, w in parts.items()], interval=args.interval,
                              label=f"mix {args.mix}")
        else:
            ax = plot_optimal(result, grid, interval=args.interval)
        for c in compute:
            ax.axvline(c, color="0.5", ls=":", lw=1)
        return ax

    _save_outputs(args, None, draw)
    rows = []
    mixed = f", mix {args.mix} of {args.by}" if args.mix else ""
    print(f"law {law.name} ({method}{mixed}); median [{args.interval:.0%} interval]")
    for i, c in enumerate(compute):
        row = {"compute": float(c)}
        for q, b in bands.items():
            row[q] = {"estimate": float(np.ravel(b.median)[i]), "lo": float(np.ravel(b.lo)[i]),
                      "hi": float(np.ravel(b.hi)[i])}
        rows.append(row)
        print(f"  C={c:.3g}: N* {row['N']['estimate']:.4g} [{row['N']['lo']:.4g}, {row['N']['hi']:.4g}]  "
              f"D* {row['D']['estimate']:.4g}  tokens/param {row['tokens_per_param']['estimate']:.3g} "
              f"[{row['tokens_per_param']['lo']:.3g}, {row['tokens_per_param']['hi']:.3g}]")
    payload = {"law": law.name, "method": method, "interval": args.interval, "optima": rows,
               "mix": parts if args.mix else None,
               "diagnostics": diagnostics, "seconds": round(time.perf_counter() - t0, 4)}
    return _finish(args, payload, trouble)


def _scalars(diagnostics: dict) -> dict:
    return {k: v for k, v in diagnostics.items() if isinstance(v, (bool, int, float, str))}


def _parse_mix(spec: str, by: str | None, frame) -> dict[str, float]:
    """``--mix "code=0.3,web=0.7"`` -> normalised weights, every name checked against column ``by``."""
    import difflib

    if not by:
        raise InputError(f"--mix {spec!r}: name the column whose values it weights with --by (e.g. --by val_set)")
    if by not in frame.columns:
        close = difflib.get_close_matches(by, [str(c) for c in frame.columns], n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise InputError(f"--by {by!r} is not a column of the table.{hint}")
    values = sorted(set(frame[by].astype(str)))
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, w = part.rpartition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--mix {spec!r}: each part must look like NAME=WEIGHT (got {part!r})")
        if name not in values:
            close = difflib.get_close_matches(name, values, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else f" Values of {by!r}: {', '.join(values)}"
            raise InputError(f"--mix {spec!r}: {name!r} is not a value of column {by!r}.{hint}")
        try:
            weights[name] = float(w)
        except ValueError:
            raise InputError(f"--mix {spec!r}: the weight of {name!r} must be a number (got {w!r})") from None
        if not math.isfinite(weights[name]) or weights[name] < 0:
            raise InputError(f"--mix {spec!r}: the weight of {name!r} must be >= 0 and finite")
    total = sum(weights.values())
    if len(weights) < 1 or total <= 0:
        raise InputError(f"--mix {spec!r}: give at least one positive weight")
    return {k: v / total for k, v in weights.items()}


def _cmd_compare(args) -> int:
    import jax

    from bayescale.comparison import compare

    t0 = time.perf_counter()
    _, frame, x = _prepare(args)
    names = [n.strip() for n in args.laws.split(",") if n.strip()]
    if len(names) < 2 or len(set(names)) < len(names):
        raise InputError(f"--laws {args.laws!r}: name two or more different laws")
    fits, troubles = {}, {}
    for name in names:
        law = _law(name, args.chance)
        fits[name] = _fitted(args, law, frame, x)
        if _trouble(fits[name]):
            troubles[name] = _trouble(fits[name])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            table = compare(fits, holdout=args.holdout, key=jax.random.key(args.seed + 1), interval=args.interval)
    except ValueError as exc:
        raise InputError(f"{exc} (select the same rows for every law, e.g. with --where)") from None
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    payload = {"method": args.method, "holdout": args.holdout, "interval": args.interval,
               "table": [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
                         for row in table.astype(object).to_dict(orient="records")],
               "problems": troubles, "seconds": round(time.perf_counter() - t0, 4)}
    return _finish(args, payload, "; ".join(f"{k}: {v}" for k, v in troubles.items()))


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "fit":
            return _cmd_fit(args)
        if args.command == "forecast":
            return _cmd_forecast(args)
        if args.command == "optimal":
            return _cmd_optimal(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "demo":
            from bayescale.demo import run_demo

            run_demo(Path(args.out), keep=args.keep, resamples=args.resamples, starts=args.starts)
            return 0
    except InputError as exc:
        print(f"bayescale: error: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
