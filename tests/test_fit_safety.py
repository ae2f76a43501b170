"""The fitters on hostile input: Ctrl-C between chunks, a memory budget, wrong laws, wrong types, flat objectives.

Tiny data and sample counts throughout: what is checked is the bookkeeping (draws counted, work
refused before it starts, one-line errors), not the statistics.
"""

import dataclasses
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
import bayescale.fit.bootstrap as bootstrap_module
import bayescale.fit.map as map_module
import bayescale.fit.nuts as nuts_module
from bayescale import laws
from bayescale.errors import ArgumentError, ArgumentTypeError, DataError, Interrupted, MemoryBudgetError
from bayescale.fit import Data
from bayescale.fit.budget import memory_budget

C = np.geomspace(1e18, 1e22, 12)


def _power(n=12, scale=1.0, noise=0.01, seed=0):
    c = np.geomspace(1e18, 1e22, n)
    y = scale * (1.7 + 900.0 * c**-0.15) * np.exp(noise * np.random.default_rng(seed).standard_normal(n))
    return bs.from_arrays(laws.power_law, y=y, C=c)


def _raw(y, c=None, name="loss"):
    """Data built directly, past the table checks: what a fitter must still refuse on its own."""
    c = np.geomspace(1e18, 1e22, len(y)) if c is None else c
    return Data(x={"C": c}, y=np.asarray(y, float), rows=np.arange(len(y)), columns={"C": "C", "y": name})


def _raise_on_call(monkeypatch, module, name, call):
    """Replace ``module.name`` by a wrapper that raises KeyboardInterrupt on its ``call``-th call."""
    real, calls = getattr(module, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


# ---------------------------------------------------------------- NUTS in chunks


def _nuts(data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return bs.fit_nuts(laws.power_law, data, key=jax.random.key(2), chains=2, **kw)


def test_chunked_nuts_has_every_draw_and_equals_one_long_run(monkeypatch):
    data = _power()
    assert nuts_module.chunk_length(60, 70) == 50  # three calls of 50: 60 warmup, 70 draws, 20 dropped
    calls = _raise_on_call(monkeypatch, nuts_module, "_advance_chains", call=0)
    chunked = _nuts(data, warmup=60, draws=70)
    assert len(calls) == 3
    assert chunked.draws["alpha"].shape == chunked.sigma.shape == (2, 70) and chunked.info.draws == 70
    assert all(np.all(np.isfinite(v)) for v in chunked.draws.values())
    # the state carries iteration count, key and adaptation: the chunks are exactly one run
    monkeypatch.setattr(nuts_module, "chunk_length", lambda warmup, draws: warmup + draws)
    whole = _nuts(data, warmup=60, draws=70)
    assert len(calls) == 4
    for name in ("E", "A", "alpha"):
        np.testing.assert_array_equal(chunked.draws[name], whole.draws[name])


def test_ctrl_c_during_nuts_says_how_many_draws_were_done(monkeypatch):
    data = _power()
    _raise_on_call(monkeypatch, nuts_module, "_advance_chains", call=3)  # after warmup and the first 50 draws
    with pytest.raises(Interrupted, match=r"^interrupted after 50 of 100 draws per chain$"):
        _nuts(data, warmup=50, draws=100)


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler, as at a terminal (a run started in the background inherits SIGINT ignored)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_real_sigint_inside_a_chunk_stops_nuts_at_the_end_of_that_chunk(monkeypatch, python_sigint):
    # the signal arrives while a compiled chunk runs (here: as the 4th, iterations 150-200, starts); Python alone may drop the
    # KeyboardInterrupt inside JAX, so it is noted and acted on when the chunk returns
    import os
    import signal

    real, seen = nuts_module._advance_chains, []

    def advance(*args, **kw):
        seen.append(1)
        if len(seen) == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kw)

    monkeypatch.setattr(nuts_module, "_advance_chains", advance)
    with pytest.raises(Interrupted, match=r"^interrupted after 150 of 200 draws per chain$"):
        _nuts(_power(), warmup=50, draws=200)
    assert len(seen) == 4 and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigint_during_the_last_chunk_still_interrupts(python_sigint):
    import os
    import signal

    from bayescale.errors import interruptible

    with pytest.raises(Interrupted, match=r"^interrupted after 3 of 3 chunks$"):
        with interruptible(3, "chunks") as progress:
            for i in range(3):
                if i == 2:
                    os.kill(os.getpid(), signal.SIGINT)  # noted, not raised here
                    time.sleep(0.01)
                    progress._done = 3
                    break
                progress.done = i + 1
    with pytest.raises(KeyboardInterrupt):  # and the handler is Python's own again
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)


def test_ctrl_c_during_warmup_says_so(monkeypatch):
    _raise_on_call(monkeypatch, nuts_module, "_advance_chains", call=1)
    with pytest.raises(Interrupted, match=r"^interrupted during warmup \(0 of 100 draws per chain\)$"):
        _nuts(_power(), warmup=50, draws=100)


def test_nuts_draws_beyond_the_budget_are_refused_before_any_work(monkeypatch):
    calls = _raise_on_call(monkeypatch, nuts_module, "fit_map", call=1)
    t0 = time.perf_counter()
    with memory_budget("1GB"), pytest.raises(MemoryBudgetError, match=r"100,000,000 draws.*use fewer --draws"):
        bs.fit_nuts(laws.power_law, _power(), key=jax.random.key(0), draws=10**8)
    assert time.perf_counter() - t0 < 2.0 and not calls


# ---------------------------------------------------------------- bootstrap


def test_ctrl_c_during_the_bootstrap_says_how_many_resamples_were_done(monkeypatch):
    data = _power()
    map_fit = bs.fit_map(laws.power_law, data)
    # four device puts per pool call: interrupt during the 12th call
    calls = _raise_on_call(monkeypatch, bootstrap_module._Pool, "_put", call=45)
    with pytest.raises(Interrupted, match=r"^interrupted after \d+ of 40 resamples$") as caught:
        bs.fit_bootstrap(laws.power_law, data, key=jax.random.key(0), resamples=40, starts=1, lanes=4, segment=5,
                         race=None, map_fit=map_fit)
    done = int(str(caught.value).split()[2])
    assert len(calls) == 45 and 0 < done < 40


def test_a_hundred_million_resamples_are_refused_at_once(monkeypatch):
    calls = _raise_on_call(monkeypatch, bootstrap_module, "fit_map", call=1)
    t0 = time.perf_counter()
    with memory_budget("2MB"), pytest.raises(MemoryBudgetError, match=r"100,000,000 bootstrap resamples.*"
                                                                     r"at most [\d,]+ fit: use fewer --resamples"):
        bs.fit_bootstrap(laws.power_law, _power(), key=jax.random.key(0), resamples=10**8, starts=4)
    assert time.perf_counter() - t0 < 2.0 and not calls


def test_the_bootstrap_pool_narrows_to_the_budget():
    # 20,000 rows: the default pool (52 lanes, 32 jobs) would need 164 MB; 50 MB holds 9 lanes, 1 MB not one
    n = 20_000
    with memory_budget("50MB"):
        width = bootstrap_module._pool_width(n, 8 * 4, None, 4, 1, fixed=0.0)
    assert width == int(50e6 // ((map_module.POLISH_FLOATS_PER_ROW + 8) * 8 * n))
    with memory_budget("1MB"), pytest.raises(MemoryBudgetError, match="a bootstrap lane over 20,000 rows"):
        bootstrap_module._pool_width(n, 32, None, 4, 1, fixed=0.0)


# ---------------------------------------------------------------- MAP in batches


def test_map_screen_and_polish_in_batches_find_the_same_optimum(monkeypatch):
    data = _power()
    plain = bs.fit_map(laws.power_law, data, keep=8)
    screens = _raise_on_call(monkeypatch, map_module, "screen", call=0)
    polishes = _raise_on_call(monkeypatch, map_module, "polish", call=0)
    # under a 1MB budget these factors leave room for 7 starts and 3 lanes over 12 rows
    monkeypatch.setattr(map_module, "SCREEN_FLOATS_PER_ROW", 1_480)
    monkeypatch.setattr(map_module, "POLISH_FLOATS_PER_ROW", 3_400)
    with memory_budget("1MB"):
        assert map_module.screen_width({"C": 0}, jnp.zeros(12), 100) == 7
        batched = bs.fit_map(laws.power_law, data, keep=8)
    assert len(screens) == -(-batched.info.n_starts // 7) and len(polishes) == 3
    assert batched.ok and batched.info.n_starts == plain.info.n_starts and batched.info.n_polished == 8
    for name, value in plain.point.items():
        assert batched.point[name] == pytest.approx(value, rel=1e-6), name  # lanes of another width round differently
    assert batched.info.objective == pytest.approx(plain.info.objective, rel=1e-12)


def test_a_table_too_large_for_one_start_is_refused_before_the_screen(monkeypatch):
    calls = _raise_on_call(monkeypatch, map_module, "screen", call=1)
    c = np.geomspace(1e18, 1e22, 20_000)
    data = _raw(1.7 + 900.0 * c**-0.15, c)
    with memory_budget("2MB"), pytest.raises(MemoryBudgetError, match=r"L-BFGS on 20,000 rows needs about"):
        bs.fit_map(laws.power_law, data)
    assert not calls


# ---------------------------------------------------------------- laws that return the wrong shape


@pytest.mark.parametrize(("wrap", "shown"), [
    (lambda v: v[:, None], "(n, 1)"),
    (lambda v: v[:, None] * v[None, :], "(n, n)"),
    (lambda v: jnp.sum(v), "()"),
    (lambda v: v[:1], "(1,)"),
])
def test_a_law_must_return_one_value_per_row(wrap, shown):
    mylaw = dataclasses.replace(laws.power_law, name="mylaw", fn=lambda p, x: wrap(laws.power_law.fn(p, x)))
    data = _power()
    message = rf"^law 'mylaw' returns shape {shown.replace('(', '[(]').replace(')', '[)]')} for n = 12 rows; " \
              r"it must return one value per row, shape \(n,\)$"
    for fit in (lambda: bs.fit_map(mylaw, data),
                lambda: bs.fit_bootstrap(mylaw, data, key=jax.random.key(0), resamples=2, starts=1),
                lambda: bs.fit_nuts(mylaw, data, key=jax.random.key(0), chains=1, warmup=5, draws=5)):
        with pytest.raises(ArgumentError, match=message):
            fit()


def test_every_library_law_passes_the_shape_check():
    for law in laws.LAWS.values():
        for stage in (*law.stages, law):
            n = 7
            x = {c: np.geomspace(2.0, 9.0, n) for c in stage.covariate_names}
            data = Data(x=x, y=np.linspace(0.3, 0.6, n), rows=np.arange(n), columns={"y": "y"})
            map_module.check_law_output(stage, data)  # raises if not (n,)


def test_a_law_that_cannot_be_traced_is_named_in_one_line():
    broken = dataclasses.replace(laws.power_law, name="broken", fn=lambda p, x: p["E"] + x["C"] @ x["C"][:3])
    with pytest.raises(ArgumentError, match=r"^law 'broken' fails on 12 rows of C: TypeError: [^\n]*$"):
        bs.fit_map(broken, _power())


# ---------------------------------------------------------------- data that cannot be fitted, flat objectives


def test_a_response_with_one_value_is_refused_by_every_fitter():
    data = _raw(np.full(30, 3.2))
    message = r"^the response column 'loss' has one value \(3.2\) in all 30 rows; nothing to fit$"
    with pytest.raises(DataError, match=message):
        bs.fit_map(laws.power_law, data)
    with pytest.raises(DataError, match=message):
        bs.fit_bootstrap(laws.power_law, data, key=jax.random.key(0), resamples=2)
    with pytest.raises(DataError, match=message):
        bs.fit_nuts(laws.power_law, data, key=jax.random.key(0))


def test_a_parameter_the_law_ignores_is_not_identified():
    flat = dataclasses.replace(laws.power_law, name="flat",
                               fn=lambda p, x: jnp.log(p["E"] + 900.0 * x["C"] ** -0.15) + 0.0 * p["A"])
    with pytest.warns(RuntimeWarning, match="map fit of 'flat': not identified"):
        fit = bs.fit_map(flat, _power(30))
    assert not fit.ok and not fit.info.converged
    assert fit.problems[0].startswith("not identified: the data do not determine A, alpha (flat objective")
    assert fit.diagnostics["converged"] is False
    # the bootstrap says why its full-data fit is not to be trusted
    boot = bs.fit_bootstrap(flat, _power(30), key=jax.random.key(0), resamples=4, starts=2, warn=False)
    assert any(p.startswith("the full-data MAP fit is not identified: the data do not determine A, alpha")
               for p in boot.problems)


def test_losses_far_from_the_start_grid_are_flagged_not_reported_converged():
    # losses of 1e-30: the grid's starts cannot reach the data, L-BFGS stops where the law saturates
    fit = bs.fit_map(laws.power_law, _power(30, scale=1e-30), warn=False)
    assert not fit.ok and not fit.info.converged
    assert "not identified" in fit.problems[0]
    # the same curve at an ordinary scale is identified
    assert bs.fit_map(laws.power_law, _power(30)).ok


def test_huber_past_its_threshold_and_a_parameter_at_its_edge_stay_converged():
    # every residual past the Huber threshold: the objective's Hessian is zero, the law's curvature is not
    c = np.geomspace(1e18, 1e22, 20)
    law = laws.direct.with_chance(0.25)
    misspecified = bs.fit_map(law, bs.from_arrays(law, y=0.25 + 0.7 / (1 + (c / 3e20) ** -0.5), C=c), keep=4)
    assert misspecified.ok and misspecified.info.residual_scale > 0.05
    # a pure power law fitted with a constant: E runs to the edge of its support, the curve is determined
    pure = bs.fit_map(laws.power_law, bs.from_arrays(laws.power_law, y=900.0 * c**-0.15 * np.exp(
        0.01 * np.random.default_rng(1).standard_normal(20)), C=c))
    assert pure.ok and pure.point["E"] < 1e-3 and pure.point["alpha"] == pytest.approx(0.15, abs=0.01)


# ---------------------------------------------------------------- argument types and values


def _frame():
    return pd.DataFrame({"C": C, "loss": 1.7 + 900.0 * C**-0.15})


FITTERS = {
    "fit_map": lambda law, data, **kw: bs.fit_map(law, data, **kw),
    "fit_bootstrap": lambda law, data, **kw: bs.fit_bootstrap(law, data, **{"key": jax.random.key(0), **kw}),
    "fit_nuts": lambda law, data, **kw: bs.fit_nuts(law, data, **{"key": jax.random.key(0), **kw}),
}


@pytest.mark.parametrize("name", FITTERS)
def test_a_data_frame_is_not_data(name):
    with pytest.raises(ArgumentTypeError, match=rf"^{name}: data must be Data, got DataFrame; build it with "
                                                r"bayescale\.from_frame\(frame, law, x=\[\.\.\.\], y=\.\.\.\)$"):
        FITTERS[name](laws.power_law, _frame())


@pytest.mark.parametrize("name", FITTERS)
def test_a_law_must_be_a_law(name):
    with pytest.raises(ArgumentTypeError, match=rf"^{name}: law must be Law, got str$"):
        FITTERS[name]("power_law", _power())


def test_data_built_for_another_law_is_refused():
    with pytest.raises(ArgumentError, match=r"law 'chinchilla' reads N, D but data has C"):
        bs.fit_map(laws.chinchilla, _power())


@pytest.mark.parametrize(("name", "argument", "value"), [
    ("fit_map", "keep", 0),
    ("fit_bootstrap", "resamples", 0),
    ("fit_bootstrap", "starts", 0),
    ("fit_bootstrap", "lanes", -1),
    ("fit_nuts", "draws", 0),
    ("fit_nuts", "chains", 0),
    ("fit_nuts", "warmup", -5),
])
def test_counts_must_be_positive(name, argument, value):
    with pytest.raises(ArgumentError, match=rf"^{name}: {argument} must be at least 1, got {value}$"):
        FITTERS[name](laws.power_law, _power(), **{argument: value})


@pytest.mark.parametrize(("name", "argument", "value"), [
    ("fit_map", "keep", 2.5),
    ("fit_bootstrap", "resamples", 1e3),
    ("fit_nuts", "draws", True),
])
def test_counts_must_be_integers(name, argument, value):
    with pytest.raises(ArgumentTypeError, match=rf"^{name}: {argument} must be a positive int"):
        FITTERS[name](laws.power_law, _power(), **{argument: value})


@pytest.mark.parametrize("name", ["fit_bootstrap", "fit_nuts"])
@pytest.mark.parametrize("key", [0, None, np.array([0, 1], np.uint32)])
def test_the_key_must_be_a_jax_key(name, key):
    with pytest.raises(ArgumentTypeError, match=rf"^{name}: key must be one JAX key such as jax\.random\.key\(0\)"):
        FITTERS[name](laws.power_law, _power(), key=key)


def test_map_starts_of_the_wrong_shape_are_refused():
    with pytest.raises(ArgumentError, match=r"^fit_map: starts must have shape \(S, 3\) with S >= 1, got \(2,\)$"):
        bs.fit_map(laws.power_law, _power(), starts=np.array([1.0, 2.0]))


def test_the_two_stage_fitter_checks_its_inputs():
    law = laws.two_stage_linear
    frame = pd.DataFrame({"C": C, "val_loss": 20.0 * C**-0.05, "acc": np.linspace(0.3, 0.6, C.size)})
    stage1, stage2, data = bs.two_stage_data(law, frame, x=["C"], proxy="val_loss", y="acc")
    with pytest.raises(ArgumentTypeError, match=r"^fit_two_stage: stage1 must be Data, got DataFrame"):
        bs.fit_two_stage(law, frame, stage2)
    with pytest.raises(ArgumentError, match=r"^fit_two_stage: law 'power_law' is not a two-stage law"):
        bs.fit_two_stage(laws.power_law, stage1, stage2)
    with pytest.raises(ArgumentError, match=r"^fit_two_stage: a stage's fitter draws random numbers; pass key="):
        bs.fit_two_stage(law, stage1, stage2, fitter=bs.Fitter.of(bs.fit_bootstrap, resamples=2))
    bad = dataclasses.replace(stage2, y=np.full(stage2.n, 0.5))
    with pytest.raises(DataError, match=r"has one value \(0\.5\) in all 12 rows"):
        bs.fit_two_stage(law, stage1, bad)
    assert bs.fit_two_stage(law, stage1, stage2, data=data).ok
