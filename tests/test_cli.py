"""The ``bayescale`` command: the fit contract, bad input (exit 2, one line, no file), the demo.

These run the CLI in a subprocess, where JAX has its default configuration
(float32, no x64 set by the tests): the package must enable float64 itself.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import gadre_csv as write_gadre_csv
from conftest import shared_file


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bayescale", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = np.repeat(np.geomspace(5e7, 5e9, 6), 5)
    d = n * np.tile([3.0, 10.0, 30.0, 100.0, 300.0], 6)
    loss = (1.8 + 480 * n**-0.35 + 2100 * d**-0.37) * np.exp(0.002 * rng.standard_normal(n.size))
    path = tmp_path_factory.mktemp("cli") / "runs.csv"
    pd.DataFrame({"params": n, "tokens": d, "loss": loss}).to_csv(path, index=False)
    return path


def test_fit_prints_table_and_writes_json(runs_csv, tmp_path):
    out = tmp_path / "fit.json"
    r = run_cli("fit", runs_csv, "--law", "chinchilla", "--x", "params,tokens", "--y", "loss", "--json", out)
    assert r.returncode == 0, r.stderr
    assert "alpha" in r.stdout and "MAP converged" in r.stdout
    payload = json.loads(out.read_text())
    assert set(payload) >= {"law", "method", "n_obs", "params", "diagnostics", "seconds"}
    assert payload["law"] == "chinchilla" and payload["method"] == "map" and payload["n_obs"] == 30
    assert set(payload["params"]) == {"E", "A", "B", "alpha", "beta"}
    # MAP's intervals are its Laplace band, and say so
    assert payload["interval_kind"] == "laplace" and payload["diagnostics"]["band"] == "laplace"
    assert all(v["lo"] < v["estimate"] < v["hi"] for v in payload["params"].values()), payload["params"]
    assert "lo/hi: central 90% Laplace interval over 1,000 draws" in r.stdout
    assert payload["diagnostics"]["converged"] is True
    assert payload["diagnostics"]["objective"] > 0
    assert payload["params"]["alpha"]["estimate"] == pytest.approx(0.35, abs=0.05)


def test_fit_where_and_derive(runs_csv, tmp_path):
    out = tmp_path / "fit.json"
    r = run_cli(
        "fit", runs_csv, "--law", "chinchilla", "--derive", "C=6 * params * tokens", "--derive", "N=params",
        "--x", "N,tokens", "--y", "loss", "--where", "C > 1e17", "--json", out,
    )
    assert r.returncode == 0, r.stderr
    frame = pd.read_csv(runs_csv)
    assert json.loads(out.read_text())["n_obs"] == int((6 * frame.params * frame.tokens > 1e17).sum())


def test_accuracy_law_with_chance(tmp_path):
    c = np.geomspace(1e18, 1e22, 10)
    acc = 0.25 + 0.75 * np.exp(-100.0 * c**-0.1)
    path = tmp_path / "acc.csv"
    pd.DataFrame({"flops": c, "acc": acc}).to_csv(path, index=False)
    out = tmp_path / "fit.json"
    r = run_cli("fit", path, "--law", "direct", "--x", "flops", "--y", "acc", "--chance", "0.25", "--json", out)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["params"]["alpha"]["estimate"] == pytest.approx(0.1, rel=1e-4)


def test_two_stage_needs_proxy(tmp_path):
    c = np.geomspace(1e18, 1e22, 10)
    loss = 20.0 * c**-0.05
    path = tmp_path / "ts.csv"
    pd.DataFrame({"C": c, "val": loss, "acc": 1.2 - 0.3 * loss}).to_csv(path, index=False)
    r = run_cli("fit", path, "--law", "two_stage_linear", "--x", "C", "--y", "acc")
    assert r.returncode == 2 and "--proxy" in r.stderr
    r = run_cli("fit", path, "--law", "two_stage_linear", "--x", "C", "--proxy", "val", "--y", "acc")
    assert r.returncode == 0, r.stderr
    assert "alpha" in r.stdout and " b " in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--law", "chinchila", "--x", "params,tokens", "--y", "loss"), "unknown law 'chinchila'. Did you mean chinchilla"),
        (("--law", "chinchilla", "--x", "params,tokenz", "--y", "loss"), "column 'tokenz' (covariate D) is not in the table. Did you mean 'tokens'"),
        (("--law", "chinchilla", "--x", "params", "--y", "loss"), "reads 2 covariate(s)"),
        (("--law", "chinchilla", "--x", "params,tokens", "--y", "loss", "--where", "loss >>> 2"), "--where 'loss >>> 2' is not a valid filter"),
        (("--law", "chinchilla", "--x", "params,tokens", "--y", "loss", "--chance", "0.25"), "has no chance level"),
        (("--law", "chinchilla", "--x", "params,tokens", "--y", "loss", "--derive", "nonsense"), "must look like NAME=EXPR"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_file(runs_csv, tmp_path, args, message):
    out = tmp_path / "fit.json"
    r = run_cli("fit", runs_csv, *args, "--json", out)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_and_unreadable_files(tmp_path):
    r = run_cli("fit", tmp_path / "nope.csv", "--law", "chinchilla", "--x", "N,D", "--y", "L")
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage\x00")
    r = run_cli("fit", binary, "--law", "chinchilla", "--x", "N,D", "--y", "L")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_bad_values_name_the_row(runs_csv, tmp_path):
    frame = pd.read_csv(runs_csv)
    frame.loc[7, "tokens"] = -1.0
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    r = run_cli("fit", path, "--law", "chinchilla", "--x", "params,tokens", "--y", "loss")
    assert r.returncode == 2 and "column 'tokens'" in r.stderr and "row 7" in r.stderr


def test_chinchilla_data_from_the_shell(tmp_path):
    src = shared_file("chinchilla", "svg_extracted_data.csv")
    out = tmp_path / "fit.json"
    r = run_cli(
        "fit", src, "--law", "chinchilla", "--derive", "N=`Model Size`", "--derive", "D=`Training FLOP` / (6 * N)",
        "--x", "N,D", "--y", "loss", "--where", "loss < 3.44", "--json", out,
    )
    assert r.returncode == 0, r.stderr
    payload = json.loads(out.read_text())
    assert payload["n_obs"] == 240  # the 5 outliers are the only runs with loss >= 3.44
    assert payload["params"]["alpha"]["estimate"] == pytest.approx(0.3473, abs=0.003)


def test_help_shows_an_example():
    r = run_cli("fit", "--help")
    assert r.returncode == 0 and "bayescale fit runs.csv --law chinchilla" in r.stdout


def test_demo_fits_the_bundled_data(tmp_path):
    r = run_cli("demo", "--out", tmp_path / "demo", "--keep", "16", "--resamples", "40", "--starts", "4")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "demo" / "demo_results.json").read_text())
    rows = result["fits"]
    assert len(rows) == 6 and all(row["converged"] for row in rows)
    for row in rows:
        assert row["N_opt_1e21_lo"] <= row["N_opt_1e21"] <= row["N_opt_1e21_hi"]
    for corpus, s in result["code_vs_web"].items():
        assert s["ratio_lo"] <= s["ratio"] <= s["ratio_hi"] and 0.0 <= s["p_code_smaller"] <= 1.0, corpus
        assert s["paired_draws"] >= 30
    assert Path(tmp_path / "demo" / "demo_compute_optimal.png").stat().st_size > 10_000
    by = {(row["corpus"], row["val_set"]): row for row in rows}
    # the data README's orientation fit: C4-trained, N*(1e21) 4.9e9 (C4 val) vs 1.7e9 (code)
    assert by[("c4_original", "c4_val")]["N_opt_1e21"] == pytest.approx(4.9e9, rel=0.05)
    assert by[("c4_original", "paloma_dolma_100_programing_languages")]["N_opt_1e21"] == pytest.approx(1.7e9, rel=0.05)
    assert "N*(1e21)" in r.stdout


def test_bootstrap_method_gives_intervals_around_the_estimate(tmp_path):
    c = np.geomspace(1e17, 1e23, 20)
    y = (1.7 + 900.0 * c**-0.15) * np.exp(0.003 * np.random.default_rng(0).standard_normal(c.size))
    path = tmp_path / "pl.csv"
    pd.DataFrame({"C": c, "loss": y}).to_csv(path, index=False)
    out = tmp_path / "boot.json"
    r = run_cli("fit", path, "--law", "power_law", "--x", "C", "--y", "loss", "--method", "bootstrap",
                "--resamples", "40", "--starts", "4", "--seed", "3", "--json", out, "--quiet")
    assert r.returncode == 0, r.stderr
    payload = json.loads(out.read_text())
    assert payload["method"] == "bootstrap" and payload["diagnostics"]["resamples"] == 40
    for name, v in payload["params"].items():
        assert v["lo"] <= v["estimate"] <= v["hi"], name
    assert payload["params"]["alpha"]["lo"] < 0.15 < payload["params"]["alpha"]["hi"]
    assert "bootstrap interval" in r.stdout


def test_nuts_method_reports_diagnostics_and_flags_a_short_run(tmp_path):
    c = np.geomspace(1e17, 1e23, 16)
    y = 900.0 * c**-0.15 * np.exp(0.01 * np.random.default_rng(0).standard_normal(c.size))
    path = tmp_path / "ppl.csv"
    pd.DataFrame({"C": c, "loss": y}).to_csv(path, index=False)
    out = tmp_path / "post.json"
    r = run_cli("fit", path, "--law", "pure_power_law", "--x", "C", "--y", "loss", "--method", "nuts",
                "--chains", "2", "--warmup", "400", "--draws", "800", "--interval", "0.99", "--json", out, "--quiet")
    payload = json.loads(out.read_text())
    diag = payload["diagnostics"]
    assert {"r_hat_max", "ess_bulk_min", "divergences"} <= set(diag)
    assert r.returncode == (0 if diag["ok"] else 1), (r.returncode, diag)
    assert payload["method"] == "nuts" and set(payload["params"]) == {"A", "alpha", "sigma"}
    for name, v in payload["params"].items():
        assert v["lo"] <= v["estimate"] <= v["hi"], name
    assert payload["params"]["alpha"]["lo"] < 0.15 < payload["params"]["alpha"]["hi"]
    # far too short a run is flagged: exit 1 with the reason, unless --allow-warnings
    short = run_cli("fit", path, "--law", "pure_power_law", "--x", "C", "--y", "loss", "--method", "nuts",
                    "--chains", "2", "--warmup", "3", "--draws", "10", "--quiet")
    assert short.returncode == 1 and "not trustworthy" in short.stderr


@pytest.fixture(scope="module")
def gadre_csv(tmp_path_factory):
    return write_gadre_csv(tmp_path_factory, "train_dataset == 'rpj' and val_set == 'c4_val'", "rpj_c4.csv")


def test_forecast_on_the_bundled_runs(gadre_csv, tmp_path):
    out = tmp_path / "fc.json"
    r = run_cli("forecast", gadre_csv, "--law", "chinchilla", "--x", "N,D", "--y", "loss",
                "--at", "N=1e9,7e9;D=2e10,1.4e11", "--method", "bootstrap", "--resamples", "40", "--starts", "4",
                "--quiet", "--json", out)
    assert r.returncode == 0, r.stderr
    payload = json.loads(out.read_text())
    assert payload["method"] == "bootstrap" and len(payload["points"]) == 2
    for p in payload["points"]:
        assert p["lo"] <= p["credible_lo"] <= p["estimate"] <= p["credible_hi"] <= p["hi"], p
        assert 1.5 < p["estimate"] < 5.0
    assert payload["points"][1]["estimate"] < payload["points"][0]["estimate"]  # bigger run, lower loss


def test_optimal_on_the_bundled_runs(gadre_csv, tmp_path):
    out = tmp_path / "opt.json"
    r = run_cli("optimal", gadre_csv, "--law", "chinchilla", "--x", "N,D", "--y", "loss", "--compute", "1e21,1e23",
                "--method", "bootstrap", "--resamples", "40", "--starts", "4", "--quiet", "--json", out)
    assert r.returncode == 0, r.stderr
    optima = json.loads(out.read_text())["optima"]
    assert [o["compute"] for o in optima] == [1e21, 1e23]
    for o in optima:
        for q in ("N", "D", "tokens_per_param"):
            assert o[q]["lo"] <= o[q]["estimate"] <= o[q]["hi"], (o["compute"], q)
        assert o["N"]["estimate"] * o["D"]["estimate"] * 6 == pytest.approx(o["compute"], rel=1e-2)
    assert optima[1]["N"]["estimate"] > optima[0]["N"]["estimate"]


def test_map_forecast_and_optimal_print_laplace_intervals_with_width(gadre_csv, tmp_path):
    """Issue 14: a MAP fit's intervals have a width and a label (no more ``N* 2.445e+09 [2.445e+09, 2.445e+09]``)."""
    out = tmp_path / "opt.json"
    r = run_cli("optimal", gadre_csv, "--law", "chinchilla", "--x", "N,D", "--y", "loss", "--compute", "1e21,1e23",
                "--json", out)
    assert r.returncode == 0, r.stderr
    assert "median [90% Laplace interval]" in r.stdout
    payload = json.loads(out.read_text())
    assert payload["method"] == "map" and payload["interval_kind"] == "laplace"
    for o in payload["optima"]:
        for q in ("N", "D", "tokens_per_param"):
            assert o[q]["lo"] < o[q]["estimate"] < o[q]["hi"], (o["compute"], q)
    out = tmp_path / "fc.json"
    r = run_cli("forecast", gadre_csv, "--law", "chinchilla", "--x", "N,D", "--y", "loss",
                "--at", "N=1e9,7e9;D=2e10,1.4e11", "--json", out)
    assert r.returncode == 0, r.stderr
    assert "predictive (lo, hi) and Laplace (credible_lo, credible_hi)" in r.stdout
    payload = json.loads(out.read_text())
    assert payload["interval_kind"] == "laplace"
    for p in payload["points"]:
        assert p["lo"] < p["credible_lo"] < p["estimate"] < p["credible_hi"] < p["hi"], p


@pytest.mark.parametrize(
    "command, extra, message",
    [
        ("forecast", ["--at", "N=1e9"], "give values for D"),
        ("forecast", ["--at", "N=1e9;Q=3"], "'Q' is not a covariate"),
        ("forecast", ["--at", "N=abc;D=1e10"], "must be numbers"),
        ("forecast", ["--at", "N=1e9,2e9;D=1e10,2e10,3e10"], "same number of values"),
        ("forecast", ["--at", "N=-1e9;D=1e10"], "positive and finite"),
        ("optimal", ["--compute", "1e21,x"], "comma-separated numbers"),
        ("optimal", ["--compute", "0"], "positive and finite"),
    ],
)
def test_bad_forecast_and_optimal_input_is_one_line_exit_2_no_file(gadre_csv, tmp_path, command, extra, message):
    out = tmp_path / "out.json"
    r = run_cli(command, gadre_csv, "--law", "chinchilla", "--x", "N,D", "--y", "loss", *extra, "--json", out)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


def test_optimal_refuses_a_law_without_n_and_d(tmp_path):
    path = tmp_path / "c.csv"
    c = np.geomspace(1e18, 1e22, 10)
    pd.DataFrame({"C": c, "loss": 1.7 + 900 * c**-0.15}).to_csv(path, index=False)
    r = run_cli("optimal", path, "--law", "power_law", "--x", "C", "--y", "loss", "--compute", "1e21")
    assert r.returncode == 2 and "law of N and D" in r.stderr


def test_compare_ranks_laws_by_leave_future_out(tmp_path):
    rng = np.random.default_rng(0)
    c = np.logspace(18, 22.5, 24)
    z = np.log(60.0) - 0.09 * np.log(c) + 0.02 * rng.normal(size=c.size)
    path = tmp_path / "acc.csv"
    pd.DataFrame({"C": c, "acc": 0.25 + 0.75 * np.exp(-np.exp(z)), "val_loss": 1.8 + 900 * c**-0.15}).to_csv(
        path, index=False)
    out = tmp_path / "cmp.json"
    r = run_cli("compare", path, "--laws", "direct,two_stage_linear", "--x", "C", "--y", "acc", "--chance", "0.25",
                "--proxy", "val_loss", "--holdout", "C > 1e21", "--chains", "2", "--warmup", "200", "--draws", "200",
                "--quiet", "--allow-warnings", "--json", out)
    assert r.returncode == 0, r.stderr
    payload = json.loads(out.read_text())
    table = {row["law"]: row for row in payload["table"]}
    assert set(table) == {"direct", "two_stage_linear"}
    assert sorted(row["rank"] for row in table.values()) == [1, 2]
    for row in table.values():
        assert row["n_heldout"] == int((c > 1e21).sum())
        assert row["elpd_loo"] is not None and row["elpd_lfo"] is not None and 0 <= row["coverage"] <= 1
    assert "elpd_lfo" in r.stdout
    one = run_cli("compare", path, "--laws", "direct", "--x", "C", "--y", "acc", "--chance", "0.25")
    assert one.returncode == 2 and "two or more" in one.stderr
