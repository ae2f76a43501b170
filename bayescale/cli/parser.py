"""The argument parser of ``bayescale fit | forecast | optimal | compare | demo``."""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from bayescale.cli.inputs import LIKELIHOODS, InputError
from bayescale.errors import ArgumentError
from bayescale.fit.budget import parse_bytes
from bayescale.laws import LAWS

EXPRESSION = "an expression over the columns (see README: expressions)"

EXAMPLES = {
    "fit": """\
  bayescale fit runs.csv --law chinchilla --x N,D --y loss --json fit.json
  bayescale fit svg_extracted_data.csv --law chinchilla \\
      --derive "N=`Model Size`" --derive "D=`Training FLOP` / (6 * N)" --x N,D --y loss --where "loss < 3.4"
  bayescale fit evals.csv --law direct --x C --y acc --chance 0.25
  bayescale fit runs.csv --law chinchilla --x N,D --y loss --method nuts --save post.nc --plot post.png
  bayescale fit evals.csv --law two_stage_linear --x C --proxy val_loss --y acc
  bayescale fit finals.csv --law two_stage_logistic --stage1 chinchilla --x N,D --proxy val_loss --y acc \\
      --stage2-data checkpoints.csv --method bootstrap""",
    "forecast": """\
  bayescale forecast evals.csv --law direct --x C --y acc --chance 0.25 --at "C=1e22,1e23" --method nuts
  bayescale forecast runs.csv --law chinchilla --x N,D --y loss --at "N=7e10;D=1.4e12" --method bootstrap
  bayescale forecast evals.csv --law two_stage_logistic --x C --proxy val_loss --y acc --at "C=1e23" \\
      --method bootstrap
  bayescale forecast --from post.nc --at "N=7e10;D=1.4e12\"""",
    "optimal": """\
  bayescale optimal runs.csv --law chinchilla --x N,D --y loss --compute 1e21,5.88e23 --method bootstrap
  bayescale optimal runs_long.csv --law chinchilla --x N,D --y loss --compute 1e21 \\
      --by val_set --mix "code=0.3,web=0.7" --method nuts
  bayescale optimal --from post.nc --compute 5.88e23""",
    "compare": """\
  bayescale compare arc_easy.csv --laws direct,bnsl,two_stage_linear --x C --y acc --chance 0.25 \\
      --proxy val_loss --holdout "C > 6e21" --where "acc > 0.25\"""",
}
HELP = {
    "fit": "fit a law to a CSV table and print its parameters",
    "forecast": "fit a law (or read a saved fit) and forecast new runs, with intervals",
    "optimal": "compute-optimal N*, D* and tokens per parameter, with intervals",
    "compare": "rank several laws on the same runs: LOO, WAIC, held-out error",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one :class:`InputError` line (exit 2), not usage plus an error."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{message} (see {self.prog} --help)")


def whole(text: str) -> int:
    """A whole number: ``1000``, ``1e3`` or ``1_000`` (not ``2.5``, ``inf`` or ``abc``)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not value.is_integer() or abs(value) >= 2**62:
        raise argparse.ArgumentTypeError(f"must be a whole number (e.g. 1000 or 1e3), got {text!r}")
    return int(value)


def number(text: str) -> float:
    """A finite number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def chance(text: str) -> float | dict[str, float]:
    """``--chance 0.25`` or, per group of ``--by``, ``--chance "arc_easy=0.25,piqa=0.5"``."""
    if "=" not in text:
        return number(text)
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = (s.strip() for s in part.rpartition("="))
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"each part must look like GROUP=Q (got {part!r})")
        out[name] = number(value)
    return out


def memory(text: str) -> int:
    """``--memory 4GB`` -> bytes."""
    try:
        return parse_bytes(text)
    except ArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seed(text: str) -> int:
    """A random seed: a whole number from 0 to 2**62."""
    value = whole(text)
    if not 0 <= value < 2**62:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2**62, got {text!r}")
    return value


def _memory_argument(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--memory", type=memory, metavar="BYTES",
                     help="memory budget of the fits, e.g. 4GB or 512MB (default: BAYESCALE_MEMORY, else half the "
                          "RAM); work that cannot fit is refused before it starts")


def _fit_arguments(cmd: argparse.ArgumentParser, several: bool) -> None:
    add = cmd.add_argument
    add("data", nargs="?", help="CSV file, one row per run (or per run x metric)")
    add("--laws" if several else "--law", help=f"law name{'s, comma-separated' if several else ''}: {', '.join(LAWS)}")
    add("--x", help="covariate column(s), comma-separated, in the law's order")
    add("--y", help="response column (loss or accuracy)")
    add("--where", metavar="EXPR", help=f'rows to fit: {EXPRESSION}, e.g. "loss < 3.4"')
    add("--derive", action="append", default=[], metavar="NAME=EXPR",
        help=f"add a column NAME computed before fitting from {EXPRESSION} (repeatable)")
    add("--chance", type=chance, help="chance level Q_rand of an accuracy law (e.g. 0.25), or one per group of --by "
                                      '(e.g. "arc_easy=0.25,piqa=0.5")')
    add("--proxy", help="intermediate (loss) column of a two-stage law")
    add("--stage1", metavar="LAW", help="stage-1 law of a two-stage law (default pure_power_law; power_law adds a "
                                        "constant; chinchilla reads N and D)")
    add("--stage2-data", metavar="CSV", help="a separate table for stage 2 (proxy -> y), e.g. every checkpoint")
    add("--method", default="map", choices=["map", "bootstrap", "nuts"], help="fitting method (default: map)")
    add("--keep", type=whole, default=64, help="starts polished after screening the grid (default 64)")
    add("--resamples", type=whole, default=1000, help="bootstrap resamples (default 1000)")
    add("--starts", type=whole, default=64, help="bootstrap starts per resample (default 64)")
    add("--chains", type=whole, default=4, help="NUTS chains (default 4)")
    add("--warmup", type=whole, default=1000, help="NUTS warmup iterations per chain (default 1000)")
    add("--draws", type=whole, default=2000, help="NUTS draws per chain (default 2000)")
    add("--likelihood", default="student-t", choices=list(LIKELIHOODS), help="NUTS noise model (default student-t)")
    add("--interval", type=number, default=0.9, help="central interval for lo/hi (default 0.9)")
    add("--seed", type=seed, default=0, help="random seed of the bootstrap and NUTS (MAP is deterministic)")
    add("--quiet", action="store_true", help="no progress lines on stderr")
    add("--json", metavar="PATH", help="write the result as JSON to this path")
    add("--allow-warnings", action="store_true", help="exit 0 even if the fit is flagged")
    _memory_argument(cmd)


def parser() -> argparse.ArgumentParser:
    """The ``bayescale`` parser: one sub-command each, every fit option on fit/forecast/optimal/compare."""
    top = Parser(prog="bayescale", description="Fit scaling laws of language models, with honest "
                                                                "uncertainty.")
    sub = top.add_subparsers(dest="command", required=True)
    cmds = {}
    for name, help_line in HELP.items():
        cmds[name] = sub.add_parser(name, help=help_line, description=help_line[0].upper() + help_line[1:] + ".",
                                    epilog="examples:\n" + EXAMPLES[name],
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        _fit_arguments(cmds[name], several=name == "compare")
    cmds["fit"].add_argument("--save", metavar="PATH", help="save the fit (ArviZ NetCDF) for forecast/optimal --from")
    for name in ("fit", "forecast", "optimal"):
        cmds[name].add_argument("--plot", metavar="PATH", help="write a PNG of the fit, the forecast or N*(C)")
    for name in ("forecast", "optimal"):
        cmds[name].add_argument("--from", dest="saved", metavar="PATH",
                                help="use a fit saved by `bayescale fit --save` instead of fitting DATA")
    cmds["compare"].add_argument("--holdout", metavar="EXPR",
                                 help=f'rows to forecast after refitting on the rest: {EXPRESSION}, e.g. "C > 6e21"')
    cmds["compare"].set_defaults(method="nuts")
    forecast = cmds["forecast"]
    forecast.add_argument("--at", required=True, metavar="COL=V1,V2[;COL=..]",
                          help='points to forecast, e.g. "C=1e22,1e23" or "N=7e10;D=1.4e12"')
    forecast.add_argument("--band", choices=["calibrated", "plain"], default="calibrated",
                          help="calibrated (default): widen the predictive band beyond the largest fitted run by the "
                               "law's own error, learned from backtests on the fitted runs; plain: the fit's own band")
    optimal = cmds["optimal"]
    optimal.add_argument("--compute", required=True, metavar="C1,C2", help="budgets in FLOPs, e.g. 1e21,5.88e23")
    optimal.add_argument("--mix", metavar="NAME=W,..", help="optimum of a weighted validation mix: fit the law to the "
                         "rows of each NAME in --by and weight the losses (weights are normalised to sum to 1)")
    optimal.add_argument("--by", metavar="COL", help="column whose values --mix names (e.g. val_set)")
    for name in ("fit", "forecast"):
        cmds[name].add_argument("--by", metavar="COL", help="fit each value of COL (e.g. benchmark) on its own rows; "
                                "forecast: the groups' calibrated bands borrow strength from each other")
    demo = sub.add_parser("demo", help="fit the bundled Gadre et al. runs and write a plot")
    demo.add_argument("--out", default="demo_out", metavar="FOLDER", help="output folder (default: demo_out)")
    demo.add_argument("--keep", type=whole, default=64, help="starts polished per fit")
    demo.add_argument("--resamples", type=whole, default=200, help="bootstrap resamples per fit (default 200)")
    demo.add_argument("--starts", type=whole, default=16, help="bootstrap starts per resample (default 16)")
    _memory_argument(demo)
    return top
