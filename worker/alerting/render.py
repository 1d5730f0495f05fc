"""Render Slack alerts from Jinja2 templates, safely.

A template in `TEMPLATES_PATH` renders a JSON object `{"text": ..., "blocks": [...]}`:
Block Kit blocks plus the plain-text fallback Slack shows in notifications.

Customer text is untrusted: every template runs in escaping.py's sandbox, where each `{{ ... }}`
output is escaped for Slack and for the JSON string it sits in, whatever the template says.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError

from ..events import FeedbackEvent, score_in_words
from ..metrics import MetricRule, MetricSnapshot, metric_value, responses_for
from ..notation import format_duration
from ..rules import Match
from ..tasks import Case, CauseReport, FollowupAnswer, FollowUpTask
from ..themes import EmergingSpec, RisingTerm
from .digest import Digest
from .escaping import fit, sandbox, slack_escape
from .rootcauses import ROOT_CAUSES_TEMPLATE, root_cause_context, root_cause_payload

SEVERITY_EMOJI = {
    "critical": ":rotating_light:",
    "high": ":red_circle:",
    "medium": ":large_orange_circle:",
    "low": ":large_yellow_circle:",
    "info": ":information_source:",
}
REPLY_TEMPLATE = "reply.slack.j2"
ESCALATION_TEMPLATE = "escalation.slack.j2"
ESCALATIONS_TEMPLATE = "escalations.slack.j2"
REOPENED_TEMPLATE = "reopened.slack.j2"
DIGEST_TEMPLATE = "digest.slack.j2"


@dataclass
class Alert:
    """A rendered alert, ready for `chat.postMessage` (or stdout when Slack is not configured)."""

    channel: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any]
    event_id: str
    task_id: str
    rule_id: str
    severity: str
    template: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    thread_ts: str | None = None  # a reply in the thread of this Slack message
    parent: Any = field(default=None, repr=False, compare=False)  # or of this alert still in flight (its Future)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "parent"}


class TemplateRenderError(Exception):
    """A template failed to render or produced invalid JSON; names the template and why."""


class AlertRenderer:
    def __init__(self, templates_path: Path | str) -> None:
        self.path = Path(templates_path)
        self.env = sandbox(
            loader=FileSystemLoader(str(self.path)),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,  # a stat() per render costs ~17 % of it; templates are checked at start-up
        )

    def render(
        self, template: str, channel: str, event: FeedbackEvent, match: Match, task: FollowUpTask, themes: Sequence[str] = ()
    ) -> Alert:
        """`themes`: the labels of the themes the comment mentions (ThemeSet.labels)."""
        rule = match.owner
        context = {
            "event": event,
            "customer": event.customer,
            "comment": event.comment,
            "score_words": score_in_words(event),
            "rule": {"id": rule.id, "description": rule.description, "severity": rule.severity},
            "severity": rule.severity,
            "severity_emoji": SEVERITY_EMOJI[rule.severity],
            "matched_rules": [{"id": r.id, "description": r.description, "severity": r.severity} for r in match.rules],
            "task": task,
            "owner": task.owner,
            "due_at": task.due_at,
            "steps": task.steps,
            "themes": list(themes),
        }
        text, blocks = self.render_json(template, context)
        return Alert(
            channel=channel,
            text=text,
            blocks=blocks,
            metadata={
                "event_type": "feedback_alert",
                "event_payload": {"event_id": event.event_id, "task_id": task.task_id, "rule_id": rule.id, "severity": rule.severity},
            },
            event_id=event.event_id,
            task_id=task.task_id,
            rule_id=rule.id,
            severity=rule.severity,
            template=template,
        )

    def render_digest(self, digest: Digest) -> Alert:
        """One message for many matches; its metadata lists every event and task it stands for."""
        rule = digest.rule
        shown = digest.items[: digest.max_items]
        context = {
            "rule": {"id": rule.id, "description": rule.description, "severity": rule.severity},
            "severity": rule.severity,
            "severity_emoji": SEVERITY_EMOJI[rule.severity],
            "reason": digest.reason,
            "group": digest.group,
            "total": len(digest.items),
            "more": len(digest.items) - len(shown),
            "items": [
                {
                    "customer": i.event.customer,
                    "score_words": score_in_words(i.event),
                    "comment": i.event.comment,
                    "task_id": i.task_id,
                    "event_id": i.event.event_id,
                }
                for i in shown
            ],
        }
        text, blocks = self.render_json(DIGEST_TEMPLATE, context)
        payload = {
            "rule_id": rule.id,
            "severity": rule.severity,
            "count": len(digest.items),
            "reason": digest.reason,
            "event_ids": [i.event.event_id for i in digest.items],
            "task_ids": [i.task_id for i in digest.items],
        }
        return Alert(
            channel=digest.channel,
            text=text,
            blocks=blocks,
            metadata={"event_type": "feedback_alert_digest", "event_payload": payload},
            event_id="",
            task_id="",
            rule_id=rule.id,
            severity=rule.severity,
            template=DIGEST_TEMPLATE,
        )

    def render_reply(self, channel: str, event: FeedbackEvent, match: Match, task_id: str, answers: int) -> Alert:
        """A reply in the thread of an open task's first alert (see throttle.py)."""
        rule = match.owner
        context = {
            "event": event,
            "customer": event.customer,
            "comment": event.comment,
            "score_words": score_in_words(event),
            "rule": {"id": rule.id, "description": rule.description, "severity": rule.severity},
            "matched_rules": [{"id": r.id, "description": r.description, "severity": r.severity} for r in match.rules],
            "task_id": task_id,
            "answers": answers,
        }
        text, blocks = self.render_json(REPLY_TEMPLATE, context)
        return Alert(
            channel=channel,
            text=text,
            blocks=blocks,
            metadata={
                "event_type": "feedback_alert_reply",
                "event_payload": {"event_id": event.event_id, "task_id": task_id, "rule_id": rule.id, "severity": rule.severity},
            },
            event_id=event.event_id,
            task_id=task_id,
            rule_id=rule.id,
            severity=rule.severity,
            template=REPLY_TEMPLATE,
        )

    def render_metric(self, rule: MetricRule, channel: str, snapshot: MetricSnapshot) -> Alert:
        """An alert on a rolling figure: the figure, its margin of error, the responses, the window."""
        condition = rule.condition
        value = metric_value(snapshot, condition.metric)
        dimension = ", ".join(f"{path} = {v}" for path, v in snapshot.dimension.items()) or "all customers"
        context = {
            "rule": {"id": rule.id, "description": rule.description, "severity": rule.severity},
            "severity": rule.severity,
            "severity_emoji": SEVERITY_EMOJI[rule.severity],
            "metric": condition.metric,
            "value": value,
            "condition": condition.describe(),
            "responses": responses_for(snapshot, condition.metric),
            "margin_of_error": snapshot.nps.margin_of_error if condition.metric.startswith("nps.") else None,
            "snapshot": snapshot,
            "window": snapshot.window,
            "dimension": dimension,
            "owner": rule.owner,
        }
        text, blocks = self.render_json(rule.template, context)
        payload = {
            "rule_id": rule.id,
            "severity": rule.severity,
            "metric": condition.metric,
            "value": value,
            "window": snapshot.window.model_dump(),
            "dimension": snapshot.dimension,
        }
        return Alert(
            channel=channel,
            text=text,
            blocks=blocks,
            metadata={"event_type": "feedback_metric_alert", "event_payload": payload},
            event_id="",
            task_id="",
            rule_id=rule.id,
            severity=rule.severity,
            template=rule.template,
        )

    def render_escalation(self, case: Case, reason: str, channel: str, thread_ts: str | None) -> Alert:
        """An SLA timer ran out: a reply in the alert's thread (or a post, if the alert is not known) naming who must act."""
        context = {
            "task": case,
            "reason": reason,
            "in_thread": thread_ts is not None,
            "customer_name": case.customer_name or case.customer_id,
        }
        text, blocks = self.render_json(ESCALATION_TEMPLATE, context)
        alert = Alert(
            channel=channel,
            text=text,
            blocks=blocks,
            metadata={
                "event_type": "feedback_escalation",
                "event_payload": {"task_id": case.task_id, "reason": reason, "rule_id": case.rule_id, "severity": case.severity},
            },
            event_id=case.event_id,
            task_id=case.task_id,
            rule_id=case.rule_id,
            severity=case.severity,
            template=ESCALATION_TEMPLATE,
        )
        alert.thread_ts = thread_ts
        return alert

    def render_reopened(self, case: Case, answer: FollowupAnswer, channel: str, thread_ts: str | None) -> Alert:
        """The customer's follow-up answer was still unhappy: a reply in the alert's thread (the task is open again)."""
        context = {
            "task": case,
            "answer": answer,
            "score_words": score_in_words(answer),
            "in_thread": thread_ts is not None,
            "customer_name": case.customer_name or case.customer_id,
        }
        text, blocks = self.render_json(REOPENED_TEMPLATE, context)
        alert = Alert(
            channel=channel,
            text=text,
            blocks=blocks,
            metadata={
                "event_type": "feedback_task_reopened",
                "event_payload": {"task_id": case.task_id, "event_id": answer.event_id, "rule_id": case.rule_id, "severity": case.severity},
            },
            event_id=answer.event_id,
            task_id=case.task_id,
            rule_id=case.rule_id,
            severity=case.severity,
            template=REOPENED_TEMPLATE,
        )
        alert.thread_ts = thread_ts
        return alert

    def render_escalations(self, escalated: list[tuple[Case, str]], channel: str) -> Alert:
        """The escalation channel's post: one task, or a summary of many that fell due together (after an outage)."""
        context = {
            "items": [
                {"task": case, "reason": reason, "customer_name": case.customer_name or case.customer_id} for case, reason in escalated
            ],
            "total": len(escalated),
        }
        text, blocks = self.render_json(ESCALATIONS_TEMPLATE, context)
        first = escalated[0][0]
        payload = {"task_ids": [case.task_id for case, _ in escalated], "reasons": [reason for _, reason in escalated]}
        return Alert(
            channel=channel,
            text=text,
            blocks=blocks,
            metadata={"event_type": "feedback_escalations", "event_payload": payload},
            event_id=first.event_id if len(escalated) == 1 else "",
            task_id=first.task_id if len(escalated) == 1 else "",
            rule_id=first.rule_id,
            severity=first.severity,
            template=ESCALATIONS_TEMPLATE,
        )

    def render_root_causes(self, report: CauseReport, channel: str, timezone: str = "UTC") -> Alert:
        """The root-cause digest of a period (context in alerting/rootcauses.py): top causes by tasks and by revenue, changes,
        recovery rates, example comments."""
        text, blocks = self.render_json(ROOT_CAUSES_TEMPLATE, root_cause_context(report, timezone))
        return Alert(
            channel=channel,
            text=text,
            blocks=blocks,
            metadata={"event_type": "feedback_root_causes", "event_payload": root_cause_payload(report)},
            event_id="",
            task_id="",
            rule_id="root-causes",
            severity="info",
            template=ROOT_CAUSES_TEMPLATE,
        )

    def render_emerging(
        self,
        spec: EmergingSpec,
        term: RisingTerm,
        start: int,
        themes: Sequence[str] = (),
        examples: Sequence[str] = (),
        candidate: str | None = None,
    ) -> Alert:
        """A rising complaint (`emerging:`): the term, its count against the usual, the window (starting at `start`, unix
        s), the labels of the themes that cover it, example comments and a candidate theme (YAML). Customer text is
        escaped by the sandbox like every comment."""
        size = int(spec.window.total_seconds())

        def when(ts: int) -> str:
            return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")

        window = {"size": format_duration(spec.window), "start": when(start), "end": when(start + size)}
        context = {
            "term": term.written,
            "count": term.count,
            "usual": term.usual,
            "ratio": term.ratio,
            "window": window,
            "baseline": format_duration(spec.baseline),
            "themes": list(themes),
            "examples": list(examples)[: spec.examples],
            "candidate": candidate,
        }
        text, blocks = self.render_json(spec.template, context)
        payload = {"term": term.key, "written": term.written, "count": term.count, "usual": round(term.usual, 4), "window": window}
        return Alert(
            channel=spec.channel,
            text=text,
            blocks=blocks,
            metadata={"event_type": "feedback_rising_complaint", "event_payload": payload},
            event_id="",
            task_id="",
            rule_id="emerging",
            severity="info",
            template=spec.template,
        )

    def render_json(self, template: str, context: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        try:
            output = self.env.get_template(template).render(context)
        except TemplateError as err:
            line = getattr(err, "lineno", None)
            where = f"{template}:{line}" if line else template
            raise TemplateRenderError(f"{where}: {type(err).__name__}: {err}") from None
        except Exception as err:  # raised by the data, e.g. None * 12 or the sandbox's range limit
            raise TemplateRenderError(f"{template}: {type(err).__name__}: {err}") from None
        try:
            rendered = json.loads(output)
        except json.JSONDecodeError as err:
            raise TemplateRenderError(
                f"{template}: rendered output is not valid JSON at output line {err.lineno} column {err.colno}: {err.msg}"
            ) from None
        if not isinstance(rendered, dict) or not isinstance(rendered.get("text"), str) or not isinstance(rendered.get("blocks", []), list):
            raise TemplateRenderError(f'{template}: must render an object {{"text": "...", "blocks": [...]}}')
        return rendered["text"], rendered.get("blocks", [])


def notice_alert(channel: str, kind: str, headline: str, detail: str) -> Alert:
    """An operational message (e.g. a rejected rules reload): a headline and a plain-text detail."""
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(headline)}},
        {"type": "section", "text": {"type": "plain_text", "text": fit(detail, 2900), "emoji": False}},
    ]
    return Alert(
        channel=channel,
        text=slack_escape(headline),
        blocks=blocks,
        metadata={"event_type": "feedback_worker_notice", "event_payload": {"kind": kind}},
        event_id="",
        task_id="",
        rule_id="",
        severity="info",
    )
