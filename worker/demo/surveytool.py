"""The demo's survey tool: it reads the worker's survey requests and sends each customer's answer back.

What a real survey tool does with SURVEY_REQUEST_TOPIC: ask the customer again and put the
answer on the feedback topic, naming the task (`attributes.task_id`). Here the customers answer
at once, by a script: most are happy now, one is still unhappy, so one task reopens.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from ..broker import make_producer
from ..config import Settings
from ..keeper import TaskDesk

#: The answers, in the order the requests arrive: (score on the survey's scale, comment).
SCRIPT = [
    (5, "Parcel arrived the next morning, thank you!"),
    (2, "Still charged twice. Not impressed."),
    (4, "Sorted now, appreciate the call."),
]
SCALE = {"csat": 5, "ces": 5, "nps": 10}


def survey_requests(settings: Settings, count: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
    """The first `count` survey requests (fewer if the timeout passes), read without a consumer group."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    deadline = time.monotonic() + timeout_s
    found: list[dict[str, Any]] = []
    try:
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(settings.survey_request_topic)
        if not partitions:
            return []
        tps = [TopicPartition(settings.survey_request_topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while len(found) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                found += [json.loads(record.value) for record in records]
        return found[:count]
    finally:
        consumer.close()


def answer_surveys(settings: Settings, desk: TaskDesk, count: int, say: Callable[[str], None]) -> list[str]:
    """Answer the first `count` survey requests by the script; the task ids answered, in order."""
    requests = survey_requests(settings, count)
    producer = make_producer(settings)
    answered = []
    try:
        for request, (score, comment) in zip(requests, SCRIPT, strict=False):
            case = desk.cases.get(request["task_id"])
            segment = next((d.partition("=")[2] for d in case.dims if d.startswith("customer.segment=")), None) if case else None
            customer = {
                "id": request["customer"],
                "name": case.customer_name if case else None,
                "segment": segment,
                "monthly_value": case.monthly_value if case else None,
            }
            survey = request["survey"]
            scaled = score if survey == "csat" else round(score * SCALE[survey] / 5) if survey == "nps" else 6 - score
            answer = {
                "event_id": f"followup-{uuid.uuid4().hex[:10]}",
                "occurred_at": datetime.now(UTC).isoformat(),
                "survey": survey,
                "score": scaled,
                "comment": comment,
                "customer": customer,
                "channel": "email",
                "attributes": {"task_id": request["task_id"]},
            }
            producer.send(settings.feedback_topic, key=request["customer"].encode(), value=json.dumps(answer).encode())
            say(
                f"  {customer['name'] or customer['id']} answered the follow-up survey for {request['task_id']}: "
                f"{survey.upper()} {scaled}, “{comment}”"
            )
            answered.append(request["task_id"])
        producer.flush()
    finally:
        producer.close()
    return answered


def wait_for_outcomes(desk: TaskDesk, tasks: list[str], timeout_s: float = 30.0) -> dict[str, str]:
    """task id -> closed (recovered) or reopened, once the keeper has applied every answer."""
    deadline = time.monotonic() + timeout_s
    outcomes: dict[str, str] = {}
    while time.monotonic() < deadline and len(outcomes) < len(tasks):
        desk.view.poll(timeout_ms=200)
        for task_id in tasks:
            case = desk.cases.get(task_id)
            if case is not None and case.status == "closed":
                outcomes[task_id] = f"closed: {case.outcome}"
            elif case is not None and case.marks and case.marks[-1].kind == "reopened":
                outcomes[task_id] = "reopened: still unhappy"
    return outcomes
