"""Compile a rule's `when:` into one Python predicate, once, at load time.

The hot path then costs a few attribute reads and comparisons per rule: no YAML, no dict
walking, no regex compilation per event. Every mistake an ops person can make in `when:`
is caught here with the file, the line and the key.

The compiler builds a small tree first (Cond: field tests under all/any/not), so that a
rule can also be specialised for a known survey and score (`specialize`, used by
model.RuleSet's pre-filter), and turned into a predicate over a FeedbackEvent or over
EventData (`predicate`, with `field_getter` or `data_getter`).

Syntax (a contract; see docs/rules.md "Writing rules"):
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
from dataclasses import dataclass
from datetime import datetime
from itertools import filterfalse
from typing import Any

from ..events import KNOWN_PATHS, SCORE_RANGES, THEMES_PATH, FeedbackEvent, field_getter, is_known_path
from ..notation import LineDict, LineList, Location, Problems

Predicate = Callable[[FeedbackEvent], bool]


@dataclass(frozen=True)
class Test:
    """One operator on one field: `test(value at path)`. Tests are pure and never raise."""

    path: str
    test: Callable[[Any], bool]


@dataclass(frozen=True)
class All:
    parts: tuple[Cond, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Cond, ...]


@dataclass(frozen=True)
class Not:
    part: Cond


#: A compiled `when:`; True and False are what specialising can leave of one.
Cond = Test | All | AnyOf | Not | bool

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
    if ignore_accents:  # drop the combining marks NFKD splits off (filterfalse: no Python code per character)
        return "".join(filterfalse(unicodedata.combining, unicodedata.normalize("NFKD", text)))
    # casefold does not compose: "tühista" typed as u + U+0308 (macOS, some phones) must still match.
    return unicodedata.normalize("NFC", text)


_PLAIN_NUMBERS = (int, float)  # exactly these types (not bool) skip _is_number on the hot path


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Compiler:
    """Checks and compiles one `when:`; every problem goes to `problems` and the walk goes on.

    A method returns None when its part has a problem (already recorded), so a parent can
    tell and never adds a second, derived complaint about the same mistake.
    """

    def __init__(self, problems: Problems, themes: frozenset[str] | None = None) -> None:
        self.problems = problems
        self.themes = themes  # the theme ids defined; None: `comment.themes` is not available here (routes)

    def fail(self, where: Location, message: str) -> None:
        self.problems.add(where, message)

    # -- structure ---------------------------------------------------------------------

    def condition(self, node: Any, where: Location, context: str) -> Cond | None:
        if not isinstance(node, dict) or not node:
            self.fail(where, f"{context}: expected a mapping of field paths or all/any/not, got {_show(node)}")
            return None
        assert isinstance(node, LineDict)
        parts: list[Cond | None] = []
        for key, value in node.items():
            at = node.where(key)
            if key in ("all", "any"):
                if not isinstance(value, list) or not value:
                    self.fail(at, f"{context}.{key}: expected a non-empty list of conditions")
                    parts.append(None)
                    continue
                assert isinstance(value, LineList)
                children = [self.condition(item, value.where(i), f"{context}.{key}[{i}]") for i, item in enumerate(value)]
                parts.append(_join(children, All if key == "all" else AnyOf))
            elif key == "not":
                inner = self.condition(value, at, f"{context}.not")
                parts.append(None if inner is None else Not(inner))
            elif key == THEMES_PATH:
                parts.append(self.theme_test(value, at, f"{context}.{key}"))
            elif isinstance(key, str) and is_known_path(key):
                parts.append(self.field(key, value, at, f"{context}.{key}"))
            elif isinstance(key, str) and key in OPERATORS:
                self.fail(at, f"{context}: operator {key!r} needs a field, e.g. `score: {{{key}: ...}}`")
                parts.append(None)
            else:
                self.fail(
                    at,
                    f"{context}: unknown field path {key!r} (known: {', '.join(sorted(KNOWN_PATHS))}, {THEMES_PATH}, "
                    "attributes.<name>, or all/any/not)",
                )
                parts.append(None)
        return _join(parts, All)

    def field(self, path: str, spec: Any, where: Location, context: str) -> Cond | None:
        if not isinstance(spec, dict):
            if isinstance(spec, list):
                self.fail(where, f"{context}: a list is not a value to compare; did you mean `{{in: [...]}}`?")
                return None
            test = self.operator(path, "eq", spec, where, context, ignore_accents=False)
            return None if test is None else Test(path, test)
        assert isinstance(spec, LineDict)
        if not spec:
            self.fail(where, f"{context}: empty operator mapping")
            return None
        ignore_accents = spec.get("ignore_accents", False)
        failed = False
        if not isinstance(ignore_accents, bool):
            self.fail(spec.where("ignore_accents"), f"{context}.ignore_accents: expected true or false")
            ignore_accents, failed = False, True
        tests: list[Callable[[Any], bool]] = []
        for op, value in spec.items():
            if op in OPTIONS:
                continue
            if op not in OPERATORS:
                self.fail(spec.where(op), f"{context}: unknown operator {op!r} (known: {', '.join(OPERATORS)})")
                failed = True
                continue
            test = self.operator(path, op, value, spec.where(op), f"{context}.{op}", ignore_accents)
            if test is None:
                failed = True
            else:
                tests.append(test)
        if failed:
            return None
        if not tests:
            self.fail(where, f"{context}: no operator given, only options")
            return None
        return Test(path, tests[0]) if len(tests) == 1 else All(tuple(Test(path, test) for test in tests))

    def theme_test(self, spec: Any, where: Location, context: str) -> Cond | None:
        """`comment.themes`: the ids of the themes a comment mentions (ancestors included), a set.

        `comment.themes: delivery` and `{contains: delivery}` test one id, `{contains_any: [...]}` several,
        `{exists: true}` any theme at all. Every id must be a theme the rules files define."""
        if self.themes is None:
            self.fail(where, f"{context}: comment themes are known to a rule's `when:` only")
            return None
        if not isinstance(spec, dict):
            spec = {"contains": spec}
        usage = "expected `contains: <theme id>`, `contains_any: [<theme id>, ...]` or `exists: true|false`"
        if len(spec) != 1 or next(iter(spec)) not in ("contains", "contains_any", "exists"):
            self.fail(where, f"{context}: {usage}, got {_show(spec)}")
            return None
        op, value = next(iter(spec.items()))
        at = spec.where(op) if isinstance(spec, LineDict) else where
        if op == "exists":
            if not isinstance(value, bool):
                self.fail(at, f"{context}.exists: expected true or false, got {_show(value)}")
                return None
            return Test(THEMES_PATH, bool if value else _nothing)
        ids = [value] if op == "contains" else value
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            self.fail(at, f"{context}.{op}: {usage}, got {_show(value)}")
            return None
        unknown = [i for i in ids if i not in self.themes]
        if unknown:
            known = ", ".join(sorted(self.themes)) or "none: add a `themes:` list to a rules file"
            self.fail(at, f"{context}.{op}: unknown theme {', '.join(map(repr, unknown))} (defined: {known})")
            return None
        wanted = frozenset(ids)
        return Test(THEMES_PATH, lambda v: not wanted.isdisjoint(v))

    # -- operators ---------------------------------------------------------------------

    def operator(self, path: str, op: str, value: Any, where: Location, context: str, ignore_accents: bool) -> Callable[[Any], bool] | None:
        def bad(expected: str) -> None:
            self.fail(where, f"{context}: expected {expected}, got {_show(value)}")

        if op == "exists":
            if not isinstance(value, bool):
                bad("true or false")
                return None
            return (lambda v: v is not None) if value else (lambda v: v is None)

        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                bad("a non-empty list")
                return None
            assert isinstance(value, LineList)
            checked = [self.value(path, item, value.where(i), f"{context}[{i}]") for i, item in enumerate(value)]
            if any(item is _BAD for item in checked):
                return None
            items = frozenset(_exact(item) for item in checked)
            texts = frozenset(x for is_bool, x in items if not is_bool and type(x) is str)  # text: the common case, no _exact
            if op == "in":
                return lambda v: v in texts if type(v) is str else v is not None and _exact(v) in items
            return lambda v: v not in texts if type(v) is str else v is None or _exact(v) not in items

        if op in ("contains", "contains_any", "matches"):
            if path in NUMERIC_FIELDS | TIME_FIELDS:
                self.fail(where, f"{context}: {op} works on text, but {path} is not text")
                return None
            if op == "matches":
                if not isinstance(value, str):
                    bad("a regular expression as text")
                    return None
                try:
                    pattern = re.compile(value)
                except re.error as err:
                    self.fail(where, f"{context}: invalid regular expression {value!r}: {err}")
                    return None
                return lambda v: isinstance(v, str) and pattern.search(v) is not None
            needles_raw = [value] if op == "contains" else value
            if op == "contains" and not isinstance(value, str):
                bad("text")
                return None
            if op == "contains_any" and (not isinstance(value, list) or not value or not all(isinstance(n, str) for n in value)):
                bad("a non-empty list of text")
                return None
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
                return lambda v: v == expected if type(v) is str else v is not None and _exact(v) == key
            return lambda v: v != expected if type(v) is str else v is None or _exact(v) != key
        if not (_is_number(expected) or isinstance(expected, datetime)):
            bad(f"a number for {op}" if path not in TIME_FIELDS else "an RFC 3339 time")
            return None
        compare = getattr(operator, op.replace("lte", "le").replace("gte", "ge"))
        if isinstance(expected, datetime):
            return lambda v: isinstance(v, datetime) and compare(v, expected)
        return lambda v: compare(v, expected) if type(v) in _PLAIN_NUMBERS else _is_number(v) and compare(v, expected)

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


def _nothing(themes: frozenset[str]) -> bool:
    return not themes


#: What `_Compiler.value` returns for a literal with a problem (None is a literal ops may write).
_BAD = object()


def compile_condition(node: Any, where: Location, context: str, problems: Problems) -> Predicate | None:
    """Compile `when:` into one predicate. Every mistake is added to `problems` (file:line and the key); None if any."""
    cond = compile_cond(node, where, context, problems)
    return None if cond is None else predicate(cond)


def compile_cond(node: Any, where: Location, context: str, problems: Problems, themes: frozenset[str] | None = None) -> Cond | None:
    """Compile `when:` into its tree (see `predicate`). Every mistake is added to `problems`; None if any.

    `themes`: the ids of the rules files' themes, which `comment.themes` may name (None: not available, as in routes)."""
    before = len(problems)
    cond = _Compiler(problems, themes).condition(node, where, context)
    return cond if len(problems) == before else None


def _join(parts: list[Cond | None], kind: type[All] | type[AnyOf]) -> Cond | None:
    """AND/OR of the parts; None if any part had a problem."""
    if any(part is None for part in parts):
        return None
    kept = [part for part in parts if part is not None]
    return kept[0] if len(kept) == 1 else kind(tuple(kept))


def predicate(cond: Cond, getter: Callable[[str], Callable[[Any], Any]] = field_getter) -> Callable[[Any], bool]:
    """The tree as one function of an event; `getter(path)` reads a field (field_getter or data_getter)."""
    if cond is True or cond is False:
        return (lambda event: True) if cond else (lambda event: False)
    if isinstance(cond, Test):
        get, test = getter(cond.path), cond.test
        return lambda event: test(get(event))
    if isinstance(cond, Not):
        inner = predicate(cond.part, getter)
        return lambda event: not inner(event)
    assert isinstance(cond, (All, AnyOf))
    parts = [predicate(part, getter) for part in cond.parts]
    return _all(parts) if isinstance(cond, All) else _any(parts)


def specialize(cond: Cond, known: dict[str, Any]) -> Cond:
    """What is left of `cond` once the fields in `known` have those values: True, False, or a smaller tree.

    Exact because tests are pure: a test of a known field is decided now, the rest stays in order."""
    if cond is True or cond is False:
        return cond
    if isinstance(cond, Test):
        return bool(cond.test(known[cond.path])) if cond.path in known else cond
    if isinstance(cond, Not):
        inner = specialize(cond.part, known)
        return (not inner) if isinstance(inner, bool) else Not(inner)
    assert isinstance(cond, (All, AnyOf))
    decisive = isinstance(cond, AnyOf)  # True decides an any, False an all
    parts = []
    for part in (specialize(p, known) for p in cond.parts):
        if part is decisive:
            return decisive
        if part is not (not decisive):
            parts.append(part)
    if not parts:
        return not decisive
    return parts[0] if len(parts) == 1 else type(cond)(tuple(parts))


def _all(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    a, b = preds[0], _all(preds[1:])  # nested pairs: cheaper than all() over a generator
    return lambda event: a(event) and b(event)


def _any(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    a, b = preds[0], _any(preds[1:])
    return lambda event: a(event) or b(event)


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
