"""Tasks in the loop: one keeper applies every action, in order; every worker asks through TASK_ACTIONS_TOPIC.

TASK_ACTIONS_TOPIC has one partition and is consumed with the feedback topic, by the same
group. The worker that owns that partition is the *keeper*: it applies each action
(tasks/transitions.py), publishes the record on FOLLOWUP_TOPIC, saves the case and the action's
outcome to the state topic, and runs the timers (SLA escalations, the end of a recovery
window). Every worker *asks*: a new task, an answer joining one, the customer's answer after a
resolution, an escalation that fell due, a click in Slack, a CLI command all become
actions, so a task has one writer and one order, and two clicks at once are applied one
after the other, never both.

A resolution asks the customer again (a survey.requested record, tasks/recheck.py); the
customer's next answer closes the task or reopens it. What the keeper says in Slack
(escalations, a reopening by the customer) is keeper/notes.py's.

A new task gets the root cause that resolved tasks with words like its comment's were put down
to (`suggested_root_cause`): the replica that opens it works it out (`open`) from the counts the keeper
keeps in the state topic as it applies resolutions and reopenings (tasks/learning.py), which every
replica reads alike; the Open carries it, so followup.opened and the alert's card say the same.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError

from ..alerting import AlertRenderer, Episode
from ..config import Settings
from ..delivery import Outbox, Sink, alert_slot, answer_slot
from ..events import EventData, FeedbackEvent, field_getter, is_unhappy
from ..stream import Checkpoint, DeadLetters, Origin, Stats
from ..tasks import (
    ACTION,
    COMMENT_KEPT,
    TASK_ATTRIBUTE,
    WORKER,
    Action,
    Answer,
    Case,
    Cases,
    CauseModel,
    Close,
    Escalate,
    FollowupAnswer,
    FollowupSpec,
    FollowUpTask,
    FollowUpUpdate,
    Open,
    Refused,
    Sla,
    TaskResolved,
    Update,
    answered_tasks,
    apply,
    comment_keywords,
    survey_request,
    task_id_for,
)
from ..themes import Tagging
from .card import LiveCards
from .notes import TaskNotes
from .rootcauses import RootCauseDigests

log = logging.getLogger("worker")

ASK_AGAIN_S = 60.0  # an escalation asked for and not applied yet (the keeper moved) is asked for again
SLOW_ASSIGNMENT_S = 30.0


@dataclass
class _Waiting:
    """An alert for an owner pool's task, waiting for the keeper to pick the member it mentions."""

    task: FollowUpTask
    abandon: threading.Event  # of the event's partition
    go: Callable[[FollowUpTask], None]
    since: float = field(default_factory=time.monotonic)
    warned: bool = False


class Keeper:
    def __init__(
        self,
        settings: Settings,
        cases: Cases,
        checkpoint: Checkpoint,
        dead_letters: DeadLetters,
        outbox: Outbox,
        renderer: Callable[[], AlertRenderer],
        stats: Stats,
        clock: Callable[[], datetime],
        sink: Sink,
    ) -> None:
        self.topic = settings.task_actions_topic
        self.followup_topic = settings.followup_topic
        self.policy = settings.task_policy
        self.cases = cases
        self.checkpoint = checkpoint
        self.dead_letters = dead_letters
        self.outbox = outbox
        self.posts = outbox.posts
        self.renderer = renderer  # the current renderer (hot reload swaps it)
        self.stats = stats
        self.clock = clock
        self.partition = TopicPartition(self.topic, 0)
        self.keeping = False
        # With Slack interactivity on (SLACK_APP_TOKEN), every change shows on the alert's card.
        self.cards = LiveCards(outbox, sink, cases.get, clock) if settings.slack_app_token is not None else None
        self._due: list[tuple[float, str]] = []  # (when a timer runs out, task id): the keeper's clock
        self._asked: dict[str, float] = {}  # escalation action id -> when asked (monotonic)
        self._waiting: list[_Waiting] = []
        self.notes = TaskNotes(outbox, renderer)
        self.root_causes = RootCauseDigests(settings, cases, outbox, renderer)  # config `root_cause_digest:`
        self.survey_topic = settings.survey_request_topic
        self.causes = CauseModel(cases.view, self.policy, settings.root_cause_suggestion_min_examples)
        self.dimensions = [(path, field_getter(path)) for path in settings.metrics.dimensions]

    # -- asking (any worker) -----------------------------------------------------------------------

    def ask(self, action: Action) -> None:
        """Send an action to the keeper (the commit of the event that asked waits for it to be in Kafka)."""
        self.checkpoint.publish(self.topic, action.task_id.encode(), action.model_dump_json().encode(), partition=0)  # its only one

    def open(
        self, task: FollowUpTask, spec: FollowupSpec, channel: str, event: FeedbackEvent, tagging: Tagging | None = None
    ) -> FollowUpTask:
        """A new task: the keeper picks its pool member, publishes followup.opened and starts its timers.

        `tagging`: the comment's themes and stems (rules.RuleSet.tag), None without themes or comment. The task
        gets its suggested root cause here, from the counts every replica holds alike (tasks/learning.py), so the
        alert need not wait for the keeper to show it; the Open carries the comment's stems (stop words left out),
        which the keeper learns from once the task is resolved. Returns the task as opened."""
        self.stats.tasks += 1
        stems, words = comment_keywords(event.comment, event.language, tagging)
        if task.suggested_root_cause is None:
            task = task.model_copy(update={"suggested_root_cause": self.causes.suggest(stems, words, task.themes)})
        within = int(spec.acknowledge_within.total_seconds()) if spec.acknowledge_within else None
        dims = [f"{path}={value}" for path, get in self.dimensions if (value := get(event)) is not None]
        self.ask(
            Open(
                action="open",
                task_id=task.task_id,
                actor=WORKER,
                action_id=f"open:{task.task_id}",
                task=task,
                acknowledge_within_s=within,
                due_in_s=int(spec.due_in.total_seconds()),
                channel=channel,
                recheck=spec.recheck,
                recovery_window_s=int(spec.recovery_window.total_seconds()),
                dims=dims,
                stems=stems,
                words=words,
            )
        )
        return task

    def answered(self, data: EventData) -> bool:
        """The customer answered again: does this answer close (or reopen) resolved tasks? Then ask the keeper.

        Called for an event whose customer has a task that was resolved (one dict lookup decides that on the hot path).
        True: it answered tasks, so it opens none (tasks/recheck.py says which tasks it answers)."""
        customer = data["customer"]["id"]
        survey, score = data["survey"], data["score"]
        tasks = answered_tasks(
            self.cases.answerable_of(customer),
            data["event_id"],
            data["occurred_at"],
            is_unhappy(survey, score),
            data["attributes"].get(TASK_ATTRIBUTE),
        )
        if not tasks:
            return False
        comment = data["comment"]
        answer = FollowupAnswer(
            event_id=data["event_id"],
            occurred_at=data["occurred_at"],
            survey=survey,
            score=score,
            unhappy=is_unhappy(survey, score),
            comment=comment[:COMMENT_KEPT] if comment else None,
        )
        for case in tasks:
            self.stats.answers += 1
            log.info("answer %s from customer %s (%s %d) answers task %s", answer.event_id, customer, survey, score, case.task_id)
            self.ask(
                Answer(
                    action="answer", task_id=case.task_id, actor=WORKER, action_id=f"answer:{case.task_id}:{answer.event_id}", answer=answer
                )
            )
        return True

    def joinable(self, customer: str, event_id: str) -> Episode | None:
        """The customer's unresolved task (the oldest) another unhappy answer joins rather than opening one more, as an
        episode: its thread, where the answer is replied.

        A replayed answer takes the way it took before, whatever the tasks are now, or a crash could post it both
        ways. What Slack may have comes first: its alert or digest line (its own task's slot), or its reply in a
        task's thread; one Slack is known to have (`posted`) before one only intended, since a replica evicted
        from the group may write an intent after another took the answer the other way (found by tests/faults).
        Then its own task, if it was opened before the crash; only then the oldest unresolved task."""
        own_task = task_id_for(event_id)
        own = self.posts.get(alert_slot(own_task))
        if own is not None and own.is_posted:
            return None
        replied = [
            c
            for task_id in self.posts.replied(event_id)
            if (c := self.cases.get(task_id)) is not None and c.customer_id == customer and c.event_id != event_id
        ]
        in_slack = [c for c in replied if (p := self.posts.get(answer_slot(c.task_id, event_id))) and p.is_posted]
        case: Case | None
        if in_slack:
            case = in_slack[0]
        elif own is not None:
            return None
        elif replied:
            case = replied[0]
        elif self.cases.get(own_task) is not None:
            return None
        else:
            case = min((c for c in self.cases.unresolved_of(customer) if c.event_id != event_id), key=lambda c: c.opened_at, default=None)
            if case is None:
                return None
        alert = self.posts.get(alert_slot(case.task_id))
        channel_id, ts = alert.thread if alert is not None else (None, None)
        parent = self.outbox.in_flight(alert_slot(case.task_id)) if ts is None else None  # on its way: reply under it once posted
        return Episode(
            case.task_id, case.event_id, 0, 0, answers=case.answers, thread_ts=ts, channel=channel_id or case.channel, parent=parent
        )

    def update(self, update: FollowUpUpdate) -> None:
        self.ask(
            Update(
                action="update", task_id=update.task_id, actor=WORKER, action_id=f"update:{update.task_id}:{update.event_id}", update=update
            )
        )

    def sla(self, spec: FollowupSpec, now: datetime) -> Sla:
        """A new task's timers: business time with a calendar (config `sla_calendar:`), else wall-clock time."""
        acknowledge_by, resolve_by = self.policy.sla(now, spec.acknowledge_within, spec.due_in)
        return Sla(acknowledge_by=acknowledge_by, resolve_by=resolve_by)

    def when_assigned(self, task: FollowUpTask, abandon: threading.Event, go: Callable[[FollowUpTask], None]) -> None:
        """Run `go` with the task as the keeper opened it: at once, unless its owner is a pool (the alert names the
        member)."""
        if task.owner not in self.policy.owners:
            go(task)
            return
        case = self.cases.get(task.task_id)
        if case is not None:
            go(_as_opened(task, case))
        else:
            self._waiting.append(_Waiting(task, abandon, go))

    @property
    def waiting(self) -> bool:
        """Alerts wait for their pool member, or cards for their alert: the loop reads the state topic now."""
        return bool(self._waiting) or (self.cards is not None and self.cards.waiting)

    def wake(self) -> None:
        """Between batches (after reading the state topic): alerts whose task the keeper has opened go on."""
        still = []
        for waiting in self._waiting:
            if waiting.abandon.is_set():
                continue
            case = self.cases.get(waiting.task.task_id)
            if case is not None:
                waiting.go(_as_opened(waiting.task, case))
                continue
            if not waiting.warned and time.monotonic() - waiting.since > SLOW_ASSIGNMENT_S:
                waiting.warned = True
                log.warning(
                    "task %s has waited %.0f s for the keeper (the owner of %s[0]) to open it: is that worker stuck?",
                    waiting.task.task_id,
                    SLOW_ASSIGNMENT_S,
                    self.topic,
                )
            still.append(waiting)
        self._waiting = still

    # -- applying (the keeper) ---------------------------------------------------------------------------

    def handle(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        """One action: validate, apply (or refuse, with the reason, to the DLQ), publish, and tell whoever asked."""
        origin = Origin(tp, record, self.checkpoint.seen(tp, record.offset))
        try:
            action = ACTION.validate_json(record.value if record.value is not None else b"")
        except ValidationError as exc:
            letter = self.dead_letters.invalid_action(record, exc)
            log.warning("invalid action at %s[%d]@%d → DLQ: %s", record.topic, record.partition, record.offset, letter.error)
            return
        action_id = action.action_id or f"{record.topic}:{record.partition}:{record.offset}"
        now = self.clock()
        before = self.cases.get(action.task_id)
        result = apply(before, action, action_id, now, self.policy, self.cases.assign)
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
            self.causes.learn(before, result.case, action_id)  # before the case: see tasks/learning.py, exactly once
            self.cases.save(result.case)
            self._schedule(result.case)
            if isinstance(action, Escalate):
                self.stats.escalations[action.reason] += 1
            if isinstance(result.record, TaskResolved) and (request := survey_request(result.case)) is not None:
                # Ask the customer again; their answer closes the loop (answered(), on whichever worker reads it).
                self.checkpoint.publish(self.survey_topic, request.customer.encode(), request.model_dump_json().encode())
            if action.action not in ("open", "update"):
                log.info("task %s: %s by %s", action.task_id, result.record.type, action.actor.shown())
        if action.actor.source != "worker":
            self.cases.record_outcome(action_id, action.task_id, True, "", now)
        case = self.cases.get(action.task_id)
        if isinstance(action, Escalate) and case is not None:  # applied now or before a crash: its notices go out once
            self.notes.escalated(case, action.reason, origin)
        if isinstance(action, Answer) and case is not None and (round_ := _reopened_by(case, action.answer.event_id)):
            self.notes.reopened(case, action.answer, round_, origin)  # still unhappy: said in the thread, once
        if self.cards is not None and case is not None and action.action not in ("open", "update"):
            by_person = result.record if result is not None and action.actor.source != "worker" else None
            # not an open or an update (the condition above): a lifecycle record
            person = None if isinstance(by_person, (FollowUpTask, FollowUpUpdate)) else by_person
            self.cards.changed(case, person, origin)

    def release(self) -> None:
        """Between batches: the notes whose alert has landed, gathered escalations, and card updates go out."""
        self.notes.release()
        if self.cards is not None:
            self.cards.release()

    # -- the timers (the keeper) ----------------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """About once a second: ask for the escalations and closings that fell due (each once, whoever is keeper);
        post the root-cause digest of a period that has ended."""
        if not self.keeping:
            return
        self.root_causes.tick(now)
        for task_id in self.cases.changed:
            case = self.cases.get(task_id)
            if case is not None:
                self._schedule(case)
        self.cases.changed.clear()
        moment = now.timestamp()
        while self._due and self._due[0][0] <= moment:
            _, task_id = heapq.heappop(self._due)
            case = self.cases.get(task_id)
            reason = case.due_timer(now) if case is not None else None
            if case is None or reason is None:
                continue  # resolved, acknowledged or escalated meanwhile: its change rescheduled it
            action_id = f"{'close' if reason == 'no_response' else 'escalate'}:{task_id}:{reason}:{case.reopened}"
            if time.monotonic() - self._asked.get(action_id, -ASK_AGAIN_S) >= ASK_AGAIN_S:
                self._asked[action_id] = time.monotonic()
                if reason == "no_response":  # the recovery window ended without an answer
                    self.ask(Close(action="close", task_id=task_id, actor=WORKER, action_id=action_id))
                else:
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
            self.notes.clear()


def _as_opened(task: FollowUpTask, case: Case) -> FollowUpTask:
    """The loop's task as the keeper opened it: its pool member and its suggested root cause."""
    return task.model_copy(update={"assignee": case.assignee, "suggested_root_cause": case.suggested_root_cause})


def _reopened_by(case: Case, event_id: str) -> int:
    """Which reopening of the case this answer caused (1 for the first), now or before a crash; 0: it did not reopen it."""
    round_ = 0
    for mark in case.marks:
        if mark.kind == "reopened":
            round_ += 1
            if mark.answer == event_id:
                return round_
    return 0
