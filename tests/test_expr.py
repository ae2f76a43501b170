"""The expression language (bayescale.tables.expr): nothing outside the whitelist ever evaluates.

(a) a property test over random token sequences (dangerous tokens included) and over mutated
valid expressions: evaluation returns one value per row or raises ExpressionError, never
anything else; every accepted text passes a whitelist check written here, independently of
the implementation; and nothing compiles or executes code meanwhile.  (b) known escape tricks
are refused and create nothing on disk.  (c) the language agrees with numpy.  (d) the table
boundary: corrupt compressed CSVs, zips of two CSVs, unequal ``from_arrays``.
"""

from __future__ import annotations

import ast
import builtins
import bz2
import contextlib
import gzip
import lzma
import os
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayescale as bs
from bayescale.errors import ArgumentTypeError, DataError, ExpressionError
from bayescale.tables import derive, query, read_csv
from bayescale.tables.expr import FUNCTIONS, MAX_LENGTH, evaluate, mask

N = 6
COLUMNS = {
    "C": np.array([1e18, 3e19, 1e20, 6e21, 1e22, 2e23]),
    "k": np.array([1, 2, 4, 8, 16, 32]),
    "s": np.array(["a", "b", "c4_val", "a", "x", "b"], dtype=object),
    "flag": np.array([True, False, True, True, False, False]),
    "loss (nats)": np.array([3.1, 2.9, 2.7, 2.5, 2.4, 2.3]),
}

# ---------------------------------------------------------------- (a) the whitelist, independently

_ALLOWED_NODES = (
    ast.Expression, ast.Name, ast.Load, ast.Constant, ast.UnaryOp, ast.UAdd, ast.USub, ast.Not, ast.BinOp,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.BoolOp, ast.And, ast.Or, ast.Compare,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Call, ast.List, ast.Tuple,
)
_FUNCTION_NAMES = {"log", "log10", "log2", "log1p", "exp", "expm1", "sqrt", "abs", "min", "max", "floor", "ceil",
                   "round", "where", "isfinite", "isnan"}


def _whitelisted(text: str) -> None:
    """Assert that ``text`` uses only the language: written apart from bayescale's own checker."""
    quoted = re.findall(r"`([^`]*)`", text)
    assert all(q in COLUMNS for q in quoted), quoted
    plain = re.sub(r"`[^`]*`", " QUOTED ", text)
    plain = plain.replace("&", " and ").replace("|", " or ").replace("~", " not ").strip()
    plain = re.sub(r"[\t\n\r]", " ", plain)  # the language reads tabs and line breaks as spaces
    tree = ast.parse(plain, mode="eval")
    lists = {id(c) for n in ast.walk(tree) if isinstance(n, ast.Compare)
             for op, c in zip(n.ops, n.comparators) if isinstance(op, (ast.In, ast.NotIn))}
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        assert isinstance(node, _ALLOWED_NODES), (text, type(node).__name__)
        if isinstance(node, ast.Name):
            assert "__" not in node.id, text
            if id(node) in calls:
                assert node.id in _FUNCTION_NAMES, text
            else:
                assert node.id in COLUMNS or node.id == "QUOTED", text
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name) and not node.keywords, text
        if isinstance(node, ast.Constant):
            assert type(node.value) in (int, float, bool, str), text
        if isinstance(node, (ast.List, ast.Tuple)):
            assert id(node) in lists, text


@contextlib.contextmanager
def _no_code_runs():
    """Within: eval/exec raise, and compile only ever builds an AST (what ast.parse asks for)."""
    real_compile = builtins.compile

    def compile_ast_only(source, filename, mode, flags=0, *args, **kwargs):
        assert flags & ast.PyCF_ONLY_AST, f"compile() of {source!r} without PyCF_ONLY_AST"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError(f"eval/exec called with {args!r}")

    saved = builtins.eval, builtins.exec, builtins.compile
    builtins.eval, builtins.exec, builtins.compile = refuse, refuse, compile_ast_only
    try:
        yield
    finally:
        builtins.eval, builtins.exec, builtins.compile = saved


_DANGEROUS = ["__class__", ".", "@", "(", ")", "[", "]", "lambda", ":", "import", "__import__", "os", "getattr", ",",
              "'x'", "'a'", "`", "`C`", "`loss (nats)`", "`__class__`", "**", "if", "else", "for", "in", "not in",
              "__globals__", "__subclasses__", "__builtins__", "open", "eval", "exec", "system", "{", "}", "f'{C}'",
              ":=", "=", "*", "yield", "None", "...", "1j", "b'x'", ";", "#", "\\", "is", "@C", "'", '"', "\n",
              "\x00", "x", "y", ".real", ".T", ".__class__", ".__init__.__globals__", "[0]", "(C)", "(1)"]
_LANGUAGE = ["C", "k", "s", "flag", "1", "2.5", "1e21", "0", "-", "+", "/", "//", "%", "<", "<=", ">", ">=", "==",
             "!=", "and", "or", "not", "&", "|", "~", "True", *sorted(_FUNCTION_NAMES), "(", ")", "(", ")", ","]


def _expressions():
    """Well-typed expressions of the language: numbers and conditions, nested."""
    unary = sorted(_FUNCTION_NAMES - {"min", "max", "where", "round", "isfinite", "isnan"})
    numbers = st.deferred(lambda: st.one_of(
        st.sampled_from(["C", "k", "`loss (nats)`", "`C`", "1", "2.5", "1e21", "-3", "True"]),
        st.tuples(numbers, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), numbers).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(unary), numbers).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["min", "max"]), st.lists(numbers, min_size=2, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(conditions, numbers, numbers).map(lambda t: f"where({t[0]}, {t[1]}, {t[2]})"),
        numbers.map(lambda e: f"-{e}"),
        numbers.map(lambda e: f"round({e}, 2)"),
    ))
    conditions = st.deferred(lambda: st.one_of(
        st.sampled_from(["flag", "s == 'a'", "s in ('b', 'x')", "True"]),
        st.tuples(numbers, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), numbers).map(" ".join),
        st.tuples(numbers, numbers, numbers).map(lambda t: f"{t[0]} < {t[1]} <= {t[2]}"),
        numbers.map(lambda e: f"{e} in (1, 2, -4)"),
        numbers.map(lambda e: f"isfinite({e})"),
        st.tuples(conditions, st.sampled_from(["and", "or", "&", "|"]), conditions).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        conditions.map(lambda e: f"not ({e})"),
        conditions.map(lambda e: f"~({e})"),
    ))
    return st.one_of(numbers, conditions)


_random_tokens = st.tuples(st.lists(st.sampled_from(_DANGEROUS + _LANGUAGE), min_size=1, max_size=12),
                           st.sampled_from([" ", ""])).map(lambda t: t[1].join(t[0]))


@st.composite
def _spliced(draw):
    """A valid expression with a dangerous token spliced in, mostly right after a name or a ')'."""
    text = draw(_expressions())
    at = draw(st.sampled_from([0, len(text), *(m.end() for m in re.finditer(r"[\w`)]+", text))]))
    return text[:at] + draw(st.sampled_from(_DANGEROUS)) + text[at:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_expressions())
def test_well_typed_expressions_are_accepted_and_within_the_whitelist(text):
    with _no_code_runs():
        out = evaluate(text, COLUMNS)
    assert isinstance(out, np.ndarray) and out.shape == (N,) and out.dtype.kind in "bf"
    _whitelisted(text)


def _evaluates_within_the_whitelist_or_is_refused(text):
    with _no_code_runs():
        try:
            out = evaluate(text, COLUMNS)
        except ExpressionError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith("expression "), message
            return
    assert isinstance(out, np.ndarray) and out.shape == (N,) and out.dtype.kind in "bfO"
    _whitelisted(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_random_tokens)
def test_random_tokens_evaluate_within_the_whitelist_or_are_refused(text):
    _evaluates_within_the_whitelist_or_is_refused(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_spliced())
def test_spliced_dangerous_tokens_evaluate_within_the_whitelist_or_are_refused(text):
    _evaluates_within_the_whitelist_or_is_refused(text)


# ---------------------------------------------------------------- (b) known escapes

ESCAPES = [
    "@Path('pwned').touch()",
    "__class__.__init__.__globals__",
    "__class__.__init__.__globals__['os'].system('touch pwned')",
    "C.__class__.__init__.__globals__",
    "`__class__`",
    "`C`.__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "__import__('os').system('touch pwned')",
    "open('pwned', 'w')",
    "open('pwned', 'w').write('x')",
    "exec(\"open('pwned','w')\")",
    "eval('1')",
    "getattr(C, 'x')",
    "(lambda: open('pwned', 'w'))()",
    "[open('pwned', 'w') for _ in (1,)]",
    "{x for x in (1,)}",
    "f\"{open('pwned', 'w')}\"",
    "(x := open('pwned', 'w'))",
    "C.__class__",
    "C[0]",
    "log(C).real",
    "log.__globals__",
    "log(C, out=C)",
    "min(*C)",
    "where(flag, C, open('pwned', 'w'))",
    "1 if flag else 2",
    "C @ C",
    "C << 2",
    "C is None",
    "k in k",
    "s in [open('pwned', 'w')]",
    "b'x' == s",
    "1j + C",
    "...",
    "`C",
    "``",
    "C > 1\x00",
    "(" * 300 + "C" + ")" * 300,
    "1" + "**1" * 600,
    "-" * 500 + "C",
    "C" + " + C" * 600,
    "C" * (MAX_LENGTH + 1),
    "9" * 400 + " > C",
]


@pytest.mark.parametrize("text", ESCAPES, ids=range(len(ESCAPES)))
def test_escape_tricks_are_refused_and_create_nothing(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame(COLUMNS)
    with _no_code_runs():
        with pytest.raises(ExpressionError) as where:
            query(frame, text)
        with pytest.raises(ExpressionError) as derived:
            derive(frame, [f"Z={text}"])
    for exc in (where.value, derived.value):
        assert "\n" not in str(exc) and len(str(exc)) < 900, str(exc)
    assert str(where.value).startswith("--where ") and str(derived.value).startswith("--derive ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@Path('x').touch()", "'@' at position 1 is not allowed"),
        ("C.__class__", "attribute access 'C.__class__' at position 1 is not allowed"),
        ("__class__", "the name '__class__' at position 1 is not allowed"),
        ("getattr(C, 'x')", "'getattr' at position 1 is not a function here"),
        ("log(C, base=2)", "the keyword argument 'base='"),
        ("C[0] > 1", "indexing 'C[0]' at position 1 is not allowed"),
        ("Cc > 1", "unknown column 'Cc' at position 1. Did you mean 'C'? Columns: C, k, s, flag, loss (nats)"),
        ("`los (nats)` > 1", "unknown column 'los (nats)' at position 1. Did you mean 'loss (nats)'?"),
        ("s + 1", "'+' needs numbers, but 's' at position 1 is text"),
        ("k == 'a'", "compares numbers 'k' with text \"'a'\""),
        ("not k", "'not' needs true/false conditions, but 'k' at position 5 gives numbers"),
        ("C * 2", "it gives numbers, not true/false per row"),
        ("C >", "syntax error: it ends too early"),
        ("min(C)", "min() at position 1 takes 2 or more arguments, got 1"),
        ("log", "'log' at position 1 is a function; call it"),
    ],
)
def test_refusals_name_what_and_where(text, message):
    with pytest.raises(ExpressionError) as exc:
        mask(text, COLUMNS)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_cli_refuses_an_escape_in_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from bayescale.cli import main

    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"C": COLUMNS["C"], "loss": COLUMNS["loss (nats)"]}).to_csv("runs.csv", index=False)
    for flag, text in [("--derive", "Z=@Path('pwned').touch()"), ("--where", "__class__.__init__.__globals__"),
                       ("--where", "`__class__` > 0")]:
        code = main(["fit", "runs.csv", "--law", "power_law", "--x", "C", "--y", "loss", flag, text, "--json", "o"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert flag in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv"]


# ---------------------------------------------------------------- (c) the language agrees with numpy

C, K, S, F, L = (COLUMNS[c] for c in ("C", "k", "s", "flag", "loss (nats)"))
Kf = K.astype(float)
with np.errstate(divide="ignore"):
    LOG_K1 = np.log(Kf - 1)
CASES = [
    ("C / (6 * k) + 1", C / (6 * Kf) + 1),
    ("2 + 3 * k ** 2", 2 + 3 * Kf**2),
    ("2 ** 3 ** 2 + 0 * k", np.full(N, 512.0)),
    ("-k ** 2", -(Kf**2)),
    ("k // 3 + k % 3", Kf // 3 + Kf % 3),
    ("log(C) - log10(C) + log2(k) + log1p(k) + sqrt(k) + exp(-k) + expm1(-k)",
     np.log(C) - np.log10(C) + np.log2(Kf) + np.log1p(Kf) + np.sqrt(Kf) + np.exp(-Kf) + np.expm1(-Kf)),
    ("abs(3 - k) + floor(k / 3) + ceil(k / 3) + round(k / 3, 2) + round(`loss (nats)`)",
     np.abs(3 - Kf) + np.floor(Kf / 3) + np.ceil(Kf / 3) + np.round(Kf / 3, 2) + np.round(L)),
    ("min(k, 5, 20 - k) + max(k, 3)", np.minimum(np.minimum(Kf, 5), 20 - Kf) + np.maximum(Kf, 3)),
    ("where(flag, C, -k)", np.where(F, C, -Kf)),
    ("log(k - 1)", LOG_K1),  # -inf at k = 1, no warning
    ("1e19 < C <= 1e22", (C > 1e19) & (C <= 1e22)),
    ("k < 4 < C", (Kf < 4) & (4 < C)),
    ("C > 1e19 and k < 16 or flag", ((C > 1e19) & (Kf < 16)) | F),
    ("C > 1e19 & k < 16 | flag", ((C > 1e19) & (Kf < 16)) | F),
    ("not flag and ~(k > 2)", ~F & ~(Kf > 2)),
    ("k in (1, 4, 32)", np.isin(K, [1, 4, 32])),
    ("k not in [1, -4.0, 32]", ~np.isin(K, [1, 32])),
    ("s == 'b' or s in ('x', 'c4_val')", np.isin(S, ["b", "x", "c4_val"])),
    ("s != \"a\"", S != "a"),
    ("`loss (nats)` < 2.6 and `C` >= 1e20", (L < 2.6) & (C >= 1e20)),
    ("isfinite(log(k - 1)) & ~isnan(k)", np.isfinite(LOG_K1)),
    ("flag * 2 + True", F * 2.0 + 1),
    ("  k\n>\t2 ", Kf > 2),
    ("1", np.ones(N)),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_language_agrees_with_numpy(text, expected):
    with np.errstate(all="raise"):  # the language must not warn (log(0) is -inf, quietly)
        out = evaluate(text, COLUMNS)
    assert out.shape == (N,)
    np.testing.assert_array_equal(out, expected)


def test_query_derive_and_condition_read_the_same_language():
    frame = pd.DataFrame({"Model Size": [1e8, 2e8, 4e8, 8e8], "tok": [2e9, 4e9, 8e9, 16e9], "set": list("abab"),
                          "loss": [3.2, 3.0, 2.9, 2.8]})
    out = derive(frame, ["N=`Model Size`", "D=tok / N", "big=N > 1.5e8"])
    np.testing.assert_array_equal(out.D, frame.tok / frame["Model Size"])
    assert out.big.tolist() == [False, True, True, True] and "N" not in frame  # a copy
    assert query(out, "big and set == 'b'").index.tolist() == [1, 3]
    assert query(out, None) is out and query(out, " ") is out
    with pytest.raises(ExpressionError, match=r"--derive 'Z=N\.x' is not a valid expression: attribute access 'N\.x' "
                                              "at position 3"):
        derive(frame, ["Z=N.x"])
    with pytest.raises(ArgumentTypeError, match="derive: specs must be a list"):
        derive(frame, "Z=1")
    data = bs.from_arrays(bs.laws.power_law, y=np.array([3.0, 2.6, 2.4, 2.3]), C=np.array([1e18, 1e19, 1e20, 1e21]))
    assert bs.tables.condition(data, "C > 5e18 and y < 2.5").tolist() == [False, False, True, True]
    assert bs.tables.condition(data, lambda x: x["C"] > 5e19).tolist() == [False, False, True, True]
    with pytest.raises(ExpressionError, match="holdout 'D > 1' is not a valid condition: unknown column 'D'"):
        bs.tables.condition(data, "D > 1", what="holdout")


# ---------------------------------------------------------------- (d) the table boundary

GOOD = b"C,loss\n1e18,3.1\n1e19,2.9\n"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("runs.csv.gz", b"\x1f\x8b\x08\x00garbage that is not deflate", "is not valid gzip data"),
        ("runs.csv.gz", gzip.compress(GOOD)[:-12], "is not valid gzip data"),
        ("runs.csv.gz", GOOD, "is not valid gzip data"),
        ("runs.csv.bz2", b"BZh91AY&SYgarbage", "is not valid bzip2 data"),
        ("runs.csv.bz2", bz2.compress(GOOD)[:-6], "is not valid bzip2 data"),
        ("runs.csv.xz", b"\xfd7zXZ\x00garbage", "is not valid xz data"),
        ("runs.csv.xz", lzma.compress(GOOD)[:-10], "is not valid xz data"),
        ("runs.csv.zip", b"PK\x03\x04garbage", "is not valid zip data"),
        ("runs.csv.zst", b"(\xb5/\xfdgarbage", "zstandard"),
        ("runs.csv", b"\x00\x01\x02binary\x00", "it is binary"),
        ("runs.csv", b"C,loss\n\xff\xfe,1\n", "it is not UTF-8 text"),
        ("runs.csv", b"", "cannot read 'runs.csv' as CSV"),
        ("runs.csv", b"C,loss\n", "has no data rows"),
    ],
)
def test_corrupt_files_are_one_line_naming_the_file(tmp_path, monkeypatch, name, content, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as exc:
        read_csv(name)
    assert message in str(exc.value) and repr(name) in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def test_zip_archives_need_exactly_one_csv(tmp_path):
    two, empty = tmp_path / "two.zip", tmp_path / "empty.zip"
    with zipfile.ZipFile(two, "w") as z:
        z.writestr("a.csv", GOOD)
        z.writestr("b.csv", GOOD)
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(DataError, match=r"two\.zip'.*must hold exactly one CSV file, this one holds .*a\.csv.*b\.csv"):
        read_csv(str(two))
    with pytest.raises(DataError, match="empty.zip'.*holds none"):
        read_csv(str(empty))
    good = tmp_path / "one.csv.gz"
    good.write_bytes(gzip.compress(GOOD))
    assert read_csv(str(good)).shape == (2, 2)


def test_unreadable_paths(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        read_csv(str(tmp_path))
    with pytest.raises(DataError, match="is a device"):
        read_csv("/dev/null")
    with pytest.raises(ArgumentTypeError, match="read_csv: path must be"):
        read_csv(3)  # type: ignore[arg-type]
    locked = tmp_path / "locked.csv"
    locked.write_bytes(GOOD)
    locked.chmod(0)
    try:
        if os.geteuid() != 0:  # root reads anything
            with pytest.raises(DataError, match="locked.csv'.*permission denied"):
                read_csv(str(locked))
    finally:
        locked.chmod(0o600)


def test_from_arrays_names_the_bad_argument():
    law = bs.laws.power_law
    with pytest.raises(DataError, match=r"from_arrays: the arrays differ in length \(y: 4, C: 3\)"):
        bs.from_arrays(law, y=np.array([3.0, 2.6, 2.4, 2.3]), C=np.array([1e18, 1e19, 1e20]))
    with pytest.raises(DataError, match="from_arrays: C must be numbers"):
        bs.from_arrays(law, y=np.array([3.0, 2.6]), C=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"from_arrays: y must be a 1-D array .* got shape \(\)"):
        bs.from_arrays(law, y=3.0, C=np.array([1e18, 1e19]))


def test_the_functions_are_the_documented_ones():
    assert set(FUNCTIONS) == _FUNCTION_NAMES


def test_an_extrapolation_study_reads_the_language_and_stops_between_fits():
    import jax

    from bayescale.errors import Interrupted
    from bayescale.evaluate import extrapolation_study

    frame = pd.DataFrame({"C": [1e18, 1e19, 1e20, 1e21, 1e22, 1e23], "acc": [0.30, 0.35, 0.42, 0.5, 0.6, 0.7]})
    calls = []

    def fitter(law, data, *, key, warn):
        calls.append(data.n)
        raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="interrupted after 0 of 2 fits"):
        extrapolation_study(frame, [bs.laws.direct, bs.laws.direct_ceiling], y="acc", holdout="C > 1e21 or C < 0",
                            key=jax.random.key(0), fitter=fitter)
    assert calls == [4]  # the four runs with C <= 1e21
    with pytest.raises(ExpressionError, match=r"holdout 'C\.real > 1' is not a valid condition: attribute access"):
        extrapolation_study(frame, [bs.laws.direct], y="acc", holdout="C.real > 1", key=jax.random.key(0))
