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

A saved fit is tamper-evident too.  The attribute ``bayescale_digest`` holds SHA-256
digests of every part that :func:`load` reads -- each parameter's draws, ``sigma``,
each observed-data variable (covariates, response, row labels), the pointwise log
likelihood, the probe and every other attribute (diagnostics, problems, method,
likelihood) -- each over its name, dtype, shape and bytes (attributes: their values
in canonical JSON).  :func:`load` recomputes them and refuses, naming the part, a file
whose content does not match, holds NaN or infinite draws or data, lacks a part or
has no digest at all (written by an older version, or stripped).  The digest detects
edits and corruption, not forgery: whoever rewrites the digest along with the content
is not stopped (there is no secret key).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bayescale.convert.datatree import to_datatree
from bayescale.convert.files import atomic_write
from bayescale.errors import SavedFitError, expect
from bayescale.fit import Data, Fit, Gaussian, HuberLikelihood, StudentT, float64
from bayescale.laws import Law, get_law

__all__ = ["SavedFitError", "SavedInfo", "load", "save"]

FORMAT = "bayescale-fit/1"
DIGEST = "bayescale_digest"

_PROBE_DRAWS = 3
_PROBE_RTOL = 1e-9
_LIKELIHOODS = {"Gaussian": Gaussian, "StudentT": StudentT, "HuberLikelihood": HuberLikelihood}
_PROBE_ATTRS = ("probe_x", "probe_z")
# Every attribute load reads; a file without one is refused even if its digest was rewritten to match.
_REQUIRED_ATTRS = ("bayescale_format", "law", "law_params", "law_covariates", "response", "law_chance",
                   "likelihood", "likelihood_spec", "draws_kind", "problems", "point", "data_columns",
                   *_PROBE_ATTRS)
_DIGEST_PARTS = ("draws", "sigma", "data", "log_likelihood", "probe", "attributes")


class SavedInfo(NamedTuple):
    """The diagnostics a saved fit was written with, and where it was read from."""

    point: Mapping[str, float]
    saved: Mapping[str, object]
    path: str

    @property
    def band(self) -> str:
        """The saved fit's band (``"laplace"``, ``"bootstrap"``, ``"credible"``; empty in older files)."""
        return str(self.saved.get("band", ""))

    def scalars(self) -> dict[str, object]:
        return {k: v for k, v in self.saved.items() if k not in ("ok", "problems", "n_obs", "n_dropped")}

    def per_param(self) -> dict[str, Mapping[str, float]]:
        return {}


# --------------------------------------------------------------------------- digest


def _array_digest(name: str, values) -> str:
    """SHA-256 of one array: its name, dtype, shape and bytes (little-endian, C order; text as JSON)."""
    a = np.asarray(values)
    h = hashlib.sha256()
    if a.dtype.kind in "biufc":
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        h.update(json.dumps({"name": name, "dtype": a.dtype.str, "shape": list(a.shape)}).encode())
        h.update(b"\0")
        h.update(a.tobytes())
    else:  # row labels: text, whatever numpy dtype (U, S, object) the reader gives them
        h.update(json.dumps({"name": name, "dtype": "text", "shape": list(a.shape)}).encode())
        h.update(b"\0")
        h.update(json.dumps([e.decode() if isinstance(e, bytes) else str(e) for e in a.ravel().tolist()]).encode())
    return h.hexdigest()


def _attr_value(value) -> list:
    """An attribute as a canonical JSON-able ``[kind, values]`` (a scalar and a 1-list read back alike)."""
    a = np.atleast_1d(np.asarray(value))
    if a.dtype.kind in "biu":
        return ["int", [int(v) for v in a.ravel().tolist()]]
    if a.dtype.kind == "f":
        return ["float", [float(v) for v in a.ravel().tolist()]]
    return ["text", [v.decode() if isinstance(v, bytes) else str(v) for v in a.ravel().tolist()]]


def _attrs_digest(items: Mapping[str, object]) -> str:
    canon = {k: _attr_value(v) for k, v in items.items()}
    return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()


def _law_params(attrs: Mapping) -> list[str]:
    return [str(v) for v in np.atleast_1d(attrs.get("law_params", []))]


def _digest(tree) -> dict:
    """The digests of every part of ``tree`` that :func:`load` reads (absent parts are left out)."""
    attrs = dict(tree.attrs)
    post = tree["posterior"] if "posterior" in tree.children else None
    digest: dict[str, object] = {"algorithm": "sha256", "draws": {}, "sigma": None, "data": {},
                                 "log_likelihood": None}
    if post is not None:
        digest["draws"] = {n: _array_digest(n, post[n].values) for n in _law_params(attrs) if n in post.data_vars}
        if "sigma" in post.data_vars:
            digest["sigma"] = _array_digest("sigma", post["sigma"].values)
    if "observed_data" in tree.children:
        obs = tree["observed_data"]
        digest["data"] = {n: _array_digest(n, v.values) for n, v in obs.variables.items()}
    if "log_likelihood" in tree.children:
        ll = tree["log_likelihood"]
        digest["log_likelihood"] = hashlib.sha256(
            "".join(_array_digest(n, ll.variables[n].values) for n in sorted(ll.variables)).encode()).hexdigest()
    digest["probe"] = _attrs_digest({k: attrs[k] for k in _PROBE_ATTRS if k in attrs})
    digest["attributes"] = {k: _attrs_digest({k: v}) for k, v in attrs.items()
                            if k != DIGEST and k not in _PROBE_ATTRS}
    return digest


def _refuse(p: Path, what: str) -> SavedFitError:
    return SavedFitError(f"saved fit {str(p)!r}: {what}; refit and save again")


def _plural(what: str) -> bool:
    return what.startswith(("the draws", "the parameters", "the law's probe values"))


def _mismatch(p: Path, what: str) -> SavedFitError:
    return _refuse(p, f"{what} {'do' if _plural(what) else 'does'} not match the file's digest (edited or corrupt)")


def _stored_digest(p: Path, attrs: Mapping) -> dict:
    if DIGEST not in attrs:
        raise _refuse(p, f"the digest (attribute {DIGEST!r}) is missing: the file was written by an older "
                         "version of bayescale or stripped, so its content cannot be checked")
    try:
        stored = json.loads(str(attrs[DIGEST]))
    except ValueError:
        stored = None
    ok = (isinstance(stored, dict) and stored.get("algorithm") == "sha256"
          and all(part in stored for part in _DIGEST_PARTS)
          and all(isinstance(stored[k], dict) for k in ("draws", "data", "attributes")))
    if not ok:
        raise _refuse(p, f"the digest (attribute {DIGEST!r}) is unreadable (not the JSON sha256 digest "
                         "bayescale writes)")
    return stored


def _check_array(p: Path, what: str, values, *, ndim: int, shape: tuple[int, ...] | None = None) -> None:
    """``values`` must be a finite floating-point array of ``ndim`` dimensions (and ``shape``)."""
    a = np.asarray(values)
    if a.dtype.kind != "f":
        raise _refuse(p, f"{what} {'have' if _plural(what) else 'has'} type {a.dtype}, expected floating point")
    if a.ndim != ndim or (shape is not None and a.shape != shape):
        expected = shape if shape is not None else f"{ndim} dimension(s)"
        raise _refuse(p, f"{what} {'have' if _plural(what) else 'has'} shape {a.shape}, expected {expected}")
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if bad:
        raise _refuse(p, f"{what} {'hold' if _plural(what) else 'holds'} {bad} NaN or infinite value(s) of {a.size}")


def _verify(p: Path, tree) -> None:
    """Refuse ``tree`` (read from ``p``) unless every part it is loaded from matches its digest."""
    attrs = dict(tree.attrs)
    stored = _stored_digest(p, attrs)
    got = _digest(tree)
    # attributes: the diagnostics, problems, method, likelihood, law names, ...
    for key in stored["attributes"]:
        if key not in attrs:
            raise _refuse(p, f"the required attribute {key!r} is missing")
        if got["attributes"].get(key) != stored["attributes"][key]:
            raise _mismatch(p, f"the attribute {key!r}")
    for key in attrs:
        if key != DIGEST and key not in _PROBE_ATTRS and key not in stored["attributes"]:
            raise _refuse(p, f"the attribute {key!r} is not covered by the file's digest (added after saving)")
    for key in _REQUIRED_ATTRS:
        if key not in attrs:
            raise _refuse(p, f"the required attribute {key!r} is missing")
    if got["probe"] != stored["probe"]:
        raise _mismatch(p, "the law's probe values (attributes 'probe_x', 'probe_z')")
    # draws and sigma
    if "posterior" not in tree.children:
        raise _refuse(p, "the required group 'posterior' (the draws) is missing")
    post = tree["posterior"]
    params = _law_params(attrs)
    if sorted(stored["draws"]) != sorted(params):
        raise _mismatch(p, f"the parameters {params} of the law")
    if "sigma" not in post.data_vars:
        raise _refuse(p, "the draws of 'sigma' are missing (group 'posterior')")
    _check_array(p, "the draws of 'sigma'", post["sigma"].values, ndim=2)
    shape = tuple(post["sigma"].shape)
    for name in params:
        if name not in post.data_vars:
            raise _refuse(p, f"the draws of {name!r} are missing (group 'posterior')")
        _check_array(p, f"the draws of {name!r}", post[name].values, ndim=2, shape=shape)
        if got["draws"][name] != stored["draws"][name]:
            raise _mismatch(p, f"the draws of {name!r}")
    if got["sigma"] != stored["sigma"]:
        raise _mismatch(p, "the draws of 'sigma'")
    extra = sorted(set(map(str, post.data_vars)) - set(params) - {"sigma"})
    if extra:
        raise _refuse(p, f"the draws of {extra[0]!r} are not covered by the file's digest (added after saving)")
    # observed data
    if stored["data"]:
        if "observed_data" not in tree.children:
            raise _refuse(p, "the required group 'observed_data' (the data it was fitted to) is missing")
        obs = tree["observed_data"]
        covariates = [str(v) for v in np.atleast_1d(attrs["law_covariates"])]
        names = {n: "the observed data's " + ("response" if n == "y" else "row labels" if n == "obs"
                                              else "covariate" if n in covariates else "variable") + f" {n!r}"
                 for n in sorted(set(stored["data"]) | {"y", "obs", *covariates})}
        for name, what in names.items():
            if name not in obs.variables:
                raise _refuse(p, f"{what} is missing (group 'observed_data')")
        for name, what in names.items():
            if name != "obs":
                _check_array(p, what, obs[name].values, ndim=1, shape=tuple(obs["obs"].shape))
            if got["data"].get(name) != stored["data"].get(name):
                raise _mismatch(p, what)
        extra = sorted(set(map(str, obs.variables)) - set(stored["data"]))
        if extra:
            raise _refuse(p, f"the observed data's {extra[0]!r} is not covered by the file's digest "
                             "(added after saving)")
    elif "observed_data" in tree.children:
        raise _refuse(p, "the group 'observed_data' is not covered by the file's digest (added after saving)")
    if stored["log_likelihood"] is not None and "log_likelihood" not in tree.children:
        raise _refuse(p, "the required group 'log_likelihood' is missing")
    if got["log_likelihood"] != stored["log_likelihood"]:
        raise _mismatch(p, "the pointwise log likelihood (group 'log_likelihood')")


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


def _open(path: str | os.PathLike):
    import xarray as xr

    with xr.open_datatree(path, engine="h5netcdf") as tree:
        return tree.load()


@float64
def save(fit: Fit, path: str | os.PathLike) -> Path:
    """Write ``fit`` (any method) to ``path`` as ArviZ NetCDF, with the digests :func:`load` checks.

    The file is written to a temporary name, read back and checked against its digest,
    and moved into place, so ``path`` never holds half a fit.  Returns the path.
    """
    expect(fit, Fit, "fit", "save")
    expect(path, (str, os.PathLike), "path", "save")
    target = Path(path)
    if not target.parent.exists():
        raise SavedFitError(f"cannot save to {str(target)!r}: folder {str(target.parent)!r} does not exist")
    for name, values in {**fit.draws, "sigma": fit.sigma}.items():
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(np.asarray(values))))
        if bad:
            raise SavedFitError(f"cannot save to {str(target)!r}: the draws of {name!r} hold {bad} NaN or infinite "
                                f"value(s) of {np.size(values)}, which load would refuse; refit")
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
    digest = _digest(tree)
    tree.attrs[DIGEST] = json.dumps(digest, sort_keys=True)

    def write(tmp: str) -> None:
        tree.to_netcdf(tmp, engine="h5netcdf")
        if _digest(_open(tmp)) != digest:  # what is read back must be what load will check
            raise SavedFitError(f"cannot save to {str(target)!r}: the written file does not read back as saved")

    return atomic_write(target, write)


# --------------------------------------------------------------------------- load


def _read(p: Path):
    if not p.exists():
        raise SavedFitError(f"saved fit {str(p)!r} does not exist")
    if p.is_dir():
        raise SavedFitError(f"saved fit {str(p)!r} is a folder, not a file written by bayescale.save or --save")
    try:
        tree = _open(p)
    except Exception as exc:  # h5py/xarray raise many types for a foreign file
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SavedFitError(f"cannot read {str(p)!r} as a saved fit (ArviZ NetCDF): {why}") from None
    if tree.attrs.get("bayescale_format") != FORMAT:
        raise SavedFitError(f"{str(p)!r} is not a bayescale saved fit (format {tree.attrs.get('bayescale_format')!r}, "
                            f"expected {FORMAT!r}); save fits with bayescale.save or --save")
    return tree


def _json(p: Path, attrs: Mapping, key: str, kind: type):
    """Attribute ``key`` parsed as JSON, which must give a ``kind``."""
    try:
        value = json.loads(str(attrs[key]))
    except ValueError:
        value = None
    if not isinstance(value, kind):
        raise _refuse(p, f"the attribute {key!r} is not a JSON {kind.__name__}")
    return value


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
    try:
        chance = float(attrs["law_chance"])
    except (TypeError, ValueError):
        raise _refuse(p, f"the attribute 'law_chance' is {attrs['law_chance']!r}, not a number") from None
    return law.with_chance(chance) if chance >= 0.0 else law


def _changes(p: Path, law: Law, attrs: dict, params: dict[str, np.ndarray]) -> list[str]:
    """How ``law`` differs from the one the file was saved with (empty: the same)."""
    saved_params = _law_params(attrs)
    saved_cov = [str(v) for v in np.atleast_1d(attrs["law_covariates"])]
    changed = []
    if saved_params != list(law.params):
        changed.append(f"parameters {saved_params} -> {list(law.params)}")
    if saved_cov != list(law.covariate_names):
        changed.append(f"covariates {saved_cov} -> {list(law.covariate_names)}")
    if str(attrs["response"]) != law.response.describe():
        changed.append(f"response {attrs['response']!r} -> {law.response.describe()!r}")
    if not changed:
        probe_x = _json(p, attrs, "probe_x", dict)
        try:
            x = {str(k): np.asarray(v, dtype=float) for k, v in probe_x.items()}
            expected = np.asarray(_json(p, attrs, "probe_z", list), dtype=float)
        except (TypeError, ValueError):
            raise _refuse(p, "the attributes 'probe_x', 'probe_z' do not hold numbers") from None
        got = _probe(law, params, x)
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=_PROBE_RTOL, atol=1e-12, equal_nan=True):
            worst = float(np.nanmax(np.abs(got - expected))) if got.shape == expected.shape else float("nan")
            changed.append(f"it computes different values at the saved draws (largest difference {worst:.3g})")
    return changed


def _observed(p: Path, tree, law: Law, attrs: dict) -> Data | None:
    if "observed_data" not in tree.children:
        return None
    obs = tree["observed_data"]
    columns = _json(p, attrs, "data_columns", dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items()):
        raise _refuse(p, "the attribute 'data_columns' does not map names to column names")
    return Data(x={c: np.asarray(obs[c].values, dtype=float) for c in law.covariate_names},
                y=np.asarray(obs["y"].values, dtype=float), rows=np.asarray(obs["obs"].values),
                columns=columns)


@float64
def load(path: str | os.PathLike, *, law: Law | None = None) -> Fit:
    """Read a fit written by :func:`save`: a :class:`~bayescale.fit.Fit` whose ``fitter`` is ``None``.

    The law is looked up by its saved name among the library laws; pass ``law`` for a
    custom law (its name must match).  Raises :class:`SavedFitError` with a message
    saying what to do when the file is missing or unreadable, is not a bayescale fit,
    has no digest or content that does not match it (edited, corrupt, NaN draws, a
    missing part), or its law is unknown or changed since it was saved.
    """
    expect(path, (str, os.PathLike), "path", "load")
    if law is not None:
        expect(law, Law, "law", "load")
    p = Path(path)
    tree = _read(p)
    _verify(p, tree)
    attrs = dict(tree.attrs)
    law = _saved_law(p, attrs, law)
    post = tree["posterior"]
    params = {n: np.asarray(post[n].values, dtype=float) for n in law.params if n in post}
    changed = _changes(p, law, attrs, params)
    if changed:
        raise SavedFitError(f"the law {law.name!r} changed since {str(p)!r} was saved: {'; '.join(changed)}. "
                            "Refit with this version (a saved fit is only valid for the law it was fitted with)")
    spec = _json(p, attrs, "likelihood_spec", dict)
    cls = _LIKELIHOODS.get(spec.pop("class", None))
    if cls is None:
        raise SavedFitError(f"{str(p)!r} uses an unknown likelihood {attrs['likelihood']!r}")
    try:
        likelihood = cls(**spec)
    except (TypeError, ValueError) as exc:
        raise _refuse(p, f"the attribute 'likelihood_spec' does not describe a {cls.__name__} ({exc})") from None
    problems = _json(p, attrs, "problems", list)
    if not all(isinstance(v, str) for v in problems):
        raise _refuse(p, "the attribute 'problems' is not a list of messages")
    try:
        point = {str(k): float(v) for k, v in _json(p, attrs, "point", dict).items()}
    except (TypeError, ValueError):
        raise _refuse(p, "the attribute 'point' does not map parameters to numbers") from None
    saved = {k[5:]: v.item() if hasattr(v, "item") else v for k, v in attrs.items() if k.startswith("diag_")}
    return Fit(law=law, data=_observed(p, tree, law, attrs), draws=params,
               sigma=np.asarray(post["sigma"].values, dtype=float), likelihood=likelihood,
               method=str(attrs["draws_kind"]), info=SavedInfo(point=point, saved=saved, path=str(p)),
               problems=tuple(problems), fitter=None)
