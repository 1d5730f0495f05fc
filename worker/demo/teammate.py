"""The demo's teammate and its short SLA: closing the loop as a support team would.

- One answer goes to a rule with a 5-second acknowledgement SLA (`demo-sla`, written next to
  a copy of the shipped rules), and nobody takes it: it escalates.
- A teammate then works a few tasks through the same path as `feedback-worker task ...`
  (keeper/desk.py): acknowledges them, ticks HEARD steps, resolves some with a root cause.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Settings
from ..events import FeedbackEvent
from ..keeper import TaskDesk
from ..rules import load_rules
from ..tasks import Case, task_id_for

ACK_WITHIN_S = 5
TEAMMATE = {"source": "cli", "id": "sam", "name": "Sam (teammate)"}
#: The demo's owner pool: tasks of cx-oncall go to these three in turn (their alerts mention them).
POOL = {"cx-oncall": {"members": ["UANNA0001", "UBEN00002", "UCHLOE003"], "strategy": "round_robin"}}
RESOLUTIONS = [
    ("shipping-delay", "Re-sent the order with express delivery"),
    ("billing-error", "Refunded the double charge"),
    ("product-defect", "Replaced the unit and logged the defect"),
]


def rules_with_short_sla(shipped: Path, events: list[tuple[bytes, bytes]]) -> tuple[Path, str | None]:
    """A copy of the shipped rules plus `demo-sla`, which owns the first answer of an enterprise customer that the
    shipped rules alert on (or else the first one they alert on)."""
    folder = Path(tempfile.mkdtemp(prefix="feedback-demo-rules-"))
    for file in shipped.glob("*.y*ml") if shipped.is_dir() else [shipped]:
        shutil.copy(file, folder / file.name)
    rules = load_rules(folder)
    alerting = []
    for _, value in events:
        try:
            event = FeedbackEvent.model_validate_json(value)
        except ValueError:
            continue
        if rules.evaluate(event) is not None:
            alerting.append(event)
    enterprise = [e for e in alerting if e.customer.segment == "enterprise"]
    chosen = next(iter(enterprise or alerting), None)
    target = chosen.event_id if chosen is not None else None
    if target is not None:
        (folder / "00-demo-sla.yaml").write_text(
            json.dumps(
                {
                    "rules": [
                        {  # loaded first: it wins a tie in severity
                            "id": "demo-sla",
                            "description": "Enterprise detractor: to acknowledge within 5 seconds (demo)",
                            "when": {"event_id": target},
                            "severity": "critical",
                            "alert": {"channel": "#cx-alerts"},
                            "followup": {
                                "owner": "cx-oncall",
                                "due_in": "4h",
                                "acknowledge_within": f"{ACK_WITHIN_S}s",
                                "escalate_to": {"channel": "#cx-leads"},
                            },
                        }
                    ]
                },
                indent=2,
            )
        )
        load_rules(folder)  # a mistake here is the demo's, and says so at once
    return folder, target and task_id_for(target)


def work_tasks(settings: Settings, skip: str | None, say: Callable[[str], None], count: int = 5) -> TaskDesk:
    """Acknowledge `count` open tasks, tick steps, resolve some: what a teammate does at the end of a burst."""
    desk = TaskDesk(settings)
    open_cases = sorted((c for c in desk.cases.by_id.values() if c.status == "open" and c.task_id != skip), key=lambda c: c.opened_at)
    for n, case in enumerate(open_cases[:count]):
        who = case.customer_name or case.customer_id
        verdict = desk.act("acknowledge", case.task_id, TEAMMATE)
        if not verdict.applied:
            say(f"  ✖ {verdict.message}")
            continue
        for step in ("hear", "empathize", "apologize"):
            desk.act("step", case.task_id, TEAMMATE, step=step)
        line = f"  {TEAMMATE['name']} acknowledged {case.task_id} ({who}, {case.rule_id})"
        if n < len(RESOLUTIONS):
            cause, resolution = RESOLUTIONS[n]
            verdict = desk.act("resolve", case.task_id, TEAMMATE, root_cause=cause, resolution=resolution, customer_contacted=True)
            line += f" and resolved it: {cause}" if verdict.applied else f"; resolve refused: {verdict.message}"
        say(line)
    return desk


def wait_for_escalation(desk: TaskDesk, task_id: str, timeout_s: float = 30.0) -> Case | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        desk.view.poll(timeout_ms=200)
        case = desk.cases.get(task_id)
        if case is not None and case.escalations:
            return case
    return None


def status_line(desk: TaskDesk) -> dict[str, Any]:
    cases = list(desk.cases.by_id.values())
    return {
        "open": sum(c.status == "open" for c in cases),
        "acknowledged": sum(c.status == "acknowledged" for c in cases),
        "resolved": sum(c.status == "resolved" for c in cases),
        "closed": sum(c.status == "closed" for c in cases),
        "escalated": sum(bool(c.escalations) for c in cases),
    }
