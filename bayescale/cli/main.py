"""Command line: ``bayescale fit | forecast | optimal | compare | demo``.

Every output (``--json``, ``--save``, ``--plot``, ``demo --out``) is checked before any work
(not a folder, device, FIFO, socket or symbolic link; not an input; its folder writable) and
all outputs of a command are written as one unit, or none (:mod:`bayescale.convert.files`).
Every way a command can end is one line on stderr, never a traceback:

====  =====================================================================================
0     success
1     a fit that is flagged (did not converge, chains not mixed) unless ``--allow-warnings``;
      or an internal error: ``bayescale: internal error: TypeName: ...`` (set
      ``BAYESCALE_DEBUG=1`` for the traceback)
2     bad input, an output that must not be written, work over the memory budget or out of
      memory (``bayescale: error: ...`` naming the flag, column, row or file and the fix;
      nothing written)
130   Ctrl-C: ``bayescale: interrupted after 1,200 of 2,000 draws per chain; nothing written``
143   SIGTERM (129 SIGHUP), handled like Ctrl-C: temporary files removed, nothing written
141   standard output closed early (``bayescale fit ... | head``): quiet, like a program
      ended by SIGPIPE
====  =====================================================================================
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np

from bayescale.cli.inputs import (
    InputError,
    check_counts,
    fit_table,
    groups,
    law_named,
    numbers,
    parse_at,
    parse_mix,
    prepare,
)
from bayescale.cli.parser import parser
from bayescale.cli.report import finish, fit_payload, input_paths, output_paths, print_fit, scalars, write_outputs
from bayescale.convert.files import check_output, check_outputs, outputs, written
from bayescale.demo import run_demo
from bayescale.derive import Forecast, optimal_bands
from bayescale.errors import BayescaleError, OutputError
from bayescale.evaluate import compare, forecast, forecast_groups
from bayescale.fit import Fit
from bayescale.fit.budget import memory_budget
from bayescale.plot import plot_forecast, plot_optimal

__all__ = ["main"]


def _fit(args) -> int:
    t0 = time.perf_counter()
    law, frame, x = prepare(args)
    if args.by:
        return _fit_groups(args, law, frame, x, t0)
    fit = fit_table(args, law, frame, x)
    print_fit(fit, args.interval)
    payload = fit_payload(fit, args.interval) | {"seed": args.seed, "seconds": round(time.perf_counter() - t0, 4)}
    key = jax.random.key(args.seed + 1)
    write_outputs(args, payload, fit, lambda: plot_forecast(fit, interval=args.interval, key=key))
    return finish(args, "; ".join(fit.problems))


def _fit_groups(args, law, frame, x, t0: float) -> int:
    """``fit --by COL``: one fit per value of COL, reported one after another (JSON: ``groups``)."""
    if args.save or args.plot:
        raise InputError("--save and --plot hold one fit; with --by, fit one group at a time (--where) to keep it")
    fits = {g: fit_table(args, law_g, rows, x) for g, (law_g, rows) in groups(args, law, frame).items()}
    payload: dict = {"law": law.name, "by": args.by, "groups": {}}
    for g, fit in fits.items():
        print(f"{args.by} = {g}:")
        print_fit(fit, args.interval)
        payload["groups"][g] = fit_payload(fit, args.interval)
    payload |= {"seed": args.seed, "seconds": round(time.perf_counter() - t0, 4)}
    write_outputs(args, payload)
    return finish(args, "; ".join(f"{g}: {'; '.join(f.problems)}" for g, f in fits.items() if f.problems))


def _fitted(args, law, frame_or_fit, x) -> Fit:
    """The fit a forecast or optimum reads: from ``--from``, or fitted to the data file."""
    return frame_or_fit if isinstance(frame_or_fit, Fit) else fit_table(args, law, frame_or_fit, x)


def _forecast_one(args, fit: Fit, points, key) -> Forecast:
    if args.band == "plain":
        return forecast(fit, points, key=key, interval=args.interval, calibrated=False)
    return forecast(fit, points, key=key, interval=args.interval)


def _forecast_payload(f: Forecast, fit: Fit) -> dict:
    return {"points": f.to_frame().to_dict(orient="records"), "diagnostics": scalars(fit.diagnostics),
            "discrepancy": None if f.discrepancy is None else f.discrepancy.summary(), "weights": f.weights}


def _forecast(args) -> int:
    t0 = time.perf_counter()
    law, frame_or_fit, x = prepare(args)
    points = parse_at(args.at, law)  # before the fit: a bad --at costs nothing
    key = jax.random.key(args.seed + 1)
    if args.by:
        return _forecast_groups(args, law, frame_or_fit, x, points, key, t0)
    fit = _fitted(args, law, frame_or_fit, x)
    f = _forecast_one(args, fit, points, key)
    print(f"law {fit.law.name} ({fit.method}, {fit.band_name} band); {f.describe()}")
    print(f.to_frame().to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    payload = {"law": fit.law.name, "method": fit.method, "interval_kind": fit.band, "interval": args.interval,
               "band": args.band,
               **_forecast_payload(f, fit), "seconds": round(time.perf_counter() - t0, 4)}
    write_outputs(args, payload, draw=lambda: plot_forecast(fit, interval=args.interval, discrepancy=f.discrepancy,
                                                             points=f, key=key))
    return finish(args, "; ".join(fit.problems))


def _forecast_groups(args, law, frame, x, points, key, t0: float) -> int:
    """``forecast --by COL``: one fit per group; the calibrated bands learn their discrepancy across the groups."""
    if args.plot:
        raise InputError("--plot draws one fit; with --by, forecast one group at a time (--where) to plot it")
    fits = {g: fit_table(args, law_g, rows, x) for g, (law_g, rows) in groups(args, law, frame).items()}
    if args.band == "plain":
        out = {g: forecast(fit, points, key=jax.random.fold_in(key, i), interval=args.interval, calibrated=False)
               for i, (g, fit) in enumerate(fits.items())}
    else:
        out = forecast_groups(fits, points, key=key, interval=args.interval)
    payload: dict = {"law": law.name, "by": args.by, "interval": args.interval, "band": args.band, "groups": {}}
    for g, f in out.items():
        print(f"{args.by} = {g}: law {fits[g].law.name} ({fits[g].method}, {fits[g].band_name} band); {f.describe()}")
        print(f.to_frame().to_string(index=False, float_format=lambda v: f"{v:.5g}"))
        payload["groups"][g] = {"method": fits[g].method, "interval_kind": fits[g].band,
                                **_forecast_payload(f, fits[g])}
    payload["seconds"] = round(time.perf_counter() - t0, 4)
    write_outputs(args, payload)
    return finish(args, "; ".join(f"{g}: {'; '.join(f.problems)}" for g, f in fits.items() if f.problems))


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
    fewest = min((f for f, _ in mix), key=lambda f: f.n_draws)  # the draws are cut to the fewest of any part
    rows: list[dict] = [
        {"compute": float(c), **{q: {"estimate": float(np.ravel(b.median)[i]), "lo": float(np.ravel(b.lo)[i]),
                                     "hi": float(np.ravel(b.hi)[i])} for q, b in bands.items()}}
        for i, c in enumerate(compute)]
    print(f"law {law.name} ({mix[0][0].method}{f', mix {args.mix} of {args.by}' if parts else ''}); "
          f"median [{args.interval:.0%} {fewest.band_name} interval]")
    for r in rows:
        n, t = r["N"], r["tokens_per_param"]
        print(f"  C={r['compute']:.3g}: N* {n['estimate']:.4g} [{n['lo']:.4g}, {n['hi']:.4g}]  "
              f"D* {r['D']['estimate']:.4g}  tokens/param {t['estimate']:.3g} [{t['lo']:.3g}, {t['hi']:.3g}]")

    payload = {"law": law.name, "method": mix[0][0].method, "interval_kind": fewest.band, "interval": args.interval,
               "optima": rows, "mix": parts,
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


DEMO_FILES = ("demo_compute_optimal.png", "demo_results.json")  # what run_demo writes into its folder


def _check_demo_out(out: Path) -> None:
    """``demo --out``: a folder, or absent in a writable folder; the files it would replace regular ones."""
    if out.is_dir():
        check_output(out / DEMO_FILES[0], "--out")
        for name in DEMO_FILES[1:]:
            check_output(out / name, "--out", probe=False)
    elif os.path.lexists(out):
        raise OutputError(f"--out {str(out)!r} is not a folder; give a folder (it is created if absent)")
    else:
        check_output(out, "--out")


class _Renamed(io.TextIOBase):
    """Standard output with the working folder's name replaced by the one the files end up in."""

    def __init__(self, stream, old: str, new: str) -> None:
        self.stream, self.old, self.new = stream, old, new

    def write(self, text: str) -> int:
        return self.stream.write(text.replace(self.old, self.new))

    def flush(self) -> None:
        self.stream.flush()


def _demo(args) -> int:
    """The demo writes into a temporary folder beside ``--out``; its files are moved in as one unit."""
    out = Path(args.out)
    exists = out.is_dir()
    work = Path(tempfile.mkdtemp(dir=out if exists else out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        with contextlib.redirect_stdout(_Renamed(sys.stdout, str(work), str(out))):
            run_demo(work, keep=args.keep, resamples=args.resamples, starts=args.starts)
        with outputs() as unit:
            if exists:
                for f in sorted(work.iterdir()):
                    unit.adopt(f, out / f.name, "--out")
            else:
                umask = os.umask(0)
                os.umask(umask)
                work.chmod(0o777 & ~umask)
                unit.adopt(work, out, "--out")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


COMMANDS = {"fit": _fit, "forecast": _forecast, "optimal": _optimal, "compare": _compare, "demo": _demo}


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that every temporary file is removed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received: list[int] = []  # the signals that ended the command (a fitter may re-raise them as Interrupted)


def _terminate(signum, frame) -> None:
    _received.append(signum)
    raise Terminated(signum)


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` for the command's duration (main thread only)."""
    old = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is None:
            continue
        try:
            old[sig] = signal.signal(sig, _terminate)
        except (ValueError, OSError):  # not the main thread: leave the handlers alone
            break
    _received.clear()
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _warning_line(message, category, filename, lineno, line=None) -> str:
    text = " ".join(str(message).split())
    return f"bayescale: warning: {category.__name__}: {text}\n"


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings (numpyro, jax, ...) printed as one line each while the command runs."""
    old = warnings.formatwarning
    warnings.formatwarning = _warning_line
    try:
        yield
    finally:
        warnings.formatwarning = old


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return type(exc).__name__ in ("XlaRuntimeError", "JaxRuntimeError") and (
        "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower())


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so that the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def _run(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    with memory_budget(args.memory) if args.memory else contextlib.nullcontext():
        check_counts(args)
        if args.command == "demo":
            _check_demo_out(Path(args.out))
        else:
            check_outputs(output_paths(args), input_paths(args))
        code = COMMANDS[args.command](args)
    sys.stdout.flush()
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (see the module docstring), every failure as one stderr line."""
    before = len(written())

    def say(text: str) -> None:
        print(f"bayescale: {_one_line(text)}", file=sys.stderr)

    with _signals(), _one_line_warnings():
        try:
            return _run(argv)
        except SystemExit as exc:  # --help
            return exc.code if isinstance(exc.code, int) else 0
        except BayescaleError as exc:
            say(f"error: {exc}")
            return 2
        except KeyboardInterrupt as exc:
            what = "interrupted" if isinstance(exc, Terminated) or not str(exc) else str(exc)
            if _received:
                what = f"{signal.Signals(_received[0]).name}: {what}"
            say(f"{what}; {'nothing written' if len(written()) == before else 'the outputs were already written'}")
            return 128 + _received[0] if _received else 130
        except BrokenPipeError:
            _quiet_stdout()
            return 141
        except Exception as exc:
            if _out_of_memory(exc):
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                say(f"error: out of memory: {first}; lower --draws/--resamples or set --memory")
                return 2
            if os.environ.get("BAYESCALE_DEBUG", "") not in ("", "0"):
                raise
            if isinstance(exc, OSError) and exc.strerror:
                where = f" {exc.filename!r}" if exc.filename else ""
                say(f"error: cannot access{where}: {exc.strerror}")
                return 2
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            say(f"internal error: {type(exc).__name__}: {first} (set BAYESCALE_DEBUG=1 for the traceback)")
            return 1


if __name__ == "__main__":
    sys.exit(main())
