"""The expression language of ``--where``, ``--derive``, ``--holdout`` and their Python twins.

One small language, read the same way by the command line and by :func:`~bayescale.tables.query`,
:func:`~bayescale.tables.derive`, :func:`~bayescale.tables.condition`,
:func:`~bayescale.evaluate.compare` / ``leave_future_out`` (``holdout=``) and
:func:`~bayescale.evaluate.extrapolation_study`.  An expression is evaluated on whole
columns at once (numpy arrays, one value per row):

* **column names** as bare identifiers (``loss``, ``C``), or in backticks for any other
  name (```Model Size```, ```loss (nats)```); a backticked name is only ever a column.
  Names containing ``__`` must be backticked.
* **numbers** (``3``, ``0.5``, ``6e21``), ``True`` / ``False``, and **'text'** in quotes,
  which only ``==``, ``!=`` and ``in`` compare (with a text column: ``val_set == 'c4_val'``).
* **arithmetic** ``+ - * / // % **`` (``**`` binds tightest and groups to the right, as in
  Python); all numbers are float64, so ``10 ** 400`` is ``inf``, ``log(0)`` is ``-inf`` and
  ``0 / 0`` is NaN, without warnings.
* **comparisons** ``< <= > >= == !=``, chained as in Python (``1e19 < C <= 1e21``).
* **logic** on true/false columns, row by row: ``and``, ``or``, ``not``; ``&``, ``|``, ``~``
  mean the same (as in ``pandas.DataFrame.query``: ``C > 1 & D < 2`` is
  ``(C > 1) and (D < 2)``).
* **membership** ``k in (1, 4, 16)``, ``val_set not in ['a', 'b']``: a literal list or tuple
  of numbers or of texts.
* **functions**, called by name: ``log`` ``log10`` ``log2`` ``log1p`` ``exp`` ``expm1``
  ``sqrt`` ``abs`` ``floor`` ``ceil`` ``round(x)`` / ``round(x, digits)`` ``isfinite``
  ``isnan``, ``min(a, b, ...)`` / ``max(a, b, ...)`` (row by row, two or more arguments) and
  ``where(condition, a, b)``.  A column named like a function is still read by its bare
  name where it is not called.

Nothing else is part of the language: attributes (``x.y``), other calls, keyword
arguments, indexing, ``@``, lambdas, comprehensions, f-strings, ``:=``, ``... if ... else``,
dicts and sets are refused before anything is evaluated, with one
:class:`~bayescale.errors.ExpressionError` line that names what was refused and where.  The
text is parsed with :func:`ast.parse` only (never compiled or executed) and evaluated by a
small interpreter over the whitelisted nodes; expressions are limited to
``MAX_LENGTH`` characters, ``MAX_NODES`` syntax nodes and ``MAX_DEPTH`` levels of nesting.

>>> import numpy as np
>>> mask("C > 1e19 and `loss (nats)` < 3", {"C": np.array([1e18, 1e20]), "loss (nats)": np.array([2.9, 2.8])})
array([False,  True])
>>> evaluate("log10(C) + 1", {"C": np.array([10.0, 1000.0])})
array([2., 4.])
"""

from __future__ import annotations

import ast
import unicodedata
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from bayescale.errors import ArgumentError, ExpressionError, expect

__all__ = ["FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "MAX_NODES", "evaluate", "mask", "shown"]

MAX_LENGTH = 2000
MAX_NODES = 1000
MAX_DEPTH = 100

_UNARY_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "log": np.log, "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "exp": np.exp, "expm1": np.expm1,
    "sqrt": np.sqrt, "abs": np.abs, "floor": np.floor, "ceil": np.ceil, "isfinite": np.isfinite, "isnan": np.isnan,
}
FUNCTIONS: tuple[str, ...] = (*_UNARY_FUNCTIONS, "round", "min", "max", "where")
"""The functions of the language, called by bare name."""

_ARITY = {**{f: (1, 1) for f in _UNARY_FUNCTIONS}, "round": (1, 2), "min": (2, None), "max": (2, None),
          "where": (3, 3)}
_LANGUAGE = ("expressions use column names (odd ones in `backticks`), numbers, 'text' (with == != in), "
             "+ - * / // % **, comparisons, and/or/not (& | ~), in [...], and the functions " + ", ".join(FUNCTIONS))
_BINARY: dict[type, tuple[str, Callable]] = {
    ast.Add: ("+", np.add), ast.Sub: ("-", np.subtract), ast.Mult: ("*", np.multiply),
    ast.Div: ("/", np.true_divide), ast.FloorDiv: ("//", np.floor_divide), ast.Mod: ("%", np.mod),
    ast.Pow: ("**", np.power),
}
_COMPARE: dict[type, tuple[str, Callable]] = {
    ast.Lt: ("<", np.less), ast.LtE: ("<=", np.less_equal), ast.Gt: (">", np.greater),
    ast.GtE: (">=", np.greater_equal), ast.Eq: ("==", np.equal), ast.NotEq: ("!=", np.not_equal),
}
_MEMBERSHIP = {ast.In: "in", ast.NotIn: "not in"}
_SYMBOL = {ast.MatMult: "'@'", ast.LShift: "'<<'", ast.RShift: "'>>'", ast.BitXor: "'^'", ast.BitAnd: "'&'",
           ast.BitOr: "'|'", ast.Is: "'is'", ast.IsNot: "'is not'"}
_DESCRIPTION = {
    ast.Attribute: "attribute access", ast.Subscript: "indexing", ast.Slice: "a slice", ast.Lambda: "lambda",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension", ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string",
    ast.NamedExpr: "':=' (assignment)", ast.IfExp: "'... if ... else ...'", ast.Dict: "a dict",
    ast.Set: "a set", ast.Starred: "'*' unpacking", ast.Await: "await", ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
_SHOW_COLUMNS = 20


class _Source:
    """The text as parsed (backticked names as placeholders, ``& | ~`` as ``and or not``) and the way back.

    ``origin[i]`` is the index in the user's text of character ``i`` of ``parsed``.
    """

    def __init__(self, text: str, refuse: Callable[[str], ExpressionError], start: int) -> None:
        self.text, self.start = text, start
        prefix = "_bq"
        while prefix in text:
            prefix += "_"
        out: list[str] = []
        origin: list[int] = []
        self.quoted: dict[str, str] = {}

        def emit(chars: str, at: int, last: int | None = None) -> None:
            out.extend(chars)
            origin.extend([at] * (len(chars) - 1) + [at if last is None else last])

        i, quote = 0, ""
        while i < len(text):
            ch = text[i]
            if ch in "\t\n\r":
                ch = " "
            elif not ch.isprintable() and ch != " ":
                raise refuse(f"the control character {ch!r} at position {start + i + 1} is not allowed")
            if quote:
                emit(ch, i)
                if ch == "\\" and i + 1 < len(text):
                    i += 1
                    emit(text[i], i)
                elif ch == quote:
                    quote = ""
            elif ch in "'\"":
                quote = ch
                emit(ch, i)
            elif ch == "`":
                end = text.find("`", i + 1)
                if end < 0:
                    raise refuse(f"the backtick at position {start + i + 1} is never closed; "
                                 "quote an odd column name as `name`")
                if not text[i + 1:end].strip():
                    raise refuse(f"empty backticks `` at position {start + i + 1}; put a column name inside")
                name = f"{prefix}{len(self.quoted)}"
                self.quoted[name] = text[i + 1:end]
                emit(" ", i)
                emit(name, i, end)
                emit(" ", end)
                i = end
            elif ch == "@":
                raise refuse(f"'@' at position {start + i + 1} is not allowed (there are no @variables); {_LANGUAGE}")
            elif ch in "&|~":
                emit({"&": " and ", "|": " or ", "~": " not "}[ch], i)
            else:
                emit(ch, i)
            i += 1
        lead = len(out) - len("".join(out).lstrip())  # eval mode reads no leading blanks
        self.parsed = "".join(out[lead:])
        self.origin = origin[lead:] + [len(text)]
        self._encoded = self.parsed.encode()

    def _char(self, line: int | None, offset: int | None) -> int:
        """The index in ``parsed`` of an ast (line, UTF-8 byte offset) position; the text is one line."""
        if offset is None:
            return 0
        return len(self._encoded[:offset].decode(errors="ignore")) if line in (None, 1) else len(self.parsed)

    def position(self, node: ast.AST) -> int:
        """The 1-based position in the user's text (after ``start``) where ``node`` begins."""
        i = self._char(getattr(node, "lineno", None), getattr(node, "col_offset", None))
        return self.start + self.origin[min(i, len(self.origin) - 1)] + 1

    def fragment(self, node: ast.AST, limit: int = 40) -> str:
        """The user's text of ``node`` (shortened to ``limit`` characters)."""
        i = self._char(getattr(node, "lineno", None), getattr(node, "col_offset", None))
        j = self._char(getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None))
        lo = self.origin[min(i, len(self.origin) - 1)]
        hi = self.origin[min(max(j - 1, i), len(self.origin) - 1)] + 1
        piece = self.text[lo:hi].strip()
        return piece if len(piece) <= limit else piece[: limit - 3] + "..."


def _kind(value: np.ndarray) -> str:
    return {"b": "true/false", "f": "numbers", "O": "text"}.get(value.dtype.kind, value.dtype.name)


class _Expression:
    """One expression checked against the whitelist, then evaluated on ``columns``."""

    def __init__(self, text: str, columns: Mapping[str, Any], what: str, rows: int, start: int) -> None:
        self.what, self.columns, self.rows = what, columns, rows
        if not text.strip():
            raise self.refuse("it is empty; write e.g. C > 1e21")
        if len(text) > MAX_LENGTH:
            raise self.refuse(f"it is {len(text):,} characters long; the limit is {MAX_LENGTH:,}")
        self.source = _Source(text, self.refuse, start)
        try:
            with warnings.catch_warnings():  # SyntaxWarning ("invalid decimal literal") is not for the user
                warnings.simplefilter("ignore")
                self.tree = ast.parse(self.source.parsed, mode="eval")
        except SyntaxError as exc:
            if not exc.offset:  # the parser ran out of text
                raise self.refuse(f"syntax error: it ends too early ({exc.msg}); {_LANGUAGE}") from None
            at = self.source.origin[min(exc.offset - 1, len(self.source.origin) - 1)]
            raise self.refuse(f"syntax error at position {start + at + 1} ({exc.msg}); {_LANGUAGE}") from None
        except (RecursionError, MemoryError, ValueError, OverflowError):
            raise self.refuse(f"it is too deeply nested to read; the limit is {MAX_DEPTH} levels") from None
        self._bounded()
        named = {unicodedata.normalize("NFKC", c): c for c in columns if isinstance(c, str) and c.isidentifier()}
        self.bare = {**named, **{c: c for c in columns if isinstance(c, str)}}
        self.loaded: dict[str, np.ndarray] = {}
        self.check(self.tree.body)

    def refuse(self, reason: str) -> ExpressionError:
        return ExpressionError(f"{self.what}: {reason}")

    def _at(self, node: ast.AST) -> str:
        return f"{self.source.fragment(node)!r} at position {self.source.position(node)}"

    def _bounded(self) -> None:
        count = 0
        stack: list[tuple[ast.AST, int]] = [(self.tree, 1)]
        while stack:
            node, depth = stack.pop()
            count += 1
            if depth > MAX_DEPTH:
                raise self.refuse(f"it nests deeper than {MAX_DEPTH} levels; split it (e.g. with --derive)")
            if count > MAX_NODES:
                raise self.refuse(f"it has more than {MAX_NODES} parts; split it (e.g. with --derive)")
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))

    # ------------------------------------------------------------------ the whitelist

    def check(self, node: ast.AST) -> None:
        """Refuse ``node`` unless it and everything under it is part of the language."""
        if isinstance(node, ast.Name):
            self._column_name(node)
        elif isinstance(node, ast.Constant):
            self._constant(node)
        elif isinstance(node, ast.UnaryOp):
            self.check(node.operand)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise self.refuse(f"{_SYMBOL.get(type(node.op), 'this operator')} in {self._at(node)} "
                                  f"is not allowed; {_LANGUAGE}")
            self.check(node.left)
            self.check(node.right)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self.check(value)
        elif isinstance(node, ast.Compare):
            self._compare(node)
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, (ast.List, ast.Tuple)):
            raise self.refuse(f"the list {self._at(node)} is not allowed here; a list or tuple of numbers or "
                              "texts may only follow in / not in")
        else:
            what = _DESCRIPTION.get(type(node), f"'{type(node).__name__}'")
            raise self.refuse(f"{what} {self._at(node)} is not allowed; {_LANGUAGE}")

    def _column_name(self, node: ast.Name) -> None:
        name = self.source.quoted.get(node.id)
        if name is not None:
            if name not in self.columns:
                raise self._unknown(name, node)
            return
        if "__" in node.id:
            raise self.refuse(f"the name {self._at(node)} is not allowed: a name with '__' is never a column "
                              "here (quote an odd column name in backticks); " + _LANGUAGE)
        if node.id in self.bare:
            return
        if node.id in FUNCTIONS:
            raise self.refuse(f"{node.id!r} at position {self.source.position(node)} is a function; "
                              f"call it, e.g. {node.id}(C)")
        raise self._unknown(node.id, node)

    def _unknown(self, name: str, node: ast.AST) -> ExpressionError:
        from bayescale.tables.frame import suggest

        names = [str(c) for c in self.columns]
        shown = ", ".join(names[:_SHOW_COLUMNS]) + (f" and {len(names) - _SHOW_COLUMNS} more"
                                                     if len(names) > _SHOW_COLUMNS else "")
        return self.refuse(f"unknown column {name!r} at position {self.source.position(node)}."
                           f"{suggest(name, names)} Columns: {shown or 'none'}")

    def _constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, (bool, str)):
            return
        if isinstance(value, (int, float)):
            try:
                float(value)
            except OverflowError:
                raise self.refuse(f"the number at position {self.source.position(node)} is too large") from None
            return
        what = {complex: "a complex number", bytes: "a bytes literal"}.get(type(value), repr(value))
        raise self.refuse(f"{what} {self._at(node)} is not allowed; {_LANGUAGE}")

    def _literal(self, node: ast.AST) -> float | str | None:
        """The value of a list entry: a number (optionally negated) or a text; None if it is neither."""
        sign = 1.0
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            node = node.operand
            if not (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))):
                return None
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            self._constant(node)
            return node.value if isinstance(node.value, str) else sign * float(node.value)
        return None

    def _compare(self, node: ast.Compare) -> None:
        self.check(node.left)
        for op, right in zip(node.ops, node.comparators):
            if type(op) in _MEMBERSHIP:
                if not isinstance(right, (ast.List, ast.Tuple)):
                    raise self.refuse(f"{_MEMBERSHIP[type(op)]!r} needs a literal list after it, e.g. k in (1, 4, 16); "
                                      f"got {self._at(right)}")
                for entry in right.elts:
                    if self._literal(entry) is None:
                        raise self.refuse(f"the list entry {self._at(entry)} is not allowed: "
                                          "a list after in / not in holds numbers or 'texts' only")
            elif type(op) in _COMPARE:
                self.check(right)
            else:
                raise self.refuse(f"{_SYMBOL.get(type(op), 'this comparison')} in {self._at(node)} "
                                  f"is not allowed; {_LANGUAGE}")

    def _call(self, node: ast.Call) -> None:
        func = node.func
        if not isinstance(func, ast.Name) or func.id in self.source.quoted:
            raise self.refuse(f"calling {self._at(func)} is not allowed; only the functions "
                              f"{', '.join(FUNCTIONS)} can be called, by name")
        name = func.id
        if name not in FUNCTIONS:
            from bayescale.tables.frame import suggest

            what = "a column, not a function" if name in self.bare and "__" not in name else "not a function here"
            raise self.refuse(f"{name!r} at position {self.source.position(func)} is {what};"
                              f"{suggest(name, FUNCTIONS, '')} the functions are {', '.join(FUNCTIONS)}")
        for kw in node.keywords:
            what = "'**' unpacking" if kw.arg is None else f"the keyword argument '{kw.arg}='"
            raise self.refuse(f"{what} in {self._at(node)} is not allowed; give {name} plain arguments")
        lo, hi = _ARITY[name]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            need = f"{lo} or more" if hi is None else (f"{lo}" if lo == hi else f"{lo} or {hi}")
            raise self.refuse(f"{name}() at position {self.source.position(node)} takes {need} "
                              f"argument{'s' if need != '1' else ''}, got {n}")
        for arg in node.args:
            self.check(arg)
        if name == "round" and n == 2:
            digits = self._literal(node.args[1])
            if not isinstance(digits, float) or digits != int(digits) or abs(digits) > 30:
                raise self.refuse(f"round(x, digits) at position {self.source.position(node)}: digits must be "
                                  f"a whole number between -30 and 30, got {self.source.fragment(node.args[1])!r}")

    # ------------------------------------------------------------------ evaluation

    def run(self) -> np.ndarray:
        try:
            with np.errstate(all="ignore"):
                out = self.value(self.tree.body)
        except (RecursionError, MemoryError):
            raise self.refuse("it is too large to evaluate; split it (e.g. with --derive)") from None
        return np.broadcast_to(out, (self.rows,)).copy() if out.shape != (self.rows,) else out

    def _column(self, node: ast.Name) -> np.ndarray:
        name = self.source.quoted.get(node.id) or self.bare[node.id]
        if name not in self.loaded:
            arr = np.asarray(self.columns[name])
            if arr.ndim != 1 or arr.shape[0] != self.rows:
                raise self.refuse(f"column {name!r} has shape {arr.shape}; expected {self.rows} values, one per row")
            if arr.dtype.kind in "iuf":
                arr = arr.astype(np.float64)
            elif arr.dtype.kind in "US":
                arr = arr.astype(str).astype(object)
            elif arr.dtype.kind not in "bO":
                raise self.refuse(f"column {name!r} holds {arr.dtype} values, which expressions cannot use")
            self.loaded[name] = arr
        return self.loaded[name]

    def value(self, node: ast.AST) -> np.ndarray:
        if isinstance(node, ast.Name):
            return self._column(node)
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, str):
                return np.asarray(v, dtype=object)
            return np.asarray(v) if isinstance(v, bool) else np.asarray(float(v))  # type: ignore[arg-type]
        if isinstance(node, ast.UnaryOp):
            operand = self.value(node.operand)
            if isinstance(node.op, (ast.Not, ast.Invert)):
                return np.logical_not(self.truth(node.operand, operand, "not"))
            number = self.numbers(node.operand, operand, "-" if isinstance(node.op, ast.USub) else "+")
            return -number if isinstance(node.op, ast.USub) else number
        if isinstance(node, ast.BinOp):
            symbol, fn = _BINARY[type(node.op)]
            return fn(self.numbers(node.left, self.value(node.left), symbol),
                      self.numbers(node.right, self.value(node.right), symbol))
        if isinstance(node, ast.BoolOp):
            word = "and" if isinstance(node.op, ast.And) else "or"
            parts = [self.truth(v, self.value(v), word) for v in node.values]
            reduce = np.logical_and if word == "and" else np.logical_or
            out = parts[0]
            for part in parts[1:]:
                out = reduce(out, part)
            return out
        if isinstance(node, ast.Compare):
            return self._comparison(node)
        assert isinstance(node, ast.Call)  # the checker let nothing else through
        return self._function(node)

    def numbers(self, node: ast.AST, value: np.ndarray, op: str) -> np.ndarray:
        if value.dtype.kind == "b":
            return value.astype(np.float64)
        if value.dtype.kind == "f":
            return value
        raise self.refuse(f"{op!r} needs numbers, but {self._at(node)} is {_kind(value)}")

    def truth(self, node: ast.AST, value: np.ndarray, op: str) -> np.ndarray:
        if value.dtype.kind == "b":
            return value
        raise self.refuse(f"{op!r} needs true/false conditions, but {self._at(node)} gives {_kind(value)}; "
                          f"compare it, e.g. ({self.source.fragment(node)}) > 0")

    def _comparison(self, node: ast.Compare) -> np.ndarray:
        left_node, left = node.left, self.value(node.left)
        out: np.ndarray | None = None
        for op, right_node in zip(node.ops, node.comparators):
            if type(op) in _MEMBERSHIP:
                part = self._member(left_node, left, right_node, type(op) is ast.NotIn)
            else:
                symbol, fn = _COMPARE[type(op)]
                right = self.value(right_node)
                text = (left.dtype.kind == "O", right.dtype.kind == "O")
                if any(text) and (not all(text) or symbol not in ("==", "!=")):
                    problem = ("cannot order texts; only == and != compare them" if all(text) else
                               f"compares {_kind(left)} {self.source.fragment(left_node)!r} with {_kind(right)} "
                               f"{self.source.fragment(right_node)!r}")
                    raise self.refuse(f"{symbol!r} in {self._at(node)} {problem}")
                if not any(text):
                    left, right = self.numbers(left_node, left, symbol), self.numbers(right_node, right, symbol)
                part = np.asarray(fn(left, right), dtype=bool)
                left_node, left = right_node, right
            out = part if out is None else np.logical_and(out, part)
        assert out is not None
        return out

    def _member(self, node: ast.AST, value: np.ndarray, options: ast.AST, negate: bool) -> np.ndarray:
        assert isinstance(options, (ast.List, ast.Tuple))
        entries = [self._literal(e) for e in options.elts]
        word = "not in" if negate else "in"
        if value.dtype.kind == "O":
            if not all(isinstance(e, str) for e in entries):
                raise self.refuse(f"{word!r}: {self._at(node)} is text, so the list {self._at(options)} "
                                  "must hold 'texts' only")
            wanted = set(entries)
            flat = value.reshape(-1)
            found = np.fromiter((isinstance(v, str) and v in wanted for v in flat), dtype=bool, count=flat.size)
            out: np.ndarray = found.reshape(value.shape)
        else:
            if any(isinstance(e, str) for e in entries):
                raise self.refuse(f"{word!r}: {self._at(node)} is {_kind(value)}, so the list "
                                  f"{self._at(options)} must hold numbers only")
            out = np.isin(self.numbers(node, value, word), np.asarray(entries, dtype=np.float64))
        return ~out if negate else out

    def _function(self, node: ast.Call) -> np.ndarray:
        assert isinstance(node.func, ast.Name)
        name, args = node.func.id, node.args
        if name in _UNARY_FUNCTIONS:
            return _UNARY_FUNCTIONS[name](self.numbers(args[0], self.value(args[0]), name))
        if name == "round":
            digits = int(self._literal(args[1]) or 0) if len(args) == 2 else 0
            return np.round(self.numbers(args[0], self.value(args[0]), name), digits)
        if name in ("min", "max"):
            reduce = np.minimum if name == "min" else np.maximum
            out = self.numbers(args[0], self.value(args[0]), name)
            for arg in args[1:]:
                out = reduce(out, self.numbers(arg, self.value(arg), name))
            return out
        condition = self.truth(args[0], self.value(args[0]), "where")
        a, b = self.value(args[1]), self.value(args[2])
        if (a.dtype.kind == "O") != (b.dtype.kind == "O"):
            raise self.refuse(f"where() at position {self.source.position(node)} mixes text and numbers")
        if a.dtype.kind != "O" and not (a.dtype.kind == b.dtype.kind == "b"):
            a, b = self.numbers(args[1], a, "where"), self.numbers(args[2], b, "where")
        return np.where(condition, a, b)


def shown(text: str, limit: int = 60) -> str:
    """``repr(text)``, shortened to about ``limit`` characters for a one-line message."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 3] + "...") + f" ({len(text):,} characters)"


def _rows(columns: Mapping[str, Any], rows: int | None) -> int:
    if rows is not None:
        return int(rows)
    for value in columns.values():
        return int(np.shape(value)[0]) if np.ndim(value) else 1
    raise ArgumentError("evaluate: give rows= when there are no columns")


def evaluate(text: str, columns: Mapping[str, Any], *, what: str | None = None, rows: int | None = None,
             start: int = 0) -> np.ndarray:
    """The values of the expression ``text`` on ``columns``, one per row (see the module docstring).

    Parameters
    ----------
    text:
        The expression, e.g. ``"C / (6 * N)"``.
    columns:
        Column name -> 1-D array (numbers, true/false or text), all of length ``rows``.  Only
        the columns the expression names are read.
    what:
        How a refusal begins, e.g. ``"--where 'x' is not a valid filter"`` (default:
        ``"expression 'x'"``); the reason follows after a colon.
    rows:
        The number of rows (default: the length of the columns).
    start:
        Added to the positions named in a refusal (where ``text`` sits inside a longer
        argument, as in ``--derive NAME=EXPR``).

    Raises
    ------
    ExpressionError
        Anything outside the language, an unknown column, or operands of the wrong kind
        (numbers where true/false is needed, text in arithmetic).
    """
    expect(text, str, "text", "evaluate")
    label = f"expression {shown(text)}" if what is None else what
    return _Expression(text, columns, label, _rows(columns, rows), start).run()


def mask(text: str, columns: Mapping[str, Any], *, what: str | None = None, rows: int | None = None,
         start: int = 0) -> np.ndarray:
    """The boolean mask of the rows where the condition ``text`` holds (as :func:`evaluate`).

    A result that is not true/false per row (``"C * 2"``) is an :class:`ExpressionError`.
    """
    expect(text, str, "text", "mask")
    label = f"condition {shown(text)}" if what is None else what
    out = _Expression(text, columns, label, _rows(columns, rows), start).run()
    if out.dtype.kind != "b":
        raise ExpressionError(f"{label}: it gives {_kind(out)}, not true/false per row; "
                              f"write a condition, e.g. {shown(text.strip(), 40)[1:-1]} > 0")
    return out
