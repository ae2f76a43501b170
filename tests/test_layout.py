"""The architecture rules, checked on the source (STYLE: dependencies point inward).

* importing the fit rooms pulls in none of the table / plotting stacks, and importing
  bayescale has no side effects (no device arrays, no global JAX setting, no matplotlib);
* rooms import only from rooms above them: laws, fit, tables, convert, derive,
  evaluate, then plot.py, demo.py, cli/ -- at any nesting level, and never a
  ``_private`` name of another room;
* no function is longer than 80 lines;
* precision and randomness are explicit: only ``fit/precision.py`` switches JAX to
  64 bits, and library code builds no seed of its own.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bayescale"
ROOMS = ("errors", "laws", "fit", "tables", "convert", "derive", "evaluate", "plot", "demo", "cli")
HEAVY = ("pandas", "arviz", "arviz_base", "arviz_stats", "xarray", "matplotlib")
MAX_LINES = 80


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def _room(path: Path) -> str | None:
    """The room of a module file: its folder under bayescale/, or plot / demo; None if exempt."""
    parts = path.relative_to(PACKAGE).parts
    if len(parts) == 1:
        stem = path.stem
        return stem if stem in ROOMS else None  # __init__.py, __main__.py: exempt
    return parts[0]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """Every import in ``path`` (any nesting): ``(line, absolute module, imported names)``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            yield node.lineno, module, tuple(a.name for a in node.names)


def _target_rooms(module: str, names: tuple[str, ...]) -> list[str]:
    """The rooms an import reaches; the top-level package counts as every room it re-exports (down to evaluate)."""
    parts = module.split(".")
    if parts[0] != "bayescale":
        return []
    if len(parts) > 1:
        return [parts[1]] if parts[1] in ROOMS else ["<package>"]
    rooms = [n for n in names if n in ROOMS]
    return rooms if names and len(rooms) == len(names) else ["evaluate"]  # `import bayescale` / `from bayescale import fit_map`


# ---------------------------------------------------------------- (a) imports without side effects


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_the_fit_rooms_alone_import_no_table_or_plot_stack_even_after_a_fit():
    """The rooms themselves, without the package ``__init__`` (which re-exports every room)."""
    heavy = repr(HEAVY)
    code = f"""
    import sys, types
    package = types.ModuleType("bayescale")
    package.__path__ = [{str(PACKAGE)!r}]
    sys.modules["bayescale"] = package  # bayescale/__init__.py is not run
    import bayescale.laws, bayescale.fit
    import numpy as np
    c = np.geomspace(1e18, 1e22, 12)
    data = bayescale.fit.Data(x={{"C": c}}, y=1.7 + 900.0 * c**-0.15, rows=np.arange(12),
                              columns={{"C": "C", "y": "y"}})
    fit = bayescale.fit.fit_map(bayescale.laws.power_law, data)
    assert fit.ok and abs(fit.point["alpha"] - 0.15) < 1e-6, fit
    repr(fit), fit.diagnostics, fit.std(), fit.log_likelihood()
    loaded = [m for m in {heavy} if m in sys.modules]
    assert not loaded, f"the laws and fit rooms loaded {{loaded}}"
    print("ok")
    """
    assert _run(code) == "ok"


def test_the_fit_rooms_import_no_table_or_plot_stack_even_after_a_fit():
    heavy = repr(HEAVY)
    code = f"""
    import sys
    import bayescale.laws, bayescale.fit
    loaded = [m for m in {heavy} if m in sys.modules]
    assert not loaded, f"importing laws and fit loaded {{loaded}}"
    import numpy as np
    from bayescale.fit import Data, fit_map
    from bayescale.laws import power_law
    c = np.geomspace(1e18, 1e22, 12)
    data = Data(x={{"C": c}}, y=1.7 + 900.0 * c**-0.15, rows=np.arange(12), columns={{"C": "C", "y": "y"}})
    fit = fit_map(power_law, data)
    assert fit.ok and abs(fit.point["alpha"] - 0.15) < 1e-6, fit
    repr(fit), fit.diagnostics, fit.std(), fit.log_likelihood()
    loaded = [m for m in {heavy} if m in sys.modules]
    assert not loaded, f"a MAP fit loaded {{loaded}}"
    print("ok")
    """
    assert _run(code) == "ok"


def test_import_bayescale_creates_no_device_arrays_and_changes_no_setting():
    code = """
    import sys, jax
    before = (jax.config.jax_enable_x64, jax.config.jax_numpy_rank_promotion)
    import bayescale
    assert "matplotlib" not in sys.modules, "matplotlib imported"
    assert (jax.config.jax_enable_x64, jax.config.jax_numpy_rank_promotion) == before, "a JAX setting changed"
    live = jax.live_arrays()
    assert len(live) == 0, f"import created {len(live)} device array(s): {[a.shape for a in live]}"
    print("ok")
    """
    assert _run(code) == "ok"


# ---------------------------------------------------------------- (b) rooms


def test_rooms_import_only_from_rooms_above_them():
    bad = []
    for path in _modules():
        room = _room(path)
        if room is None:
            continue
        for line, module, names in _imports(path):
            for target in _target_rooms(module, names):
                if target == "<package>" or ROOMS.index(target) > ROOMS.index(room):
                    bad.append(f"{_rel(path)}:{line} ({room}) imports {module} {list(names)} ({target})")
    assert not bad, "imports from a room below:\n" + "\n".join(bad)


def test_no_private_name_crosses_a_room():
    bad = []
    for path in _modules():
        room = _room(path)
        for line, module, names in _imports(path):
            targets = _target_rooms(module, names)
            private = [n for n in names if n.startswith("_")]
            private_module = [p for p in module.split(".")[2:] if p.startswith("_")]
            if (private or private_module) and targets and targets != [room]:
                bad.append(f"{_rel(path)}:{line} ({room}) imports {private or module} from {module}")
    assert not bad, "private names imported across rooms:\n" + "\n".join(bad)


def _module_level_imports(tree: ast.Module):
    """Imports executed when the module is imported: everything outside function bodies."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            yield node.lineno, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            yield node.lineno, [node.module or ""]
        else:
            stack.extend(ast.iter_child_nodes(node))


def test_laws_and_fit_import_no_heavy_stack_at_module_level():
    bad = []
    for path in _modules():
        if _room(path) not in ("laws", "fit"):
            continue
        for line, modules in _module_level_imports(ast.parse(path.read_text())):
            for m in modules:
                if m.split(".")[0] in HEAVY:
                    bad.append(f"{_rel(path)}:{line} imports {m}")
    assert not bad, "\n".join(bad)


def test_the_room_scan_sees_every_room_and_catches_a_violation(tmp_path):
    # the scan is not vacuous: every room has modules, and an upward import is caught
    assert {_room(p) for p in _modules()} - {None} == set(ROOMS)
    fake = PACKAGE / "fit" / "x.py"
    assert _target_rooms("bayescale.evaluate.comparison", ("compare",)) == ["evaluate"]
    assert ROOMS.index(_target_rooms("bayescale", ("fit_map",))[0]) > ROOMS.index(_room(fake))
    assert _target_rooms("bayescale", ("laws",)) == ["laws"]
    assert _target_rooms("numpy", ()) == []


# ---------------------------------------------------------------- (c) short functions


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{_rel(path)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_LINES} lines:\n" + "\n".join(long)


# ---------------------------------------------------------------- (d) explicit precision and randomness


def _calls(tree: ast.AST):
    """``(call, enclosing function name, its parameter names)`` for every call in ``tree``."""

    def visit(node, fn, params):
        for child in ast.iter_child_nodes(node):
            name, names = fn, params
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = child.args
                name = child.name
                names = params | {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
            if isinstance(child, ast.Call):
                yield child, fn, params
            yield from visit(child, name, names)

    yield from visit(tree, None, frozenset())


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _library() -> list[Path]:
    return [p for p in _modules() if _room(p) != "cli"]


def test_only_the_precision_module_switches_jax_to_64_bits():
    bad = []
    for path in _library():
        text = path.read_text()
        tree = ast.parse(text)
        for call, _, _ in _calls(tree):
            name = _dotted(call.func)
            args = [a.value for a in call.args if isinstance(a, ast.Constant)]
            if name.endswith("enable_x64") or (name.endswith("config.update") and "jax_enable_x64" in args):
                if _rel(path) != "bayescale/fit/precision.py":
                    bad.append(f"{_rel(path)}:{call.lineno} {name}")
    assert not bad, "\n".join(bad)


def _hidden_seeds(path: Path, allowed=frozenset()) -> list[str]:
    """``default_rng(...)``, ``np.random.seed`` and JAX keys not seeded by the caller (a literal, or
    nothing that is a parameter of the enclosing function), outside ``allowed`` (file, function)."""
    bad = []
    for call, fn, params in _calls(ast.parse(path.read_text())):
        name = _dotted(call.func)
        last = name.rpartition(".")[2]
        if last in ("key", "PRNGKey") and "random" in name:
            used = {n.id for a in call.args for n in ast.walk(a) if isinstance(n, ast.Name)}
            from_caller = bool(used & params)
            literal = any(isinstance(a, ast.Constant) for a in call.args)
            if (literal or not from_caller) and (_rel(path), fn) not in allowed:
                bad.append(f"{_rel(path)}:{call.lineno} {name}(...) in {fn}")
        elif last == "default_rng" or name in ("np.random.seed", "numpy.random.seed"):
            bad.append(f"{_rel(path)}:{call.lineno} {name}(...) in {fn}")
    return bad


def test_library_code_builds_no_hidden_seed():
    """Randomness comes from the caller: no default_rng, no literal key/PRNGKey seed in library code.

    The one exception is documented: the fixed Monte Carlo design of ``fit/map.py:_quantiles``
    (starts are deterministic, not a random draw).
    """
    allowed = frozenset({("bayescale/fit/map.py", "_quantiles")})
    bad = [line for path in _library() for line in _hidden_seeds(path, allowed)]
    assert not bad, "hidden seeds in library code:\n" + "\n".join(bad)


def test_the_seed_scan_catches_a_hidden_seed(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("import jax, numpy as np\n"
                   "def f(n):\n    return jax.random.key(0), np.random.default_rng(n)\n"
                   "def g(seed):\n    return jax.random.PRNGKey(seed)\n"
                   "def h(n):\n    k = 3\n    return jax.random.key(k)\n")
    rel = _rel
    try:
        globals()["_rel"] = lambda p: p.name
        found = _hidden_seeds(src)
    finally:
        globals()["_rel"] = rel
    assert [line.split()[0] for line in found] == ["x.py:3", "x.py:3", "x.py:8"], found
