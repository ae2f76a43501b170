"""Every error bayescale raises, in one place (imports nothing; every room may use it).

Each is a :class:`BayescaleError` and also the builtin a caller would expect
(:class:`ValueError` or :class:`TypeError`), so ``except ValueError`` keeps working.  The
message is one line that names the argument, column, row or file at fault and what would
fix it; the command line prints it as ``bayescale: error: ...`` and exits 2.  A Ctrl-C during
long work becomes :class:`Interrupted` (a :class:`KeyboardInterrupt`, exit 130).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "BayescaleError",
    "DataError",
    "ExpressionError",
    "Interrupted",
    "MemoryBudgetError",
    "NotIdentifiedError",
    "OutputError",
    "SavedFitError",
    "expect",
    "interruptible",
]


class BayescaleError(Exception):
    """Base class of bayescale's errors: one line naming the problem and the fix."""


class ArgumentError(BayescaleError, ValueError):
    """An argument of a public function has a value it cannot take (the message names it)."""


class ArgumentTypeError(BayescaleError, TypeError):
    """An argument of a public function has the wrong type (the message names it and the type expected)."""


class DataError(BayescaleError, ValueError):
    """Input data that cannot be fitted; the message names the column/rows and the fix."""


class ExpressionError(DataError):
    """A filter or derived-column expression that is malformed or uses something outside the language."""


class SavedFitError(BayescaleError, ValueError):
    """A saved fit that cannot be read, or whose content does not match its digest."""


class OutputError(BayescaleError, ValueError):
    """An output path that must not be written (a folder, a device, an input file, an unwritable folder)."""


class MemoryBudgetError(BayescaleError, ValueError):
    """Work whose estimated memory exceeds the budget; the message says what would fit."""


class NotIdentifiedError(BayescaleError, ValueError):
    """A fit whose parameters the data cannot determine (flat or degenerate objective)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during long work, caught between chunks: ``interrupted after 1,200 of 2,000 draws``."""


def expect(value, types: type | tuple[type, ...], argument: str, function: str):
    """``value`` if it is an instance of ``types``, else an :class:`ArgumentTypeError` naming ``argument``.

    >>> expect(3, int, "keep", "fit_map")
    3
    """
    if isinstance(value, types):
        return value
    names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
    raise ArgumentTypeError(f"{function}: {argument} must be {names}, got {type(value).__name__}")


class _Progress:
    """How much of the work is done, updated by the loop that runs it in chunks."""

    def __init__(self, total: int, unit: str) -> None:
        self.total, self.unit, self.done = int(total), unit, 0


@contextlib.contextmanager
def interruptible(total: int, unit: str) -> Iterator[_Progress]:
    """Run chunked work so that Ctrl-C between chunks ends in one :class:`Interrupted` line.

    The body advances ``progress.done`` after each chunk; a :class:`KeyboardInterrupt`
    (Python raises it once the running compiled chunk returns) becomes
    ``Interrupted("interrupted after 1,200 of 2,000 draws")``.  An inner
    :class:`Interrupted` passes through unchanged.

    >>> with interruptible(10, "draws") as progress:
    ...     progress.done += 10
    """
    progress = _Progress(total, unit)
    try:
        yield progress
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {progress.done:,} of {progress.total:,} {progress.unit}") from None
