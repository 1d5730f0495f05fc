"""What the keeper says in Slack about a task: its escalations, and its reopening by the customer's answer.

Each note is a reply in the thread of the task's alert (waiting for the alert while it is in
flight), tied to the offset of the action that caused it and posted once, like alerts
(posting.py): a slot per task and round (`<task>/escalated:<reason>:<round>`,
`<task>/reopened:<round>`). An escalation is also posted in its escalation channel; when many
fall due at once (after an outage), each escalation channel gets one summary instead of a flood.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .alerting import Alert, AlertRenderer, Intent, Posts
from .checkpoint import Checkpoint, PartitionState
from .posting import Done, Posting
from .tasks import Case, FollowupAnswer

GATHER_S = 2.0  # escalations for one channel within this are posted together
ALERT_WAIT_S = 30.0  # a note waits this long for its task's alert (in flight, or rechecked after a crash)


@dataclass
class _Notice:
    case: Case
    reason: str
    slot: str
    done: Done
    abandon: object


class TaskNotes:
    def __init__(self, posting: Posting, posts: Posts, checkpoint: Checkpoint, renderer: Callable[[], AlertRenderer]) -> None:
        self.posting = posting
        self.posts = posts
        self.checkpoint = checkpoint
        self.renderer = renderer  # the current renderer (hot reload swaps it)
        self._notices: dict[str, tuple[float, list[_Notice]]] = {}  # escalation channel -> (due, notices)
        self._later: list[tuple[Callable[[], None], Done, PartitionState]] = []

    def escalated(self, case: Case, reason: str, done: Done, state: PartitionState, since: float | None = None) -> None:
        """A reply in the alert's thread mentioning who must act; a post in the escalation channel."""
        since = time.monotonic() if since is None else since
        round_ = f"{reason}:{case.reopened}"
        if not self._reply(case, f"{case.task_id}/escalated:{round_}", done, state, since,
                           lambda channel, ts: self.renderer().render_escalation(case, reason, channel, ts),
                           lambda: self.escalated(case, reason, done, state, since)):
            return
        to = case.escalate_to.channel if case.escalate_to else None
        if to:
            due, notices = self._notices.get(to, (time.monotonic() + GATHER_S, []))
            notices.append(_Notice(case, reason, f"{case.task_id}/escalation:{round_}", done, state.abandon))
            self._notices[to] = (due, notices)
            self.checkpoint.wait_for(state, done[0][1].offset)

    def reopened(self, case: Case, answer: FollowupAnswer, round_: int, done: Done, state: PartitionState,
                 since: float | None = None) -> None:
        """The customer's answer was still unhappy: a reply in the alert's thread with the answer and the new deadlines."""
        since = time.monotonic() if since is None else since
        self._reply(case, f"{case.task_id}/reopened:{round_}", done, state, since,
                    lambda channel, ts: self.renderer().render_reopened(case, answer, channel, ts),
                    lambda: self.reopened(case, answer, round_, done, state, since))

    def _reply(self, case: Case, slot: str, done: Done, state: PartitionState, since: float,
               render: Callable[[str, str | None], Alert], again: Callable[[], None]) -> bool:
        """Post `render(channel, thread)` once in the alert's thread. False: deferred until the alert has landed."""
        alert = self.posts.get(case.task_id)
        if alert is not None and alert.state == "posting" and time.monotonic() - since < ALERT_WAIT_S:
            # Its alert is on its way (or being rechecked after a crash): reply in its thread once it is there.
            self._later.append((again, done, state))
            self.checkpoint.wait_for(state, done[0][1].offset)
            return False
        thread_ts = alert.ts if alert is not None and alert.state == "posted" else None
        channel = (alert.channel_id if thread_ts else None) or case.channel
        if channel:
            self._post_once(slot, channel, thread_ts, done, state, lambda: render(channel, thread_ts))
        return True

    def _post_once(self, slot: str, channel: str, thread_ts: str | None, done: Done, state: PartitionState,
                   render: Callable[[], Alert]) -> None:
        earlier = self.posts.get(slot)
        if earlier is not None and earlier.state == "posted":
            return
        message = self.posting.render(f"note {slot}", [record for _, record in done], {"channel": channel}, render)
        if message is not None:  # else dead-lettered with the reason
            self.posting.once(message, Intent(slot, "reply", channel, done[0][0].partition, thread_ts), earlier, state, done)

    def release(self) -> None:
        """Between batches: notes whose alert has landed go out; escalation posts gathered long enough go out,
        one message per channel."""
        later, self._later = self._later, []
        for again, done, state in later:
            if not state.abandon.is_set():
                again()
            tp, record = done[0]
            self.checkpoint.done(tp, record.offset)  # the wait taken while it was deferred
        now = time.monotonic()
        for channel, (due, notices) in list(self._notices.items()):
            if due <= now:
                del self._notices[channel]
                self._gathered(channel, notices)

    def _gathered(self, channel: str, notices: list[_Notice]) -> None:
        # Posted before a crash: nothing to do. (One in flight at a crash may be listed again: a summary line twice.)
        live = [n for n in notices if not n.abandon.is_set()  # type: ignore[attr-defined]
                and (self.posts.get(n.slot) is None or self.posts.get(n.slot).state != "posted")]  # type: ignore[union-attr]
        for notice in notices:
            if notice not in live:
                self._done(notice.done)
        if not live:
            return
        message = self.posting.render(f"escalations to {channel}", [r for n in live for _, r in n.done], {"channel": channel},
                                      lambda: self.renderer().render_escalations([(n.case, n.reason) for n in live], channel))
        if message is None:  # dead-lettered with the reason: the actions are done
            for notice in live:
                self._done(notice.done)
            return
        intents = [Intent(n.slot, "summary" if len(live) > 1 else "alert", channel, n.done[0][0].partition) for n in live]
        self.posting.send(message, live[0].abandon, [d for n in live for d in n.done], intents)  # type: ignore[arg-type]

    def _done(self, done: Done) -> None:
        for tp, record in done:
            self.checkpoint.done(tp, record.offset)

    def clear(self) -> None:
        """The keeper's partition moved: what was waiting is the next keeper's (its actions are not committed)."""
        self._notices.clear()
        self._later.clear()
