"""The data boundary: every malformed input gives a DataError naming the column and rows."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import laws


def runs(n=12):
    n_params = np.geomspace(1e8, 1e10, n)
    d = n_params * np.linspace(5, 80, n)
    loss = 1.8 + 480 * n_params**-0.35 + 2100 * d**-0.37
    return pd.DataFrame({"N": n_params, "D": d, "loss": loss})


def fit_frame(frame, law=laws.chinchilla, x=("N", "D"), y="loss", **kw):
    return bs.from_frame(frame, law, x=list(x), y=y, **kw)


def test_valid_table_maps_to_arrays():
    d = fit_frame(runs())
    assert d.n == 12
    assert d.x["N"].dtype == np.float64
    assert d.columns == {"N": "N", "D": "D", "y": "loss"}


def test_missing_column_suggests_closest():
    with pytest.raises(bs.DataError, match=r"column 'los' \(response\).*Did you mean 'loss'"):
        fit_frame(runs(), y="los")
    with pytest.raises(bs.DataError, match=r"column 'n' \(covariate N\)"):
        fit_frame(runs(), x=("n", "D"))


def test_wrong_number_of_covariates():
    with pytest.raises(bs.DataError, match="reads 2 covariate"):
        fit_frame(runs(), x=("N",))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_name_the_row(bad):
    frame = runs()
    frame.loc[4, "D"] = bad
    with pytest.raises(bs.DataError, match=r"column 'D' .*NaN or infinite value in row 4\b"):
        fit_frame(frame)


def test_non_numeric_value_names_the_row():
    frame = runs().astype({"loss": object})
    frame.loc[2, "loss"] = "n/a"
    with pytest.raises(bs.DataError, match=r"column 'loss' .*non-numeric.*row 2\b"):
        fit_frame(frame)


@pytest.mark.parametrize("value", [0.0, -3.0])
def test_non_positive_covariate_where_a_log_is_taken(value):
    frame = runs()
    frame.loc[[1, 7], "N"] = value
    with pytest.raises(bs.DataError, match=r"column 'N' \(covariate N\) must be > 0 .*rows 1, 7"):
        fit_frame(frame)


def test_non_positive_loss():
    frame = runs()
    frame.loc[3, "loss"] = 0.0
    with pytest.raises(bs.DataError, match=r"column 'loss' \(loss\) must be > 0.*row 3\b"):
        fit_frame(frame)


def test_pass_at_k_below_one():
    c = np.repeat(np.geomspace(1e19, 1e21, 4), 3)
    k = np.tile([0.5, 2.0, 4.0], 4)
    frame = pd.DataFrame({"C": c, "k": k, "p": np.linspace(0.1, 0.5, 12)})
    with pytest.raises(bs.DataError, match=r"column 'k' \(covariate k\) must be >= 1"):
        bs.from_frame(frame, laws.pass_at_k, x=["C", "k"], y="p")


@pytest.mark.parametrize("value", [1.2, -0.1, 73.0])
def test_accuracy_outside_unit_interval(value):
    frame = pd.DataFrame({"C": np.geomspace(1e18, 1e22, 8), "acc": np.linspace(0.3, 0.7, 8)})
    frame.loc[5, "acc"] = value
    with pytest.raises(bs.DataError, match=r"column 'acc' \(accuracy\) must lie in \[0, 1\].*row 5\b"):
        bs.from_frame(frame, laws.direct.with_chance(0.25), x=["C"], y="acc")


def test_accuracy_at_chance_is_dropped_and_recorded():
    frame = pd.DataFrame({"C": np.geomspace(1e18, 1e22, 8), "acc": np.linspace(0.2, 0.7, 8)})
    d = bs.from_frame(frame, laws.direct.with_chance(0.25), x=["C"], y="acc")
    assert d.n == 6  # 0.2 is below chance, 0.271 within the 0.05 margin above it (Krajewski et al.)
    assert [r for r, _ in d.dropped] == [0, 1] and "within 0.05 above it" in d.dropped[1][1]
    no_margin = dataclasses.replace(laws.direct, response=bs.ChanceAccuracy(0.25, margin=0.0))
    assert bs.from_frame(frame, no_margin, x=["C"], y="acc").n == 7


def test_all_points_below_chance():
    frame = pd.DataFrame({"C": np.geomspace(1e18, 1e22, 8), "acc": np.full(8, 0.24)})
    with pytest.raises(bs.DataError, match="all rows are at or below chance"):
        bs.from_frame(frame, laws.direct.with_chance(0.25), x=["C"], y="acc")


def test_fewer_rows_than_parameters():
    with pytest.raises(bs.DataError, match=r"only 4 usable row\(s\) for law 'chinchilla', which has 5 parameters"):
        fit_frame(runs().head(4))


def test_constant_covariate():
    frame = runs()
    frame["D"] = 2e10
    with pytest.raises(bs.DataError, match=r"column 'D' \(covariate D\) is constant"):
        fit_frame(frame)


def test_where_filters_and_bad_where_is_clear():
    frame = runs()
    assert fit_frame(frame, where="loss < 2.6").n == int((frame.loss < 2.6).sum())
    with pytest.raises(bs.DataError, match="--where 'loss <<< 3' is not a valid filter"):
        fit_frame(frame, where="loss <<< 3")


def test_row_labels_survive_filtering():
    frame = runs()
    d = fit_frame(frame, where="N > 5e8")
    assert list(d.rows) == list(frame.index[frame.N > 5e8])


def test_bundled_gadre_data_and_licence():
    wide = bs.datasets.gadre()
    assert len(wide) == 104
    assert set(wide.train_dataset) == {"c4_original", "rpj", "rw_original"}
    long = bs.datasets.gadre_long()
    assert len(long) == 104 * 8
    assert {"N", "D", "C", "val_set", "loss"} <= set(long.columns)
    np.testing.assert_allclose(long.C, 6 * long.N * long.D, rtol=1e-6)
    assert "MIT License" in bs.datasets.gadre_licence()
    assert "mlfoundations" in bs.datasets.gadre_licence()
