"""Loading rules: what ops write in `rules/*.yaml`, read, checked and compiled once.

Every problem is reported with its `file:line` (yamlsource.py keeps the lines), and all of
them at once, as RulesError: one run of `rules check` shows every mistake.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..events import data_getter
from ..metrics import DEFAULT_METRIC_TEMPLATE, MetricCondition, MetricRule
from ..notation import LineDict, LineList, Location, Problems, SourceError, load_yaml, locate
from ..tasks import SEVERITY_RANK, FollowupSpec
from ..themes import NO_THEMES, EmergingSpec, ThemesError, ThemeSet, build_themes
from .blocks import DEFAULT_TEMPLATE, AlertSpec, GroupSpec, ThrottleSpec
from .conditions import compile_cond, predicate
from .model import Rule, RuleSet

RULE_KEYS = ("id", "description", "when", "severity", "followup", "alert", "throttle", "group")
#: tests: run by `rules check` (rules/ruletests.py), the worker ignores them; themes: comment themes (worker/themes/);
#: emerging: rising complaints (worker/themes/emerging.py), in one file at most.
FILE_KEYS = ("rules", "themes", "emerging", "tests")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RulesError(Exception):
    """Every problem found in a set of rules files, each as `file:line: message`."""

    def __init__(self, errors: list[SourceError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def rule_files(path: Path | str) -> list[Path]:
    """A file, or every `*.yaml`/`*.yml` in a directory (sorted, so file order is stable)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if path.is_file():
        return [path]
    raise RulesError([SourceError(Location(str(path), 0), "no such rules file or directory")])


def load_rules(path: Path | str, templates: Path | str | None = None) -> RuleSet:
    """Load, validate and compile every rule under `path`.

    `templates`: when given, each rule's template must exist there. All problems are
    collected and raised together as RulesError, ordered by file and line, so one run
    shows every mistake.
    """
    files = rule_files(path)
    available = _templates_in(templates) if templates is not None else None
    problems = Problems()
    documents: list[Any] = []
    for file in files:
        try:
            documents.append(load_yaml(file))
        except SourceError as err:
            problems.append(err)
            documents.append(None)
    themes, theme_ids = _themes(documents, files, problems)
    emerging = _emerging(documents, available, problems)
    rules: list[Rule] = []
    metric_rules: list[MetricRule] = []
    seen: dict[str, Location] = {}
    for file, document in zip(files, documents, strict=True):
        for index, (node, where) in enumerate(_rule_nodes(document, file, problems)):
            # The id first: a duplicate is a mistake of its own, whether or not either rule compiles.
            rule_id = node.get("id")
            if isinstance(rule_id, str):
                if rule_id in seen:
                    problems.add(node.where("id"), f"duplicate rule id {rule_id!r} (first defined at {seen[rule_id]})")
                    continue
                seen[rule_id] = where
            rule = _build_rule(node, where, index, len(rules), available, theme_ids, problems)
            if isinstance(rule, MetricRule):
                metric_rules.append(rule)
            elif rule is not None:
                rules.append(rule)
    if problems:
        raise RulesError(problems.ordered([str(f) for f in files]))
    if not rules and not metric_rules:
        raise RulesError([SourceError(Location(str(path), 0), "no rules found")])
    return RuleSet(
        rules=tuple(rules), files=tuple(str(f) for f in files), metric_rules=tuple(metric_rules), themes=themes, emerging=emerging
    )


def _themes(documents: list[Any], files: list[Path], problems: Problems) -> tuple[ThemeSet, frozenset[str]]:
    """Every file's `themes:` list, checked together (ids are unique across files, a parent may be in another);
    and the ids rules may name (with a mistake in the themes, every id written: one mistake is reported once)."""
    lists = [document.get("themes") if isinstance(document, LineDict) else None for document in documents]
    if all(entries is None for entries in lists):
        return NO_THEMES, frozenset()

    def at(source: int, loc: tuple[int | str, ...]) -> Location:
        document = documents[source]
        key = document.where("themes") if isinstance(document, LineDict) else Location(str(files[source]), 1)
        return locate(lists[source], loc, key) if loc else key

    try:
        themes = build_themes(lists, where=lambda source, loc: str(at(source, loc)))
    except ThemesError as err:
        for problem in err.problems:
            problems.add(at(problem.source, problem.loc), str(problem))
        written = [item.get("id") for entries in lists if isinstance(entries, list) for item in entries if isinstance(item, dict)]
        return NO_THEMES, frozenset(i for i in written if isinstance(i, str))
    return themes, frozenset(themes.ids)


def _emerging(documents: list[Any], templates: set[str] | None, problems: Problems) -> EmergingSpec | None:
    """The `emerging:` block (rising complaints), from the one file that has it."""
    found: EmergingSpec | None = None
    first: Location | None = None
    for document in documents:
        if not isinstance(document, LineDict) or "emerging" not in document:
            continue
        if first is not None:
            problems.add(document.where("emerging"), f"a second `emerging:` block (the first is at {first}): keep one")
            continue
        first = document.where("emerging")
        if not isinstance(document["emerging"], LineDict):
            problems.add(first, "`emerging:` must be a mapping with channel, window, baseline, min_count, min_ratio")
            continue
        found = _validate(EmergingSpec, document, "emerging", "rising complaints", problems)
        if found is not None and templates is not None and found.template not in templates:
            at = document["emerging"].where("template") if "template" in document["emerging"] else first
            problems.add(at, f"emerging: template {found.template!r} not found (available: {', '.join(sorted(templates)) or 'none'})")
    return found


def _rule_nodes(document: Any, file: Path, problems: Problems) -> Iterable[tuple[LineDict, Location]]:
    top = Location(str(file), 1)
    if document is None:
        return
    if not isinstance(document, LineDict):
        problems.add(top, "expected a mapping with a `rules:` list at the top of the file")
        return
    for key in document:
        if key not in FILE_KEYS:
            problems.add(document.where(key), f"unknown top-level key {key!r} (expected: {', '.join(FILE_KEYS)})")
    items = document.get("rules")
    if items is None:
        return
    if not isinstance(items, LineList):
        problems.add(document.where("rules"), "`rules:` must be a list of rules")
        return
    for index, node in enumerate(items):
        if not isinstance(node, LineDict):
            problems.add(items.where(index), f"rules[{index}]: expected a mapping with id, when, ...")
            continue
        yield node, items.where(index)


def _build_rule(
    node: LineDict, where: Location, index: int, order: int, templates: set[str] | None, themes: frozenset[str], problems: Problems
) -> Rule | MetricRule | None:
    """One rule, or None: every problem in it is added to `problems`, not only the first."""
    before = len(problems)
    rule_id = node.get("id")
    name = f"rule {rule_id!r}"
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        problems.add(node.where("id"), f"rule id must be text of letters, digits, '.', '_' or '-', got {rule_id!r}")
        # The rest is still checked; without a usable id the rule is named by its place in the file.
        name = name if isinstance(rule_id, str) and rule_id else f"rules[{index}]"
    for key in node:
        if key not in RULE_KEYS:
            problems.add(node.where(key), f"{name}: unknown key {key!r} (expected: {', '.join(RULE_KEYS)})")
    if "when" not in node:
        problems.add(where, f"{name}: missing `when:`")
    severity = node.get("severity", "medium")
    if not isinstance(severity, str) or severity not in SEVERITY_RANK:  # a list or mapping is unhashable
        problems.add(node.where("severity"), f"{name}: severity must be one of {', '.join(SEVERITY_RANK)}, got {severity!r}")
    description = node.get("description", rule_id)
    if "description" in node and not isinstance(description, str):  # without one, the id (checked above)
        problems.add(node.where("description"), f"{name}: description must be text")

    followup = _validate(FollowupSpec, node, "followup", name, problems)
    alert = _validate(AlertSpec, node, "alert", name, problems)
    when_node = node.get("when")
    is_metric = isinstance(when_node, dict) and "metric" in when_node
    template = _template_name(node, alert, is_metric)
    if alert is not None and template != alert.template:
        alert = alert.model_copy(update={"template": template})
    if templates is not None and template is not None and template not in templates:
        at = node["alert"].where("template") if isinstance(node.get("alert"), LineDict) else where
        problems.add(at, f"{name}: template {template!r} not found (available: {', '.join(sorted(templates)) or 'none'})")
    if is_metric:
        condition = _validate(MetricCondition, node, "when", name, problems)
        # (with no problem, the id and the description are text: the isinstance checks only tell mypy)
        if len(problems) > before or not isinstance(rule_id, str) or not isinstance(description, str):
            return None
        return MetricRule(
            id=rule_id,
            description=description,
            severity=severity,
            condition=condition,
            owner=followup.owner,
            channel=alert.channel,
            template=alert.template,
            location=where,
        )
    condition = compile_cond(when_node, node.where("when"), f"{name}: when", problems, themes) if "when" in node else None
    throttle = _validate(ThrottleSpec, node, "throttle", name, problems) if node.get("throttle") is not None else None
    group = _validate(GroupSpec, node, "group", name, problems) if node.get("group") is not None else None
    if len(problems) > before or condition is None or not isinstance(rule_id, str) or not isinstance(description, str):
        return None
    return Rule(
        throttle=throttle,
        group=group,
        id=rule_id,
        description=description,
        severity=severity,
        when=predicate(condition, data_getter),
        condition=condition,
        followup=followup,
        alert=alert,
        location=where,
        order=order,
    )


def _template_name(node: LineDict, alert: AlertSpec | None, is_metric: bool) -> str | None:
    """The template a rule uses, even when its `alert:` block has another mistake (None: not knowable)."""
    raw: Any = node.get("alert")  # any YAML value
    given = isinstance(raw, dict) and "template" in raw
    if alert is not None:
        return alert.template if given or not is_metric else DEFAULT_METRIC_TEMPLATE
    if given:
        return raw["template"] if isinstance(raw["template"], str) else None
    if raw is None or isinstance(raw, dict):
        return DEFAULT_METRIC_TEMPLATE if is_metric else DEFAULT_TEMPLATE
    return None


def _validate(model: type[BaseModel], node: LineDict, key: str, name: str, problems: Problems) -> Any:
    """The block `key` as `model`, or None: each pydantic error becomes its own located problem."""
    value = node.get(key)
    if value is None:  # absent or empty: the defaults. `alert: false` is a mistake to report, not a default
        value = {}
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            at = locate(value, err["loc"]) if isinstance(value, LineDict) else node.where(key)
            path = ".".join([key, *(str(p) for p in err["loc"])])
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = f"unknown key (expected: {', '.join(model.model_fields)})"
            elif err["type"] == "value_error":
                message = str(err.get("ctx", {}).get("error", message))
            problems.add(at, f"{name}: {path}: {message}")
        return None


def _templates_in(templates: Path | str) -> set[str]:
    path = Path(templates)
    return {p.name for p in path.iterdir() if p.is_file()} if path.is_dir() else set()
