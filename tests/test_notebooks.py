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
