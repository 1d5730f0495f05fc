"""What the worker needs of its topics, checked before it joins the group.

The worker's correctness rests on facts about topics that ops may create with their own
tooling (Terraform, a cluster default of `num.partitions=3`):

- STATE_TOPIC has one partition: a replica syncs with it by reading one ordered log to a marker.
- TASK_ACTIONS_TOPIC has one partition: one keeper applies every action, in one order.
- STATE_TOPIC and METRICS_TOPIC are compacted (`cleanup.policy=compact`): the latest record per key
  is the state; without compaction the state topic grows for ever, or is deleted by retention.
- STATE_TOPIC has no time or size retention that can delete live state (`compact,delete` with a
  `retention.ms` or `retention.bytes` other than -1).
- FEEDBACK_TOPIC exists when the worker may not create topics (CREATE_TOPICS=false).

`judge` turns what the broker reports into problems (the worker refuses to start) and warnings
(something could not be verified: some Kafka-compatible brokers do not report topic configs).
Each problem names the setting, the topic, what was found, what is needed and the fix, so `run`,
`doctor` and the demo say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka.admin import ConfigResource, ConfigResourceType

from ..config import Settings


@dataclass(frozen=True)
class TopicFacts:
    """What the broker says about one topic. `configs` is None when it reports none (not even defaults)."""

    name: str
    partitions: int | None  # None: the topic does not exist
    configs: Mapping[str, str] | None = None

    @property
    def exists(self) -> bool:
        return self.partitions is not None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a topic, and how to fix it."""

    setting: str  # the setting that names the topic, e.g. TASK_ACTIONS_TOPIC
    topic: str
    found: str
    needs: str
    fix: str

    def __str__(self) -> str:
        return f"{self.setting} {self.topic!r}: {self.found}; the worker needs {self.needs}. Fix: {self.fix}"


@dataclass
class Topology:
    """The verdict on every topic the worker relies on."""

    facts: dict[str, TopicFacts]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class TopologyError(Exception):
    """The topics are wrong for the worker: one line per problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"cannot start: {len(problems)} problem(s) with the Kafka topics:\n{lines}")


def topics_of(settings: Settings, state_topic: str) -> dict[str, str]:
    """Setting name -> topic, for every topic the worker reads or writes."""
    return {
        "FEEDBACK_TOPIC": settings.feedback_topic,
        "STATE_TOPIC": state_topic,
        "TASK_ACTIONS_TOPIC": settings.task_actions_topic,
        "METRICS_TOPIC": settings.metrics_topic,
        "FOLLOWUP_TOPIC": settings.followup_topic,
        "DLQ_TOPIC": settings.dlq_topic,
        "SURVEY_REQUEST_TOPIC": settings.survey_request_topic,
    }


def describe(admin: Any, topics: list[str]) -> dict[str, TopicFacts]:
    """Partitions and configs of `topics`, as the broker reports them (a KafkaAdminClient)."""
    names = list(dict.fromkeys(topics))
    partitions: dict[str, int | None] = {name: None for name in names}
    for topic in admin.describe_topics(names):
        if topic.get("error_code", 0) == 0:
            partitions[topic["name"]] = len(topic["partitions"])
    existing = [name for name in names if partitions[name] is not None]
    configs: dict[str, dict[str, str]] = {}
    if existing:
        # configs=None and "all": every config, defaults included (Kafka); a broker that reports none gives {}.
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name, None) for name in existing], config_filter="all")
        for name, entries in (described.get("topic") or {}).items():
            configs[name] = {key: str(entry["value"]) for key, entry in entries.items() if entry.get("value") is not None}
    return {name: TopicFacts(name, partitions[name], configs.get(name) or None) for name in names}


def judge(settings: Settings, state_topic: str, facts: Mapping[str, TopicFacts]) -> Topology:
    """Problems and warnings for the topics the worker relies on (see the module docstring)."""
    verdict = Topology(dict(facts))
    named = topics_of(settings, state_topic)
    servers = settings.kafka_bootstrap_servers.split(",")[0]
    kafka_configs = f"kafka-configs.sh --bootstrap-server {servers} --alter --entity-type topics --entity-name"
    unreported: list[str] = []

    for setting in ("STATE_TOPIC", "TASK_ACTIONS_TOPIC"):
        topic = named[setting]
        fact = facts.get(topic)
        if fact is None or not fact.exists:
            if not settings.create_topics:
                verdict.problems.append(
                    Problem(
                        setting,
                        topic,
                        "it does not exist (CREATE_TOPICS=false)",
                        "it to exist with 1 partition",
                        f"kafka-topics.sh --bootstrap-server {servers} --create --topic {topic} --partitions 1"
                        + (" --config cleanup.policy=compact" if setting == "STATE_TOPIC" else "")
                        + ", or set CREATE_TOPICS=true",
                    )
                )
            continue
        if fact.partitions and fact.partitions > 1:
            why = (
                "a replica syncs by reading one ordered log"
                if setting == "STATE_TOPIC"
                else "one keeper applies every task action in one order"
            )
            verdict.problems.append(
                Problem(
                    setting,
                    topic,
                    f"it has {fact.partitions} partitions",
                    f"exactly 1 partition ({why})",
                    f"partitions cannot be removed: drain it, delete it (kafka-topics.sh --delete --topic {topic}) and let the "
                    f"worker create it (CREATE_TOPICS=true), or create it with --partitions 1; or point {setting} at a new "
                    "1-partition topic",
                )
            )

    for setting in ("STATE_TOPIC", "METRICS_TOPIC"):
        topic = named[setting]
        fact = facts.get(topic)
        if fact is None or not fact.exists:
            continue
        if fact.configs is None or "cleanup.policy" not in fact.configs:
            unreported.append(topic)
            continue
        policy = {p.strip() for p in fact.configs["cleanup.policy"].split(",")}
        if "compact" not in policy:
            verdict.problems.append(
                Problem(
                    setting,
                    topic,
                    f"cleanup.policy is {fact.configs['cleanup.policy']}",
                    "cleanup.policy=compact (the latest record per key is the state)",
                    f"{kafka_configs} {topic} --add-config cleanup.policy=compact",
                )
            )
        elif setting == "STATE_TOPIC" and "delete" in policy:
            limits = {key: fact.configs.get(key) for key in ("retention.ms", "retention.bytes")}
            deleting = {key: value for key, value in limits.items() if value is not None and value != "-1"}
            if deleting:
                shown = ", ".join(f"{key}={value}" for key, value in deleting.items())
                verdict.problems.append(
                    Problem(
                        setting,
                        topic,
                        f"cleanup.policy is compact,delete with {shown}",
                        "no time or size retention (it would delete live state: open tasks, silences, what is owed Slack)",
                        f"{kafka_configs} {topic} --add-config cleanup.policy=compact",
                    )
                )
            elif any(value is None for value in limits.values()):
                unreported.append(topic)

    feedback = facts.get(settings.feedback_topic)
    if (feedback is None or not feedback.exists) and not settings.create_topics:
        verdict.problems.append(
            Problem(
                "FEEDBACK_TOPIC",
                settings.feedback_topic,
                "it does not exist (CREATE_TOPICS=false)",
                "the topic the survey tool produces to",
                f"check FEEDBACK_TOPIC's spelling, or create it with the producers' partition count: kafka-topics.sh "
                f"--bootstrap-server {servers} --create --topic {settings.feedback_topic} --partitions <n>",
            )
        )

    if unreported:
        verdict.warnings.append(
            f"the broker does not report the configs of {', '.join(sorted(set(unreported)))} (some Kafka-compatible brokers "
            "do not): their compaction and retention cannot be checked; make sure they have cleanup.policy=compact and no "
            "retention that deletes"
        )
    return verdict


def check_topology(admin: Any, settings: Settings, state_topic: str) -> Topology:
    """Describe and judge the worker's topics with `admin` (its own timeouts bound every request)."""
    return judge(settings, state_topic, describe(admin, list(topics_of(settings, state_topic).values())))


def verify_topics(settings: Settings, state_topic: str, timeout_s: float = 30.0) -> Topology:
    """`check_topology` with an admin client of its own, waiting up to `timeout_s` for the broker."""
    from .clients import admin_client

    admin = admin_client(settings, timeout_s)
    try:
        return check_topology(admin, settings, state_topic)
    finally:
        admin.close()
