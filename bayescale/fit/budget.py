"""The memory budget of batched work: estimate before allocating, chunk to fit, refuse what cannot.

Batched stages (the MAP screen over starts x rows, the bootstrap pool, NUTS draws x
points) ask :func:`chunk` how many items fit in the budget, or :func:`require` whether one
allocation does.  The budget defaults to half of physical RAM; set it for a block of code
with :func:`memory_budget` (the CLI's ``--memory``) or the ``BAYESCALE_MEMORY`` variable
(``"8GB"``, ``"512MB"``, a number of bytes).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from bayescale.errors import ArgumentError, MemoryBudgetError

__all__ = ["budget", "chunk", "memory_budget", "parse_bytes", "require", "show_bytes"]

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_override: list[int] = []


def parse_bytes(text: str | int | float) -> int:
    """``"8GB"``, ``"512MiB"``, ``"2e9"`` or a number -> bytes (an :class:`ArgumentError` if not positive)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9.]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", str(text).lower())
        if not m or m.group(2) not in _UNITS:
            raise ArgumentError(f"memory {text!r} must look like 8GB, 512MB or a number of bytes")
        value = float(m.group(1)) * _UNITS[m.group(2)]
    if not value >= 1e6:
        raise ArgumentError(f"memory {text!r} must be at least 1MB")
    return int(value)


def show_bytes(n: float) -> str:
    """``1.5 GB``: bytes for a message."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def _ram() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 10**9


def budget() -> int:
    """Bytes batched work may allocate: the innermost :func:`memory_budget`, ``BAYESCALE_MEMORY``, or RAM / 2."""
    if _override:
        return _override[-1]
    env = os.environ.get("BAYESCALE_MEMORY")
    return parse_bytes(env) if env else _ram() // 2


@contextlib.contextmanager
def memory_budget(limit: str | int | float) -> Iterator[int]:
    """Set the budget for the block (``with memory_budget("4GB"): fit_map(...)``)."""
    _override.append(parse_bytes(limit))
    try:
        yield _override[-1]
    finally:
        _override.pop()


def require(nbytes: float, what: str, fix: str) -> None:
    """Refuse, before allocating, work that needs more than the budget: one line saying what would fit.

    >>> require(1e3, "the MAP screen", "use fewer starts")
    """
    limit = budget()
    if nbytes > limit:
        raise MemoryBudgetError(f"{what} needs about {show_bytes(nbytes)}, over the memory budget of "
                                f"{show_bytes(limit)}; {fix}, or raise the budget (--memory / BAYESCALE_MEMORY)")


def chunk(per_item: float, total: int, fixed: float = 0.0, what: str = "", fix: str = "") -> int:
    """How many of ``total`` items, each ``per_item`` bytes (plus ``fixed`` once), fit in the budget (>= 1).

    Raises :class:`MemoryBudgetError` when not even one item fits.
    """
    room = budget() - fixed
    if room < per_item:
        require(fixed + per_item, what or "one batch", fix or "use fewer rows")
    return max(1, min(int(total), int(room // max(per_item, 1.0))))
