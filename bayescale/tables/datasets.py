"""Loaders: the bundled Gadre et al. (2024) runs, and readers for shared data sets.

Only the MIT-licensed Gadre et al. over-training testbed ships inside the package
(``bayescale/data/``, with its licence notice ``LICENSE-gadre.txt``).  The
Chinchilla and Apple DCLM sets are read from a path you give (they may not be
redistributed).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "GADRE_VALIDATION_SETS",
    "gadre",
    "gadre_long",
    "gadre_licence",
    "read_apple_downstream",
    "read_chinchilla",
]

GADRE_VALIDATION_SETS = (
    "openlm",
    "c4_val",
    "paloma_c4_en",
    "paloma_dolma_100_programing_languages",
    "paloma_falcon-refinedweb",
    "paloma_ptb",
    "paloma_redpajama",
    "de-en",
)


def _bundled(name: str) -> pd.DataFrame:
    with resources.files("bayescale.tables").joinpath("data", name).open("r") as fh:
        return pd.read_csv(fh)


def gadre_licence() -> str:
    """The MIT licence notice of the bundled Gadre et al. data."""
    return resources.files("bayescale.tables").joinpath("data", "LICENSE-gadre.txt").read_text()


def gadre() -> pd.DataFrame:
    """The 104 over-training runs of Gadre et al. (2024), one row per run (wide).

    Columns include ``train_dataset`` (c4_original, rpj, rw_original), ``params``
    (N, with embeddings), ``tokens`` (D), ``flops_6ND`` (C) and ``loss_<set>``
    for the eight validation sets in :data:`GADRE_VALIDATION_SETS`.  MIT licence
    (Copyright (c) 2024 mlfoundations): see :func:`gadre_licence`.
    """
    return _bundled("gadre_models_flat.csv")


def gadre_long() -> pd.DataFrame:
    """The Gadre runs in long form: one row per (run, validation set).

    Columns: ``name, train_dataset, arch, N, D, C, tokens_per_param, val_set, loss``.
    """
    wide = gadre()
    long = wide.melt(
        id_vars=["name", "train_dataset", "arch", "params", "tokens", "flops_6ND", "tokens_per_param"],
        value_vars=[f"loss_{v}" for v in GADRE_VALIDATION_SETS],
        var_name="val_set",
        value_name="loss",
    )
    long["val_set"] = long["val_set"].str.removeprefix("loss_")
    long = long.rename(columns={"params": "N", "tokens": "D", "flops_6ND": "C"})
    # float, not int64: 6·N·D of these runs overflows 64-bit integers
    return long.astype({"N": float, "D": float, "C": float})


def read_chinchilla(path: str | Path, *, drop_outliers: bool = True) -> pd.DataFrame:
    """Epoch AI's re-extraction of the Chinchilla runs (``svg_extracted_data.csv``).

    Adds ``N`` (Model Size), ``C`` (Training FLOP), ``D = C/(6N)`` and ``L`` (loss).
    With ``drop_outliers`` the 5 highest-loss runs are dropped, as Besiroglu et al.
    (2024) do, leaving 240 rows.
    """
    df = pd.read_csv(path)
    df = df.assign(N=df["Model Size"], C=df["Training FLOP"], L=df["loss"])
    df["D"] = df["C"] / (6.0 * df["N"])
    if drop_outliers:
        df = df.drop(index=df["L"].nlargest(5).index)
    return df.reset_index(drop=True)


_TRUNCATED_CODE_TOKENS = {
    10: [1894776832, 2781347840, 4945608704, 7259291648, 10655629312, 15640559616, 22956474368, 33695989760],
    20: [5773459456],
    40: [3789553664, 6739197952, 14518583296, 21311258624, 31281119232, 45913997312, 67391979520],
    80: [9530507264, 20533215232, 24876417024, 30139219968, 64932020224, 95309266944],
    160: [19783483392, 29038215168, 42623565824, 62562238464, 75795267584, 91827994624],
}
_BROKEN_CODE = {
    "mbpp": [(15069085696, 20), (25819086848, 40), (36514562048, 80)],
    "lbpp": [(29496442880, 20), (18948816896, 10), (37897633792, 40)],
}


def read_apple_downstream(path: str | Path, *, clean: bool = True) -> pd.DataFrame:
    """The Krajewski et al. (2025) DCLM-mix runs in long form, with N, D and C.

    Adds ``D`` (tokens), ``N = tokens/tpr``, ``C = 6·N·D``, and ``k`` for pass@k
    rows.  With ``clean``, the upstream defects listed in the data README are
    removed: the truncated LBPP/MBPP evals (pass@k >= 2 of 28 runs), the code evals
    that are all zero although HumanEval is not, and the duplicate run.
    """
    df = pd.read_csv(path)
    df["D"] = df["tokens"].astype(float)
    df["N"] = df["D"] / df["tpr"]
    df["C"] = 6.0 * df["N"] * df["D"]
    k = df["metric_type"].str.extract(r"^pass@(\d+)$")[0]
    df["k"] = pd.to_numeric(k, errors="coerce")
    if clean:
        df = df.drop_duplicates(subset=["tokens", "tpr", "benchmark", "metric_type"], keep="first")
        bad = np.zeros(len(df), bool)
        for tpr, tokens in _TRUNCATED_CODE_TOKENS.items():
            bad |= (
                (df["tpr"] == tpr).to_numpy()
                & df["tokens"].isin(tokens).to_numpy()
                & df["benchmark"].isin(["lbpp", "mbpp"]).to_numpy()
                & (df["k"] >= 2).to_numpy()
            )
        for bench, runs in _BROKEN_CODE.items():
            for tokens, tpr in runs:
                bad |= ((df["benchmark"] == bench) & (df["tokens"] == tokens) & (df["tpr"] == tpr)).to_numpy()
        df = df.loc[~bad]
    return df.reset_index(drop=True)
