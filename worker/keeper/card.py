"""After every change to a task, from any source, its alert shows it: the card updated in place, a line in the thread.

Run by the keeper (keeper.py), the one worker that applies changes, so updates are in the
order of the changes. A card update is coalesced per task (ten clicks in a second, one
`chat.update`, showing the last state) and holds the offsets of the actions that asked for it
until Slack has it: a crash before it is redone after the restart, and the sink retries it like
a post (with Retry-After), so none is dropped. Each change's one-line reply in the thread
("<@U02DEF> acknowledged") is a slot of its own, posted once through the outbox (delivery/).

On when SLACK_APP_TOKEN is set (the buttons live on the card); alerts of a bot-token-only
install stay as they were posted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from ..alerting import Alert, audit_line, card
from ..delivery import Form, Outbox, Outcome, Place, Sink, alert_slot, change_slot
from ..stream import Hold, Origin
from ..tasks import Case, Lifecycle

log = logging.getLogger("worker")

COALESCE_S = 1.0
ALERT_WAIT_S = 30.0  # a change waits this long for its alert's POSTED record (another replica's, in flight)


@dataclass
class _Pending:
    due: float
    holds: list[tuple[Hold, Origin]] = field(default_factory=list)


class LiveCards:
    def __init__(self, outbox: Outbox, sink: Sink, cases_get: Callable[[str], Case | None], clock: Callable[[], datetime]) -> None:
        self.outbox = outbox
        self.sink = sink
        self.cases_get = cases_get
        self.clock = clock
        self._pending: dict[str, _Pending] = {}
        self._waiting: list[tuple[str, Lifecycle | None, Origin, Hold, float]] = []
        self.updated = 0

    def changed(self, case: Case, record: Lifecycle | None, origin: Origin, since: float | None = None) -> None:
        """A change to `case` (`record`: a person's, for the thread; None: the worker's, e.g. an escalation)."""
        alert = self.outbox.posts.get(alert_slot(case.task_id))
        since = time.monotonic() if since is None else since
        if (alert is None or not alert.is_posted) and time.monotonic() - since < ALERT_WAIT_S:
            # Its alert is on its way, or posted by another replica and not read here yet: wait for it.
            self._waiting.append((case.task_id, record, origin, origin.hold(), since))
            return
        channel_id, ts = alert.thread if alert is not None and alert.kind is Form.ALONE else (None, None)
        if not channel_id or not ts:
            return  # no card of its own (listed in a digest, silenced): nothing to update
        if record is not None:
            self._audit(case, record, channel_id, ts, origin)
        pending = self._pending.setdefault(case.task_id, _Pending(time.monotonic() + COALESCE_S))
        pending.holds.append((origin.hold(), origin))

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

    def release(self) -> None:
        """Between batches: the card updates whose coalescing window is over go out, the latest state each."""
        waiting, self._waiting = self._waiting, []
        for task_id, record, origin, hold, since in waiting:
            case = self.cases_get(task_id)
            if case is not None and not origin.state.abandon.is_set():
                self.changed(case, record, origin, since)
            hold.release()  # the hold taken while it waited
        now = time.monotonic()
        for task_id, pending in [(t, p) for t, p in self._pending.items() if p.due <= now]:
            del self._pending[task_id]
            case, alert = self.cases_get(task_id), self.outbox.posts.get(alert_slot(task_id))
            live = [(hold, origin) for hold, origin in pending.holds if not origin.state.abandon.is_set()]
            channel_id, ts = alert.thread if alert is not None else (None, None)
            if case is None or not channel_id or not ts or not live:
                _release(live)
                continue
            future = self.sink.update_card(channel_id, ts, card(case, case.overdue(self.clock())), live[0][1].state.abandon)
            self.outbox.later(future, partial(self._updated, live=live))

    def _updated(self, outcome: Outcome, live: list[tuple[Hold, Origin]]) -> None:
        if outcome.status == "abandoned":
            return  # the partition moved on: its next owner redoes the actions, and the update
        if outcome.status == "sent":
            self.updated += 1
        else:
            log.warning("task card not updated: %s", outcome.reason)
        _release(live)

    def _audit(self, case: Case, record: Lifecycle, channel: str, thread_ts: str, origin: Origin) -> None:
        text = audit_line(record, record.actor.shown())

        def render() -> Alert:
            return Alert(
                channel=channel,
                text=text,
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
                metadata={"event_type": "feedback_task_change", "event_payload": {"task_id": case.task_id, "change": record.type}},
                event_id=case.event_id,
                task_id=case.task_id,
                rule_id=case.rule_id,
                severity=case.severity,
            )

        self.outbox.post_once(
            f"change {record.id} of task {case.task_id}",
            [Place(change_slot(case.task_id, record.id), origin.tp, origin.hold(), origin.record)],
            channel,
            render,
            kind=Form.REPLY,
            thread_ts=thread_ts,
        )


def _release(live: list[tuple[Hold, Origin]]) -> None:
    for hold, _ in live:
        hold.release()
