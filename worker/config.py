"""Settings: environment variables (a public contract), optionally a YAML file; environment wins.

Each field's environment variable is its name in upper case (`kafka_bootstrap_servers` ->
`KAFKA_BOOTSTRAP_SERVERS`). A config file may use either spelling. Secrets are SecretStr,
so they never show in a repr, a log line or an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from .metrics import MetricsConfig
from .notation import Duration, LineDict, SourceError, format_duration, load_yaml
from .tasks import DEFAULT_ROOT_CAUSES, OwnerPool, RootCauseDigest, SlaCalendar, TaskPolicy, check_root_causes

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_TOPIC = "feedback.worker.state"
#: STATE_TOPIC's default before it was renamed: a deployment that never set it keeps its state there (service.py).
LEGACY_STATE_TOPIC = "feedback.metrics.state"


def _shipped(name: str) -> Path:
    """`rules/` or `templates/` in the working directory, else the copy beside the package."""
    local = Path(name)
    return local if local.exists() or not (_PACKAGE_ROOT / name).exists() else _PACKAGE_ROOT / name


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kafka_bootstrap_servers: str = Field("localhost:9092", description="Comma-separated host:port list.")
    feedback_topic: str = "feedback.events"
    followup_topic: str = "feedback.followups"
    metrics_topic: str = "feedback.metrics"
    dlq_topic: str = "feedback.dlq"
    survey_request_topic: str = Field(
        "feedback.survey.requests",
        description="survey.requested records: ask the customer again when their task is resolved.",
    )
    consumer_group: str = "feedback-worker"
    rules_path: Path = Field(default_factory=lambda: _shipped("rules"), description="A rules file or a directory of *.yaml.")
    templates_path: Path = Field(default_factory=lambda: _shipped("templates"))

    slack_bot_token: SecretStr | None = Field(None, description="Unset: alerts are printed to stdout instead of posted.")
    slack_api_url: str = "https://slack.com/api/"
    slack_default_channel: str | None = Field(None, description="Used when a rule names no channel.")
    slack_concurrency: int = Field(4, ge=1, le=64, description="Alerts posted in parallel.")
    slack_timeout_seconds: int = Field(10, ge=1, le=120, description="How long one Slack request may take.")
    slack_app_token: SecretStr | None = Field(
        None, description="An app-level token (xapp-, connections:write): buttons on alerts over Socket Mode; unset: none."
    )
    task_actors: list[str] = Field(
        default_factory=list, description="Slack users (U...) and user groups (S...) who may change tasks from Slack; empty: anyone."
    )
    slack_history_lookup: bool = Field(
        True, description="After a crash, search the channel before posting an alert again (channels:history scope)."
    )
    alert_record_retention: Duration = Field(
        timedelta(days=30), description="How long the record of each posted alert is kept in the state topic."
    )

    kafka_session_timeout_ms: int | None = Field(None, description="Unset: kafka-python's default.")
    kafka_heartbeat_interval_ms: int | None = None
    kafka_fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=60000,
        description="How long the broker may hold a fetch while waiting for new events: an alert's worst-case wait "
        "on a broker that holds the whole time (Tansu); real Kafka answers as soon as an event arrives.",
    )
    kafka_reconnect_backoff_max_ms: int = Field(
        1000,
        ge=50,
        le=60000,
        description="The longest wait between attempts to reach a broker that is down: how soon after it is back the "
        "worker goes on (kafka-python's own default, 30 s, left it idle up to half a minute more).",
    )
    kafka_auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new consumer group starts: earliest never skips feedback."
    )
    kafka_compression_type: Literal["lz4", "gzip", "snappy", "zstd", "none"] = "lz4"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    create_topics: bool = Field(True, description="Create missing output topics at start-up.")
    state_topic: str = Field(
        DEFAULT_STATE_TOPIC,
        description="Internal compacted topic of the worker's shared state: metric partials, throttle episodes, silences.",
    )
    metrics_state_topic: str | None = Field(None, description="Deprecated: the old name of STATE_TOPIC, still honoured.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Windows and dimensions (config file only).")
    routes: list[Any] = Field(
        default_factory=list, description="Channel and owner by event field, first match wins (config file only; see rules/routing.py)."
    )
    task_actions_topic: str = Field(
        "feedback.followups.actions", description="Actions on tasks from people and systems (acknowledge, resolve, ...)."
    )
    owners: dict[str, OwnerPool] = Field(default_factory=dict, description="Owner pools (config file only; see tasks/policy.py).")
    root_causes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ROOT_CAUSES), description="The root-cause taxonomy a task is resolved with (config file only)."
    )
    sla_calendar: SlaCalendar | None = Field(None, description="Business hours for SLA timers (config file only); none: wall-clock time.")
    root_cause_digest: RootCauseDigest | None = Field(
        None, description="The top root causes of each period's resolved tasks, posted to a channel (config file only); none: off."
    )
    root_cause_suggestion_min_examples: int = Field(
        20, ge=1, description="Tasks resolved with a root cause (and a comment) before a new task gets a suggested root cause."
    )

    _root_causes = field_validator("root_causes")(lambda cls, causes: check_root_causes(causes))

    @field_validator("task_actors", mode="before")
    @classmethod
    def _actors(cls, value: object) -> object:
        entries = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        for entry in entries if isinstance(entries, list) else []:
            if not (isinstance(entry, str) and entry[:1] in "UWS" and entry[1:].isalnum() and entry.isupper()):
                raise ValueError(f"{entry!r} is not a Slack user (U...) or user group (S...) id")
        return entries

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().startswith("xapp-"):
            raise ValueError("an app-level token starts with xapp- (Basic Information → App-Level Tokens, scope connections:write)")
        return token

    @field_validator("root_cause_digest")
    @classmethod
    def _digest_fits_retention(cls, digest: RootCauseDigest | None, info: ValidationInfo) -> RootCauseDigest | None:
        """The digest compares two periods of cases, and knows it posted a period by its record: both are kept for
        ALERT_RECORD_RETENTION, so two periods must fit in it."""
        retention = info.data.get("alert_record_retention")
        if digest is not None and retention is not None and 2 * digest.every > retention:
            raise ValueError(
                f"root_cause_digest.every ({format_duration(digest.every)}) is more than half of ALERT_RECORD_RETENTION "
                f"({format_duration(retention)}): the digest compares two periods of tasks, and finished tasks and "
                f"the record of each post are kept that long; set ALERT_RECORD_RETENTION to at least "
                f"{format_duration(2 * digest.every)}"
            )
        return digest

    @property
    def task_policy(self) -> TaskPolicy:
        return TaskPolicy(owners=self.owners, root_causes=self.root_causes, sla_calendar=self.sla_calendar)

    commit_interval_seconds: float = Field(1.0, gt=0, description="Offsets are committed this often, not per message.")
    max_in_flight_alerts: int = Field(
        1000,
        ge=1,
        description="Events whose work is not done yet (an alert waiting for its pool's member, a card update for "
        "Slack) before fetching pauses. Alerts do not wait for Slack: they are owed (MAX_OWED_PER_CHANNEL).",
    )
    max_owed_per_channel: int = Field(
        500,
        ge=1,
        description="Posts this worker owes one channel that Slack has not answered yet (Slack down or slow): past "
        "this, new alerts for the channel go into its rate-limit summary until it catches up. Never dropped, never a pause.",
    )
    shutdown_timeout_seconds: float = Field(5.0, ge=0, description="On SIGTERM, how long to wait for alerts in hand.")
    stats_interval_seconds: float = Field(60.0, gt=0, description="How often a progress line is logged.")
    http_port: int = Field(
        9464, ge=0, le=65535, description="/metrics (Prometheus), /healthz and /readyz are served on this port; 0: not served."
    )
    health_poll_timeout_seconds: float = Field(
        60.0, gt=0, description="/healthz fails once the loop has not polled Kafka for this long (a rebalance can take ~30 s)."
    )
    channel_rate_limit_per_minute: int = Field(
        20, ge=0, description="Top-level alerts per channel per minute; more are batched into one summary. 0: no limit."
    )
    reload_interval_seconds: float = Field(2.0, ge=0, description="How often rules and templates are checked for edits; 0: only on SIGHUP.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="text: for people; json: one object per line, for log pipelines.")

    def secrets(self) -> list[str]:
        """Secret values, for the log redaction filter."""
        secrets = (self.slack_bot_token, self.slack_app_token, self.kafka_sasl_password)
        return [s.get_secret_value() for s in secrets if s and s.get_secret_value()]


#: The settings held as SecretStr: never shown in an error, scrubbed from every log line.
SECRET_SETTINGS = ("slack_bot_token", "slack_app_token", "kafka_sasl_password")

#: Nested settings (`metrics:`) come from the config file only.
CONFIG_FILE_ONLY = ("metrics", "routes", "owners", "root_causes", "sla_calendar", "root_cause_digest")
ENV_NAMES = {name.upper(): name for name in Settings.model_fields if name not in CONFIG_FILE_ONLY}


class ConfigError(Exception):
    """A bad setting: names the variable (or file:line) and what is wrong, never a secret's value."""


def load_settings(config_file: Path | str | None = None, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if config_file is not None:
        document = load_yaml(config_file)
        if document is not None and not isinstance(document, LineDict):
            raise ConfigError(f"{config_file}:1: expected a mapping of settings")
        document = document if document is not None else LineDict()  # an empty file: no settings
        for key, value in document.items():
            name = str(key).lower()
            if name not in Settings.model_fields:
                raise ConfigError(f"{document.where(key)}: unknown setting {key!r}")
            values[name] = value
            origin[name] = str(document.where(key))
    for env_name, name in ENV_NAMES.items():
        if environ.get(env_name, "") != "":
            values[name] = environ[env_name]
            origin[name] = f"environment variable {env_name}"
    values.update({k: v for k, v in overrides.items() if v is not None})
    legacy = values.get("metrics_state_topic")
    if legacy is not None:  # the old name of STATE_TOPIC; service.py warns about it once at start-up
        if "state_topic" in values and values["state_topic"] != legacy:
            raise ConfigError(
                f"{origin.get('metrics_state_topic', 'METRICS_STATE_TOPIC')} ({legacy}) and "
                f"{origin.get('state_topic', 'STATE_TOPIC')} ({values['state_topic']}) differ: "
                "METRICS_STATE_TOPIC is the old name of STATE_TOPIC; set only STATE_TOPIC"
            )
        values["state_topic"] = legacy
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            name = str(err["loc"][0]) if err["loc"] else ""
            secret = name in SECRET_SETTINGS
            shown = "" if secret or "input" not in err or isinstance(err["input"], dict) else f" (got {err['input']!r})"
            inner = ".".join(str(part) for part in err["loc"][1:])
            problems.append(f"{origin.get(name, name.upper())}: {inner + ': ' if inner else ''}{err['msg']}{shown}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from None


def early_logging(environ: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """LOG_FORMAT and the secrets from the environment alone, before the settings are loaded.

    A start-up error (a bad setting, a bad rule) must come out in the format the log pipeline
    expects, and scrubbed, even though the settings that say so could not be loaded.
    """
    environ = os.environ if environ is None else environ
    fmt = environ.get("LOG_FORMAT", "")
    secrets = [environ[name.upper()] for name in SECRET_SETTINGS if environ.get(name.upper())]
    return ("json" if fmt == "json" else "text"), secrets


def deprecations(settings: Settings) -> list[str]:
    """What the operator should rename, logged once at start-up."""
    if settings.metrics_state_topic is None:
        return []
    return [
        f"METRICS_STATE_TOPIC is deprecated: it is now STATE_TOPIC (the topic holds all of the worker's shared state, "
        f"not only metrics). Using {settings.state_topic}; rename the variable, both names work for now."
    ]


__all__ = [
    "ConfigError",
    "DEFAULT_STATE_TOPIC",
    "LEGACY_STATE_TOPIC",
    "SECRET_SETTINGS",
    "Settings",
    "SourceError",
    "deprecations",
    "early_logging",
    "load_settings",
]
