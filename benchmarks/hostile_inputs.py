"""A battery of hostile and careless inputs against the command line and the Python API (issue 13).

Every case runs in a fresh subprocess inside its own temporary folder and is *handled* when

- the exit status is the expected one (2 for bad input, 130 for Ctrl-C, 0 for a closed pipe),
- stderr is exactly one line (warnings aside) naming the problem, and holds no traceback,
- nothing was written, replaced or created: the folder's listing, every file's bytes and kind
  (regular, FIFO, device, symlink) are the same before and after, and no sentinel file appeared.

Python-API cases must end in one bayescale error (a ValueError / TypeError subclass) whose
message is one line.  The script prints one line per case and ``handled X of N``.

    python benchmarks/hostile_inputs.py            # every case (about 3 minutes on 2 cores)
    python benchmarks/hostile_inputs.py -k derive  # cases whose name holds 'derive'
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLI = [sys.executable, "-c", "import sys; from bayescale.cli.main import main; sys.exit(main())"]
FIT = ["--law", "chinchilla", "--x", "N,D", "--y", "loss", "--keep", "4", "--quiet"]
ACC = ["--law", "direct", "--x", "C", "--y", "acc", "--chance", "0.25", "--keep", "4", "--quiet"]


def tables(folder: Path) -> None:
    """runs.csv (N, D, loss; 40 runs), evals.csv (C, acc; 20 runs) and odd files around them."""
    rng = np.random.default_rng(0)
    n, d = 10 ** rng.uniform(7, 10, 40), 10 ** rng.uniform(9, 12, 40)
    loss = (1.8 + 480 * n**-0.34 + 2000 * d**-0.37) * np.exp(0.01 * rng.standard_normal(40))
    np.savetxt(folder / "runs.csv", np.column_stack([n, d, loss]), fmt="%.8g", delimiter=",",
               header="N,D,loss", comments="")
    c = np.geomspace(1e18, 1e22, 20)
    acc = 0.25 + 0.7 / (1 + (c / 3e20) ** -0.5)
    np.savetxt(folder / "evals.csv", np.column_stack([c, acc]), fmt="%.8g", delimiter=",", header="C,acc", comments="")
    for ext in ("gz", "bz2", "xz", "zst"):
        (folder / f"corrupt.csv.{ext}").write_bytes(b"\x1f\x8b\x08 this is not compressed data" * 3)
    import zipfile

    with zipfile.ZipFile(folder / "two.zip", "w") as z:
        z.writestr("a.csv", "N,D,loss\n1,2,3\n")
        z.writestr("b.csv", "N,D,loss\n1,2,3\n")
    (folder / "notnetcdf.nc").write_text("just text\n")


def _kind(p: Path) -> str:
    m = os.lstat(p).st_mode
    for name, test in (("link", stat.S_ISLNK), ("fifo", stat.S_ISFIFO), ("chr", stat.S_ISCHR), ("dir", stat.S_ISDIR)):
        if test(m):
            return name
    return "file"


def snapshot(folder: Path) -> dict[str, tuple[str, str]]:
    out = {}
    for p in sorted(folder.rglob("*")):
        kind = _kind(p)
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if kind == "file" else ""
        out[str(p.relative_to(folder))] = (kind, digest)
    return out


def _saved(folder: Path, edit: str) -> list[str]:
    """A saved MAP fit of evals.csv, edited with h5py as ``edit`` says; the argv forecasting from it."""
    subprocess.run([*CLI, "fit", "evals.csv", *ACC, "--allow-warnings", "--save", "fit.nc"], cwd=folder, check=True,
                   capture_output=True)
    import h5py

    with h5py.File(folder / "fit.nc", "r+") as f:
        if edit == "scale":
            f["posterior/alpha"][...] = f["posterior/alpha"][...] * 0.4
        elif edit == "nan":
            f["posterior/alpha"][...] = np.nan
        elif edit == "data":
            f["observed_data/y"][3] = f["observed_data/y"][3] * 1.01
        elif edit == "problems":
            f.attrs["problems"] = "[]" if f.attrs["problems"] != "[]" else '["a flag added by hand"]'
    return ["forecast", "--from", "fit.nc", "--at", "C=1e23", "--json", "out.json"]


def _big(folder: Path, rows: int = 60_000) -> None:
    rng = np.random.default_rng(1)
    n, d = 10 ** rng.uniform(7, 10, rows), 10 ** rng.uniform(9, 12, rows)
    loss = (1.8 + 480 * n**-0.34 + 2000 * d**-0.37) * np.exp(0.01 * rng.standard_normal(rows))
    np.savetxt(folder / "big.csv", np.column_stack([n, d, loss]), fmt="%.8g", delimiter=",", header="N,D,loss",
               comments="")


def _device(folder: Path) -> str:
    """A character device node like /dev/null inside the folder (root only), else a FIFO."""
    try:
        os.mknod(folder / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        os.mkfifo(folder / "null")
    return "null"


def _api(code: str) -> list[str]:
    """A Python-API case: ``code`` must raise a one-line bayescale ValueError / TypeError."""
    prelude = ("import sys, numpy as np, jax, bayescale as bs\n"
               "from bayescale import laws\n"
               "from bayescale.errors import BayescaleError\n"
               "c = np.geomspace(1e18, 1e22, 12); y = 1.7 + 900 * c ** -0.15\n"
               "data = bs.from_arrays(laws.power_law, y=y, C=c)\n"
               "fit = bs.fit_map(laws.power_law, data, warn=False)\n")
    wrapped = (prelude + "try:\n" + "".join(f"    {line}\n" for line in code.splitlines()) +
               "except BayescaleError as e:\n"
               "    assert isinstance(e, (ValueError, TypeError)), type(e)\n"
               "    print(f'{type(e).__name__}: {e}', file=sys.stderr); sys.exit(2)\n"
               "sys.exit(0)\n")
    return ["@python", wrapped]


CASES: list[tuple[str, object, int | str]] = [
    # (name, argv | (setup(folder) -> argv), expected exit status)
    ("derive @Path touch", ["fit", "runs.csv", *FIT, "--derive", "Z=@Path('pwned').touch()"], 2),
    ("derive __import__ os.system", ["fit", "runs.csv", *FIT, "--derive", "Z=__import__('os').system('touch pwned')"], 2),
    ("where __globals__ chain", ["fit", "runs.csv", *FIT, "--where", "N.__class__.__init__.__globals__"], 2),
    ("where backtick dunder", ["fit", "runs.csv", *FIT, "--where", "`__class__`.__init__ > 0"], 2),
    ("where subclasses", ["fit", "runs.csv", *FIT, "--where", "().__class__.__bases__[0].__subclasses__()"], 2),
    ("where open()", ["fit", "runs.csv", *FIT, "--where", "open('pwned', 'w')"], 2),
    ("where lambda", ["fit", "runs.csv", *FIT, "--where", "(lambda: 1)() > 0"], 2),
    ("where comprehension", ["fit", "runs.csv", *FIT, "--where", "[x for x in N]"], 2),
    ("where deep nesting", ["fit", "runs.csv", *FIT, "--where", "(" * 5000 + "N" + ")" * 5000 + " > 0"], 2),
    ("where not boolean", ["fit", "runs.csv", *FIT, "--where", "N * 2"], 2),
    ("where unknown column", ["fit", "runs.csv", *FIT, "--where", "lss < 3"], 2),
    ("holdout getattr", ["compare", "evals.csv", "--laws", "direct,bnsl", "--x", "C", "--y", "acc", "--chance",
                         "0.25", "--method", "map", "--holdout", "getattr(C, 'x') > 0", "--quiet"], 2),
    ("json /dev/null-like device", lambda f: ["fit", "runs.csv", *FIT, "--json", _device(f)], 2),
    ("json onto the input CSV", ["fit", "runs.csv", *FIT, "--json", "runs.csv"], 2),
    ("json into a folder", lambda f: (f.joinpath("sub").mkdir(), ["fit", "runs.csv", *FIT, "--json", "sub"])[1], 2),
    ("json missing parent", ["fit", "runs.csv", *FIT, "--json", "no/such/dir/out.json"], 2),
    ("json onto a FIFO", lambda f: (os.mkfifo(f / "pipe"), ["fit", "runs.csv", *FIT, "--json", "pipe"])[1], 2),
    ("json through a symlink", lambda f: (f.joinpath("target.json").write_text("{}"),
                                          os.symlink("target.json", f / "link.json"),
                                          ["fit", "runs.csv", *FIT, "--json", "link.json"])[-1], 2),
    ("json and save the same path", ["fit", "runs.csv", *FIT, "--json", "out.nc", "--save", "out.nc"], 2),
    ("save folder is a file", ["fit", "runs.csv", *FIT, "--json", "out.json", "--save", "runs.csv/fit.nc"], 2),
    ("saved fit: later draws scaled", lambda f: _saved(f, "scale"), 2),
    ("saved fit: NaN draws", lambda f: _saved(f, "nan"), 2),
    ("saved fit: observed data edited", lambda f: _saved(f, "data"), 2),
    ("saved fit: problems edited", lambda f: _saved(f, "problems"), 2),
    ("--from a text file", ["forecast", "--from", "notnetcdf.nc", "--at", "C=1e23"], 2),
    ("--draws 1e8", ["fit", "runs.csv", *FIT, "--method", "nuts", "--draws", "1e8"], 2),
    ("--resamples 1e8", ["fit", "runs.csv", *FIT, "--method", "bootstrap", "--resamples", "1e8"], 2),
    ("--memory too small for 60,000 rows", lambda f: (_big(f), ["fit", "big.csv", *FIT, "--memory", "1MB"])[1], 2),
    ("--memory 1MB on 40 rows runs in batches", ["fit", "runs.csv", *FIT, "--memory", "1MB", "--json", "out.json"],
     "@wrote out.json"),
    ("--memory nonsense", ["fit", "runs.csv", *FIT, "--memory", "lots"], 2),
    ("--draws 0", ["fit", "runs.csv", *FIT, "--method", "nuts", "--draws", "0"], 2),
    ("corrupt .gz", ["fit", "corrupt.csv.gz", *FIT], 2),
    ("corrupt .bz2", ["fit", "corrupt.csv.bz2", *FIT], 2),
    ("corrupt .xz", ["fit", "corrupt.csv.xz", *FIT], 2),
    ("corrupt .zst", ["fit", "corrupt.csv.zst", *FIT], 2),
    ("zip with two CSVs", ["fit", "two.zip", *FIT], 2),
    ("Ctrl-C during NUTS", "@sigint", 130),
    ("closed pipe (| head -c 1)", "@pipe", 0),
    ("api: DataFrame to fit_map", _api("import pandas as pd\nbs.fit_map(laws.power_law, pd.DataFrame({'C': c, 'y': y}))"), 2),
    ("api: law returning (n, 1)", _api(
        "import dataclasses\n"
        "bad = dataclasses.replace(laws.power_law, name='column', fn=lambda p, x: laws.power_law.fn(p, x)[:, None])\n"
        "bs.fit_map(bad, data)"), 2),
    ("api: all-equal responses", _api("bs.fit_map(laws.power_law, bs.from_arrays(laws.power_law, y=np.full(12, 2.0), C=c))"), 2),
    ("api: losses near 1e-30", _api(
        "f = bs.fit_map(laws.power_law, bs.from_arrays(laws.power_law, y=1e-30 * y, C=c), warn=False)\n"
        "right = abs(f.point['alpha'] - 0.15) < 1e-3 and abs(f.point['E'] / 1.7e-30 - 1) < 1e-3\n"
        "if not f.ok: raise bs.NotIdentifiedError(f.problems[0])  # flagged: handled\n"
        "if right: raise bs.DataError('fitted correctly: alpha %.4f, E %.3g' % (f.point['alpha'], f.point['E']))"), 2),
    ("api: forecast at C = 0", _api("bs.forecast(fit, {'C': np.array([0.0])}, key=jax.random.key(0))"), 2),
    ("api: forecast at C = -1e21", _api("bs.forecast(fit, {'C': np.array([-1e21])}, key=jax.random.key(0))"), 2),
    ("api: parameter named sigma", _api(
        "import dataclasses\ndataclasses.replace(laws.power_law, params=('E', 'A', 'sigma'))"), 2),
    ("api: NaN prior", _api("import numpyro.distributions as dist\nlaws.power_law.with_priors(E=dist.Normal(float('nan'), 1.0, validate_args=False))"), 2),
    ("api: keep=0", _api("bs.fit_map(laws.power_law, data, keep=0)"), 2),
    ("api: from_arrays unequal lengths", _api("bs.from_arrays(laws.power_law, y=y, C=c[:5])"), 2),
    ("api: string key", _api("bs.fit_bootstrap(laws.power_law, data, key='0', resamples=4)"), 2),
]


def _sigint(folder: Path, env: dict) -> tuple[int, str, float]:
    p = subprocess.Popen([*CLI, "fit", "runs.csv", *FIT, "--method", "nuts", "--warmup", "100000", "--draws",
                          "100000", "--chains", "2", "--json", "out.json", "--save", "out.nc"],
                         cwd=folder, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    time.sleep(25)
    t = time.perf_counter()
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        return -9, err + "\n(still running 60 s after SIGINT)", time.perf_counter() - t
    return p.returncode, err, time.perf_counter() - t


def _pipe(folder: Path, env: dict) -> tuple[int, str]:
    fit = subprocess.Popen([*CLI, "fit", "runs.csv", *FIT], cwd=folder, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    assert fit.stdout is not None
    fit.stdout.read(1)
    fit.stdout.close()  # what `| head -c 1` does
    _, err = fit.communicate(timeout=300)
    return fit.returncode, err.decode()


def one_line(err: str) -> list[str]:
    """stderr lines that are not warnings (a flagged fit's RuntimeWarning line is fine)."""
    return [ln for ln in err.splitlines() if ln.strip() and "Warning" not in ln]


def run_case(name: str, spec, expected: int, env: dict) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        folder = Path(tmp)
        tables(folder)
        extra = ""
        if callable(spec):
            spec = spec(folder)
        before = snapshot(folder)
        t0 = time.perf_counter()
        if spec == "@sigint":
            rc, err, after_signal = _sigint(folder, env)
            extra = f", ended {after_signal:.1f} s after SIGINT"
        elif spec == "@pipe":
            rc, err = _pipe(folder, env)
            rc = 0 if rc in (0, 141) else rc
        else:
            argv = ([sys.executable, "-c", spec[1]] if spec[0] == "@python" else [*CLI, *spec])
            p = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
            rc, err = p.returncode, p.stderr
        seconds = time.perf_counter() - t0
        changes = [k for k in set(before) | set(snapshot(folder)) if before.get(k) != snapshot(folder).get(k)]
        lines = one_line(err)
        expected_lines = 0 if spec == "@pipe" else 1
        if isinstance(expected, str):  # "@wrote NAME": must succeed, creating NAME and nothing else
            wrote = expected.split()[1]
            ok = rc == 0 and not lines and changes == [wrote]
            why = [] if ok else [f"exit {rc}", f"changed {sorted(changes)[:3]}", *lines[-1:]]
            return ok, f"{'ok  ' if ok else 'FAIL'} {name} ({seconds:.1f} s): wrote {sorted(changes)}" + \
                ("" if ok else f"   <- {'; '.join(why)}")
        ok = rc == expected and len(lines) == expected_lines and "Traceback" not in err and not changes
        why = [] if ok else [f"exit {rc} (want {expected})"] + ([f"{len(lines)} stderr lines"] if len(lines) !=
                                                               expected_lines else []) + \
            (["traceback"] if "Traceback" in err else []) + ([f"changed {sorted(changes)[:3]}"] if changes else [])
        shown = (lines[-1] if lines else "")[:160]
        return ok, f"{'ok  ' if ok else 'FAIL'} {name} ({seconds:.1f} s{extra}): {shown}" + \
            ("" if ok else f"   <- {'; '.join(why)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="run the cases whose name contains this text")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("BAYESCALE_DEBUG", None)
    chosen = [c for c in CASES if args.k in c[0]]
    handled = 0
    for name, spec, expected in chosen:
        ok, line = run_case(name, spec, expected, env)
        handled += ok
        print(line, flush=True)
    print(f"handled {handled} of {len(chosen)}")


if __name__ == "__main__":
    main()
