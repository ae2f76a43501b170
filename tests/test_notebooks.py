"""The notebooks run end to end with small settings, and their headline numbers are checked.

Each notebook is a jupytext percent-format script; it is executed as a script (what
``jupytext --execute`` would run cell by cell) with ``BAYESCALE_NOTEBOOK_SCALE=small``
and writes its headline numbers to JSON, which the tests read.
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, SHARED_DATA, shared_file


def run_notebook(name: str, out) -> dict:
    env = dict(os.environ, BAYESCALE_NOTEBOOK_SCALE="small", BAYESCALE_NOTEBOOK_OUT=str(out),
               BAYESCALE_SHARED_DATA=str(SHARED_DATA), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(REPO / "notebooks" / f"{name}.py")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / f"{name}.json").read_text())


def test_chinchilla_replication(tmp_path):
    shared_file("chinchilla", "svg_extracted_data.csv")
    head = run_notebook("chinchilla_replication", tmp_path)
    assert head["n_runs"] == 240
    epoch = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
    for name, value in epoch.items():
        assert head["map"][name] == pytest.approx(value, rel=0.01 if name in ("A", "B") else 0.002), name
    assert head["map_objective"] == pytest.approx(0.0010183, rel=1e-3)
    tpp = head["optimum_at_5.88e23"]
    assert tpp["MAP"]["tokens_per_param"]["median"] == pytest.approx(17.9, abs=0.2)
    for method in ("bootstrap", "posterior"):
        band = tpp[method]["tokens_per_param"]
        assert band["lo"] < tpp["MAP"]["tokens_per_param"]["median"] < band["hi"], method
        assert band["hi"] - band["lo"] > 2.0, method  # a real band, not a point
    assert (tmp_path / "chinchilla_n_star.png").stat().st_size > 10_000
    report = head["calibration"]["report"]
    assert [r["level"] for r in report] == [0.5, 0.8, 0.9] and head["calibration"]["growth"] >= 0.0
    for r in report:  # the learned discrepancy never narrows a band
        assert r["coverage_calibrated"] >= r["coverage_plain"] and r["n"] > 0
    assert (tmp_path / "chinchilla_reliability.png").stat().st_size > 10_000


def test_skills_compute_optima(tmp_path):
    head = run_notebook("skills_compute_optima", tmp_path)
    assert len(head["per_corpus"]) == 3
    for row in head["per_corpus"]:
        for skill in ("web", "code"):
            assert row[f"{skill}_N_lo"] < row[f"{skill}_N_median"] < row[f"{skill}_N_hi"], row
            assert 1e8 < row[f"{skill}_N_median"] < 1e12, row  # N* at 1e21 FLOPs on the scale of real models
        assert 0.0 <= row["p_code_below_web"] <= 1.0
        assert row["ratio_lo"] < row["ratio_median"] < row["ratio_hi"]
        # the probability and the ratio band tell the same story
        if row["ratio_hi"] < 1.0:
            assert row["p_code_below_web"] > 0.9
    for corpus, shift in head["mix_shift_at_w1"].items():
        assert shift["shift_lo"] <= shift["shift_median"] <= shift["shift_hi"], corpus
    iso = head["isoflop"]
    lo, _, hi = iso["exponent"]
    assert lo < iso["exponent_true"] < hi
    for known, lo, hi in zip(iso["n_star_known"], iso["n_star_lo"], iso["n_star_hi"]):
        assert lo < known < hi  # the known N* is recovered inside its band
    assert (tmp_path / "skills_n_star.png").stat().st_size > 10_000


def test_downstream_direct_vs_two_stage(tmp_path):
    """The numbers are computed from the runs, not typed in: MRE is recomputed from the per-run CSV."""
    import numpy as np
    import pandas as pd

    shared_file("apple-downstream", "metrics_dclm_data_mixture.subset.csv")
    head = run_notebook("downstream_direct_vs_two_stage", tmp_path)
    runs = pd.read_csv(tmp_path / "downstream_runs.csv")
    for variant in ("acc", "acc_norm"):
        table = head["mre"][variant]
        assert len(table["direct"]) == 12  # every benchmark scored
        sub = runs[(runs.variant == variant) & (runs.law == "direct")]
        recomputed = (np.abs(sub.estimate - sub.y) / sub.y).groupby(sub.task).mean()
        for task, value in recomputed.items():
            assert table["direct"][task] == pytest.approx(value, rel=1e-9), task
        assert head["average_mre"][variant]["direct"] == pytest.approx(np.mean(list(table["direct"].values())))
        # the two-stage route compounds errors: with the authors' estimator (least squares) both
        # of its forms extrapolate worse than the direct law
        for two_stage in ("two_stage_linear", "two_stage_logistic"):
            assert head["average_mre"][variant][two_stage] > head["average_mre"][variant]["direct"]
    cov = head["direct_coverage_90"]
    assert sum(v["heldout"] for v in cov.values()) == 8 * len(cov)  # the 8 runs above 6e21 per benchmark
    assert 0.0 <= head["direct_coverage_90_all"] <= 1.0
    assert np.isfinite(head["across_tpr_mre"]) and np.isfinite(head["pass_at_k_mre"])
    cal = head["calibrated"]
    assert abs(sum(r["weight"] for r in cal["selection"]) - 1.0) < 1e-9
    rel = pd.DataFrame(cal["reliability"])
    assert list(rel.nominal) == [0.5, 0.8, 0.9]
    assert rel.calibrated.is_monotonic_increasing and (rel.width_ratio >= 1.0).all()
    # the calibrated bands hold at least as many held-out runs as the direct law's plain ones
    assert (rel.calibrated >= rel.plain_direct).all()
    assert (tmp_path / "downstream_reliability.png").stat().st_size > 10_000
    assert [r["level"] for r in cal["backtest_report"]] == [0.5, 0.8, 0.9]
