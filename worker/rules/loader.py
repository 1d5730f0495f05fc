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

from ..metrics import DEFAULT_METRIC_TEMPLATE, MetricCondition, MetricRule
from ..tasks import SEVERITY_RANK, FollowupSpec
from ..yamlsource import LineDict, LineList, Location, SourceError, load_yaml, locate
from .blocks import AlertSpec, GroupSpec, ThrottleSpec
from .conditions import compile_cond, predicate
from .model import Rule, RuleSet

RULE_KEYS = ("id", "description", "when", "severity", "followup", "alert", "throttle", "group")
FILE_KEYS = ("rules", "tests")  # tests: run by `rules check` (rules/ruletests.py); the worker ignores them
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
    collected and raised together as RulesError, so one run shows every mistake.
    """
    files = rule_files(path)
    available = _templates_in(templates) if templates is not None else None
    errors: list[SourceError] = []
    rules: list[Rule] = []
    metric_rules: list[MetricRule] = []
    seen: dict[str, Location] = {}
    for file in files:
        try:
            document = load_yaml(file)
        except SourceError as err:
            errors.append(err)
            continue
        for node, where in _rule_nodes(document, file, errors):
            # The id first: a duplicate is a mistake of its own, whether or not either rule compiles.
            rule_id = node.get("id")
            if isinstance(rule_id, str):
                if rule_id in seen:
                    errors.append(SourceError(node.where("id"), f"duplicate rule id {rule_id!r} (first defined at {seen[rule_id]})"))
                    continue
                seen[rule_id] = where
            try:
                rule = _build_rule(node, where, len(rules), available)
            except SourceError as err:
                errors.append(err)
                continue
            (metric_rules if isinstance(rule, MetricRule) else rules).append(rule)
    if errors:
        raise RulesError(errors)
    if not rules and not metric_rules:
        raise RulesError([SourceError(Location(str(path), 0), "no rules found")])
    return RuleSet(rules=tuple(rules), files=tuple(str(f) for f in files), metric_rules=tuple(metric_rules))


def _rule_nodes(document: Any, file: Path, errors: list[SourceError]) -> Iterable[tuple[LineDict, Location]]:
    top = Location(str(file), 1)
    if document is None:
        return
    if not isinstance(document, LineDict):
        errors.append(SourceError(top, "expected a mapping with a `rules:` list at the top of the file"))
        return
    for key in document:
        if key not in FILE_KEYS:
            errors.append(SourceError(document.where(key), f"unknown top-level key {key!r} (expected: {', '.join(FILE_KEYS)})"))
    items = document.get("rules")
    if items is None:
        return
    if not isinstance(items, LineList):
        errors.append(SourceError(document.where("rules"), "`rules:` must be a list of rules"))
        return
    for index, node in enumerate(items):
        if not isinstance(node, LineDict):
            errors.append(SourceError(items.where(index), f"rules[{index}]: expected a mapping with id, when, ..."))
            continue
        yield node, items.where(index)


def _build_rule(node: LineDict, where: Location, order: int, templates: set[str] | None) -> Rule | MetricRule:
    rule_id = node.get("id")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise SourceError(node.where("id"), f"rule id must be text of letters, digits, '.', '_' or '-', got {rule_id!r}")
    name = f"rule {rule_id!r}"
    for key in node:
        if key not in RULE_KEYS:
            raise SourceError(node.where(key), f"{name}: unknown key {key!r} (expected: {', '.join(RULE_KEYS)})")
    if "when" not in node:
        raise SourceError(where, f"{name}: missing `when:`")
    severity = node.get("severity", "medium")
    if not isinstance(severity, str) or severity not in SEVERITY_RANK:  # a list or mapping is unhashable
        raise SourceError(
            node.where("severity"), f"{name}: severity must be one of {', '.join(SEVERITY_RANK)}, got {severity!r}"
        )
    description = node.get("description", rule_id)
    if not isinstance(description, str):
        raise SourceError(node.where("description"), f"{name}: description must be text")

    followup = _validate(FollowupSpec, node, "followup", name)
    alert = _validate(AlertSpec, node, "alert", name)
    is_metric = isinstance(node["when"], dict) and "metric" in node["when"]
    if is_metric and not (isinstance(node.get("alert"), dict) and "template" in node["alert"]):
        alert = alert.model_copy(update={"template": DEFAULT_METRIC_TEMPLATE})
    if templates is not None and alert.template not in templates:
        at = node["alert"].where("template") if isinstance(node.get("alert"), LineDict) else where
        raise SourceError(at, f"{name}: template {alert.template!r} not found (available: {', '.join(sorted(templates)) or 'none'})")
    if is_metric:
        condition = _validate(MetricCondition, node, "when", name)
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
    condition = compile_cond(node["when"], node.where("when"), context=f"{name}: when")
    throttle = _validate(ThrottleSpec, node, "throttle", name) if node.get("throttle") is not None else None
    group = _validate(GroupSpec, node, "group", name) if node.get("group") is not None else None
    return Rule(
        throttle=throttle,
        group=group,
        id=rule_id,
        description=description,
        severity=severity,
        when=predicate(condition),
        condition=condition,
        followup=followup,
        alert=alert,
        location=where,
        order=order,
    )


def _validate(model: type[BaseModel], node: LineDict, key: str, name: str) -> Any:
    value = node.get(key)
    if value is None:  # absent or empty: the defaults. `alert: false` is a mistake to report, not a default
        value = {}
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        at = locate(value, err["loc"]) if isinstance(value, LineDict) else node.where(key)
        path = ".".join([key, *(str(p) for p in err["loc"])])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown key (expected: {', '.join(model.model_fields)})"
        elif err["type"] == "value_error":
            message = str(err.get("ctx", {}).get("error", message))
        raise SourceError(at, f"{name}: {path}: {message}") from None


def _templates_in(templates: Path | str) -> set[str]:
    path = Path(templates)
    return {p.name for p in path.iterdir() if p.is_file()} if path.is_dir() else set()
