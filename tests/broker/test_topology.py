"""Start-up topology checks: a wrong topic refuses start-up with a message naming it, what was found and the fix.

`judge` on reported facts (every rule, and a broker that reports no configs), then the worker
itself against the embedded broker: each problem makes `feedback-worker run` exit non-zero,
having consumed and committed nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from tests.conftest import WorkerProcess, committed, produce
from worker.broker import TopicFacts, judge
from worker.config import load_settings

SETTINGS = load_settings(
    None,
    environ={},
    feedback_topic="fb",
    state_topic="state",
    task_actions_topic="actions",
    metrics_topic="metrics",
    kafka_bootstrap_servers="kafka-1:9092",
)
COMPACT = {"cleanup.policy": "compact"}


def healthy(**changed: TopicFacts) -> dict[str, TopicFacts]:
    """Every topic as the worker needs it (as real Kafka reports them: every config), with `changed` instead."""
    facts = {
        "fb": TopicFacts("fb", 6, {"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1"}),
        "state": TopicFacts("state", 1, {"cleanup.policy": "compact", "retention.ms": "604800000", "retention.bytes": "-1"}),
        "actions": TopicFacts("actions", 1, {"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1"}),
        "metrics": TopicFacts("metrics", 3, {"cleanup.policy": "compact", "retention.ms": "604800000", "retention.bytes": "-1"}),
    }
    return facts | {fact.name: fact for fact in changed.values()}


def test_topics_as_the_worker_needs_them_pass_without_a_warning() -> None:
    verdict = judge(SETTINGS, "state", healthy())
    assert verdict.ok and verdict.problems == [] and verdict.warnings == []


@pytest.mark.parametrize(
    ("fact", "expected"),
    [
        (
            TopicFacts("actions", 3, {"cleanup.policy": "delete"}),
            "TASK_ACTIONS_TOPIC 'actions': it has 3 partitions; the worker needs exactly 1 partition (one keeper applies",
        ),
        (TopicFacts("state", 6, COMPACT), "STATE_TOPIC 'state': it has 6 partitions; the worker needs exactly 1 partition"),
        (
            TopicFacts("state", 1, {"cleanup.policy": "delete", "retention.ms": "-1"}),
            "STATE_TOPIC 'state': cleanup.policy is delete; the worker needs cleanup.policy=compact",
        ),
        (TopicFacts("metrics", 3, {"cleanup.policy": "delete"}), "METRICS_TOPIC 'metrics': cleanup.policy is delete"),
        (
            TopicFacts("state", 1, {"cleanup.policy": "compact,delete", "retention.ms": "86400000", "retention.bytes": "-1"}),
            "STATE_TOPIC 'state': cleanup.policy is compact,delete with retention.ms=86400000; the worker needs no time or size",
        ),
        (
            TopicFacts("state", 1, {"cleanup.policy": "compact,delete", "retention.ms": "-1", "retention.bytes": "1073741824"}),
            "STATE_TOPIC 'state': cleanup.policy is compact,delete with retention.bytes=1073741824",
        ),
    ],
)
def test_each_wrong_topic_is_one_problem_naming_setting_topic_finding_and_fix(fact: TopicFacts, expected: str) -> None:
    verdict = judge(SETTINGS, "state", healthy(changed=fact))
    assert not verdict.ok and len(verdict.problems) == 1
    message = str(verdict.problems[0])
    assert message.startswith(expected), message
    assert "Fix: " in message and fact.name in message.split("Fix: ")[1], "the fix names the topic to change"


def test_a_compaction_problem_gives_the_command_that_fixes_it() -> None:
    verdict = judge(SETTINGS, "state", healthy(changed=TopicFacts("metrics", 3, {"cleanup.policy": "delete"})))
    assert verdict.problems[0].fix == (
        "kafka-configs.sh --bootstrap-server kafka-1:9092 --alter --entity-type topics --entity-name metrics "
        "--add-config cleanup.policy=compact"
    )


def test_several_problems_are_all_reported_at_once() -> None:
    facts = healthy(a=TopicFacts("actions", 3, {}), s=TopicFacts("state", 2, {"cleanup.policy": "delete"}))
    assert [p.setting for p in judge(SETTINGS, "state", facts).problems] == ["STATE_TOPIC", "TASK_ACTIONS_TOPIC", "STATE_TOPIC"]


def test_a_missing_feedback_topic_is_a_problem_only_when_the_worker_may_not_create_topics() -> None:
    facts = healthy(gone=TopicFacts("fb", None))
    assert judge(SETTINGS, "state", facts).ok  # CREATE_TOPICS=true: the worker waits for producers, as before
    strict = SETTINGS.model_copy(update={"create_topics": False})
    assert [str(p).split(":")[0] for p in judge(strict, "state", facts).problems] == ["FEEDBACK_TOPIC 'fb'"]
    missing_state = judge(strict, "state", healthy(gone=TopicFacts("state", None))).problems
    assert [p.setting for p in missing_state] == ["STATE_TOPIC"] and "--partitions 1 --config cleanup.policy=compact" in missing_state[
        0
    ].fix


def test_a_broker_that_reports_no_configs_gets_one_warning_and_no_problem() -> None:
    facts = healthy(s=TopicFacts("state", 1, None), m=TopicFacts("metrics", 3, None))
    verdict = judge(SETTINGS, "state", facts)
    assert verdict.ok and len(verdict.warnings) == 1
    assert "does not report the configs of metrics, state" in verdict.warnings[0]
    # Tansu reports what a topic was created with: compact alone needs no retention figures
    assert judge(SETTINGS, "state", healthy(s=TopicFacts("state", 1, COMPACT))).warnings == []


# -- the worker refuses to start ------------------------------------------------------------------


def create(bootstrap: str, topic: str, partitions: int, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1, topic_configs={k.replace("_", "."): v for k, v in configs.items()})])
    finally:
        admin.close()


@pytest.mark.parametrize(
    ("setting", "partitions", "configs", "env", "message"),
    [
        ("TASK_ACTIONS_TOPIC", 3, {}, {}, "it has 3 partitions; the worker needs exactly 1 partition"),
        ("STATE_TOPIC", 1, {"cleanup_policy": "delete"}, {}, "cleanup.policy is delete; the worker needs cleanup.policy=compact"),
        (
            "STATE_TOPIC",
            1,
            {"cleanup_policy": "compact,delete", "retention_ms": "3600000"},
            {},
            "cleanup.policy is compact,delete with retention.ms=3600000",
        ),
        ("METRICS_TOPIC", 0, {}, {}, None),  # made below: a non-compacted metrics topic
        ("FEEDBACK_TOPIC", 0, {}, {"CREATE_TOPICS": "false"}, "it does not exist (CREATE_TOPICS=false)"),
    ],
)
def test_the_worker_refuses_a_wrong_topic_before_joining_its_group(
    kafka_bootstrap: str,
    topics: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    setting: str,
    partitions: int,
    configs: dict[str, str],
    env: dict[str, str],
    message: str | None,
) -> None:
    produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], [(b"c-1", b'{"not": "checked"}')])
    topic = topics[setting]
    if setting == "FEEDBACK_TOPIC":
        topic = topics[setting] + "-misspelt"
        env = env | {"FEEDBACK_TOPIC": topic}
        for other in ("STATE_TOPIC", "TASK_ACTIONS_TOPIC"):
            create(kafka_bootstrap, topics[other], 1, **({"cleanup_policy": "compact"} if other == "STATE_TOPIC" else {}))
    elif setting == "METRICS_TOPIC":
        topic = topics[setting] + "-deleting"  # the fixture's own is compacted
        env = {"METRICS_TOPIC": topic}
        create(kafka_bootstrap, topic, 1, cleanup_policy="delete")
        message = "cleanup.policy is delete; the worker needs cleanup.policy=compact"
    else:
        create(kafka_bootstrap, topic, partitions, **configs)
    worker = start_worker(**env)
    assert worker.wait(timeout=30) == 2, worker.output()[-2000:]
    output = worker.output()
    assert f"{setting} {topic!r}: {message}" in output and "Fix: " in output
    assert "assigned partitions" not in output
    assert committed(kafka_bootstrap, topics["CONSUMER_GROUP"], topics["FEEDBACK_TOPIC"]) == {0: 0, 1: 0, 2: 0}, "nothing committed"
