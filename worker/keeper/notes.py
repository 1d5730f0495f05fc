"""What the keeper says in Slack about a task: its escalations, and its reopening by the customer's answer.

Each note is a reply in the thread of the task's alert (waiting for the alert while it is on its
way), posted once through the outbox (delivery/: a slot per task and round). An escalation is also
posted in its escalation channel; when many fall due at once (after an outage), each escalation
channel gets one summary instead of a flood.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..alerting import Alert, AlertRenderer
from ..delivery import Form, Outbox, Place, Slot, alert_slot, escalated_slot, escalation_slot, reopened_slot
from ..stream import Hold, Origin
from ..tasks import Case, FollowupAnswer

GATHER_S = 2.0  # escalations for one channel within this are posted together
ALERT_WAIT_S = 30.0  # a note waits this long for its task's alert (on its way, or looked for after a crash)


@dataclass
class _Notice:
    case: Case
    reason: str
    slot: Slot
    origin: Origin
    hold: Hold


class TaskNotes:
    def __init__(self, outbox: Outbox, renderer: Callable[[], AlertRenderer]) -> None:
        self.outbox = outbox
        self.renderer = renderer  # the current renderer (hot reload swaps it)
        self._notices: dict[str, tuple[float, list[_Notice]]] = {}  # escalation channel -> (due, notices)
        self._later: list[tuple[Callable[[], None], Hold, Origin]] = []

    def escalated(self, case: Case, reason: str, origin: Origin, since: float | None = None) -> None:
        """A reply in the alert's thread mentioning who must act; a post in the escalation channel."""
        since = time.monotonic() if since is None else since
        if not self._reply(
            case,
            escalated_slot(case.task_id, reason, case.reopened),
            origin,
            since,
            lambda channel, ts: self.renderer().render_escalation(case, reason, channel, ts),
            lambda: self.escalated(case, reason, origin, since),
        ):
            return
        to = case.escalate_to.channel if case.escalate_to else None
        if to:
            due, notices = self._notices.get(to, (time.monotonic() + GATHER_S, []))
            notices.append(_Notice(case, reason, escalation_slot(case.task_id, reason, case.reopened), origin, origin.hold()))
            self._notices[to] = (due, notices)

    def reopened(self, case: Case, answer: FollowupAnswer, round_: int, origin: Origin, since: float | None = None) -> None:
        """The customer's answer was still unhappy: a reply in the alert's thread with the answer and the new deadlines."""
        since = time.monotonic() if since is None else since
        self._reply(
            case,
            reopened_slot(case.task_id, round_),
            origin,
            since,
            lambda channel, ts: self.renderer().render_reopened(case, answer, channel, ts),
            lambda: self.reopened(case, answer, round_, origin, since),
        )

    def _reply(
        self, case: Case, slot: Slot, origin: Origin, since: float, render: Callable[[str, str | None], Alert], again: Callable[[], None]
    ) -> bool:
        """Post `render(channel, thread)` once in the alert's thread. False: deferred until the alert has landed."""
        alert = self.outbox.posts.get(alert_slot(case.task_id))
        if alert is not None and alert.is_owed and time.monotonic() - since < ALERT_WAIT_S:
            # Its alert is on its way (or looked for after a crash): reply in its thread once it is there.
            self._later.append((again, origin.hold(), origin))
            return False
        channel_id, thread_ts = alert.thread if alert is not None else (None, None)
        channel = channel_id or case.channel
        if channel:
            self.outbox.post_once(
                f"note on task {case.task_id}",
                [Place(slot, origin.tp, origin.hold(), origin.record)],
                channel,
                lambda: render(channel, thread_ts),
                kind=Form.REPLY,
                thread_ts=thread_ts,
            )
        return True

    def release(self) -> None:
        """Between batches: notes whose alert has landed go out; escalation posts gathered long enough go out,
        one message per channel."""
        later, self._later = self._later, []
        for again, hold, origin in later:
            if not origin.state.abandon.is_set():
                again()
            hold.release()  # the hold taken while it was deferred
        now = time.monotonic()
        for channel, (due, notices) in list(self._notices.items()):
            if due <= now:
                del self._notices[channel]
                self._gathered(channel, notices)

    def _gathered(self, channel: str, notices: list[_Notice]) -> None:
        live = [
            n
            for n in notices
            if not n.origin.state.abandon.is_set() and not ((post := self.outbox.posts.get(n.slot)) is not None and post.is_settled)
        ]
        for notice in notices:
            if notice not in live:
                notice.hold.release()
        if live:
            self.outbox.post_once(
                f"escalations to {channel}",
                [Place(n.slot, n.origin.tp, n.hold, n.origin.record) for n in live],
                channel,
                lambda: self.renderer().render_escalations([(n.case, n.reason) for n in live], channel),
                kind=Form.SUMMARY if len(live) > 1 else Form.ALONE,
            )

    def clear(self) -> None:
        """The keeper's partition moved: what was waiting is the next keeper's (its actions are not committed)."""
        self._notices.clear()
        self._later.clear()
