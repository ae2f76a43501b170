"""Command line: ``bayescale fit`` (and ``bayescale demo``).

Exit codes: 0 success, 2 bad input (one line on stderr naming the column/row and
the fix, no traceback, no output file written), 1 a fit that failed (did not
converge) unless ``--allow-warnings``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

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

  # posterior by NUTS: 4 chains x 1,000 draws, Student-t observations
  bayescale fit runs.csv --law chinchilla --x N,D --y loss --method nuts --json post.json

  # two-stage: compute -> validation loss -> accuracy
  bayescale fit evals.csv --law two_stage_linear --x C --proxy val_loss --y acc
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

    fit = sub.add_parser(
        "fit",
        help="fit a law to a CSV table and print its parameters",
        description="Fit a scaling law to a tidy CSV table (one row per run).",
        epilog=FIT_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("data", help="CSV file, one row per run (or per run x metric)")
    fit.add_argument("--law", required=True, help=f"law name: {', '.join(LAWS)}")
    fit.add_argument("--x", required=True, help="covariate column(s), comma-separated, in the law's order")
    fit.add_argument("--y", required=True, help="response column (loss or accuracy)")
    fit.add_argument("--where", help='pandas query selecting rows, e.g. "loss < 3.4"')
    fit.add_argument(
        "--derive",
        action="append",
        default=[],
        metavar="NAME=EXPR",
        help="add a column computed with pandas eval before fitting (repeatable)",
    )
    fit.add_argument("--chance", type=float, help="chance level Q_rand of an accuracy law (e.g. 0.25)")
    fit.add_argument("--proxy", help="intermediate (loss) column of a two-stage law")
    fit.add_argument("--method", default="map", choices=["map", "bootstrap", "nuts"],
                     help="fitting method (default: map)")
    fit.add_argument("--keep", type=int, default=64, help="starts polished after screening the grid (default 64)")
    fit.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    fit.add_argument("--starts", type=int, default=64, help="bootstrap starts per resample (default 64)")
    fit.add_argument("--chains", type=int, default=4, help="NUTS chains (default 4)")
    fit.add_argument("--warmup", type=int, default=1000, help="NUTS warmup iterations per chain (default 1000)")
    fit.add_argument("--draws", type=int, default=1000, help="NUTS draws per chain (default 1000)")
    fit.add_argument("--likelihood", default="student-t", choices=sorted(_LIKELIHOODS),
                     help="NUTS observation model in fit space (default student-t, df 4)")
    fit.add_argument("--interval", type=float, default=0.9, help="central interval for lo/hi (default 0.9)")
    fit.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap (MAP is deterministic)")
    fit.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    fit.add_argument("--json", help="write the result as JSON to this path")
    fit.add_argument("--allow-warnings", action="store_true", help="exit 0 even if the fit did not converge")

    demo = sub.add_parser("demo", help="fit the bundled Gadre et al. runs and write a plot")
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--keep", type=int, default=64, help="starts polished per fit")
    demo.add_argument("--resamples", type=int, default=200, help="bootstrap resamples per fit (default 200)")
    demo.add_argument("--starts", type=int, default=16, help="bootstrap starts per resample (default 16)")
    return parser


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
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    from bayescale.data import DataError, from_frame
    from bayescale.laws import get_law
    from bayescale.optimization import fit_map
    from bayescale.staged import fit_two_stage

    t0 = time.perf_counter()
    try:
        law = get_law(args.law)
    except KeyError as exc:
        raise InputError(exc.args[0]) from None
    if args.chance is not None:
        try:
            law = law.with_chance(args.chance)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    for flag in ("keep", "resamples", "starts", "chains", "warmup", "draws"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if not 0.0 < args.interval < 1.0:
        raise InputError(f"--interval must lie in (0, 1), got {args.interval}")
    if args.method == "bootstrap" and law.stages:
        raise InputError(f"--method bootstrap is not available for the two-stage law {law.name!r} yet; use --method map")
    frame = _derive(_read_table(args.data), args.derive)
    x = [c.strip() for c in args.x.split(",") if c.strip()]
    if args.method == "nuts":
        return _fit_nuts(args, law, frame, x, t0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if law.stages:
                if not args.proxy:
                    raise InputError(f"law {law.name!r} is two-stage: name the intermediate loss column with --proxy")
                result = fit_two_stage(law, frame, x=x, proxy=args.proxy, y=args.y, where=args.where, keep=args.keep)
            else:
                if args.proxy:
                    raise InputError(f"--proxy applies to two-stage laws only; {law.name!r} is not one")
                data = from_frame(frame, law, x=x, y=args.y, where=args.where)
                result = fit_map(law, data, keep=args.keep)
    except DataError as exc:
        raise InputError(str(exc)) from None
    bands, extra_diag, failed = None, None, not result.converged
    if args.method == "bootstrap":
        import jax

        from bayescale.bootstrap import fit_bootstrap

        boot = fit_bootstrap(law, data, key=jax.random.key(args.seed), resamples=args.resamples, starts=args.starts,
                             map_fit=result, progress=not args.quiet)
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
    if failed:
        print("bayescale: the fit did not converge (see diagnostics)", file=sys.stderr)
        return 0 if args.allow_warnings else 1
    return 0


def _fit_nuts(args, law, frame, x, t0) -> int:
    import functools

    import jax
    import numpy as np

    import bayescale
    from bayescale.bands import band
    from bayescale.data import DataError, from_frame
    from bayescale.nuts import fit_nuts
    from bayescale.staged import fit_two_stage

    likelihood = getattr(bayescale, _LIKELIHOODS[args.likelihood])()
    fit = functools.partial(fit_nuts, key=jax.random.key(args.seed), likelihood=likelihood, chains=args.chains,
                            warmup=args.warmup, draws=args.draws, progress=not args.quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if law.stages:
                if not args.proxy:
                    raise InputError(f"law {law.name!r} is two-stage: name the intermediate loss column with --proxy")
                post = fit_two_stage(law, frame, x=x, proxy=args.proxy, y=args.y, where=args.where, fit=fit)
            else:
                if args.proxy:
                    raise InputError(f"--proxy applies to two-stage laws only; {law.name!r} is not one")
                post = fit(law, from_frame(frame, law, x=x, y=args.y, where=args.where))
    except DataError as exc:
        raise InputError(str(exc)) from None
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
    if not post.ok:
        print(f"bayescale: the posterior is not trustworthy: {'; '.join(post.problems)}", file=sys.stderr)
        return 0 if args.allow_warnings else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "fit":
            return _cmd_fit(args)
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
