"""Compile a rule's `when:` into one Python predicate, once, at load time.

The hot path then costs a few attribute reads and comparisons per rule: no YAML, no dict
walking, no regex compilation per event. Every mistake an ops person can make in `when:`
is caught here with the file, the line and the key.

Syntax (a contract; see README "Writing rules"):
    field.path: value              equals
    field.path: {op: value, ...}   several operators on one field are ANDed
    all: [cond, ...] / any: [cond, ...] / not: cond
Several keys in one mapping are ANDed.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..events import KNOWN_PATHS, SCORE_RANGES, FeedbackEvent, field_getter, is_known_path
from ..yamlsource import LineDict, LineList, Location, Problems

Predicate = Callable[[FeedbackEvent], bool]

COMBINATORS = ("all", "any", "not")
OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "contains_any", "matches", "exists")
#: Options that modify the text operators of the same mapping, not operators themselves.
OPTIONS = ("ignore_accents",)

NUMERIC_FIELDS = {"score", "customer.monthly_value"}
TIME_FIELDS = {"occurred_at"}
ENUM_FIELDS = {"survey": tuple(SCORE_RANGES)}


def fold(text: str, ignore_accents: bool = False) -> str:
    """Case-insensitive (Unicode casefold) and, optionally, accent-insensitive form of text."""
    if text.isascii():  # the common case, ~10x cheaper than casefold + NFKD
        return text.lower()
    text = text.casefold()
    if ignore_accents:
        return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    # casefold does not compose: "tühista" typed as u + U+0308 (macOS, some phones) must still match.
    return unicodedata.normalize("NFC", text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Compiler:
    """Checks and compiles one `when:`; every problem goes to `problems` and the walk goes on.

    A method returns None when its part has a problem (already recorded), so a parent can
    tell and never adds a second, derived complaint about the same mistake.
    """

    def __init__(self, problems: Problems) -> None:
        self.problems = problems

    def fail(self, where: Location, message: str) -> None:
        self.problems.add(where, message)

    # -- structure ---------------------------------------------------------------------

    def condition(self, node: Any, where: Location, context: str) -> Predicate | None:
        if not isinstance(node, dict) or not node:
            return self.fail(where, f"{context}: expected a mapping of field paths or all/any/not, got {_show(node)}")
        assert isinstance(node, LineDict)
        parts: list[Predicate | None] = []
        for key, value in node.items():
            at = node.where(key)
            if key in ("all", "any"):
                if not isinstance(value, list) or not value:
                    parts.append(self.fail(at, f"{context}.{key}: expected a non-empty list of conditions"))
                    continue
                assert isinstance(value, LineList)
                children = [self.condition(item, value.where(i), f"{context}.{key}[{i}]") for i, item in enumerate(value)]
                parts.append(_combine(children, _all if key == "all" else _any))
            elif key == "not":
                inner = self.condition(value, at, f"{context}.not")
                parts.append(None if inner is None else (lambda event, inner=inner: not inner(event)))
            elif isinstance(key, str) and is_known_path(key):
                parts.append(self.field(key, value, at, f"{context}.{key}"))
            elif isinstance(key, str) and key in OPERATORS:
                parts.append(self.fail(at, f"{context}: operator {key!r} needs a field, e.g. `score: {{{key}: ...}}`"))
            else:
                parts.append(self.fail(
                    at,
                    f"{context}: unknown field path {key!r} "
                    f"(known: {', '.join(sorted(KNOWN_PATHS))}, attributes.<name>, or all/any/not)",
                ))
        return _combine(parts, _all)

    def field(self, path: str, spec: Any, where: Location, context: str) -> Predicate | None:
        get = field_getter(path)
        if not isinstance(spec, dict):
            if isinstance(spec, list):
                return self.fail(where, f"{context}: a list is not a value to compare; did you mean `{{in: [...]}}`?")
            test = self.operator(path, "eq", spec, where, context, ignore_accents=False)
            return None if test is None else (lambda event: test(get(event)))
        assert isinstance(spec, LineDict)
        if not spec:
            return self.fail(where, f"{context}: empty operator mapping")
        ignore_accents = spec.get("ignore_accents", False)
        failed = False
        if not isinstance(ignore_accents, bool):
            self.fail(spec.where("ignore_accents"), f"{context}.ignore_accents: expected true or false")
            ignore_accents, failed = False, True
        tests = []
        for op, value in spec.items():
            if op in OPTIONS:
                continue
            if op not in OPERATORS:
                self.fail(spec.where(op), f"{context}: unknown operator {op!r} (known: {', '.join(OPERATORS)})")
                failed = True
                continue
            test = self.operator(path, op, value, spec.where(op), f"{context}.{op}", ignore_accents)
            failed = failed or test is None
            tests.append(test)
        if failed:
            return None
        if not tests:
            return self.fail(where, f"{context}: no operator given, only options")
        if len(tests) == 1:
            only = tests[0]
            return lambda event: only(get(event))
        return lambda event: all(test(get(event)) for test in tests)

    # -- operators ---------------------------------------------------------------------

    def operator(self, path: str, op: str, value: Any, where: Location, context: str, ignore_accents: bool) -> Callable[[Any], bool] | None:
        def bad(expected: str) -> None:
            return self.fail(where, f"{context}: expected {expected}, got {_show(value)}")

        if op == "exists":
            if not isinstance(value, bool):
                return bad("true or false")
            return (lambda v: v is not None) if value else (lambda v: v is None)

        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                return bad("a non-empty list")
            checked = [self.value(path, item, value.where(i), f"{context}[{i}]") for i, item in enumerate(value)]
            if any(item is _BAD for item in checked):
                return None
            items = frozenset(_exact(item) for item in checked)
            if op == "in":
                return lambda v: v is not None and _exact(v) in items
            return lambda v: v is None or _exact(v) not in items

        if op in ("contains", "contains_any", "matches"):
            if path in NUMERIC_FIELDS | TIME_FIELDS:
                return self.fail(where, f"{context}: {op} works on text, but {path} is not text")
            if op == "matches":
                if not isinstance(value, str):
                    return bad("a regular expression as text")
                try:
                    pattern = re.compile(value)
                except re.error as err:
                    return self.fail(where, f"{context}: invalid regular expression {value!r}: {err}")
                return lambda v: isinstance(v, str) and pattern.search(v) is not None
            needles_raw = [value] if op == "contains" else value
            if op == "contains" and not isinstance(value, str):
                return bad("text")
            if op == "contains_any" and (not isinstance(value, list) or not value or not all(isinstance(n, str) for n in value)):
                return bad("a non-empty list of text")
            # One regex alternation over the folded text beats a Python loop over the needles.
            anyof = re.compile("|".join(re.escape(fold(n, ignore_accents)) for n in needles_raw))
            return lambda v: isinstance(v, str) and anyof.search(fold(v, ignore_accents)) is not None

        # eq, ne, lt, lte, gt, gte
        expected = self.value(path, value, where, context)
        if expected is _BAD:
            return None
        if op in ("eq", "ne"):
            key = _exact(expected)
            if op == "eq":
                return lambda v: v is not None and _exact(v) == key
            return lambda v: v is None or _exact(v) != key
        if not (_is_number(expected) or isinstance(expected, datetime)):
            return bad(f"a number for {op}" if path not in TIME_FIELDS else "an RFC 3339 time")
        compare = getattr(operator, op.replace("lte", "le").replace("gte", "ge"))
        if isinstance(expected, datetime):
            return lambda v: isinstance(v, datetime) and compare(v, expected)
        return lambda v: _is_number(v) and compare(v, expected)

    def value(self, path: str, value: Any, where: Location, context: str) -> Any:
        """Check one literal against the field's type; return it in comparable form, or _BAD."""
        problem = self._value_problem(path, value)
        if problem is not None:
            self.fail(where, f"{context}: {problem}")
            return _BAD
        return _parse_time(value) if path in TIME_FIELDS else value

    @staticmethod
    def _value_problem(path: str, value: Any) -> str | None:
        if isinstance(value, (dict, list)):
            return f"expected a single value, got {_show(value)}"
        if value is None:  # `eq: null` would never match and `ne: null` always: say what works
            return "null is not a value to compare; use `exists: false` for a missing field"
        if path in NUMERIC_FIELDS and not _is_number(value):
            return f"{path} is a number, got {_show(value)}"
        if path in ENUM_FIELDS and value not in ENUM_FIELDS[path]:
            return f"{path} is one of {', '.join(ENUM_FIELDS[path])}, got {_show(value)}"
        if path in TIME_FIELDS:
            return None if _parse_time(value) is not None else f"expected an RFC 3339 time with offset, got {_show(value)}"
        if path not in NUMERIC_FIELDS and not path.startswith("attributes.") and not isinstance(value, str):
            return f"{path} is text, got {_show(value)}; quote it"
        return None


#: What `_Compiler.value` returns for a literal with a problem (None is a literal ops may write).
_BAD = object()


def compile_condition(node: Any, where: Location, context: str, problems: Problems) -> Predicate | None:
    """Compile `when:`. Every mistake is added to `problems` (file:line and the key); None if any."""
    before = len(problems)
    predicate = _Compiler(problems).condition(node, where, context)
    return predicate if len(problems) == before else None


def _combine(parts: list[Predicate | None], join: Callable[[list[Predicate]], Predicate]) -> Predicate | None:
    """AND/OR of the parts; None if any part had a problem."""
    if any(part is None for part in parts):
        return None
    preds = [part for part in parts if part is not None]
    return preds[0] if len(preds) == 1 else join(preds)


def _all(preds: list[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda event: a(event) and b(event)
    return lambda event: all(p(event) for p in preds)


def _any(preds: list[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda event: a(event) or b(event)
    return lambda event: any(p(event) for p in preds)


def _exact(value: Any) -> tuple[bool, Any]:
    """A comparable, hashable form in which true is not 1 (Python's `True == 1` is not what ops mean)."""
    try:
        hash(value)
    except TypeError:
        value = repr(value)
    return (isinstance(value, bool), value)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"
