"""The rule set's hot path: for each valid (survey, score), one generated function that returns the rules an event matches.

Why: most events need no alert, and a rule set is checked against every event. Specialised
for a known survey and score (conditions.specialize), most rules are decided before the event
is read; what is left is compiled into one small Python function per (survey, score) that
reads each field with a subscript (EventData) or an attribute (FeedbackEvent) and calls only
the operator tests. Nested closures, as `conditions.predicate` builds them, cost a Python call
per node and per field read: about three times as much.

Safe by construction: the generated source holds only indexes into constant tables and field
names the model declares (events.KNOWN_PATHS); every value from a rules file stays a Python
object passed in, and no text from a rules file is ever compiled. A condition too deeply nested
for the Python compiler falls back to the closures, with the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from ..events import KNOWN_PATHS, NO_THEME_IDS, THEMES_PATH, data_getter, field_getter
from .conditions import All, AnyOf, Cond, Not, Test, predicate

Form = Literal["data", "event"]  # EventData (a dict) or FeedbackEvent (attributes)
Rule = TypeVar("Rule")  # what is returned for a condition that holds (model.Rule)


def matcher(entries: list[tuple[Rule, Cond]], form: Form) -> Callable[[Any], list[Rule]]:
    """A function of one event that returns, in order, the rules of `entries` whose condition holds."""
    try:
        return _generated(entries, form)
    except (SyntaxError, RecursionError, MemoryError):  # nesting beyond what compile() takes: the closures
        getter = data_getter if form == "data" else field_getter
        checks = [(rule, predicate(cond, getter)) for rule, cond in entries]
        return lambda event: [rule for rule, check in checks if check(event)]


def _generated(entries: list[tuple[Rule, Cond]], form: Form) -> Callable[[Any], list[Rule]]:
    source = _Source(form)
    lines = ["def matched(e):", "    out = []"]
    for index, (_, cond) in enumerate(entries):
        lines.append(f"    if {source.expression(cond)}:" if cond is not True else "    if True:")
        lines.append(f"        out.append(R[{index}])")
    lines.append("    return out")
    namespace: dict[str, Any] = {"R": [rule for rule, _ in entries], "T": source.tests, "K": source.keys, "N": NO_THEME_IDS}
    exec(compile("\n".join(lines), f"<rules: {form} matcher>", "exec"), namespace)  # noqa: S102 - see the module docstring
    return namespace["matched"]


class _Source:
    def __init__(self, form: Form) -> None:
        self.form = form
        self.tests: list[Callable[[Any], bool]] = []
        self.keys: list[str] = []  # attribute names (`attributes.<key>`): from rules files, so never in the source

    def expression(self, cond: Cond) -> str:
        if cond is True or cond is False:
            return str(cond)
        if isinstance(cond, Test):
            self.tests.append(cond.test)
            return f"T[{len(self.tests) - 1}]({self.read(cond.path)})"
        if isinstance(cond, Not):
            return f"(not {self.expression(cond.part)})"
        assert isinstance(cond, (All, AnyOf))
        joiner = " and " if isinstance(cond, All) else " or "
        return "(" + joiner.join(self.expression(part) for part in cond.parts) + ")"

    def read(self, path: str) -> str:
        """Source reading `path` from `e`, None when absent: as field_getter and data_getter do."""
        if path == THEMES_PATH:  # added by the rule set's tagging (RuleSet.tag); a FeedbackEvent has none
            return 'e.get("themes", N)' if self.form == "data" else "N"
        if path.startswith("attributes."):
            self.keys.append(path.removeprefix("attributes."))
            attributes = 'e["attributes"]' if self.form == "data" else "e.attributes"
            return f"{attributes}.get(K[{len(self.keys) - 1}])"
        names = path.split(".")
        if path not in KNOWN_PATHS or not all(name.isidentifier() for name in names):
            raise ValueError(f"not a field path of the model: {path!r}")
        if self.form == "data":
            return "e" + "".join(f'["{name}"]' for name in names)
        return "e." + ".".join(names)
