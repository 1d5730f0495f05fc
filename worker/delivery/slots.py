"""What a Slack message stands for: its *slot*. Built and parsed here, and nowhere else.

Every message the worker posts fills one or more slots. A slot's record in the state topic
(records.py) says whether its message is owed, posted or given up; every message lists its
slots in its metadata, so a search of the channel after a crash can tell it is there. The key
is the slot's name in both places. Every form in use:

    stands for    key                                    the message
    ALERT         <task>                                 a task's alert, or its line in a digest or summary
    ANSWER        <task>/<event>                         a later answer that joined the task, in its thread
    CHANGE        <task>/change:<change id>              a person's change to the task, in its thread
    ESCALATED     <task>/escalated:<reason>:<round>      an escalation, in the task's thread
    ESCALATION    <task>/escalation:<reason>:<round>     the same escalation, in its escalation channel
    REOPENED      <task>/reopened:<round>                the customer's answer reopened the task, in its thread
    METRIC        metric:<rule id>|<dimension>@<unix s>  a metric rule fired
    ROOT_CAUSES   root-causes:<period end, ISO 8601>     a period's root-cause digest
    EMERGING      emerging:<start s>|<size s>|<term>     a rising complaint: a term of a window (size s, from unix s)

Task ids never hold "/" (tasks/records.py: "task-" and hex), so the first "/" splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class For(StrEnum):
    ALERT = "alert"
    ANSWER = "answer"
    CHANGE = "change"
    ESCALATED = "escalated"
    ESCALATION = "escalation"
    REOPENED = "reopened"
    METRIC = "metric"
    ROOT_CAUSES = "root-causes"
    EMERGING = "emerging"


_TASK_NOTES = (For.CHANGE, For.ESCALATED, For.ESCALATION, For.REOPENED)  # <task>/<prefix>:<ref>
_UNBOUND = (For.METRIC, For.ROOT_CAUSES, For.EMERGING)  # <prefix>:<ref>, tied to no task


@dataclass(frozen=True, slots=True)
class Slot:
    stands_for: For
    task_id: str = ""  # the task it belongs to ("" for METRIC, ROOT_CAUSES and EMERGING)
    ref: str = ""  # the event id, change id, "<reason>:<round>", "<round>", metric key, period end or window and term

    @property
    def key(self) -> str:
        return slot_key(self)


def slot_key(slot: Slot) -> str:
    """The slot's name in the state topic and in message metadata."""
    kind = slot.stands_for
    if kind is For.ALERT:
        return slot.task_id
    if kind is For.ANSWER:
        return f"{slot.task_id}/{slot.ref}"
    if kind in _UNBOUND:
        return f"{kind.value}:{slot.ref}"
    return f"{slot.task_id}/{kind.value}:{slot.ref}"


def parse_slot(key: str) -> Slot:
    """The inverse of `slot_key`."""
    task_id, sep, rest = key.partition("/")
    if not sep:
        for kind in _UNBOUND:
            if key.startswith(kind.value + ":"):
                return Slot(kind, "", key[len(kind.value) + 1 :])
        return Slot(For.ALERT, key)
    for kind in _TASK_NOTES:
        if rest.startswith(kind.value + ":"):
            return Slot(kind, task_id, rest[len(kind.value) + 1 :])
    return Slot(For.ANSWER, task_id, rest)


def alert_slot(task_id: str) -> Slot:
    return Slot(For.ALERT, task_id)


def answer_slot(task_id: str, event_id: str) -> Slot:
    return Slot(For.ANSWER, task_id, event_id)


def change_slot(task_id: str, change_id: str) -> Slot:
    return Slot(For.CHANGE, task_id, change_id)


def escalated_slot(task_id: str, reason: str, round_: int) -> Slot:
    return Slot(For.ESCALATED, task_id, f"{reason}:{round_}")


def escalation_slot(task_id: str, reason: str, round_: int) -> Slot:
    return Slot(For.ESCALATION, task_id, f"{reason}:{round_}")


def reopened_slot(task_id: str, round_: int) -> Slot:
    return Slot(For.REOPENED, task_id, str(round_))


def metric_slot(firing: str) -> Slot:
    """The alert of a metric rule's firing (`<rule state key>@<unix s>`, metrics/metric_rules.py); an older
    worker recorded the whole key."""
    return Slot(For.METRIC, "", firing.removeprefix(For.METRIC.value + ":"))


def root_causes_slot(period_end: str) -> Slot:
    return Slot(For.ROOT_CAUSES, "", period_end)


def emerging_slot(start: int, size: int, term: str) -> Slot:
    """A rising complaint: `term` (its key: a stem, or two stems) in the window of `size` s starting at `start` (unix s).
    Terms are runs of word characters and spaces, so the key never holds "/"."""
    return Slot(For.EMERGING, "", f"{start}|{size}|{term}")
