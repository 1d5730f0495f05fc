"""The suggested root cause's counts in the state topic (tasks/learning.py): what a task teaches and when it is
taken back, exactly once across a redelivery and a crash between the two records, the same on every replica that
reads them, bounded in size.

The keeper path is driven here as Keeper.handle drives it: `apply`, then `learn(before, after, action id)`, then
the case saved. The state topic is tests/harness.py's fake Kafka, read back by a second StateView as a replica would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tests.harness import FakeConsumer, FakeProducer
from tests.tasks.test_keeper import EVENT, NOW, POLICY, new_case, no_pool
from worker.stream.state import StateView
from worker.tasks import (
    ACTION,
    Applied,
    Case,
    Cases,
    CauseModel,
    FollowupSpec,
    TaskPolicy,
    apply,
    comment_keywords,
    counted,
    features,
    open_task,
)
from worker.tasks.learning import MAX_STEMS_PER_CAUSE
from worker.themes import ThemeMatcher, build_themes

ALICE = {"source": "api", "id": "zendesk", "name": "Zendesk"}
MATCHER = ThemeMatcher(build_themes([[{"id": "t", "label": "T", "terms": {"en": ["x"], "nl": ["x"]}}]]))
SHIPPING = ["The parcel arrived late", "Delivery late again, parcel lost", "Parcel delayed for a week", "Late delivery of my order"]
BILLING = ["I was charged twice", "The invoice is wrong", "Charged twice on my invoice", "Wrong amount charged"]
Records = list[tuple[bytes | None, bytes | None]]


class State:
    """The state topic: every record the keeper's view wrote, readable from the start by any number of replicas."""

    def __init__(self) -> None:
        self.consumer = FakeConsumer(partitions=1)
        self.producer = FakeProducer({"state": self.consumer})

    def keeper(self, min_examples: int = 4) -> tuple[Cases, CauseModel]:
        """The keeper's tables, reading the topic too (what a restarted or new keeper finds there)."""
        view = StateView("state", "fb", self.consumer, self.producer)
        return Cases(view, POLICY), CauseModel(view, POLICY, min_examples)

    def replica(self, records: Records | None = None, policy: TaskPolicy = POLICY) -> CauseModel:
        """A replica that reads the topic as it stands (or `records`) from the start."""
        consumer = FakeConsumer(partitions=1)
        for key, value in self.producer.records["state"] if records is None else records:
            consumer.append("state", key, value)
        view = StateView("state", "fb", consumer, FakeProducer({}))
        model = CauseModel(view, policy, 4)
        Cases(view, policy)
        view.poll()
        return model


def act(cases: Cases, model: CauseModel, task_id: str, action: str, action_id: str, **fields: Any) -> Case:
    """What Keeper.handle does with one action: apply, learn, save."""
    before = cases.get(task_id)
    parsed = ACTION.validate_python({"action": action, "task_id": task_id, "actor": ALICE} | fields)
    result = apply(before, parsed, action_id, NOW, POLICY, no_pool)
    if isinstance(result, Applied):
        model.learn(before, result.case, action_id)
        cases.save(result.case)
    case = cases.get(task_id)
    assert case is not None
    return case


def commented(task_id: str, comment: str) -> Case:
    stems, _ = comment_keywords(comment, None, MATCHER.tag(comment, "en"))
    return new_case().model_copy(update={"task_id": task_id, "comment": comment, "keywords": stems, "recheck": "none"})


def resolve(cases: Cases, model: CauseModel, task_id: str, cause: str, action_id: str | None = None) -> Case:
    return act(cases, model, task_id, "resolve", action_id or f"resolve-{task_id}", root_cause=cause, resolution="done")


@pytest.fixture
def taught() -> Iterator[tuple[State, Cases, CauseModel]]:
    """Eight tasks resolved: four shipping delays, four billing errors."""
    state = State()
    cases, model = state.keeper()
    for n, comment in enumerate(SHIPPING + BILLING):
        cases.save(commented(f"task-{n}", comment))
        resolve(cases, model, f"task-{n}", "shipping-delay" if n < len(SHIPPING) else "billing-error")
    yield state, cases, model


def suggestion_for(model: CauseModel, comment: str) -> Any:
    stems, words = comment_keywords(comment, None, MATCHER.tag(comment, "en"))
    return model.suggest(stems, words)


def test_a_resolved_task_teaches_its_cause_and_a_new_comment_gets_it_with_its_words(taught: tuple[State, Cases, CauseModel]) -> None:
    _, _, model = taught
    assert model.counts.tasks == {"shipping-delay": 4, "billing-error": 4}
    suggested = suggestion_for(model, "My parcel is LATE")
    assert suggested is not None and suggested.root_cause == "shipping-delay" and 0.5 < suggested.confidence <= 1
    assert set(suggested.terms) == {"parcel", "late"}  # as written (casefolded), not stems
    assert suggestion_for(model, "charged twice").root_cause == "billing-error"


def test_nothing_is_suggested_before_min_examples() -> None:
    state = State()
    cases, model = state.keeper(min_examples=3)
    for n, comment in enumerate(SHIPPING[:3]):
        assert suggestion_for(model, "parcel late") is None and not model.ready
        cases.save(commented(f"task-{n}", comment))
        resolve(cases, model, f"task-{n}", "shipping-delay")
    assert model.ready and suggestion_for(model, "parcel late").root_cause == "shipping-delay"


def test_a_reopen_takes_the_task_back_and_the_next_resolve_counts_its_new_cause(taught: tuple[State, Cases, CauseModel]) -> None:
    state, cases, model = taught
    before = model.counts.to_dict()
    case = act(cases, model, "task-0", "reopen", "reopen-0", reason="not a delay after all")
    assert case.status == "open" and counted(case) is None
    assert model.counts.tasks == {"shipping-delay": 3, "billing-error": 4}
    resolve(cases, model, "task-0", "billing-error", "resolve-0-again")
    assert model.counts.tasks == {"shipping-delay": 3, "billing-error": 5}
    act(cases, model, "task-0", "reopen", "reopen-0-again", reason="no")
    resolve(cases, model, "task-0", "shipping-delay", "resolve-0-third")
    assert model.counts.to_dict() == before
    assert state.replica().counts == model.counts


def test_a_task_without_a_comment_teaches_nothing() -> None:
    state = State()
    cases, model = state.keeper()
    cases.save(new_case().model_copy(update={"task_id": "task-quiet"}))
    assert resolve(cases, model, "task-quiet", "pricing").status == "resolved"
    assert model.counts.resolved == 0 and not [key for key, _ in state.producer.records["state"] if key and key.startswith(b"cause|")]


def test_an_action_delivered_again_counts_once(taught: tuple[State, Cases, CauseModel]) -> None:
    _, cases, model = taught
    cases.save(commented("task-x", "parcel late"))
    resolve(cases, model, "task-x", "shipping-delay", "zendesk-1")
    counts = model.counts.to_dict()
    case = resolve(cases, model, "task-x", "shipping-delay", "zendesk-1")  # the same id: a duplicate, not applied
    assert case.applied.count("zendesk-1") == 1 and model.counts.to_dict() == counts


def test_a_keeper_that_crashed_between_the_counts_and_the_case_counts_the_action_once_when_applied_again(
    taught: tuple[State, Cases, CauseModel],
) -> None:
    state, cases, model = taught
    cases.save(commented("task-x", "parcel late"))
    resolve(cases, model, "task-x", "shipping-delay", "crash-1")
    records = state.producer.records["state"]
    assert records[-2][0] == b"cause|fb|shipping-delay" and records[-1][0] == b"task|fb|task-x"
    # The crash: the cause record landed, the case did not. The next keeper reads the topic, and the action comes again.
    landed = records[:-1]
    again = State()
    for key, value in landed:
        again.consumer.append("state", key, value)
    cases2, model2 = again.keeper()
    cases2.view.poll()
    reread = cases2.get("task-x")
    assert reread is not None and reread.status == "open"
    case = resolve(cases2, model2, "task-x", "shipping-delay", "crash-1")
    assert case.status == "resolved" and model2.counts == model.counts, "counted once"
    # Another task's resolution with the same action id (ids are per task) still counts.
    cases2.save(commented("task-y", "parcel late"))
    resolve(cases2, model2, "task-y", "shipping-delay", "crash-1")
    assert model2.counts.tasks["shipping-delay"] == model.counts.tasks["shipping-delay"] + 1


def test_every_replica_reading_the_state_topic_has_the_same_model_and_suggestion(taught: tuple[State, Cases, CauseModel]) -> None:
    state, _, model = taught
    one, two = state.replica(), state.replica()
    assert one.counts == two.counts == model.counts
    comment = "late parcel, and charged twice"
    assert suggestion_for(one, comment) == suggestion_for(two, comment) == suggestion_for(model, comment)
    # A record per cause; the latest of each is what a compacted topic keeps, and it is enough.
    latest = {key: value for key, value in state.producer.records["state"]}
    compacted = [(key, value) for key, value in latest.items()]
    assert state.replica(compacted).counts == model.counts
    cause_keys = sorted(key for key in latest if key and key.startswith(b"cause|"))
    assert cause_keys == [b"cause|fb|billing-error", b"cause|fb|shipping-delay"]


def test_the_counts_outlive_the_tasks(taught: tuple[State, Cases, CauseModel]) -> None:
    state, cases, model = taught
    counts = model.counts.to_dict()
    assert cases.expire(NOW + timedelta(days=400), retention_s=30 * 86400) == len(SHIPPING + BILLING)
    assert not cases.by_id and model.counts.to_dict() == counts and state.replica().counts.to_dict() == counts


def test_only_causes_of_the_taxonomy_are_suggested(taught: tuple[State, Cases, CauseModel]) -> None:
    state, _, model = taught
    trimmed = state.replica(policy=POLICY.model_copy(update={"root_causes": ["billing-error", "other"]}))
    assert trimmed.counts.tasks == {"billing-error": 4} and model.counts.tasks["shipping-delay"] == 4
    assert suggestion_for(trimmed, "parcel late").root_cause == "billing-error"


def test_a_cause_record_stays_bounded() -> None:
    state = State()
    cases, model = state.keeper(min_examples=1)
    for n in range(30):
        stems = [f"w{n:02d}{i:04d}" for i in range(1000)]  # 30,000 distinct stems, all for one cause
        cases.save(new_case().model_copy(update={"task_id": f"task-{n}", "keywords": stems}))
        resolve(cases, model, f"task-{n}", "other")
    record = next(value for key, value in reversed(state.producer.records["state"]) if key == b"cause|fb|other")
    assert record is not None and len(record) < 1_000_000
    assert len(json.loads(record)["stems"]) == MAX_STEMS_PER_CAUSE == len(model.counts.stems)
    assert model.counts.tasks == {"other": 30}
    act(cases, model, "task-0", "reopen", "reopen-pruned", reason="taken back, though its stems were pruned")
    assert model.counts.tasks == {"other": 29} and state.replica().counts == model.counts


def test_an_unreadable_record_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    state = State()
    records: Records = [
        (b"cause|fb|pricing", b'{"tasks": 2, "stems": {"price": 3}, "last": ["t", "a"]}'),
        (b"cause|fb|other", b'{"tasks": -1, "stems": {}}'),
        (b"cause|fb|billing-error", b"not json"),
    ]
    with caplog.at_level(logging.WARNING, logger="worker"):
        model = state.replica(records)
    assert model.counts.tasks == {"pricing": 2} and model.last == {"pricing": ("t", "a")}
    assert sum("unreadable" in r.message for r in caplog.records) == 2
    assert state.replica([*records, (b"cause|fb|pricing", None)]).counts.tasks == {}


def test_keywords_without_themes_use_the_event_language_or_plain_words() -> None:
    assert comment_keywords(None, None, None) == ([], [])
    assert comment_keywords("The parcel ARRIVED late", "en", None) == (["parcel", "arriv", "late"], ["parcel", "arrived", "late"])
    assert comment_keywords("Het pakket kwam te laat", "nl", None) == (["pakket", "kwam", "laat"], ["pakket", "kwam", "laat"])
    stems, words = comment_keywords("Envío TARDE", None, None)  # no language: casefolded, without accents
    assert stems == ["envio", "tarde"] and words == ["envío", "tarde"]
    long = "x" * 40
    assert comment_keywords(f"late {long} " + " ".join(f"w{i}" for i in range(200)), "en", None)[0][:2] == ["late", "w0"]
    assert len(comment_keywords(" ".join(f"w{i}" for i in range(200)), "en", None)[0]) == 100


def test_an_open_carries_a_word_per_stem() -> None:
    task = open_task(EVENT, "nps-detractor", ["nps-detractor"], "high", FollowupSpec(owner="cx-team", due_in=timedelta(hours=4)), NOW)
    base = {"action": "open", "task_id": task.task_id, "actor": {"source": "worker"}, "due_in_s": 60, "task": task.model_dump()}
    assert ACTION.validate_python(base | {"stems": ["late"], "words": ["late"]})
    with pytest.raises(ValidationError, match="one word per stem"):
        ACTION.validate_python(base | {"stems": ["late"], "words": []})
    with pytest.raises(ValidationError, match="at most 30 characters"):
        ACTION.validate_python(base | {"stems": ["x" * 31], "words": ["x" * 31]})


def test_an_opened_case_keeps_its_stems_and_themes_to_learn_from_once_resolved() -> None:
    spec = FollowupSpec(owner="cx-team", due_in=timedelta(hours=4))
    task = open_task(EVENT, "nps-detractor", ["nps-detractor"], "high", spec, NOW, themes=["shipping-delay", "delivery"])
    action = ACTION.validate_python(
        {
            "action": "open",
            "task_id": task.task_id,
            "actor": {"source": "worker"},
            "task": task.model_dump(),
            "due_in_s": 60,
            "stems": ["parcel", "late"],
            "words": ["parcel", "late"],
        }
    )
    result = apply(None, action, "open", NOW, POLICY, no_pool)
    assert isinstance(result, Applied)
    assert result.case.keywords == ["parcel", "late", "#delivery", "#shipping-delay"] == features(["parcel", "late"], task.themes)
