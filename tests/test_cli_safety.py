"""The command line is safe on hostile and careless use: outputs, signals, memory, bad arguments.

Every case ends in exactly one stderr line naming the problem, the documented exit code, no
traceback, and the folder exactly as it was (nothing written, nothing replaced, no temporary
file left).  Most cases run in-process (:func:`bayescale.cli.main.main`); Ctrl-C during NUTS
and a closed pipe run ``python -m bayescale`` in a subprocess.
"""

import errno
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import bayescale.fit as bf
from bayescale.cli.main import main
from bayescale.convert import files
from bayescale.errors import Interrupted

C = np.geomspace(1e18, 1e22, 10)
FIT = ["--law", "power_law", "--x", "C", "--y", "loss", "--keep", "4"]


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "runs.csv"
    pd.DataFrame({"C": C, "loss": 1.7 + 900.0 * C**-0.15}).to_csv(path, index=False)
    return path


def listing(folder):
    """Every entry of ``folder`` (recursively) with its type, size and content digest."""
    out = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            p = os.path.join(root, name)
            st = os.lstat(p)
            body = open(p, "rb").read() if stat.S_ISREG(st.st_mode) else os.readlink(p) if stat.S_ISLNK(st.st_mode) \
                else b""
            out[os.path.relpath(p, folder)] = (stat.S_IFMT(st.st_mode), hash(body))
    return out


def refused(capsys, folder, args, code=2, message=""):
    """Run ``args``; the exit code, one stderr line containing ``message``, no traceback, ``folder`` unchanged."""
    before = listing(folder)
    got = main([str(a) for a in args])
    _, err = capsys.readouterr()
    assert got == code, (args, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bayescale: ") and "Traceback" not in err, (args, err)
    assert message in err, (args, err)
    assert listing(folder) == before, args
    return err


def never(*args, **kwargs):
    raise AssertionError("the fit must not start")


# --------------------------------------------------------------------------- outputs checked before any work


def test_outputs_that_must_not_be_written_are_refused_before_the_fit(csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bf, "fit_map", never)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "target.json").write_text("keep me")
    os.symlink(tmp_path / "target.json", tmp_path / "link.json")
    os.link(csv, tmp_path / "hardlink.csv")
    (tmp_path / "sub").mkdir()
    (tmp_path / "ro.json").write_text("read-only")
    os.chmod(tmp_path / "ro.json", 0o444)
    fit = ["fit", csv, *FIT]
    cases = [
        (["--json", tmp_path / "sub"], "is a folder"),
        (["--json", f"{tmp_path / 'sub'}{os.sep}"], "names a folder"),
        (["--json", tmp_path / "missing" / "x.json"], "the folder"),
        (["--json", csv / "x.json"], "is not a folder"),
        (["--json", csv], "is the input file"),
        (["--json", tmp_path / "hardlink.csv"], "is the input file"),
        (["--json", tmp_path / "fifo"], "is a FIFO"),
        (["--json", tmp_path / "link.json"], "is a symbolic link"),
        (["--json", "/dev/null"], "is a character device"),
        (["--json", tmp_path / "a.json", "--plot", tmp_path / "a.json"], "--json and --plot both name"),
        (["--json", tmp_path / "a.json", "--save", tmp_path / "sub" / ".." / "a.json"], "both name"),
        (["--json", "-"], "give a file path"),
        (["--json", ""], "give a file path"),
        (["--save", tmp_path / "ro.json"], "is read-only"),
    ]
    for extra, message in cases:
        refused(capsys, tmp_path, [*fit, *extra], message=message)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode) and os.path.islink(tmp_path / "link.json")
    assert (tmp_path / "target.json").read_text() == "keep me"
    # the other inputs: --stage2-data and --from
    refused(capsys, tmp_path, [*fit, "--stage2-data", csv, "--plot", csv], message="is the input file")
    refused(capsys, tmp_path, ["forecast", "--from", csv, "--at", "C=1e22", "--json", csv], message="input file")
    # demo --out: a file, or a folder whose result files are not regular
    refused(capsys, tmp_path, ["demo", "--out", csv], message="is not a folder")
    os.mkfifo(tmp_path / "sub" / "demo_results.json")
    refused(capsys, tmp_path, ["demo", "--out", tmp_path / "sub"], message="is a FIFO")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_folder_is_refused_before_the_fit(csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bf, "fit_map", never)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        refused(capsys, tmp_path, ["fit", csv, *FIT, "--json", ro / "x.json"], message="is not writable")
    finally:
        ro.chmod(0o755)


def test_a_folder_that_refuses_new_files_is_found_by_the_probe(csv, tmp_path, capsys, monkeypatch):
    """What root meets on a read-only file system: the access check passes, creating a file fails."""
    monkeypatch.setattr(bf, "fit_map", never)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    refused(capsys, tmp_path, ["fit", csv, *FIT, "--json", tmp_path / "x.json"], message="Read-only file system")


# --------------------------------------------------------------------------- all outputs or none


@pytest.mark.parametrize("failing", ["--save", "--json"])
def test_a_failing_write_leaves_neither_file_nor_temporary(csv, tmp_path, capsys, monkeypatch, failing):
    """A full disk while one output is written: the other, staged before or after, is not written either."""
    import pathlib

    import xarray as xr

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if failing == "--save":
        monkeypatch.setattr(xr.DataTree, "to_netcdf", full)
    else:  # --json is written after --save has been staged
        monkeypatch.setattr(pathlib.Path, "write_text", full)
    path = tmp_path / ("fit.nc" if failing == "--save" else "fit.json")
    refused(capsys, tmp_path, ["fit", csv, *FIT, "--json", tmp_path / "fit.json", "--save", tmp_path / "fit.nc"],
            message=f"cannot write {failing} {str(path)!r}: No space left on device; nothing written")


def test_a_failing_move_puts_back_what_was_moved(csv, tmp_path, capsys, monkeypatch):
    (tmp_path / "fit.json").write_text("old result")
    real, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", second_fails)
    refused(capsys, tmp_path, ["fit", csv, *FIT, "--json", tmp_path / "fit.json", "--plot", tmp_path / "fit.png"],
            message="Invalid cross-device link; nothing written")
    assert len(calls) >= 2 and (tmp_path / "fit.json").read_text() == "old result"


def test_outputs_are_written_together_on_success(csv, tmp_path, capsys):
    assert main([str(a) for a in ["fit", csv, *FIT, "--json", tmp_path / "fit.json", "--save", tmp_path / "f.nc"]]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.nc", "fit.json", "runs.csv"]  # no temporary left
    assert (tmp_path / "fit.json").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- ends of a command


@pytest.mark.parametrize(("raised", "code", "message"), [
    (Interrupted("interrupted after 3 of 10 starts screened"), 130,
     "bayescale: interrupted after 3 of 10 starts screened; nothing written"),
    (KeyboardInterrupt(), 130, "bayescale: interrupted; nothing written"),
    (MemoryError(), 2, "out of memory"),
    (type("XlaRuntimeError", (RuntimeError,), {})("RESOURCE_EXHAUSTED: Out of memory allocating 8 GB\nmore"), 2,
     "error: out of memory: RESOURCE_EXHAUSTED: Out of memory allocating 8 GB; lower --draws/--resamples"),
    (RuntimeError("boom\nsecond line"), 1, "bayescale: internal error: RuntimeError: boom (set BAYESCALE_DEBUG=1"),
    (PermissionError(errno.EACCES, "Permission denied", "/x"), 2, "cannot access '/x': Permission denied"),
])
def test_every_end_of_a_fit_is_one_line(csv, tmp_path, capsys, monkeypatch, raised, code, message):
    def fitter(*args, **kwargs):
        raise raised

    monkeypatch.setattr(bf, "fit_map", fitter)
    monkeypatch.delenv("BAYESCALE_DEBUG", raising=False)
    refused(capsys, tmp_path, ["fit", csv, *FIT, "--json", tmp_path / "out.json"], code=code, message=message)


def test_debug_shows_the_traceback(csv, monkeypatch):
    def fitter(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(bf, "fit_map", fitter)
    monkeypatch.setenv("BAYESCALE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["fit", str(csv), *FIT])


def test_sigterm_removes_the_temporaries_and_exits_143(csv, tmp_path, capsys, monkeypatch):
    import bayescale.cli.report as report

    def slow_json(args, payload, fit=None, draw=None):  # SIGTERM while --plot is written, --json already staged
        def plot(tmp):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)

        with files.outputs() as unit:
            unit.write(args.json, lambda tmp: open(tmp, "w").write("{}"), "--json")
            unit.write(args.plot, plot, "--plot")

    monkeypatch.setattr(report, "write_outputs", slow_json)
    monkeypatch.setattr(sys.modules["bayescale.cli.main"], "write_outputs", slow_json)
    refused(capsys, tmp_path, ["fit", csv, *FIT, "--json", tmp_path / "a.json", "--plot", tmp_path / "a.png"],
            code=143, message="bayescale: SIGTERM: interrupted; nothing written")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# --------------------------------------------------------------------------- memory and counts


def test_draws_and_resamples_beyond_the_budget_are_refused_before_the_fit(csv, tmp_path, capsys, monkeypatch):
    for name in ("fit_map", "fit_nuts", "fit_bootstrap"):
        monkeypatch.setattr(bf, name, never)
    fit = ["fit", csv, *FIT, "--memory", "1GB", "--json", tmp_path / "x.json"]
    refused(capsys, tmp_path, [*fit, "--method", "nuts", "--draws", "1e8"],
            message="draws per chain fit: lower --draws or --chains")
    refused(capsys, tmp_path, [*fit, "--method", "bootstrap", "--resamples", "1e8"],
            message="resamples fit: lower --resamples")
    refused(capsys, tmp_path, ["demo", "--out", tmp_path / "demo", "--resamples", "1e9", "--memory", "1GB"],
            message="over the memory budget of 1 GB")


@pytest.mark.parametrize(("extra", "message"), [
    (["--memory", "lots"], "argument --memory: memory 'lots' must look like 8GB"),
    (["--memory", "0"], "must be at least 1MB"),
    (["--draws", "2.5", "--method", "nuts"], "argument --draws: must be a whole number"),
    (["--draws", "abc"], "must be a whole number"),
    (["--draws", "0", "--method", "nuts"], "--draws must be at least 1, got 0"),
    (["--resamples", "-5"], "--resamples must be at least 1, got -5"),
    (["--keep", "inf"], "must be a whole number"),
    (["--seed", "1e30"], "argument --seed"),
    (["--interval", "nan"], "argument --interval: must be a finite number"),
    (["--chance", "inf"], "argument --chance: must be a finite number"),
    (["--method", "magic"], "invalid choice: 'magic'"),
    (["--drawz", "5"], "unrecognized arguments: --drawz"),
    (["--where"], "expected one argument"),
])
def test_bad_arguments_are_one_line(csv, tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.setattr(bf, "fit_map", never)
    refused(capsys, tmp_path, ["fit", csv, *FIT, *extra, "--json", tmp_path / "x.json"], message=message)


def test_careless_commands_are_one_line(csv, tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    text = tmp_path / "notes.txt"
    text.write_text("not a fit")
    for args, message in [
        ([], "the following arguments are required: command"),
        (["fitt"], "invalid choice: 'fitt'"),
        (["fit"], "give the data file"),
        (["fit", tmp_path / "nope.csv", *FIT], "does not exist"),
        (["fit", tmp_path, *FIT], "is a folder"),
        (["fit", empty, *FIT], "cannot read"),
        (["fit", csv, "--law", "power_law", "--x", "", "--y", "loss"], "--x is required"),
        (["forecast", "--from", text, "--at", "C=1e22"], "cannot read"),
        (["forecast", "--from", tmp_path, "--at", "C=1e22"], "is a folder"),
        (["forecast", csv, *FIT, "--at", ""], "give values for C"),
        (["optimal", csv, *FIT, "--compute", ""], "must be numbers"),
        (["compare", csv, "--laws", "power_law", "--x", "C", "--y", "loss"], "name two or more different laws"),
        (["demo", "--out", tmp_path / "no" / "demo"], "does not exist"),
    ]:
        refused(capsys, tmp_path, args, message=message)


def test_help_never_mentions_pandas(capsys):
    for command in ("fit", "compare"):
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "pandas" not in out and "an expression over the columns (see README: expressions)" in " ".join(
            out.split())


# --------------------------------------------------------------------------- real signals and pipes


def _default_sigint() -> None:
    # a test run started in the background (`make test &`) inherits SIGINT ignored, as a shell's background
    # jobs do; the child must see Ctrl-C as a user at a terminal would
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "bayescale", *map(str, args)], text=True,
                            preexec_fn=_default_sigint, **kwargs)


def test_ctrl_c_during_nuts_is_one_line_exit_130_nothing_written(csv, tmp_path):
    before = listing(tmp_path)
    p = _cli("fit", csv, *FIT, "--method", "nuts", "--chains", "1", "--warmup", "100", "--draws", "200000",
             "--json", tmp_path / "fit.json", "--save", tmp_path / "fit.nc", stderr=subprocess.PIPE,
             stdout=subprocess.DEVNULL, cwd=tmp_path)
    lines = []
    try:
        for line in p.stderr:  # the progress lines; interrupt once sampling runs
            lines.append(line)
            if "NUTS: iteration" in line:
                p.send_signal(signal.SIGINT)
                break
        rest = p.stderr.read()
        p.wait(timeout=120)
    finally:
        p.kill()
    ends = [line for line in rest.splitlines() if line.strip()]
    assert p.returncode == 130, (lines, rest)
    assert len(ends) == 1 and "Traceback" not in rest, rest
    assert ends[0].startswith("bayescale: interrupted") and ends[0].endswith("draws per chain; nothing written")
    assert listing(tmp_path) == before


def test_a_closed_pipe_ends_quietly(csv, tmp_path):
    p = _cli("fit", csv, *FIT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # like `| head` exiting before bayescale prints
    err = p.stderr.read()
    p.wait(timeout=120)
    assert p.returncode == 141 and err == "", err
