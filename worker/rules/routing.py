"""Routing: which Slack channel and which owner an alert and its task go to.

In order, the first that gives a value wins:
1. the rule's own `alert.channel` / `followup.owner`, which may be a template over the event
   (`"#cx-{{ customer.segment }}"`);
2. the config-level `routes:` table, first matching route (a route without `when` matches all):
       routes:
         - {when: {customer.segment: enterprise}, channel: "#enterprise-escalations", owner: enterprise-cs}
         - {when: {attributes.region: apac}, channel: "#cx-apac"}
         - {channel: "#cx-alerts", owner: cx-team}          # the default, at the end
3. SLACK_DEFAULT_CHANNEL, and the owner `cx-team`.

A template renders in the sandbox with the event's fields; its output is untrusted text, so a
value that is not a plausible channel or owner name is refused and routing falls through to
the next step (with a warning), instead of posting somewhere odd.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from ..events import FeedbackEvent
from ..notation import LineDict, LineList, Location, Problems
from ..tasks import DEFAULT_OWNER
from .conditions import Predicate, compile_condition
from .loader import RulesError
from .model import Rule

log = logging.getLogger(__name__)

#: The channel shown when neither the rule, a route nor SLACK_DEFAULT_CHANNEL names one (stdout mode).
NO_CHANNEL = "(default channel)"
_NAME = re.compile(r"^[#@]?[\w.\-]{1,80}$")


def _present(value: Any) -> Any:
    if value is None:  # `#cx-{{ customer.segment }}` without a segment must not become `#cx-none`
        raise ValueError("a field used in the template is missing")
    return value


_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, finalize=_present)
ROUTE_KEYS = ("when", "channel", "owner")


def _template(text: str | None) -> Any:
    """None, a plain string, or a compiled template for values containing `{{`."""
    if text is None or "{{" not in text:
        return text
    return _ENV.from_string(text)


def _render(value: Any, event: FeedbackEvent, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    context = event.model_dump(mode="python") | {"event": event}
    try:
        text = value.render(context).strip()
    except (TemplateError, TypeError, ValueError) as err:
        log.warning("cannot render %s for event %s (%s): falling back", what, event.event_id, err, extra={"event_id": event.event_id})
        return None
    text = text.lower() if what == "channel" else text
    if not _NAME.match(text):
        log.warning(
            "rendered %s %r for event %s is not a valid name: falling back",
            what,
            text[:100],
            event.event_id,
            extra={"event_id": event.event_id},
        )
        return None
    return text


@dataclass(frozen=True)
class Route:
    when: Predicate | None
    channel: Any  # str, compiled template or None
    owner: Any


class Destination(NamedTuple):
    channel: str
    owner: str


class Router:
    def __init__(self, routes: tuple[Route, ...] = (), default_channel: str | None = None) -> None:
        self.routes = routes
        self.default_channel = default_channel
        self._rule_values: dict[str, tuple[Any, Any]] = {}

    def destination(self, event: FeedbackEvent, rule: Rule) -> Destination:
        """The channel and owner for one event owned by `rule`."""
        channel_t, owner_t = self._rule_values.get(rule.id) or self._compile_rule(rule)
        channel = _render(channel_t, event, "channel")
        owner = _render(owner_t, event, "owner")
        for route in self.routes:
            if channel is not None and owner is not None:
                break
            if route.when is None or route.when(event):
                channel = channel or _render(route.channel, event, "channel")
                owner = owner or _render(route.owner, event, "owner")
        return Destination(channel or self.default_channel or NO_CHANNEL, owner or DEFAULT_OWNER)

    def has_default_channel(self) -> bool:
        return bool(self.default_channel) or any(r.when is None and r.channel for r in self.routes)

    def _compile_rule(self, rule: Rule) -> tuple[Any, Any]:
        owner = rule.followup.owner if "owner" in rule.followup.model_fields_set else None
        values = (_template(rule.alert.channel), _template(owner))
        self._rule_values[rule.id] = values
        return values


def compile_routes(raw: list[Any], source: str = "routes") -> tuple[Route, ...]:
    """The `routes:` table of the config file, checked like rules: every mistake, with file:line.

    Raises RulesError listing them all, ordered by file and line.
    """
    problems = Problems()
    routes = []
    for index, item in enumerate(raw):
        route = _compile_route(index, _with_lines(item, Location(source, 0)), Location(source, 0), problems)
        if route is not None:
            routes.append(route)
    if problems:
        raise RulesError(problems.ordered())
    return tuple(routes)


def _compile_route(index: int, node: Any, default: Location, problems: Problems) -> Route | None:
    before = len(problems)
    where = node.location if isinstance(node, LineDict) else default
    context = f"routes[{index}]"
    if not isinstance(node, LineDict):  # every mapping is one: compile_routes passes its items through _with_lines
        problems.add(where, f"{context}: expected a mapping with when, channel, owner")
        return None
    for key in node:
        if key not in ROUTE_KEYS:
            problems.add(node.where(key), f"{context}: unknown key {key!r} (expected: {', '.join(ROUTE_KEYS)})")
    if not node.get("channel") and not node.get("owner"):
        problems.add(where, f"{context}: give a channel, an owner or both")
    values = {}
    for key in ("channel", "owner"):
        if key in node and not isinstance(node[key], str):
            problems.add(node.where(key), f"{context}.{key}: expected text")
            continue
        try:
            values[key] = _template(node.get(key))
        except TemplateError as err:
            problems.add(where, f"{context}: invalid template: {err}")
    when = compile_condition(node["when"], node.where("when"), f"{context}.when", problems) if "when" in node else None
    if len(problems) > before:
        return None
    return Route(when=when, channel=values["channel"], owner=values["owner"])


def _with_lines(value: Any, location: Location) -> Any:
    """Plain dicts/lists (settings built in code) as LineDict/LineList, so compile_condition can name places."""
    if isinstance(value, (LineDict, LineList)):
        return value
    if isinstance(value, dict):
        node = LineDict({k: _with_lines(v, location) for k, v in value.items()})
        node.location, node.key_locations = location, {}
        return node
    if isinstance(value, list):
        items = LineList(_with_lines(v, location) for v in value)
        items.location, items.item_locations = location, []
        return items
    return value
