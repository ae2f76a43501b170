"""What the command line gives: tables, laws, points, budgets, mixes -- checked, and the fit they ask for.

Every problem is an :class:`InputError`: one line on stderr, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import math

import jax
import numpy as np
import pandas as pd

import bayescale.fit as bf
from bayescale.convert import SavedFitError, load
from bayescale.errors import ArgumentError
from bayescale.fit.budget import budget, require
from bayescale.laws import Law, compose, get_law
from bayescale.tables import derive, from_frame, read_csv, suggest, two_stage_data

LIKELIHOODS = {"student-t": bf.StudentT, "gaussian": bf.Gaussian, "huber": bf.HuberLikelihood}


class InputError(ArgumentError):
    """Bad input at the command line: reported as one line, exit code 2."""


def law_named(name: str, chance: float | dict | None, stage1: str | None = None) -> Law:
    """A library law (``--chance`` bound, ``--stage1`` swapped into a two-stage law).

    A per-group ``--chance`` (a mapping) is bound group by group (:func:`groups`), not here.
    """
    chance = None if isinstance(chance, dict) else chance
    try:
        law = get_law(name)
        if stage1 is not None and law.stages:
            law = compose(get_law(stage1), law.stages[1])
        if chance is not None and (law.response.chance is not None or not law.stages):
            law = law.with_chance(chance)
    except (KeyError, ValueError) as exc:
        raise InputError(exc.args[0]) from None
    return law


COUNTS = ("keep", "resamples", "starts", "chains", "warmup", "draws")


def check_counts(args: argparse.Namespace) -> None:
    """Counts at least 1, ``--interval`` in (0, 1), and the draws and resamples within the memory budget."""
    for flag in COUNTS:
        if getattr(args, flag, 1) < 1:
            raise InputError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if hasattr(args, "interval") and not 0.0 < args.interval < 1.0:
        raise InputError(f"--interval must lie in (0, 1), got {args.interval}")
    try:  # before the table is read: the law's parameters, no rows yet
        n_params = get_law(args.law).n_params if getattr(args, "law", None) else 1
    except KeyError:
        n_params = 1
    check_memory(args, n_params=n_params, rows=0)


def check_memory(args: argparse.Namespace, n_params: int, rows: int) -> None:
    """Refuse, before fitting, draws or resamples whose values alone exceed the memory budget.

    Per NUTS draw and chain, or per bootstrap resample, a fit keeps its parameters and sigma
    and the pointwise log likelihood over the rows (8 bytes each); the fitters check the
    rest of their memory themselves.
    """
    per = 8.0 * (n_params + 1 + rows)
    over = f"{n_params + 1} parameter(s)" + (f" and {rows:,} rows" if rows else "")
    method = getattr(args, "method", None)
    if method == "nuts":
        require(args.chains * args.draws * per, f"--draws {args.draws:,} x --chains {args.chains} over {over}",
                f"at most {int(budget() // (args.chains * per)):,} draws per chain fit: lower --draws or --chains")
    elif method == "bootstrap" or (method is None and hasattr(args, "resamples")):
        require(args.resamples * per, f"--resamples {args.resamples:,} over {over}",
                f"at most {int(budget() // per):,} resamples fit: lower --resamples")


def prepare(args: argparse.Namespace):
    """The law, the table and the covariate columns the command names (``--from``: the saved fit, no table)."""
    if getattr(args, "saved", None):
        if args.data:
            raise InputError(f"give either a data file ({args.data!r}) or --from {args.saved!r}, not both")
        ignored = [f"--{f}" for f in ("law", "x", "y", "where", "chance", "proxy", "by") if getattr(args, f, None)]
        if ignored:
            raise InputError(f"--from {args.saved!r} uses the saved law and rows; drop {', '.join(ignored)}")
        try:
            fit = load(args.saved)
        except SavedFitError as exc:
            raise InputError(str(exc)) from None
        return fit.law, fit, None
    if not args.data:
        raise InputError("give the data file (a CSV with one row per run)"
                         + (" or --from a saved fit" if hasattr(args, "saved") else ""))
    missing = [f"--{f}" for f in ("laws" if hasattr(args, "laws") else "law", "x", "y") if not getattr(args, f, None)]
    if missing:
        raise InputError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required with a data file")
    if isinstance(getattr(args, "chance", None), dict) and not getattr(args, "by", None):
        raise InputError("--chance GROUP=Q,... names groups: give the column they are values of with --by")
    law = law_named(args.law, args.chance, args.stage1) if hasattr(args, "law") else None
    try:
        frame = derive(read_csv(args.data), args.derive)
    except bf.DataError as exc:
        raise InputError(str(exc)) from None
    return law, frame, [c.strip() for c in args.x.split(",") if c.strip()]


def groups(args: argparse.Namespace, law: Law, frame: pd.DataFrame) -> dict[str, tuple[Law, pd.DataFrame]]:
    """``--by COL``: each value's law (with its ``--chance``) and rows, in order of appearance."""
    by = args.by
    if by not in frame.columns:
        raise InputError(f"--by {by!r} is not a column of the table.{suggest(by, list(frame.columns))}")
    labels = frame[by].astype(str)
    values = list(dict.fromkeys(labels))
    chance = args.chance if isinstance(args.chance, dict) else None
    if chance is not None:
        unknown = [g for g in chance if g not in values]
        if unknown:
            raise InputError(f"--chance names {', '.join(map(repr, unknown))}, not values of column {by!r} "
                             f"({', '.join(values[:12])}{', ...' if len(values) > 12 else ''})")
        missing = [g for g in values if g not in chance]
        if missing and law.response.chance is not None:
            raise InputError(f"--chance gives no chance level for {', '.join(map(repr, missing))} (values of {by!r})")
    out = {}
    for g in values:
        law_g = law_named(args.law, chance[g], args.stage1) if chance is not None else law
        out[g] = (law_g, frame[(labels == g).to_numpy()])
    return out


def fitter_for(args: argparse.Namespace) -> bf.Fitter:
    """The fitter ``--method`` names, with the command line's settings."""
    if args.method == "nuts":
        return bf.Fitter.of(bf.fit_nuts, chains=args.chains, warmup=args.warmup, draws=args.draws,
                         likelihood=LIKELIHOODS[args.likelihood](), progress=not args.quiet)
    if args.method == "bootstrap":
        return bf.Fitter.of(bf.fit_bootstrap, resamples=args.resamples, starts=args.starts, progress=not args.quiet)
    return bf.Fitter.of(bf.fit_map, keep=args.keep)


def fit_table(args: argparse.Namespace, law: Law, frame: pd.DataFrame, x: list[str]) -> bf.Fit:
    """Fit ``law`` to ``frame`` as the command line asks (two-stage laws stage by stage)."""
    key = jax.random.key(args.seed)
    check_memory(args, law.n_params, len(frame))
    try:
        if law.stages:
            if not args.proxy:
                raise InputError(f"law {law.name!r} is two-stage: name the intermediate loss column with --proxy")
            stage2 = read_csv(args.stage2_data) if args.stage2_data else None
            d1, d2, data = two_stage_data(law, frame, x=x, proxy=args.proxy, y=args.y, stage2=stage2, where=args.where)
            return bf.fit_two_stage(law, d1, d2, data=data, fitter=fitter_for(args), key=key, warn=False)
        if (args.proxy or args.stage2_data) and args.command != "compare":  # compare may mix one- and two-stage laws
            raise InputError(f"--proxy and --stage2-data apply to two-stage laws only; {law.name!r} is not one")
        return fitter_for(args)(law, from_frame(frame, law, x=x, y=args.y, where=args.where), key=key, warn=False)
    except bf.DataError as exc:
        raise InputError(str(exc)) from None


def parse_at(spec: str, law: Law) -> dict[str, np.ndarray]:
    """``--at "N=7e10;D=1.4e12"`` -> covariate arrays of one length."""
    points: dict[str, np.ndarray] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, sep, values = part.partition("=")
        name = name.strip()
        if not sep or not values.strip():
            raise InputError(f"--at {spec!r}: each part must look like COL=V1,V2 (got {part!r})")
        if name not in law.covariate_names:
            raise InputError(f"--at {spec!r}: {name!r} is not a covariate of law {law.name!r} "
                             f"(it reads {', '.join(law.covariate_names)})")
        points[name] = numbers(values, f"--at {spec!r}: values of {name!r}")
    missing = [c for c in law.covariate_names if c not in points]
    if missing:
        raise InputError(f"--at {spec!r}: give values for {', '.join(missing)} too")
    if len({len(v) for v in points.values()} - {1}) > 1:
        raise InputError(f"--at {spec!r}: covariates need the same number of values (or one value)")
    n = max(len(v) for v in points.values())
    return {k: np.broadcast_to(v, (n,)).copy() for k, v in points.items()}


def numbers(text: str, what: str) -> np.ndarray:
    """Comma-separated positive, finite numbers."""
    try:
        values = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise InputError(f"{what} must be numbers (comma-separated numbers, e.g. 1e21,5.88e23)") from None
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InputError(f"{what} must be positive and finite")
    return values


def parse_mix(spec: str, by: str | None, frame: pd.DataFrame) -> dict[str, float]:
    """``--mix "code=0.3,web=0.7"`` -> normalised weights, every name checked against column ``by``."""
    if not by:
        raise InputError(f"--mix {spec!r}: name the column whose values it weights with --by (e.g. --by val_set)")
    if by not in frame.columns:
        raise InputError(f"--by {by!r} is not a column of the table.{suggest(by, list(frame.columns))}")
    values = sorted(set(frame[by].astype(str)))
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, w = (s.strip() for s in part.rpartition("="))
        if not sep or not name:
            raise InputError(f"--mix {spec!r}: each part must look like NAME=WEIGHT (got {part!r})")
        if name not in values:
            hint = suggest(name, values, f" Values of {by!r}: {', '.join(values)}")
            raise InputError(f"--mix {spec!r}: {name!r} is not a value of column {by!r}.{hint}")
        try:
            weights[name] = float(w)
        except ValueError:
            raise InputError(f"--mix {spec!r}: the weight of {name!r} must be a number (got {w!r})") from None
        if not math.isfinite(weights[name]) or weights[name] < 0:
            raise InputError(f"--mix {spec!r}: the weight of {name!r} must be >= 0 and finite")
    total = sum(weights.values())
    if total <= 0:
        raise InputError(f"--mix {spec!r}: give at least one positive weight")
    return {k: v / total for k, v in weights.items()}
