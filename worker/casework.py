"""Tasks in the loop: one keeper applies every action, in order; every worker asks through TASK_ACTIONS_TOPIC.

TASK_ACTIONS_TOPIC has one partition and is consumed with the feedback topic, by the same
group. The worker that owns that partition is the *keeper*: it applies each action
(tasks/keeper.py), publishes the record on FOLLOWUP_TOPIC, saves the case and the action's
outcome to the state topic, and runs the SLA timers. Every worker *asks*: a new task, an
answer joining one, an escalation that fell due, a click in Slack, a CLI command all become
actions, so a task has one writer and one order, and two clicks at once are applied one
after the other, never both.

What an escalation says in Slack (a reply in the alert's thread, a post in the escalation
channel) is tied to the escalate action's offset and posted once, like alerts (posting.py).
When many escalations fall due at once (after an outage), each escalation channel gets one
summary instead of a flood.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError

from .alerting import AlertRenderer, Intent, Posts
from .checkpoint import Checkpoint, PartitionState
from .config import Settings
from .deadletter import DeadLetters
from .posting import Done, Posting
from .stats import Stats
from .tasks import (
    ACTION,
    WORKER,
    Action,
    Case,
    Cases,
    Escalate,
    FollowupSpec,
    FollowUpTask,
    FollowUpUpdate,
    Open,
    Refused,
    Sla,
    Update,
    apply,
)

log = logging.getLogger("worker")

ASK_AGAIN_S = 60.0  # an escalation asked for and not applied yet (the keeper moved) is asked for again
GATHER_S = 2.0  # escalations for one channel within this are posted together
SLOW_ASSIGNMENT_S = 30.0
ALERT_WAIT_S = 30.0  # an escalation waits this long for its task's alert (in flight, or rechecked after a crash)


@dataclass
class _Waiting:
    """An alert for an owner pool's task, waiting for the keeper to pick the member it mentions."""

    task: FollowUpTask
    abandon: object  # threading.Event of the event's partition
    go: Callable[[FollowUpTask], None]
    since: float = field(default_factory=time.monotonic)
    warned: bool = False


@dataclass
class _Later:
    """An escalation waiting for its alert to land, so it can reply in the alert's thread."""

    case: Case
    action: Escalate
    done: Done
    state: PartitionState
    since: float


@dataclass
class _Notice:
    case: Case
    reason: str
    slot: str
    done: Done
    abandon: object


class Casework:
    def __init__(self, settings: Settings, cases: Cases, checkpoint: Checkpoint, dead_letters: DeadLetters, posting: Posting,
                 posts: Posts, renderer: Callable[[], AlertRenderer], stats: Stats, clock: Callable[[], datetime]) -> None:
        self.topic = settings.task_actions_topic
        self.followup_topic = settings.followup_topic
        self.policy = settings.task_policy
        self.cases = cases
        self.checkpoint = checkpoint
        self.dead_letters = dead_letters
        self.posting = posting
        self.posts = posts
        self.renderer = renderer  # the current renderer (hot reload swaps it)
        self.stats = stats
        self.clock = clock
        self.partition = TopicPartition(self.topic, 0)
        self.keeping = False
        self._due: list[tuple[float, str]] = []  # (when a timer runs out, task id): the keeper's clock
        self._asked: dict[str, float] = {}  # escalation action id -> when asked (monotonic)
        self._waiting: list[_Waiting] = []
        self._notices: dict[str, tuple[float, list[_Notice]]] = {}  # escalation channel -> (due, notices)
        self._later: list[_Later] = []

    # -- asking (any worker) -----------------------------------------------------------------------

    def ask(self, action: Action) -> None:
        """Send an action to the keeper (the commit of the event that asked waits for it to be in Kafka)."""
        self.checkpoint.publish(self.topic, action.task_id.encode(), action.model_dump_json().encode())

    def open(self, task: FollowUpTask, spec: FollowupSpec, channel: str) -> None:
        """A new task: the keeper picks its pool member, publishes followup.opened and starts its timers."""
        self.stats.tasks += 1
        within = int(spec.acknowledge_within.total_seconds()) if spec.acknowledge_within else None
        self.ask(Open(action="open", task_id=task.task_id, actor=WORKER, action_id=f"open:{task.task_id}", task=task,
                      acknowledge_within_s=within, due_in_s=int(spec.due_in.total_seconds()), channel=channel))

    def update(self, update: FollowUpUpdate) -> None:
        self.ask(Update(action="update", task_id=update.task_id, actor=WORKER, action_id=f"update:{update.task_id}:{update.event_id}",
                        update=update))

    def sla(self, spec: FollowupSpec, now: datetime) -> Sla:
        """A new task's timers: business time with a calendar (config `sla_calendar:`), else wall-clock time."""
        acknowledge_by, resolve_by = self.policy.sla(now, spec.acknowledge_within, spec.due_in)
        return Sla(acknowledge_by=acknowledge_by, resolve_by=resolve_by)

    def when_assigned(self, task: FollowUpTask, abandon: object, go: Callable[[FollowUpTask], None]) -> None:
        """Run `go` with the task as the keeper opened it: at once, unless its owner is a pool (the alert names the member)."""
        if task.owner not in self.policy.owners:
            go(task)
            return
        case = self.cases.get(task.task_id)
        if case is not None:
            go(task.model_copy(update={"assignee": case.assignee}))
        else:
            self._waiting.append(_Waiting(task, abandon, go))

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

    def wake(self) -> None:
        """Between batches (after reading the state topic): alerts whose task the keeper has opened go on."""
        still = []
        for waiting in self._waiting:
            if waiting.abandon.is_set():  # type: ignore[attr-defined]
                continue
            case = self.cases.get(waiting.task.task_id)
            if case is not None:
                waiting.go(waiting.task.model_copy(update={"assignee": case.assignee}))
                continue
            if not waiting.warned and time.monotonic() - waiting.since > SLOW_ASSIGNMENT_S:
                waiting.warned = True
                log.warning("task %s has waited %.0f s for the keeper (the owner of %s[0]) to assign it: is that worker stuck?",
                            waiting.task.task_id, SLOW_ASSIGNMENT_S, self.topic)
            still.append(waiting)
        self._waiting = still

    # -- applying (the keeper) ---------------------------------------------------------------------------

    def handle(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        """One action: validate, apply (or refuse, with the reason, to the DLQ), publish, and tell whoever asked."""
        state = self.checkpoint.seen(tp, record.offset)
        try:
            action = ACTION.validate_json(record.value if record.value is not None else b"")
        except ValidationError as exc:
            letter = self.dead_letters.invalid_action(record, exc)
            log.warning("invalid action at %s[%d]@%d → DLQ: %s", record.topic, record.partition, record.offset, letter.error)
            return
        action_id = action.action_id or f"{record.topic}:{record.partition}:{record.offset}"
        now = self.clock()
        result = apply(self.cases.get(action.task_id), action, action_id, now, self.policy, self.cases.assign)
        if isinstance(result, Refused):
            if action.actor.source == "worker":  # e.g. an escalation that lost the race with a resolve: nothing wrong
                log.info("%s of task %s not applied: %s", action.action, action.task_id, result.reason)
                return
            self.dead_letters.refused_action(record, result.reason)
            log.warning("%s of task %s by %s refused → DLQ: %s", action.action, action.task_id, action.actor.shown(), result.reason)
            self.cases.record_outcome(action_id, action.task_id, False, result.reason, now)
            return
        if result is not None:
            self.checkpoint.publish(self.followup_topic, action.task_id.encode(), result.record.model_dump_json().encode())
            self.cases.save(result.case)
            self._schedule(result.case)
            if isinstance(action, Escalate):
                self.stats.escalations[action.reason] += 1
            if action.action not in ("open", "update"):
                log.info("task %s: %s by %s", action.task_id, result.record.type, action.actor.shown())
        if action.actor.source != "worker":
            self.cases.record_outcome(action_id, action.task_id, True, "", now)
        case = self.cases.get(action.task_id)
        if isinstance(action, Escalate) and case is not None:  # applied now or before a crash: its notices go out once
            self._announce(case, action, [(tp, record)], state)

    def _announce(self, case: Case, action: Escalate, done: Done, state: PartitionState, since: float | None = None) -> None:
        """The escalation in Slack: a reply in the alert's thread mentioning who must act; a post in the escalation channel."""
        round_ = f"{action.reason}:{case.reopened}"
        alert = self.posts.get(case.task_id)
        since = time.monotonic() if since is None else since
        if alert is not None and alert.state == "posting" and time.monotonic() - since < ALERT_WAIT_S:
            # Its alert is on its way (or being rechecked after a crash): reply in its thread once it is there.
            self._later.append(_Later(case, action, done, state, since))
            self.checkpoint.wait_for(state, done[0][1].offset)
            return
        thread_ts = alert.ts if alert is not None and alert.state == "posted" else None
        channel = (alert.channel_id if thread_ts else None) or case.channel
        if channel:
            self._post_once(f"{case.task_id}/escalated:{round_}", "reply", channel, thread_ts, done, state,
                            lambda: self.renderer().render_escalation(case, action.reason, channel, thread_ts))
        to = case.escalate_to.channel if case.escalate_to else None
        if to:
            due, notices = self._notices.get(to, (time.monotonic() + GATHER_S, []))
            notices.append(_Notice(case, action.reason, f"{case.task_id}/escalation:{round_}", done, state.abandon))
            self._notices[to] = (due, notices)
            self.checkpoint.wait_for(state, done[0][1].offset)

    def _post_once(self, slot: str, kind: str, channel: str, thread_ts: str | None, done: Done, state: PartitionState,
                   render: Callable[[], object]) -> None:
        earlier = self.posts.get(slot)
        if earlier is not None and earlier.state == "posted":
            return
        message = self.posting.render(f"escalation {slot}", [record for _, record in done], {"channel": channel}, render)  # type: ignore[arg-type]
        if message is None:
            return  # dead-lettered with the reason
        self.checkpoint.wait_for(state, done[0][1].offset)
        intent = Intent(slot, kind, channel, done[0][0].partition, thread_ts)  # type: ignore[arg-type]

        def send() -> None:
            self.posting.send(message, state.abandon, done, [intent])

        if earlier is None:
            send()
        else:
            self.posting.recheck(earlier, slot, state, done, send, None)

    def release(self) -> None:
        """Between batches: escalations whose alert has landed go out; escalation posts gathered long enough go out,
        one message per channel."""
        later, self._later = self._later, []
        for waiting in later:
            if not waiting.state.abandon.is_set():
                self._announce(waiting.case, waiting.action, waiting.done, waiting.state, waiting.since)
            tp, record = waiting.done[0]
            self.checkpoint.done(tp, record.offset)  # the wait taken while it was deferred
        now = time.monotonic()
        for channel, (due, notices) in list(self._notices.items()):
            if due > now:
                continue
            del self._notices[channel]
            # Posted before a crash: nothing to do. (One in flight at a crash may be listed again: a summary line twice.)
            live = [n for n in notices if not n.abandon.is_set()  # type: ignore[attr-defined]
                    and (self.posts.get(n.slot) is None or self.posts.get(n.slot).state != "posted")]  # type: ignore[union-attr]
            for notice in notices:
                if notice not in live:
                    for tp, record in notice.done:
                        self.checkpoint.done(tp, record.offset)
            if not live:
                continue
            message = self.posting.render(f"escalations to {channel}", [r for n in live for _, r in n.done], {"channel": channel},
                                          lambda: self.renderer().render_escalations([(n.case, n.reason) for n in live], channel))
            if message is None:  # dead-lettered with the reason: the actions are done
                for notice in live:
                    for tp, record in notice.done:
                        self.checkpoint.done(tp, record.offset)
                continue
            intents = [Intent(n.slot, "summary" if len(live) > 1 else "alert", channel, n.done[0][0].partition) for n in live]
            self.posting.send(message, live[0].abandon, [d for n in live for d in n.done], intents)  # type: ignore[arg-type]

    # -- the SLA timers (the keeper) ----------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """About once a second: ask for the escalations that fell due (each once, whoever is keeper)."""
        if not self.keeping:
            return
        for task_id in self.cases.changed:
            case = self.cases.get(task_id)
            if case is not None:
                self._schedule(case)
        self.cases.changed.clear()
        moment = now.timestamp()
        while self._due and self._due[0][0] <= moment:
            _, task_id = heapq.heappop(self._due)
            case = self.cases.get(task_id)
            reason = case.due_escalation(now) if case is not None else None
            if case is None or reason is None:
                continue  # resolved, acknowledged or escalated meanwhile: its change rescheduled it
            action_id = f"escalate:{task_id}:{reason}:{case.reopened}"
            if time.monotonic() - self._asked.get(action_id, -ASK_AGAIN_S) >= ASK_AGAIN_S:
                self._asked[action_id] = time.monotonic()
                self.ask(Escalate(action="escalate", task_id=task_id, actor=WORKER, action_id=action_id, reason=reason))
            # Look again later: applied by then (and rescheduled by that change), or asked for again.
            heapq.heappush(self._due, (moment + ASK_AGAIN_S, task_id))

    def _schedule(self, case: Case) -> None:
        due = case.next_due()
        if due is not None:
            heapq.heappush(self._due, (due.timestamp(), case.task_id))

    # -- rebalances -------------------------------------------------------------------------------------

    def assigned(self, partitions: list[TopicPartition]) -> None:
        if self.partition in partitions:
            self.keeping = True
            self._due = []
            for case in self.cases.by_id.values():
                self._schedule(case)
            self.cases.changed.clear()
            log.info("keeping the tasks: applying actions from %s and running %d SLA timers", self.topic, len(self._due))

    def lost(self, partitions: list[TopicPartition]) -> None:
        if self.partition in partitions:
            self.keeping = False
            self._due, self._asked = [], {}
            self._notices.clear()
            self._later.clear()
