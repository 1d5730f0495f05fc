"""The demo's Diagnose step: the team's resolutions teach the worker, and a new task's card suggests its root cause.

The teammate works through the rest of the open tasks and resolves each with the root cause its comment
shows (CAUSE_OF_COMMENT: what a support team would choose for each comment the demo writes). Then two
customers answer again in words the team has seen before, in other languages than most of the resolved
ones; their tasks open with a suggested root cause, which the demo prints as the task card shows it in Slack.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from ..alerting import likely_line
from ..broker import make_producer
from ..config import Settings
from ..keeper import TaskDesk
from ..tasks import Case, task_id_for
from .teammate import TEAMMATE

#: The cause a teammate puts each of the demo's unhappy comments down to (samples.py's NEGATIVE).
CAUSE_OF_COMMENT = {
    "Printer ink arrived late again": "shipping-delay",
    "Support took three days to answer, I want a refund": "support-experience",
    "We are going to cancel our subscription": "pricing",
    "De levering was weer te laat, ik wil mijn geld terug": "shipping-delay",
    "Ik overweeg om mijn abonnement op te zeggen": "pricing",
    "Tarne hilines ja keegi ei vastanud, tahan raha tagasi": "shipping-delay",
    "Arve oli vale juba teist kuud järjest": "billing-error",
    "El pedido llegó roto, quiero un reembolso": "product-defect",
    "Die Rechnung war falsch und niemand hat zurückgerufen": "billing-error",
    "Our lawyer will be in touch about the outage": "service-outage",
    "Too many steps to change my billing address": "onboarding",
    "<!channel> nobody reads these anyway <@U0123> {{ 7*7 }}": "communication",
}
#: Two new answers, in words the resolved tasks used: their cards should say shipping-delay and billing-error.
NEW_ANSWERS = [
    ("c-0900", "Kohvik Kass #9", "Pakk jõudis kohale nädal hiljem, tarne hilines jälle"),  # new customers: an answer
    ("c-0901", "Tallinna Trükk #9", "Die Rechnung ist schon wieder falsch"),  # of one asked again would close their task
]


def resolve_backlog(desk: TaskDesk, skip: set[str], say: Callable[[str], None], timeout_s: float = 30.0) -> int:
    """Resolve every open or acknowledged task with a comment (not those in `skip`) by its comment's cause: sent at
    once, then awaited together (one round trip each would take a minute)."""
    sent = []
    for case in sorted(desk.cases.by_id.values(), key=lambda c: c.opened_at):
        if case.task_id in skip or case.status not in ("open", "acknowledged") or not case.comment:
            continue
        cause = CAUSE_OF_COMMENT.get(case.comment, "other")
        action_id = desk.send("resolve", case.task_id, TEAMMATE, root_cause=cause, resolution="Handled (demo backlog)")
        if isinstance(action_id, str):
            sent.append(action_id)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(a not in desk.cases.outcomes for a in sent):
        desk.view.poll(timeout_ms=200)
    resolved = sum(1 for a in sent if (outcome := desk.cases.outcomes.get(a)) is not None and outcome.applied)
    say(f"  {TEAMMATE['name']} resolved {resolved} more tasks, each with the root cause its comment shows")
    return resolved


def answer_again(settings: Settings, desk: TaskDesk, say: Callable[[str], None], timeout_s: float = 30.0) -> int:
    """Two new unhappy answers; print each new task's card line ("Likely: ..."). The number of answers sent."""
    producer = make_producer(settings)
    ids = []
    for customer, name, comment in NEW_ANSWERS:
        event_id = f"diagnose-{uuid.uuid4().hex[:10]}"
        answer = {
            "event_id": event_id,
            "occurred_at": datetime.now(UTC).isoformat(),
            "survey": "nps",
            "score": 2,
            "comment": comment,
            "customer": {"id": customer, "name": name, "segment": "smb", "monthly_value": 120.0},
        }
        producer.send(settings.feedback_topic, key=customer.encode(), value=json.dumps(answer).encode())
        ids.append(task_id_for(event_id))
    producer.flush()
    producer.close()
    for task_id, (_, name, comment) in zip(ids, NEW_ANSWERS, strict=True):
        case = _wait_for(desk, task_id, timeout_s)
        if case is None:
            say(f"  ✖ task {task_id} ({name}) was not opened within {timeout_s:.0f} s")
        elif case.suggested_root_cause is None:
            say(f"  {task_id} ({name}: “{comment}”): no suggestion (too few resolved tasks)")
        else:
            say(f"  {task_id} ({name}: “{comment}”)\n    its card: {likely_line(case.suggested_root_cause)}")
    return len(NEW_ANSWERS)


def _wait_for(desk: TaskDesk, task_id: str, timeout_s: float) -> Case | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        desk.view.poll(timeout_ms=200)
        case = desk.cases.get(task_id)
        if case is not None:
            return case
    return None
