"""After every change to a task, from any source, its alert shows it: the card updated in place, a line in the thread.

Run by the keeper (casework.py), the one worker that applies changes, so updates are in the
order of the changes. A card update is coalesced per task (ten clicks in a second, one
`chat.update`, showing the last state) and tied to the offsets of the actions that asked for
it: a crash before it is redone after the restart, and the sink retries it like a post (with
Retry-After), so none is dropped. Each change's one-line reply in the thread ("<@U02DEF>
acknowledged") is a slot of its own, posted once (posting.py).

On when SLACK_APP_TOKEN is set (the buttons live on the card); alerts of a bot-token-only
install stay as they were posted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from .alerting import Alert, Intent, Outcome, Posts, Sink, audit_line, card
from .checkpoint import Checkpoint, PartitionState
from .posting import Done, Posting
from .tasks import Case, Lifecycle

log = logging.getLogger("worker")

COALESCE_S = 1.0
ALERT_WAIT_S = 30.0  # a change waits this long for its alert's `posted` record (another replica's, in flight)


@dataclass
class _Pending:
    due: float
    done: list[tuple[Done, PartitionState]] = field(default_factory=list)


class LiveCards:
    def __init__(self, posts: Posts, posting: Posting, checkpoint: Checkpoint, sink: Sink, cases_get: Callable[[str], Case | None],
                 clock: Callable[[], datetime]) -> None:
        self.posts = posts
        self.posting = posting
        self.checkpoint = checkpoint
        self.sink = sink
        self.cases_get = cases_get
        self.clock = clock
        self._pending: dict[str, _Pending] = {}
        self._waiting: list[tuple[str, Lifecycle | None, Done, PartitionState, float]] = []
        self.updated = 0

    def changed(self, case: Case, record: Lifecycle | None, done: Done, state: PartitionState, since: float | None = None) -> None:
        """A change to `case` (`record`: a person's, for the thread; None: the worker's, e.g. an escalation)."""
        alert = self.posts.get(case.task_id)
        since = time.monotonic() if since is None else since
        if (alert is None or alert.state != "posted") and time.monotonic() - since < ALERT_WAIT_S:
            # Its alert is on its way, or posted by another replica and not read here yet: wait for it.
            self._waiting.append((case.task_id, record, done, state, since))
            self.checkpoint.wait_for(state, done[0][1].offset)
            return
        if alert is None or alert.state != "posted" or alert.kind != "alert" or not alert.channel_id or not alert.ts:
            return  # no card of its own (listed in a digest, silenced): nothing to update
        if record is not None:
            self._audit(case, record, alert.channel_id, alert.ts, done, state)
        pending = self._pending.setdefault(case.task_id, _Pending(time.monotonic() + COALESCE_S))
        pending.done.append((done, state))
        for tp, offset_record in done:
            self.checkpoint.wait_for(state, offset_record.offset)

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

    def release(self) -> None:
        """Between batches: the card updates whose coalescing window is over go out, the latest state each."""
        waiting, self._waiting = self._waiting, []
        for task_id, record, done, state, since in waiting:
            case = self.cases_get(task_id)
            if case is not None and not state.abandon.is_set():
                self.changed(case, record, done, state, since)
            tp, offset_record = done[0]
            self.checkpoint.done(tp, offset_record.offset)  # the wait taken while it waited
        now = time.monotonic()
        for task_id, pending in [(t, p) for t, p in self._pending.items() if p.due <= now]:
            del self._pending[task_id]
            case, alert = self.cases_get(task_id), self.posts.get(task_id)
            live = [(done, state) for done, state in pending.done if not state.abandon.is_set()]
            if case is None or alert is None or not alert.channel_id or not alert.ts or not live:
                self._release(live)
                continue
            future = self.sink.update_card(alert.channel_id, alert.ts, card(case, case.overdue(self.clock())), live[0][1].abandon)
            self.posting.deliveries.later(future, lambda outcome, live=live: self._updated(outcome, live))

    def _updated(self, outcome: Outcome, live: list[tuple[Done, PartitionState]]) -> None:
        if outcome.status == "abandoned":
            return  # the partition moved on: its next owner redoes the actions, and the update
        if outcome.status == "sent":
            self.updated += 1
        else:
            log.warning("task card not updated: %s", outcome.reason)
        self._release(live)

    def _release(self, live: list[tuple[Done, PartitionState]]) -> None:
        for done, _ in live:
            for tp, record in done:
                self.checkpoint.done(tp, record.offset)

    def _audit(self, case: Case, record: Lifecycle, channel: str, thread_ts: str, done: Done, state: PartitionState) -> None:
        slot = f"{case.task_id}/change:{record.id}"
        earlier = self.posts.get(slot)
        if earlier is not None and earlier.state == "posted":
            return
        text = audit_line(record, record.actor.shown())
        reply = Alert(channel=channel, text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
                      metadata={"event_type": "feedback_task_change", "event_payload": {"task_id": case.task_id, "change": record.type}},
                      event_id=case.event_id, task_id=case.task_id, rule_id=case.rule_id, severity=case.severity)
        reply.thread_ts = thread_ts
        self.checkpoint.wait_for(state, done[0][1].offset)
        intent = Intent(slot, "reply", channel, done[0][0].partition, thread_ts)

        def send() -> None:
            self.posting.send(reply, state.abandon, done, [intent])

        if earlier is None:
            send()
        else:
            self.posting.recheck(earlier, slot, state, done, send, None)
