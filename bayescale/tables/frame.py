"""The data boundary: tidy pandas tables in, validated float64 arrays out.

Everything past :func:`from_frame` works on a :class:`~bayescale.fit.Data` value and
never sees pandas.  Bad input raises :class:`~bayescale.fit.DataError` whose message
names the column and the rows at fault and says how to fix it.  Expressions (``--where``
filters, ``--derive`` columns, hold-out conditions such as ``"C > 6e21"``) are read here
too, in bayescale's own small language (:mod:`bayescale.tables.expr`; never pandas ``eval``).
"""

from __future__ import annotations

import dataclasses
import difflib
import lzma
import os
import stat
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.errors import ArgumentTypeError, expect
from bayescale.fit.data import Data, DataError
from bayescale.laws import Law
from bayescale.tables.expr import evaluate, mask, shown

__all__ = ["columns_of", "condition", "derive", "from_arrays", "from_frame", "query", "read_csv", "suggest",
           "two_stage_data"]

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


_COMPRESSION = {".gz": "gzip", ".tgz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstandard",
                ".zip": "zip", ".tar": "tar"}
_DECOMPRESSION_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile, tarfile.TarError)
_READ_ERRORS: tuple[type[BaseException], ...] = (ValueError, ImportError, *_DECOMPRESSION_ERRORS)


def _check_file(p: Path, name: str) -> str | None:
    """The compression pandas will infer from the name (None: plain text); refuses what cannot be a CSV."""
    try:
        info = p.stat()
    except FileNotFoundError:
        raise DataError(f"data file {name!r} does not exist") from None
    except OSError as exc:
        raise DataError(f"cannot read data file {name!r}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"data path {name!r} is a folder; give a CSV file")
    if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) or stat.S_ISSOCK(info.st_mode):
        raise DataError(f"data path {name!r} is a device or socket, not a file; give a CSV file")
    suffixes = [s.lower() for s in p.suffixes[-2:]]
    kind = _COMPRESSION.get(suffixes[-1]) if suffixes else None
    if kind == "gzip" and suffixes[-2:-1] == [".tar"]:
        kind = "tar"
    try:
        with open(p, "rb") as fh:
            head = fh.read(8192) if kind is None and stat.S_ISREG(info.st_mode) else b""
    except PermissionError:
        raise DataError(f"cannot read data file {name!r}: permission denied") from None
    except OSError as exc:
        raise DataError(f"cannot read data file {name!r}: {exc.strerror or exc}") from None
    if b"\x00" in head:
        raise DataError(f"cannot read {name!r} as CSV: it is binary (it holds NUL bytes), not a text file")
    return kind


def _unreadable(name: str, kind: str | None, exc: BaseException) -> DataError:
    """One line for a file pandas could not read."""
    detail = (str(exc).splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, PermissionError):
        return DataError(f"cannot read data file {name!r}: permission denied")
    if isinstance(exc, ImportError):
        return DataError(f"cannot read {name!r}: reading {kind or 'compressed'} files needs an optional package "
                         f"({detail}); or decompress the file first")
    if isinstance(exc, ValueError) and "files found in ZIP" in detail:
        inside = detail.partition(": ")[2] or "none"
        return DataError(f"cannot read {name!r}: a zip archive must hold exactly one CSV file, this one holds "
                         f"{'none' if detail.startswith('Zero') else inside}; unzip it and give the CSV")
    if kind is not None and isinstance(exc, (*_DECOMPRESSION_ERRORS, *_zstd_errors())):
        return DataError(f"cannot read {name!r}: it is not valid {kind} data ({detail}); the name ends in "
                         f"{Path(name).suffix!r}, so it is read as {kind}: is the file complete, or misnamed?")
    if isinstance(exc, UnicodeDecodeError):
        return DataError(f"cannot read {name!r} as CSV: it is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                         f"at offset {exc.start:,}); is it a CSV file?")
    return DataError(f"cannot read {name!r} as CSV: {detail}")


def _zstd_errors() -> tuple[type[BaseException], ...]:
    module = sys.modules.get("zstandard")
    error = getattr(module, "ZstdError", None)
    return (error,) if isinstance(error, type) and issubclass(error, BaseException) else ()


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV table with at least one row (compressed as its name says: .gz, .bz2, .xz, .zst, .zip).

    A missing, unreadable, binary, corrupt or empty file is a :class:`DataError` naming it.
    """
    expect(path, (str, os.PathLike), "path", "read_csv")
    name = str(os.fsdecode(path))
    p = Path(path)
    kind = _check_file(p, name)
    try:
        frame = pd.read_csv(p)
    except _READ_ERRORS as exc:  # pandas' ParserError and UnicodeDecodeError are ValueErrors
        raise _unreadable(name, kind, exc) from None
    except Exception as exc:
        if any(isinstance(exc, error) for error in _zstd_errors()):
            raise _unreadable(name, kind, exc) from None
        raise
    if frame.empty:
        raise DataError(f"{name!r} has no data rows")
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


class _Columns(Mapping):
    """The columns of a table as arrays for :mod:`bayescale.tables.expr`, converted when first read."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.index = {str(c): i for i, c in enumerate(frame.columns)}

    def __getitem__(self, name: str) -> np.ndarray:
        column = self.frame.iloc[:, self.index[name]]
        if pd.api.types.is_bool_dtype(column.dtype) and not column.isna().any():
            return column.to_numpy(dtype=bool)
        if pd.api.types.is_numeric_dtype(column.dtype):
            return column.to_numpy(dtype=float, na_value=np.nan)
        return column.to_numpy(dtype=object, na_value=None)

    def __contains__(self, name: object) -> bool:
        return name in self.index

    def __iter__(self) -> Iterator[str]:
        return iter(self.index)

    def __len__(self) -> int:
        return len(self.index)


def columns_of(frame: pd.DataFrame) -> Mapping[str, np.ndarray]:
    """The columns of ``frame`` by name (as text) for :func:`~bayescale.tables.expr.evaluate`, converted when read.

    Numbers become float64 (missing: NaN), true/false columns bool, anything else text
    (an object array; missing: None).
    """
    return _Columns(frame)


def query(frame: pd.DataFrame, where: str | None) -> pd.DataFrame:
    """The rows of ``frame`` where the condition ``where`` holds (all if None or empty).

    ``where`` is an expression of :mod:`bayescale.tables.expr`, e.g. ``"loss < 3.4 and C > 1e19"``;
    anything outside that language is an :class:`~bayescale.errors.ExpressionError`.
    """
    if where is None:
        return frame
    expect(where, str, "where", "query")
    if not where.strip():
        return frame
    keep = mask(where, _Columns(frame), what=f"--where {shown(where)} is not a valid filter", rows=len(frame))
    return frame[keep]


def derive(frame: pd.DataFrame, specs: Sequence[str]) -> pd.DataFrame:
    """Add columns ``NAME=EXPR`` (:mod:`bayescale.tables.expr`) to a copy of ``frame``, in order.

    Each may use the columns derived before it.  Rows where a derived value is NaN or
    infinite (``log(0)``) are reported if that column is fitted (:func:`from_frame`).
    """
    if isinstance(specs, str) or not isinstance(specs, Sequence):
        raise ArgumentTypeError(f"derive: specs must be a list of 'NAME=EXPR' strings, got {type(specs).__name__}")
    frame = frame.copy()
    for spec in specs:
        expect(spec, str, "each derive spec", "derive")
        name, sep, text = spec.partition("=")
        if not sep or not name.strip() or not text.strip() or text.startswith("="):
            raise DataError(f"--derive {shown(spec)} must look like NAME=EXPR, e.g. \"D=C / (6 * N)\"")
        values = evaluate(text, _Columns(frame), what=f"--derive {shown(spec)} is not a valid expression",
                          rows=len(frame), start=len(name) + 1)
        frame[name.strip()] = values
    return frame


def condition(data: Data, expr, *, what: str = "condition") -> np.ndarray:
    """Mask of the rows of ``data`` meeting ``expr``.

    ``expr`` is an expression over the covariate names (``"C > 6e21"``, in the language of
    :mod:`bayescale.tables.expr`; ``y`` names the response), a callable of the covariate
    dict, or a boolean mask.  ``what`` names it in an error (``"holdout"``).
    """
    if not isinstance(expr, str):
        return data.mask(expr)
    columns = {**data.x, "y": data.y}
    return data.mask(mask(expr, columns, what=f"{what} {shown(expr)} is not a valid condition", rows=data.n))


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
        Optional condition selecting rows (:mod:`bayescale.tables.expr`), e.g. ``"loss < 3.4"``.
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
    >>> runs = bs.datasets.gadre_long()
    >>> bs.from_frame(runs, bs.laws.chinchilla, x=["N", "D"], y="loss",
    ...               where="train_dataset == 'rpj' and val_set == 'c4_val'")
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
    arrays = {"y": y, **x}
    values = {}
    for name, value in arrays.items():
        try:
            values[name] = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            kind = getattr(getattr(value, "dtype", None), "name", None) or type(value).__name__
            raise DataError(f"from_arrays: {name} must be numbers, got {kind} values") from None
        if values[name].ndim != 1:
            raise DataError(f"from_arrays: {name} must be a 1-D array (one value per run), "
                            f"got shape {values[name].shape}")
    lengths = {name: v.shape[0] for name, v in values.items()}
    if len(set(lengths.values())) > 1:
        raise DataError("from_arrays: the arrays differ in length ("
                        + ", ".join(f"{name}: {n}" for name, n in lengths.items())
                        + "); give every covariate and y one value per run")
    frame = pd.DataFrame({**{k: values[k] for k in x}, "__y__": values["y"]})
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
