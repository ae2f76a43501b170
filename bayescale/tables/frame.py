"""The data boundary: tidy pandas tables in, validated float64 arrays out.

Everything past :func:`from_frame` works on a :class:`~bayescale.fit.Data` value and
never sees pandas.  Bad input raises :class:`~bayescale.fit.DataError` whose message
names the column and the rows at fault and says how to fix it.  Expressions (``--where``
filters, ``--derive`` columns, hold-out conditions such as ``"C > 6e21"``) are read here
too, with ``DataFrame.eval`` / ``query``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.fit.data import Data, DataError
from bayescale.laws import Law

__all__ = ["condition", "derive", "from_arrays", "from_frame", "query", "read_csv", "suggest", "two_stage_data"]

_SHOW = 5


def _rows(labels: Sequence) -> str:
    labels = list(labels)
    shown = ", ".join(str(r) for r in labels[:_SHOW])
    more = f" and {len(labels) - _SHOW} more" if len(labels) > _SHOW else ""
    return f"row{'s' if len(labels) > 1 else ''} {shown}{more}"


def suggest(name: str, options: Sequence[str], otherwise: str = "") -> str:
    """`` Did you mean 'a', 'b'?`` for the options closest to ``name`` (case-insensitive), else ``otherwise``."""
    lower = {str(c).lower(): str(c) for c in options}
    close = [lower[m] for m in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)]
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else otherwise


def read_csv(path: str) -> pd.DataFrame:
    """A CSV table with at least one row; a missing, unreadable or empty file is a :class:`DataError`."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file {str(path)!r} does not exist")
    if p.is_dir():
        raise DataError(f"data path {str(path)!r} is a folder; give a CSV file")
    try:
        frame = pd.read_csv(p)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read {str(path)!r} as CSV: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise DataError(f"{str(path)!r} has no data rows")
    return frame


def _missing_column(name: str, frame: pd.DataFrame, role: str) -> DataError:
    hint = suggest(name, [str(c) for c in frame.columns])
    return DataError(
        f"column {name!r} ({role}) is not in the table.{hint} "
        f"Available columns: {', '.join(map(str, frame.columns))}"
    )


def _numeric(frame: pd.DataFrame, col: str, role: str) -> np.ndarray:
    values = pd.to_numeric(frame[col], errors="coerce")
    bad = frame.index[values.isna() & frame[col].notna()]
    if len(bad):
        raise DataError(
            f"column {col!r} ({role}): non-numeric value(s) {list(frame.loc[bad[:_SHOW], col])} in "
            f"{_rows(bad)}; fix or drop those rows (e.g. --where)"
        )
    arr = values.to_numpy(dtype=float)
    nonfinite = frame.index[~np.isfinite(arr)]
    if len(nonfinite):
        raise DataError(
            f"column {col!r} ({role}): NaN or infinite value in {_rows(nonfinite)}; "
            "drop those rows (e.g. --where) or fill them"
        )
    return arr


def _no_duplicate_runs(xs: Mapping[str, np.ndarray], ys: np.ndarray, rows: np.ndarray, names: list[str]) -> None:
    """Two rows with the same covariates *and* the same response are one run entered twice.

    (Repeated covariates with different responses -- seeds -- are legitimate.)
    """
    table = pd.DataFrame({**{k: v for k, v in xs.items()}, "__y__": ys})
    dup = table.duplicated(keep=False).to_numpy()
    if dup.any():
        first = table[dup].groupby(list(table.columns), sort=False).groups
        pairs = [", ".join(str(rows[i]) for i in idx) for idx in list(first.values())[:_SHOW]]
        raise DataError(
            f"duplicate runs: rows {'; '.join(pairs)} have identical {', '.join(names)}; "
            "the same run entered twice would count double, drop the copies"
        )


def query(frame: pd.DataFrame, where: str | None) -> pd.DataFrame:
    """The rows of ``frame`` selected by the ``DataFrame.query`` expression ``where`` (all if None)."""
    if not where:
        return frame
    try:
        out = frame.query(where)
    except Exception as exc:  # pandas raises many types for a bad expression
        raise DataError(f"--where {where!r} is not a valid filter: {exc}") from None
    if not isinstance(out, pd.DataFrame):
        raise DataError(f"--where {where!r} did not select rows")
    return out


def derive(frame: pd.DataFrame, specs: Sequence[str]) -> pd.DataFrame:
    """Add columns ``NAME=EXPR`` (``DataFrame.eval``) to a copy of ``frame``, in order."""
    frame = frame.copy()
    for spec in specs:
        name, sep, expr = spec.partition("=")
        if not sep or not name.strip() or not expr.strip():
            raise DataError(f"--derive {spec!r} must look like NAME=EXPR, e.g. \"D=C / (6 * N)\"")
        try:
            frame[name.strip()] = frame.eval(expr)
        except Exception as exc:  # pandas raises many types for a bad expression
            raise DataError(f"--derive {spec!r} could not be evaluated: {exc}") from None
    return frame


def condition(data: Data, expr) -> np.ndarray:
    """Mask of the rows of ``data`` meeting ``expr``.

    ``expr`` is an expression over the covariate names (``"C > 6e21"``, as in
    ``DataFrame.eval``; ``y`` names the response), a callable of the covariate dict, or a
    boolean mask.
    """
    if not isinstance(expr, str):
        return data.mask(expr)
    frame = pd.DataFrame({**data.x, "y": data.y})
    try:
        out = np.asarray(frame.eval(expr), dtype=bool)
    except Exception as exc:  # pandas raises many types for a bad expression
        raise DataError(f"condition {expr!r} is not valid over columns {', '.join(frame.columns)}: {exc}") from None
    return data.mask(out)


def _covariates(frame: pd.DataFrame, law: Law, x: list[str]) -> dict[str, np.ndarray]:
    xs = {cov.name: _numeric(frame, col, f"covariate {cov.name}") for col, cov in zip(x, law.covariates)}
    rows = frame.index.to_numpy()
    for col, cov in zip(x, law.covariates):
        bad = rows[~cov.admissible(xs[cov.name])]
        if len(bad):
            op = ">=" if cov.inclusive else ">"
            why = "the law takes its log" if cov.log_scale and cov.minimum == 0 else f"it must be {op} {cov.minimum:g}"
            raise DataError(
                f"column {col!r} (covariate {cov.name}) must be {op} {cov.minimum:g} ({why}); "
                f"bad values {list(frame.loc[bad[:_SHOW], col])} in {_rows(bad)}"
            )
    return xs


def _response(frame: pd.DataFrame, law: Law, y: str, drop_at_chance: bool):
    """The response values, the mask of rows kept, and the dropped rows with their reason."""
    ys = _numeric(frame, y, "response")
    rows = frame.index.to_numpy()
    check = law.response.validate(ys)
    bad = rows[check.invalid]
    if len(bad):
        raise DataError(f"column {y!r} ({law.response.label}) {check.invalid_reason}; "
                        f"bad values {list(frame.loc[bad[:_SHOW], y])} in {_rows(bad)}")
    unusable = check.unusable
    if unusable.any() and (not drop_at_chance or unusable.all()):
        what = "all rows are" if unusable.all() else "rows are"
        raise DataError(f"column {y!r}: {what} {check.unusable_reason} ({_rows(rows[unusable])}); "
                        "check --chance or drop those runs")
    dropped = tuple((r, f"{y} = {v:g} is {check.unusable_reason}") for r, v in zip(rows[unusable], ys[unusable]))
    return ys, ~unusable, dropped


def from_frame(
    frame: pd.DataFrame,
    law: Law,
    *,
    x: Sequence[str],
    y: str,
    where: str | None = None,
    drop_at_chance: bool = True,
) -> Data:
    """Validate a tidy table and map it to arrays for ``law``.

    Parameters
    ----------
    frame:
        One row per run (or per run × metric).
    law:
        The law to fit; its covariates and response decide what is valid.
    x:
        Column names mapped in order to ``law.covariates``.
    y:
        Column of the response (loss or accuracy).
    where:
        Optional ``DataFrame.query`` expression selecting rows, e.g. ``"loss < 3.4"``.
    drop_at_chance:
        For chance-normalised accuracy laws, drop (and record) rows with
        ``Q <= Q_rand`` or ``Q >= 1``, which ``log(-log Q')`` cannot represent.
        If False such rows are an error.

    Returns
    -------
    Data
        float64 covariates keyed by the law's names, the response, the kept row labels.

    Raises
    ------
    DataError
        Missing column, non-numeric/NaN/inf values, values outside a covariate's
        or the response's domain, a constant covariate, duplicate runs, or fewer
        usable rows than parameters.

    Examples
    --------
    >>> import bayescale as bs
    >>> runs = bs.datasets.gadre_long().query("train_dataset == 'rpj' and val_set == 'c4_val'")
    >>> bs.from_frame(runs, bs.laws.chinchilla, x=["N", "D"], y="loss")
    Data(35 rows: N, D -> loss)
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    x = list(x)
    if len(x) != len(law.covariates):
        raise DataError(
            f"law {law.name!r} reads {len(law.covariates)} covariate(s) "
            f"({', '.join(law.covariate_names)}) but {len(x)} column(s) were given ({', '.join(x) or 'none'})"
        )
    for col, cov in zip(x, law.covariates):
        if col not in frame.columns:
            raise _missing_column(col, frame, f"covariate {cov.name}")
    if y not in frame.columns:
        raise _missing_column(y, frame, "response")
    frame = query(frame, where)
    xs = _covariates(frame, law, x)
    ys, keep, dropped = _response(frame, law, y, drop_at_chance)
    xs = {k: v[keep] for k, v in xs.items()}
    ys, rows = ys[keep], frame.index.to_numpy()[keep]
    if ys.shape[0] < law.n_params + 1:
        raise DataError(
            f"only {ys.shape[0]} usable row(s) for law {law.name!r}, which has {law.n_params} parameters; "
            f"need at least {law.n_params + 1} (fewer rows than parameters cannot be fitted)"
        )
    for col, cov in zip(x, law.covariates):
        if np.ptp(xs[cov.name]) == 0.0:
            raise DataError(
                f"column {col!r} (covariate {cov.name}) is constant ({xs[cov.name][0]:g}) in all "
                f"{ys.shape[0]} rows; the law cannot be identified from it; use data that vary in {col!r}"
            )
    _no_duplicate_runs(xs, ys, rows, list(x) + [y])
    columns = {cov.name: col for col, cov in zip(x, law.covariates)} | {"y": y}
    return Data(x=xs, y=ys, rows=rows, columns=columns, dropped=dropped)


def from_arrays(law: Law, y: np.ndarray, **x: np.ndarray) -> Data:
    """Build :class:`Data` from arrays (validated like :func:`from_frame`).

    >>> import numpy as np
    >>> from bayescale import laws, from_arrays
    >>> from_arrays(laws.power_law, y=np.array([3.0, 2.6, 2.4, 2.3]), C=np.array([1e18, 1e19, 1e20, 1e21]))
    Data(4 rows: C -> y)
    """
    missing = [c for c in law.covariate_names if c not in x]
    if missing:
        raise DataError(f"law {law.name!r} needs covariate(s) {missing}; got {sorted(x)}")
    frame = pd.DataFrame({**{k: np.asarray(v, float) for k, v in x.items()}, "__y__": np.asarray(y, float)})
    d = from_frame(frame, law, x=list(law.covariate_names), y="__y__")
    return dataclasses.replace(d, columns={**{c: c for c in law.covariate_names}, "y": "y"})


def two_stage_data(
    law: Law,
    frame: pd.DataFrame,
    *,
    x: Sequence[str],
    proxy: str,
    y: str,
    stage2: pd.DataFrame | None = None,
    where: str | None = None,
) -> tuple[Data, Data, Data]:
    """The data of both stages of a composed ``law``, and of the composed law itself.

    Stage 1 (covariates ``x`` -> ``proxy``) and the composed law (``x`` -> ``y``) read
    ``frame``; stage 2 (``proxy`` -> ``y``) reads ``stage2`` when given (e.g. every
    checkpoint of a ladder) and ``frame`` otherwise.  ``where`` filters both tables.  Rows of a
    separate stage-2 table are labelled ``"stage2:<label>"``, so a refit on a subset of the
    stage-1 runs (:meth:`bayescale.fit.Fit.refit`) asks for the stage-2 rows explicitly.
    """
    if len(law.stages) != 2:
        raise DataError(f"law {law.name!r} is not a two-stage law (build one with bayescale.laws.compose)")
    first, second = law.stages
    d1 = from_frame(frame, first, x=x, y=proxy, where=where)
    d2 = from_frame(frame if stage2 is None else stage2, second, x=[proxy], y=y, where=where)
    if stage2 is not None:  # its rows are another table's: labels that can never match the stage-1 rows
        d2 = dataclasses.replace(d2, rows=np.array([f"stage2:{r}" for r in d2.rows], dtype=object))
    return d1, d2, from_frame(frame, law, x=x, y=y, where=where)
