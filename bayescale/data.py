"""The data boundary: tidy pandas tables in, validated float64 arrays out.

Everything past :func:`from_frame` works on a :class:`Data` value and never sees
pandas.  Bad input raises :class:`DataError` whose message names the column and
the rows at fault and says how to fix it.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayescale.law import Accuracy, ChanceAccuracy, Law

__all__ = ["Data", "DataError", "from_frame", "from_arrays"]

_SHOW = 5


class DataError(ValueError):
    """Input data that cannot be fitted; the message names the column/rows and the fix."""


@dataclasses.dataclass(frozen=True)
class Data:
    """Validated observations for one law.

    Attributes
    ----------
    x:
        Covariate arrays keyed by the law's covariate names (float64, shape ``(n,)``).
    y:
        The response in natural units (loss, accuracy), shape ``(n,)``.
    rows:
        The row labels of the source table that were kept, for messages and plots.
    columns:
        Source column for each covariate name, and ``"y"`` for the response.
    dropped:
        ``(row label, reason)`` for rows that were removed (e.g. accuracy at or
        below chance, which the chance-normalised space cannot represent).
    """

    x: Mapping[str, np.ndarray]
    y: np.ndarray
    rows: np.ndarray
    columns: Mapping[str, str]
    dropped: tuple[tuple[object, str], ...] = ()

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def select(self, keep) -> Data:
        """The rows where the boolean mask ``keep`` (shape ``(n,)``) is true."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != self.y.shape:
            raise ValueError(f"mask has shape {keep.shape}, data has {self.n} rows")
        return dataclasses.replace(
            self, x={k: v[keep] for k, v in self.x.items()}, y=self.y[keep], rows=self.rows[keep]
        )

    def mask(self, condition) -> np.ndarray:
        """Boolean mask of the rows meeting ``condition``.

        ``condition`` is an expression over the covariate names (``"C > 6e21"``, as in
        ``DataFrame.eval``; ``y`` names the response) or a callable of the covariate dict.
        """
        if callable(condition):
            out = np.asarray(condition(self.x), dtype=bool)
        else:
            frame = pd.DataFrame({**self.x, "y": self.y})
            try:
                out = np.asarray(frame.eval(condition), dtype=bool)
            except Exception as exc:  # pandas raises many types for a bad expression
                raise DataError(
                    f"condition {condition!r} is not valid over columns {', '.join(frame.columns)}: {exc}"
                ) from None
        if out.shape != self.y.shape:
            raise DataError(f"condition {condition!r} did not give one true/false per row")
        return out


def _rows(labels: Sequence) -> str:
    labels = list(labels)
    shown = ", ".join(str(r) for r in labels[:_SHOW])
    more = f" and {len(labels) - _SHOW} more" if len(labels) > _SHOW else ""
    return f"row{'s' if len(labels) > 1 else ''} {shown}{more}"


def _missing_column(name: str, frame: pd.DataFrame, role: str) -> DataError:
    columns = [str(c) for c in frame.columns]
    lower = {c.lower(): c for c in columns}
    close = [lower[m] for m in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
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

    Raises
    ------
    DataError
        Missing column, non-numeric/NaN/inf values, values outside a covariate's
        or the response's domain, a constant covariate, or fewer usable rows than
        parameters.
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
    if where:
        try:
            frame = frame.query(where)
        except Exception as exc:  # pandas raises many types for a bad expression
            raise DataError(f"--where {where!r} is not a valid filter: {exc}") from None
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"--where {where!r} did not select rows")

    xs = {cov.name: _numeric(frame, col, f"covariate {cov.name}") for col, cov in zip(x, law.covariates)}
    ys = _numeric(frame, y, "response")
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

    response = law.response
    keep = np.ones(ys.shape, bool)
    dropped: list[tuple[object, str]] = []
    if isinstance(response, (ChanceAccuracy, Accuracy)):
        outside = rows[(ys < 0.0) | (ys > 1.0)]
        if len(outside):
            raise DataError(
                f"column {y!r} is an accuracy and must lie in [0, 1]; values "
                f"{list(frame.loc[outside[:_SHOW], y])} in {_rows(outside)} (percentages? divide by 100)"
            )
    if isinstance(response, ChanceAccuracy):
        unusable = (ys <= response.chance) | (ys >= 1.0)
        if unusable.any():
            if not drop_at_chance or unusable.all():
                what = "all rows are" if unusable.all() else "rows are"
                raise DataError(
                    f"column {y!r}: {what} at or below chance (Q_rand = {response.chance:g}) or at 1, which "
                    f"log(-log Q') cannot represent ({_rows(rows[unusable])}); "
                    "check --chance or drop those runs"
                )
            keep &= ~unusable
            dropped += [(r, f"{y} = {v:g} is at or below chance {response.chance:g} or at 1")
                        for r, v in zip(rows[unusable], ys[unusable])]
    else:
        bad = rows[~(ys > response.lower)]
        if len(bad):
            raise DataError(
                f"column {y!r} ({response.label}) must be > {response.lower:g} (the fit takes its log); "
                f"bad values {list(frame.loc[bad[:_SHOW], y])} in {_rows(bad)}"
            )

    xs = {k: v[keep] for k, v in xs.items()}
    ys, rows = ys[keep], rows[keep]
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
    return Data(x=xs, y=ys, rows=rows, columns=columns, dropped=tuple(dropped))


def from_arrays(law: Law, y: np.ndarray, **x: np.ndarray) -> Data:
    """Build :class:`Data` from arrays (validated like :func:`from_frame`).

    >>> import numpy as np
    >>> from bayescale import laws, data
    >>> d = data.from_arrays(laws.power_law, y=np.array([3.0, 2.6, 2.4, 2.3]), C=np.array([1e18, 1e19, 1e20, 1e21]))
    """
    missing = [c for c in law.covariate_names if c not in x]
    if missing:
        raise DataError(f"law {law.name!r} needs covariate(s) {missing}; got {sorted(x)}")
    frame = pd.DataFrame({**{k: np.asarray(v, float) for k, v in x.items()}, "__y__": np.asarray(y, float)})
    d = from_frame(frame, law, x=list(law.covariate_names), y="__y__")
    return dataclasses.replace(d, columns={**{c: c for c in law.covariate_names}, "y": "y"})
