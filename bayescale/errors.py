"""Every error bayescale raises, in one place (imports nothing; every room may use it).

Each is a :class:`BayescaleError` and also the builtin a caller would expect
(:class:`ValueError` or :class:`TypeError`), so ``except ValueError`` keeps working.  The
message is one line that names the argument, column, row or file at fault and what would
fix it; the command line prints it as ``bayescale: error: ...`` and exits 2.  A Ctrl-C during
long work becomes :class:`Interrupted` (a :class:`KeyboardInterrupt`, exit 130).
"""

from __future__ import annotations

import contextlib
import signal
import threading
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


_pending = [False]  # a Ctrl-C arrived during chunked work and waits for the end of the running chunk


def _on_sigint(signum, frame) -> None:
    """The first Ctrl-C is noted and acted on between chunks; a second one interrupts at once."""
    if _pending[0]:
        raise KeyboardInterrupt
    _pending[0] = True


class _Progress:
    """How much of the work is done, updated by the loop that runs it in chunks.

    Setting :attr:`done` is where a noted Ctrl-C takes effect: the setter raises
    :class:`KeyboardInterrupt`, which :func:`interruptible` turns into one :class:`Interrupted` line.
    """

    def __init__(self, total: int, unit: str) -> None:
        self.total, self.unit, self._done = int(total), unit, 0

    @property
    def done(self) -> int:
        return self._done

    @done.setter
    def done(self, value: int) -> None:
        self._done = value
        if _pending[0]:
            raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible(total: int, unit: str) -> Iterator[_Progress]:
    """Run chunked work so that Ctrl-C between chunks ends in one :class:`Interrupted` line.

    The body advances ``progress.done`` after each chunk.  In the main thread, while Python's
    own SIGINT handler is in place, a Ctrl-C is noted and acted on when the running chunk
    ends (a compiled chunk cannot be stopped midway; Python alone may drop a
    :class:`KeyboardInterrupt` raised inside JAX's callbacks); a second Ctrl-C interrupts at
    once.  Either becomes ``Interrupted("interrupted after 1,200 of 2,000 draws")``.  An inner
    :class:`Interrupted` passes through unchanged; work that ends with a Ctrl-C noted still
    ends in :class:`Interrupted`.

    >>> with interruptible(10, "draws") as progress:
    ...     progress.done += 10
    """
    progress = _Progress(total, unit)
    owner = threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous = signal.signal(signal.SIGINT, _on_sigint) if owner else None
    try:
        try:
            yield progress
        except Interrupted:
            raise
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted after {progress.done:,} of {progress.total:,} {progress.unit}") from None
        if _pending[0]:
            raise Interrupted(f"interrupted after {progress.done:,} of {progress.total:,} {progress.unit}")
    finally:
        if owner:
            signal.signal(signal.SIGINT, previous)
            _pending[0] = False
