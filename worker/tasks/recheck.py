"""Asking the customer again: the survey request a resolution sends, and which task an answer closes.

When a task whose rule says `followup: {recheck: csat}` (the default) is resolved, the keeper
publishes a SurveyRequest to SURVEY_REQUEST_TOPIC (key: the customer id). The survey tool
sends the survey; the answer comes back on the feedback topic like any other, ideally with
`attributes.task_id`. The first answer from that customer after the resolution and within the
rule's `recovery_window` closes the task (recovered) or reopens it (still unhappy); without
one, the keeper closes it as `no_response` when the window ends (case.py, keeper.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from .case import Case

#: Where an answer may name the task it answers.
TASK_ATTRIBUTE = "task_id"


class SurveyRequest(BaseModel):
    """A `survey.requested` record on SURVEY_REQUEST_TOPIC; the Kafka key is the customer id."""

    type: Literal["survey.requested"] = "survey.requested"
    id: str = Field(description="Deterministic per task and resolution: published again after a crash, it has the same id.")
    task_id: str = Field(description="Send it back as `attributes.task_id` in the answer, so it closes this task.")
    customer: str = Field(description="The customer id.")
    survey: Literal["csat", "nps", "ces"]
    reason: Literal["followup"] = "followup"
    requested_at: datetime
    answer_by: datetime = Field(description="The end of the recovery window: a later answer does not close the task.")


def survey_request(case: Case) -> SurveyRequest | None:
    """The request for a case just resolved; None when its rule asks for no follow-up survey."""
    window = case.answer_window()
    if case.recheck == "none" or window is None:
        return None
    request_id = hashlib.blake2b(f"{case.task_id}|survey|{case.reopened}".encode(), digest_size=8).hexdigest()
    return SurveyRequest(
        id=request_id, task_id=case.task_id, customer=case.customer_id, survey=case.recheck, requested_at=window[0], answer_by=window[1]
    )


def answered_tasks(cases: Iterable[Case], event_id: str, occurred_at: datetime, unhappy: bool, names: object) -> list[Case]:
    """The tasks of one customer that this answer closes or reopens.

    `names`: the answer's `attributes.task_id`. An answer naming one of the customer's tasks
    answers that task only; one naming none answers every task awaiting an answer whose
    recovery window it falls in. A task this answer already closed or reopened is listed again
    (a replayed answer: the keeper applies it once)."""
    awaiting = []
    for case in cases:
        window = case.answer_window()
        if case.answered_by(event_id):
            awaiting.append(case)
        elif window is not None and window[0] < occurred_at <= window[1] and _open_to(case, unhappy):
            awaiting.append(case)
    named = [case for case in awaiting if case.task_id == names]
    return named or awaiting


def _open_to(case: Case, unhappy: bool) -> bool:
    """Awaiting an answer; or closed as recovered, which an unhappy answer within the window reopens."""
    return case.awaiting_answer or (unhappy and case.status == "closed" and case.outcome == "recovered")
