"""Test configuration: float64 and strict rank promotion for the tests themselves.

The package never relies on these globals (its entry points enable x64 locally);
the CLI tests run it in a subprocess with JAX's defaults to prove that.
"""

import os
import tempfile
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# One persistent XLA compilation cache for this test session, shared with the CLI subprocesses: the
# same programs (a law's MAP, bootstrap pool, NUTS chains) are compiled once per session, not once per
# process. Tracing still happens in every process, so the "compiles once" tests count the same traces.
_CACHE = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="bayescale-xla-"))
jax.config.update("jax_compilation_cache_dir", _CACHE)

@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop the in-memory compiled programs after each test module (the disk cache above keeps them).

    One process that holds every program of the whole suite crashed inside XLA's compiler (a segfault,
    once an abort) late in the run, each time in a different NUTS test that passes on its own.
    """
    yield
    jax.clear_caches()


REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BAYESCALE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(*parts: str) -> Path:
    """A file of ../shared/data, or skip with the reason (a user's machine has none)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} (set BAYESCALE_SHARED_DATA to its folder)")
    return path


def gadre_csv(tmp_path_factory, query: str, name: str) -> Path:
    """The bundled Gadre et al. runs (long format) selected by ``query``, written as a CSV for the CLI."""
    import bayescale as bs

    path = tmp_path_factory.mktemp("gadre") / name
    bs.datasets.gadre_long().query(query).to_csv(path, index=False)
    return path
