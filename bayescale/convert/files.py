"""Outputs written whole, all together or not at all, and never over what must not be replaced.

Every file bayescale writes (``save``, the CLI's ``--json``, ``--save``, ``--plot``) goes
through here:

* :func:`check_output` refuses, before any work, a path that must not be written: a
  folder, a device, a FIFO, a socket, a symbolic link (its target is never replaced), a
  read-only file, a file that is one of the command's inputs, a folder that is missing or
  cannot be written.  It is checked again just before the file is moved into place.
* :func:`outputs` opens a unit of writes: each file is written to a temporary file
  beside its path (``tempfile.mkstemp`` in the same folder, so the move cannot cross
  devices) and only once every one is complete are they all moved into place
  (``os.replace``).  On any failure -- an ``OSError`` (a full disk, a read-only file
  system), another exception, Ctrl-C or SIGTERM -- every temporary file is removed and
  files already moved are put back, so the paths hold what they held before.
* :func:`atomic_write` writes one file: inside an open unit it joins that unit, else it
  is a unit of its own.

Failures are :class:`~bayescale.errors.OutputError`: one line naming the path (and the
command-line flag, when there is one) and what is wrong, ending in "nothing written".
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from bayescale.errors import OutputError

__all__ = ["Outputs", "atomic_write", "check_output", "outputs", "written"]

_units: list[Outputs] = []
_written: list[Path] = []


def _name(path: str | os.PathLike, flag: str | None) -> str:
    return f"{flag} {str(path)!r}" if flag else repr(str(path))


def _kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISLNK: "a symbolic link", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket"}
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _full(path: str | os.PathLike) -> str:
    """The absolute path with the folders' links resolved but not the file's own name."""
    p = Path(os.path.abspath(os.fspath(path)))
    return str(Path(os.path.realpath(p.parent)) / p.name)


def check_output(path: str | os.PathLike, flag: str | None = None, *, inputs: Iterable[str | os.PathLike] = (),
                 probe: bool = True) -> Path:
    """``path`` as a :class:`~pathlib.Path` if a file may be written there, else an :class:`OutputError`.

    It must not be ``-`` or empty, its folder must exist and be writable, and it must be
    absent or a regular, writable file that is none of ``inputs``.  ``probe`` creates and
    removes a temporary file in the folder, which finds a read-only file system or a folder
    that refuses new files even to root.

    >>> check_output("fit.json", "--json")
    PosixPath('fit.json')
    """
    what = _name(path, flag)
    text = os.fspath(path)
    if text in ("", "-"):
        raise OutputError(f"{what}: give a file path (writing to standard output is not supported)")
    target = Path(text)
    if text.endswith(os.sep) or target.name in ("", ".", ".."):
        raise OutputError(f"{what} names a folder; give a file path")
    parent = target.parent
    try:
        info = os.lstat(target)
    except (FileNotFoundError, NotADirectoryError):
        info = None
    except OSError as exc:
        raise OutputError(f"cannot write {what}: {exc.strerror}") from None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise OutputError(f"{what} is {_kind(info.st_mode)}, which bayescale never replaces; "
                              "give the path of a regular file or of a new one")
        for source in inputs:
            try:
                if _same(info, os.stat(source)):
                    raise OutputError(f"{what} is the input file {str(source)!r}; writing it would destroy the "
                                      "input: give another path")
            except OSError:
                continue
        if not os.access(target, os.W_OK) or not info.st_mode & 0o222:  # no write bit: read-only even to root
            raise OutputError(f"{what} is read-only; make it writable or give another path")
    else:
        for source in inputs:
            if _full(source) == _full(target):
                raise OutputError(f"{what} is the input file {str(source)!r}; give another path")
    folder = str(parent) or "."
    if not parent.exists():
        raise OutputError(f"cannot write {what}: the folder {folder!r} does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write {what}: {folder!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what}: the folder {folder!r} is not writable")
    if probe:
        try:
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise OutputError(f"cannot write {what}: {exc.strerror} (folder {folder!r})") from None
        os.close(fd)
        os.unlink(tmp)
    return target


def check_outputs(paths: Mapping[str, str | os.PathLike], inputs: Iterable[str | os.PathLike] = ()) -> None:
    """:func:`check_output` for each ``{flag: path}``, and no two flags naming the same file."""
    inputs = [i for i in inputs if i]
    seen: dict[str, str] = {}
    for flag, path in paths.items():
        check_output(path, flag, inputs=inputs)
        key = _full(path)
        with contextlib.suppress(OSError):
            info = os.stat(path)
            key = f"{info.st_dev}:{info.st_ino}"
        if key in seen:
            raise OutputError(f"{seen[key]} and {flag} both name {str(path)!r}; give each output its own path")
        seen[key] = flag


class Outputs:
    """One unit of writes: files staged under temporary names and moved into place together.

    Use through :func:`outputs`; :meth:`write` stages one file, and leaving the ``with``
    block normally commits them all.
    """

    def __init__(self, inputs: Iterable[str | os.PathLike] = ()) -> None:
        self.inputs = [i for i in inputs if i]
        self.staged: list[tuple[str, Path, str]] = []  # (what, target, temporary file)
        self.labels: dict[str, str] = {}

    def label(self, path: str | os.PathLike, flag: str) -> None:
        """Name ``path`` by ``flag`` in messages (``--save 'fit.nc'``)."""
        self.labels[_full(path)] = flag

    def write(self, path: str | os.PathLike, write: Callable[[str], None], flag: str | None = None) -> Path:
        """Call ``write(tmp)`` on a new temporary file beside ``path`` and stage it; returns ``path``."""
        flag = flag or self.labels.get(_full(path))
        what = _name(path, flag)
        target = check_output(path, flag, inputs=self.inputs, probe=False)
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise OutputError(f"cannot write {what}: {exc.strerror}; nothing written") from None
        os.close(fd)
        self.staged.append((what, target, tmp))
        try:
            write(tmp)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        except OSError as exc:
            raise OutputError(f"cannot write {what}: {exc.strerror or exc}; nothing written") from None
        return target

    def adopt(self, source: str | os.PathLike, path: str | os.PathLike, flag: str | None = None) -> Path:
        """Stage ``source``, a finished file or folder on the same file system, to be moved to ``path``."""
        flag = flag or self.labels.get(_full(path))
        target = check_output(path, flag, inputs=self.inputs, probe=False)
        self.staged.append((_name(path, flag), target, os.fspath(source)))
        return target

    def discard(self) -> None:
        """Remove every staged temporary file."""
        for _, _, tmp in self.staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self.staged = []

    def commit(self) -> list[Path]:
        """Move every staged file into place, or none: a failure puts back the files already moved."""
        moved: list[tuple[Path, str | None]] = []  # (target, backup of what it held, or None: it was absent)
        current = ""
        try:
            for what, target, tmp in self.staged:
                current = what
                check_output(target, inputs=self.inputs, probe=False)  # nothing replaced it while we worked
                backup = None
                if target.exists():
                    backup = str(target.parent / f".{target.name}.{secrets.token_hex(6)}.old")
                    os.link(target, backup)
                moved.append((target, backup))
                os.replace(tmp, target)
        except BaseException as exc:
            for target, backup in reversed(moved):
                with contextlib.suppress(OSError):
                    if backup is None:
                        target.unlink(missing_ok=True)
                    elif os.path.exists(target) and os.path.samefile(backup, target):  # not replaced yet
                        os.unlink(backup)  # (rename between two links of one file would do nothing)
                    else:
                        os.replace(backup, target)
            self.discard()
            if isinstance(exc, OutputError):
                raise OutputError(f"{exc}; nothing written") from None
            if isinstance(exc, OSError):
                raise OutputError(f"cannot write {current}: {exc.strerror or exc}; nothing written") from None
            raise
        for _, backup in moved:
            if backup is not None:
                with contextlib.suppress(OSError):
                    os.unlink(backup)
        done = [target for _, target, _ in self.staged]
        self.staged = []
        _written.extend(done)
        return done


@contextlib.contextmanager
def outputs(inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Outputs]:
    """A unit of writes: every :func:`atomic_write` in the block is moved into place when it ends, or none.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with outputs() as unit:
    ...     _ = atomic_write(folder / "a.txt", lambda tmp: pathlib.Path(tmp).write_text("a"))
    ...     (folder / "a.txt").exists()
    False
    >>> (folder / "a.txt").read_text()
    'a'
    """
    unit = Outputs(inputs)
    _units.append(unit)
    try:
        yield unit
    except BaseException:
        unit.discard()
        raise
    finally:
        _units.remove(unit)
    unit.commit()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it to ``path``.

    ``path`` ends up holding either its old content or the complete new file, never part
    of one; on any error the temporary file is removed.  Inside :func:`outputs` the move
    waits for the end of the unit.  The file gets the usual permissions (0666 less the
    umask), not the private ones of a temporary file.  A ``path`` that must not be
    replaced (a folder, device, FIFO, symbolic link) is an :class:`OutputError`.
    """
    if _units:
        return _units[-1].write(path, write)
    with outputs() as unit:
        return unit.write(path, write)


def written() -> list[Path]:
    """Every path moved into place so far in this process (the CLI says "nothing written" if none)."""
    return list(_written)
