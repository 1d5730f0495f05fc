"""The delivery core: every Slack message exactly once, and Slack never holding the stream back.

    slots.py      what a message stands for (Slot), its key built and parsed in one place
    records.py    the `post` record of each slot in the state topic: OWED, POSTED or DEAD
    outbox.py     the one way in, `Outbox.post_once`: owe, post, outcome, takeover
    lookups.py    is it already in Slack? the search of a channel for slots owed since before a crash
    sinks.py      where a message goes: Slack (slack-sdk, retries, the search for posts Slack did not answer)
    slackhttp.py  one kept-alive HTTP connection per sink thread
    stdout.py     without a Slack token: messages printed as they would be posted

Slot keys are built, parsed and compared only in this package (tests/test_architecture.py checks it).
"""

from .lookups import Settle
from .outbox import Outbox, Owed, Place
from .records import Form, Post, Posts, PostState
from .sinks import Call, Observe, Outcome, Search, Sink, SlackSink, outcome_of
from .slots import (
    For,
    Slot,
    alert_slot,
    answer_slot,
    change_slot,
    emerging_slot,
    escalated_slot,
    escalation_slot,
    metric_slot,
    parse_slot,
    reopened_slot,
    root_causes_slot,
    slot_key,
)
from .stdout import StdoutSink

__all__ = [
    "Call",
    "For",
    "Form",
    "Observe",
    "Outbox",
    "Outcome",
    "Owed",
    "Place",
    "Post",
    "PostState",
    "Posts",
    "Search",
    "Settle",
    "Sink",
    "SlackSink",
    "Slot",
    "StdoutSink",
    "alert_slot",
    "answer_slot",
    "change_slot",
    "emerging_slot",
    "escalated_slot",
    "escalation_slot",
    "metric_slot",
    "outcome_of",
    "parse_slot",
    "reopened_slot",
    "root_causes_slot",
    "slot_key",
]
