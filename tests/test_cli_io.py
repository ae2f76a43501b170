"""The CLI's saved fits (--save/--from), plots (--plot), validation mixes (--mix) and every bad input.

Bad input is exercised in-process through :func:`bayescale.cli.main` (one process, one JAX
start-up) and must give exit code 2, one line on stderr naming the column/row and the fix,
no traceback and no output file.  A property-based test throws random malformed tables at it.
"""

import json
import string

import numpy as np
import pandas as pd
import pytest
from conftest import gadre_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayescale.cli import main


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def long_csv(tmp_path_factory):
    return gadre_csv(tmp_path_factory, "train_dataset == 'rpj'", "rpj.csv")


def test_save_then_forecast_and_optimal_from_the_file(long_csv, tmp_path, capsys):
    saved, png = tmp_path / "fit.nc", tmp_path / "fit.png"
    code, _, err = cli(capsys, "fit", long_csv, "--law", "chinchilla", "--x", "N,D", "--y", "loss",
                       "--where", "val_set == 'c4_val'", "--method", "bootstrap", "--resamples", "40", "--starts", "4",
                       "--quiet", "--save", saved, "--plot", png)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    fresh = tmp_path / "fresh.json"
    code, _, err = cli(capsys, "forecast", long_csv, "--law", "chinchilla", "--x", "N,D", "--y", "loss",
                       "--where", "val_set == 'c4_val'", "--method", "bootstrap", "--resamples", "40", "--starts", "4",
                       "--quiet", "--at", "N=7e9;D=1.4e11", "--json", fresh)
    assert code == 0, err
    later = tmp_path / "later.json"
    code, out, err = cli(capsys, "forecast", "--from", saved, "--at", "N=7e9;D=1.4e11", "--json", later,
                         "--plot", tmp_path / "fc.png")
    assert code == 0, err
    assert (tmp_path / "fc.png").read_bytes()[:4] == b"\x89PNG"
    a, b = json.loads(fresh.read_text()), json.loads(later.read_text())
    assert b["method"] == "bootstrap"
    assert b["points"][0]["estimate"] == pytest.approx(a["points"][0]["estimate"], rel=1e-9)  # same seed, same fit
    opt = tmp_path / "opt.json"
    code, _, err = cli(capsys, "optimal", "--from", saved, "--compute", "1e21", "--json", opt,
                       "--plot", tmp_path / "opt.png")
    assert code == 0, err
    assert (tmp_path / "opt.png").read_bytes()[:4] == b"\x89PNG"
    n = json.loads(opt.read_text())["optima"][0]["N"]
    assert n["lo"] <= n["estimate"] <= n["hi"]


def test_mix_of_validation_sets_lies_between_its_parts(long_csv, tmp_path, capsys):
    base = ["optimal", long_csv, "--law", "chinchilla", "--x", "N,D", "--y", "loss", "--compute", "1e21", "--quiet"]
    code_set, web_set = "paloma_dolma_100_programing_languages", "paloma_falcon-refinedweb"
    n = {}
    for name, extra in {"code": ["--where", f"val_set == '{code_set}'"], "web": ["--where", f"val_set == '{web_set}'"],
                        "mix": ["--by", "val_set", "--mix", f"{code_set}=1,{web_set}=1"]}.items():
        out = tmp_path / f"{name}.json"
        code, _, err = cli(capsys, *base, *extra, "--json", out)
        assert code == 0, err
        payload = json.loads(out.read_text())
        n[name] = payload["optima"][0]["N"]["estimate"]
    assert payload["mix"] == {code_set: 0.5, web_set: 0.5}  # weights normalised
    assert min(n["code"], n["web"]) < n["mix"] < max(n["code"], n["web"])


def _table(tmp_path, name="t.csv", **columns):
    path = tmp_path / name
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


C = np.geomspace(1e18, 1e22, 8)
LOSS = 1.7 + 900.0 * C**-0.15
ACC = 0.25 + 0.75 * np.exp(-100.0 * C**-0.1)


def _bad_inputs(tmp_path):
    """(arguments, message) for every bad input the CLI must refuse."""
    ok = _table(tmp_path, "ok.csv", C=C, loss=LOSS)
    power = ["--law", "power_law", "--x", "C", "--y", "loss"]
    acc = ["--law", "direct", "--x", "C", "--y", "acc", "--chance", "0.25"]
    nan = LOSS.copy()
    nan[3] = np.nan
    inf = C.copy()
    inf[2] = np.inf
    zero = C.copy()
    zero[5] = 0.0
    pct = ACC * 100
    below = np.full(8, 0.2)
    dup = _table(tmp_path, "dup.csv", C=np.r_[C, C[2]], loss=np.r_[LOSS, LOSS[2]])
    text = tmp_path / "text.csv"
    text.write_text("C,loss\n1e18,3.1\n1e19,abc\n")
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\xff\xfe\x81\x00")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    passk = _table(tmp_path, "passk.csv", C=np.repeat(C[:4], 3), k=np.tile([0.0, 1.0, 4.0], 4),
                   p=np.linspace(0.1, 0.6, 12))
    saved_junk = tmp_path / "junk.nc"
    saved_junk.write_text("not a fit")
    return [
        (["fit", tmp_path / "missing.csv", *power], "does not exist"),
        (["fit", garbage, *power], "cannot read"),
        (["fit", empty, *power], "cannot read"),
        (["fit", text, *power], "non-numeric value(s) ['abc'] in row 1"),
        (["fit", ok, "--law", "power_law", "--x", "c", "--y", "loss"], "Did you mean 'C'"),
        (["fit", ok, "--law", "power_law", "--x", "C", "--y", "los"], "Did you mean 'loss'"),
        (["fit", _table(tmp_path, "nan.csv", C=C, loss=nan), *power], "NaN or infinite value in row 3"),
        (["fit", _table(tmp_path, "inf.csv", C=inf, loss=LOSS), *power], "NaN or infinite value in row 2"),
        (["fit", _table(tmp_path, "zero.csv", C=zero, loss=LOSS), *power], "must be > 0 (the law takes its log)"),
        (["fit", _table(tmp_path, "neg.csv", C=C, loss=-LOSS), *power], "must be > 0"),
        (["fit", _table(tmp_path, "pct.csv", C=C, acc=pct), *acc], "must lie in [0, 1]"),
        (["fit", _table(tmp_path, "below.csv", C=C, acc=below), *acc], "all rows are at or below chance"),
        (["fit", passk, "--law", "pass_at_k", "--x", "C,k", "--y", "p"], "column 'k' (covariate k) must be >= 1"),
        (["fit", _table(tmp_path, "few.csv", C=C[:3], loss=LOSS[:3]), *power], "fewer rows than parameters"),
        (["fit", dup, *power], "duplicate runs: rows 2, 8"),
        (["fit", _table(tmp_path, "const.csv", C=np.full(8, 1e20), loss=LOSS), *power], "is constant"),
        (["fit", ok, "--law", "powerlaw", "--x", "C", "--y", "loss"], "unknown law 'powerlaw'. Did you mean power_law"),
        (["fit", ok, *power, "--where", "loss >"], "is not a valid filter"),
        (["fit", ok, *power, "--where", "loss > 100"], "fewer rows than parameters"),
        (["forecast", ok, *power, "--at", "C=1e22,abc"], "must be numbers"),
        (["forecast", ok, *power, "--at", "D=1e22"], "'D' is not a covariate"),
        (["fit", ok, *power, "--interval", "1.5"], "--interval must lie in (0, 1)"),
        (["fit", ok, *power, "--method", "nuts", "--chains", "0"], "--chains must be at least 1"),
        (["fit", ok, *power, "--save", tmp_path / "no" / "x.nc"], "folder"),
        (["fit", ok], "--law and --x and --y are required"),
        (["forecast", "--from", tmp_path / "missing.nc", "--at", "C=1e22"], "does not exist"),
        (["forecast", "--from", saved_junk, "--at", "C=1e22"], "cannot read"),
        (["forecast", "--from", saved_junk, "--law", "power_law", "--at", "C=1e22"], "drop --law"),
        (["optimal", ok, "--law", "chinchilla", "--x", "C,C", "--y", "loss", "--compute", "1e21", "--by", "x"],
         "give --mix too"),
        (["optimal", _table(tmp_path, "g.csv", N=C, D=C, loss=LOSS, g=["a"] * 8), "--law", "chinchilla", "--x", "N,D",
          "--y", "loss", "--compute", "1e21", "--by", "g", "--mix", "b=1"], "'b' is not a value of column 'g'"),
        (["optimal", _table(tmp_path, "g2.csv", N=C, D=C, loss=LOSS, g=["a"] * 8), "--law", "chinchilla", "--x",
          "N,D", "--y", "loss", "--compute", "1e21", "--by", "g", "--mix", "a=-1"], "must be >= 0"),
    ]


def test_every_bad_input_is_one_line_exit_2_no_traceback_no_file(tmp_path, capsys):
    for args, message in _bad_inputs(tmp_path):
        out = tmp_path / "out.json"
        code, _, err = cli(capsys, *args, "--json", out) if args[0] != "demo" else cli(capsys, *args)
        assert code == 2, (args, err)
        assert message in err, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
        assert not out.exists(), args


_cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -1.0, 1e-300, 1e300, 2.5, 1e20]),
    st.text(alphabet=string.ascii_letters + string.digits + " ,.-", max_size=4),
    st.none(),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.tuples(_cells, _cells), min_size=8, max_size=8),
       names=st.sampled_from([("C", "loss"), ("C", "los"), ("c", "loss")]))
def test_random_malformed_tables_never_crash_or_report_nan(tmp_path, capsys, cells, names):
    path = tmp_path / "random.csv"
    pd.DataFrame(cells, columns=list(names)).to_csv(path, index=False)
    out = tmp_path / "random.json"
    out.unlink(missing_ok=True)
    code, _, err = cli(capsys, "fit", path, "--law", "power_law", "--x", "C", "--y", "loss", "--keep", "4",
                       "--json", out)
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("bayescale: error:")
        assert not out.exists()
    else:  # a table that happened to be valid: a success must not report NaN
        payload = json.loads(out.read_text())
        estimates = [v["estimate"] for v in payload["params"].values()]
        if code == 0:
            assert all(e is not None and np.isfinite(e) for e in estimates), payload
        assert code in (0, 1)
