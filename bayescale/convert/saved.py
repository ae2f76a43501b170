"""Saved fits: ArviZ NetCDF for the draws, plus what it takes to trust them later.

:func:`save` writes any :class:`~bayescale.fit.Fit` as the ArviZ DataTree of
:func:`bayescale.to_datatree` (posterior draws, observed data, pointwise log
likelihood) with attributes naming the law, its chance level, the likelihood and the
fit's diagnostics.  :func:`load` reads it back as a :class:`~bayescale.fit.Fit` (whose
``fitter`` is ``None``), which every later stage and the CLI's ``--from`` accept like
the original -- without refitting.

A saved fit is only as good as the law it was fitted with.  The file keeps a
*probe*: the law evaluated (in fit space) at the first saved draws and at the
observed covariates.  :func:`load` re-evaluates the law it finds under that name
and refuses the file if the law is unknown, declares other parameters, covariates
or response, or computes something else at the probe.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bayescale.convert.datatree import to_datatree
from bayescale.convert.files import atomic_write
from bayescale.errors import SavedFitError
from bayescale.fit import Data, Fit, Gaussian, HuberLikelihood, StudentT, float64
from bayescale.laws import Law, get_law

__all__ = ["SavedFitError", "SavedInfo", "load", "save"]

FORMAT = "bayescale-fit/1"

_PROBE_DRAWS = 3
_PROBE_RTOL = 1e-9
_LIKELIHOODS = {"Gaussian": Gaussian, "StudentT": StudentT, "HuberLikelihood": HuberLikelihood}


class SavedInfo(NamedTuple):
    """The diagnostics a saved fit was written with, and where it was read from."""

    point: Mapping[str, float]
    saved: Mapping[str, object]
    path: str

    def scalars(self) -> dict[str, object]:
        return {k: v for k, v in self.saved.items() if k not in ("ok", "problems", "n_obs", "n_dropped")}

    def per_param(self) -> dict[str, Mapping[str, float]]:
        return {}


# --------------------------------------------------------------------------- save


def _version() -> str:
    try:
        return importlib.metadata.version("bayescale")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _probe_x(law: Law, data: Data | None) -> dict[str, np.ndarray]:
    if data is not None:
        return {k: np.asarray(v, dtype=float) for k, v in data.x.items()}
    grid = {c.name: (np.geomspace(1e18, 1e24, 7) if c.log_scale else np.linspace(2.0, 4.0, 7)) for c in law.covariates}
    return grid


def _probe(law: Law, params: Mapping[str, np.ndarray], x: dict[str, np.ndarray]) -> np.ndarray:
    first = {n: np.asarray(v).reshape(-1)[:_PROBE_DRAWS] for n, v in params.items()}
    return np.stack([np.asarray(law({n: v[i] for n, v in first.items()}, x), dtype=float)
                     for i in range(len(next(iter(first.values()))))])


def _likelihood_spec(likelihood) -> dict:
    name = type(likelihood).__name__
    fields = {f.name: getattr(likelihood, f.name) for f in dataclasses.fields(likelihood)
              if isinstance(getattr(likelihood, f.name), (int, float))}
    return {"class": name, **fields}


@float64
def save(fit: Fit, path: str | os.PathLike) -> Path:
    """Write ``fit`` (any method) to ``path`` as ArviZ NetCDF.

    The file is written to a temporary name and moved into place, so ``path`` never
    holds half a fit.  Returns the path.
    """
    target = Path(path)
    if not target.parent.exists():
        raise SavedFitError(f"cannot save to {str(target)!r}: folder {str(target.parent)!r} does not exist")
    tree = to_datatree(fit)
    law, data = fit.law, fit.data
    x = _probe_x(law, data)
    chance = law.response.chance
    tree.attrs.update({
        "bayescale_format": FORMAT,
        "bayescale_version": _version(),
        "law_formula": law.formula,
        "law_chance": float(chance) if chance is not None else -1.0,
        "likelihood_spec": json.dumps(_likelihood_spec(fit.likelihood)),
        "problems": json.dumps(list(fit.problems)),
        "point": json.dumps(fit.point),
        "probe_x": json.dumps({k: v.tolist() for k, v in x.items()}),
        "probe_z": json.dumps(_probe(law, fit.draws, x).tolist()),
        "data_columns": json.dumps(dict(data.columns)) if data is not None else "{}",
        "n_obs": int(fit.n_obs),
    })
    return atomic_write(target, lambda tmp: tree.to_netcdf(tmp, engine="h5netcdf"))


# --------------------------------------------------------------------------- load


def _read(p: Path):
    import xarray as xr

    if not p.exists():
        raise SavedFitError(f"saved fit {str(p)!r} does not exist")
    try:
        tree = xr.open_datatree(p, engine="h5netcdf").load()
    except Exception as exc:  # h5py/xarray raise many types for a foreign file
        why = str(exc).splitlines()[0]
        raise SavedFitError(f"cannot read {str(p)!r} as a saved fit (ArviZ NetCDF): {why}") from None
    if tree.attrs.get("bayescale_format") != FORMAT:
        raise SavedFitError(f"{str(p)!r} is not a bayescale saved fit (format {tree.attrs.get('bayescale_format')!r}, "
                            f"expected {FORMAT!r}); save fits with bayescale.save or --save")
    return tree


def _saved_law(p: Path, attrs: dict, law: Law | None) -> Law:
    name = str(attrs["law"])
    if law is None:
        try:
            law = get_law(name)
        except KeyError as exc:
            raise SavedFitError(f"{str(p)!r} was fitted with law {name!r}, which this version of bayescale does not "
                                f"know ({exc.args[0]}); for a custom law pass it: load(path, law=my_law)") from None
    elif law.name != name:
        raise SavedFitError(f"{str(p)!r} was fitted with law {name!r}, not {law.name!r}")
    chance = float(attrs["law_chance"])
    return law.with_chance(chance) if chance >= 0.0 else law


def _changes(law: Law, attrs: dict, params: dict[str, np.ndarray]) -> list[str]:
    """How ``law`` differs from the one the file was saved with (empty: the same)."""
    saved_params = [str(v) for v in np.atleast_1d(attrs["law_params"])]
    saved_cov = [str(v) for v in np.atleast_1d(attrs["law_covariates"])]
    changed = []
    if saved_params != list(law.params):
        changed.append(f"parameters {saved_params} -> {list(law.params)}")
    if saved_cov != list(law.covariate_names):
        changed.append(f"covariates {saved_cov} -> {list(law.covariate_names)}")
    if str(attrs["response"]) != law.response.describe():
        changed.append(f"response {attrs['response']!r} -> {law.response.describe()!r}")
    if not changed:
        x = {k: np.asarray(v, dtype=float) for k, v in json.loads(attrs["probe_x"]).items()}
        expected = np.asarray(json.loads(attrs["probe_z"]), dtype=float)
        got = _probe(law, params, x)
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=_PROBE_RTOL, atol=1e-12, equal_nan=True):
            worst = float(np.nanmax(np.abs(got - expected))) if got.shape == expected.shape else float("nan")
            changed.append(f"it computes different values at the saved draws (largest difference {worst:.3g})")
    return changed


def _observed(tree, law: Law, attrs: dict) -> Data | None:
    if "observed_data" not in tree.children:
        return None
    obs = tree["observed_data"]
    return Data(x={c: np.asarray(obs[c].values, dtype=float) for c in law.covariate_names},
                y=np.asarray(obs["y"].values, dtype=float), rows=np.asarray(obs["obs"].values),
                columns=json.loads(attrs["data_columns"]))


@float64
def load(path: str | os.PathLike, *, law: Law | None = None) -> Fit:
    """Read a fit written by :func:`save`: a :class:`~bayescale.fit.Fit` whose ``fitter`` is ``None``.

    The law is looked up by its saved name among the library laws; pass ``law`` for a
    custom law (its name must match).  Raises :class:`SavedFitError` with a message
    saying what to do when the file is missing or unreadable, is not a bayescale fit,
    or its law is unknown or changed since it was saved.
    """
    p = Path(path)
    tree = _read(p)
    attrs = dict(tree.attrs)
    law = _saved_law(p, attrs, law)
    post = tree["posterior"]
    params = {n: np.asarray(post[n].values, dtype=float) for n in law.params if n in post}
    changed = _changes(law, attrs, params)
    if changed:
        raise SavedFitError(f"the law {law.name!r} changed since {str(p)!r} was saved: {'; '.join(changed)}. "
                            "Refit with this version (a saved fit is only valid for the law it was fitted with)")
    spec = json.loads(attrs["likelihood_spec"])
    cls = _LIKELIHOODS.get(spec.pop("class"))
    if cls is None:
        raise SavedFitError(f"{str(p)!r} uses an unknown likelihood {attrs['likelihood']!r}")
    saved = {k[5:]: v.item() if hasattr(v, "item") else v for k, v in attrs.items() if k.startswith("diag_")}
    point = {k: float(v) for k, v in json.loads(attrs["point"]).items()}
    return Fit(law=law, data=_observed(tree, law, attrs), draws=params,
               sigma=np.asarray(post["sigma"].values, dtype=float), likelihood=cls(**spec),
               method=str(attrs["draws_kind"]), info=SavedInfo(point=point, saved=saved, path=str(p)),
               problems=tuple(json.loads(attrs["problems"])), fitter=None)
