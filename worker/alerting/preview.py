"""`feedback-worker template render`: an alert exactly as it would be posted, from an event file.

Without this, a template author sees their Block Kit only when a real customer triggers the
rule, in the real channel. Here the event goes through the worker's own steps (JSON
validation as on the topic, `RuleSet.evaluate`, the `Router`, `open_task`,
`AlertRenderer.render`), so
what is printed is what `chat.postMessage` would receive, escaping included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..events import FUTURE_LIMIT_S, FeedbackEvent
from ..notation import Location, SourceError, load_yaml, locate
from ..rules import Match, Router, Rule, RuleSet, load_rules
from ..tasks import Period, RootCauseDigest, open_task, root_cause_report
from .render import AlertRenderer, TemplateRenderError
from .rootcauses import ROOT_CAUSES_TEMPLATE, sample_cases, sample_period


class PreviewError(Exception):
    """Why nothing can be rendered: missing template, invalid event, unknown rule, no match."""


@dataclass(frozen=True)
class Preview:
    payload: dict[str, Any]  # the chat.postMessage arguments
    owner: Rule
    matched: list[str]
    template: str
    notes: list[str] = field(default_factory=list)  # things the user should know, e.g. "the rule does not match"

    def format(self, as_json: bool = False) -> str:
        body = json.dumps(self.payload, indent=2, ensure_ascii=False)
        if as_json:
            return body
        head = (
            f"# chat.postMessage · template {self.template} · rule {self.owner.id} ({self.owner.severity}) owns"
            f" · matched: {', '.join(self.matched)}"
        )
        return f"{head}\n{body}\n\n# text fallback (notifications, clients without Block Kit):\n{self.payload['text']}"


def render_preview(
    template: str,
    event_file: Path,
    rules_path: Path,
    templates_path: Path,
    rule_id: str | None = None,
    router: Router | None = None,
    now: datetime | None = None,
) -> Preview:
    """Render `template` for the event in `event_file`, owned by `rule_id` or by whichever rule the worker picks.

    `router`: the worker's (checks.make_router), for the channel and owner; by default no routes.
    """
    available = sorted(p.name for p in templates_path.iterdir() if p.is_file()) if templates_path.is_dir() else []
    if template not in available:
        where = f"in {templates_path}" if templates_path.is_dir() else f"({templates_path} is not a directory)"
        raise PreviewError(f"template {template!r} not found {where} (available: {', '.join(available) or 'none'})")
    event = read_event(event_file)
    rules = load_rules(rules_path)  # RulesError on broken rules, reported like `rules check`
    now = now or datetime.now(UTC)
    match, notes = _choose(rules, event, rule_id)
    owner = match.owner
    if owner.alert.template != template:
        notes.append(f"rule {owner.id!r} uses template {owner.alert.template!r}; rendering {template!r} as asked")
    if event.occurred_at > now + timedelta(seconds=FUTURE_LIMIT_S):
        notes.append("occurred_at is more than 5 minutes in the future: the worker would send this event to the DLQ")
    destination = (router or Router()).destination(event, owner)
    task = open_task(event, owner.id, match.rule_ids, owner.severity, owner.followup, now, destination.owner)
    try:
        alert = AlertRenderer(templates_path).render(template, destination.channel, event, match, task)
    except TemplateRenderError as err:
        raise PreviewError(f"template does not render: {err}") from None
    payload = {
        "channel": alert.channel,
        "text": alert.text,
        "blocks": alert.blocks,
        "metadata": alert.metadata,
        "unfurl_links": False,
        "unfurl_media": False,
    }  # as SlackSink posts it
    return Preview(payload, owner, match.rule_ids, template, notes)


@dataclass(frozen=True)
class DigestPreview:
    """The root-cause digest as it would be posted, for sample tasks: it renders from a period's cases, not an event."""

    payload: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def format(self, as_json: bool = False) -> str:
        body = json.dumps(self.payload, indent=2, ensure_ascii=False)
        if as_json:
            return body
        return (
            f"# chat.postMessage · template {ROOT_CAUSES_TEMPLATE} · sample tasks\n{body}\n\n"
            f"# text fallback (notifications, clients without Block Kit):\n{self.payload['text']}"
        )


def render_root_causes_preview(
    templates_path: Path, schedule: RootCauseDigest | None, channel: str | None, churn_probability: float, now: datetime | None = None
) -> DigestPreview:
    """The digest for sample tasks in the last period `schedule` would post (without one: the last week)."""
    if not (templates_path / ROOT_CAUSES_TEMPLATE).is_file():
        raise PreviewError(f"template {ROOT_CAUSES_TEMPLATE!r} not found in {templates_path}")
    now = now or datetime.now(UTC)
    period = schedule.last_ended(now) if schedule else sample_period(now)
    previous = schedule.before(period) if schedule else Period(period.start - (period.end - period.start), period.start)
    report = root_cause_report(sample_cases(period), period, previous, churn_probability, top=schedule.top if schedule else 5)
    channel = (schedule.channel if schedule else None) or channel or "#cx-leads"
    try:
        alert = AlertRenderer(templates_path).render_root_causes(report, channel, schedule.timezone if schedule else "UTC")
    except TemplateRenderError as err:
        raise PreviewError(f"template does not render: {err}") from None
    notes = ["rendered for sample tasks; `feedback-worker report root-causes` prints the real figures from FOLLOWUP_TOPIC"]
    if schedule is None:
        notes.append("no `root_cause_digest:` in the config: the worker posts no digest; shown for the last 7 days")
    payload = {
        "channel": alert.channel,
        "text": alert.text,
        "blocks": alert.blocks,
        "metadata": alert.metadata,
        "unfurl_links": False,
        "unfurl_media": False,
    }
    return DigestPreview(payload, notes)


def _choose(rules: RuleSet, event: FeedbackEvent, rule_id: str | None) -> tuple[Match, list[str]]:
    """The worker's match, or the one the user forces with --rule (the rules that really match stay listed)."""
    match = rules.evaluate(event)
    if rule_id is None:
        if match is None:
            raise PreviewError(
                "no rule matches this event, so the worker would send no alert; "
                f"give --rule ID to render it anyway (rules: {', '.join(r.id for r in rules.rules)})"
            )
        return match, []
    forced = next((r for r in rules.rules if r.id == rule_id), None)
    if forced is None:
        if any(r.id == rule_id for r in rules.metric_rules):
            raise PreviewError(f"{rule_id!r} is a metric rule: its alerts render from snapshots, not events")
        raise PreviewError(f"unknown rule {rule_id!r} (rules: {', '.join(r.id for r in rules.rules)})")
    matched = list(match.rules) if match else []
    notes = []
    if forced not in matched:
        notes.append(f"rule {rule_id!r} does not match this event; rendered as if it did")
        matched = sorted([*matched, forced], key=lambda r: r.order)
    if match is not None and match.owner is not forced:
        notes.append(f"without --rule, {match.owner.id!r} would own this event")
    return Match(owner=forced, rules=tuple(matched)), notes


def read_event(path: Path) -> FeedbackEvent:
    """Validate the file the way the worker validates a Kafka message; errors name the line and the field."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise PreviewError(f"{path}: cannot read the event file ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
        json.loads(text)
    except UnicodeDecodeError as err:
        raise SourceError(Location(str(path), 1), f"not UTF-8 text (invalid byte at position {err.start})") from None
    except json.JSONDecodeError as err:
        raise SourceError(Location(str(path), err.lineno), f"not valid JSON: {err.msg} (column {err.colno})") from None
    try:
        return FeedbackEvent.model_validate_json(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            field_path = ".".join(str(part) for part in error["loc"]) or "event"
            problems.append(f"{_line_of(path, text, error['loc'])}: {field_path}: {error['msg'].removeprefix('Value error, ')}")
        raise PreviewError("invalid event (the worker would send it to the DLQ):\n  " + "\n  ".join(problems)) from None


def _line_of(path: Path, text: str, loc: tuple[Any, ...]) -> Location:
    """Best effort: JSON is YAML, so the YAML loader's line numbers locate the field; line 1 otherwise."""
    try:
        node = load_yaml(path, text)
    except SourceError:
        return Location(str(path), 1)
    return locate(node, loc, Location(str(path), 1))
