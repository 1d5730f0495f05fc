"""What a configuration names in Slack (channels, users, user groups), and the scopes its bot token needs. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...config import Settings
from ...rules import RuleSet

MANIFEST = "deploy/slack/manifest.yaml"

#: Every scope the bot token may need, and what for: the bot scopes of deploy/slack/manifest.yaml and of
#: docs/slack.md's "Required scopes" table (tests/test_manifest.py keeps the three the same).
BOT_SCOPES: dict[str, str] = {
    "chat:write": "alerts, task cards, thread lines",
    "channels:history": "finding an alert again after a crash (SLACK_HISTORY_LOOKUP), in public channels",
    "groups:history": "finding an alert again after a crash (SLACK_HISTORY_LOOKUP), in private channels",
    "channels:read": "a channel's id from its name, for the history search (SLACK_HISTORY_LOOKUP); doctor's channel check",
    "groups:read": "the same for private channels",
    "usergroups:read": "TASK_ACTORS naming user groups (S…)",
    "users:read": "doctor's check that owners and pool members are users",
}
HISTORY_SCOPES = ("channels:history", "groups:history", "channels:read", "groups:read")
#: The app-level token's one scope (SLACK_APP_TOKEN): Socket Mode.
APP_SCOPE = "connections:write"

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
GROUP_ID = re.compile(r"^S[A-Z0-9]{2,20}$")
CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{8,}$")


@dataclass
class Named:
    """The channels and people a configuration names in Slack, each with where (a rule, a route, a setting)."""

    channels: dict[str, list[str]] = field(default_factory=dict)  # "#name" or an id -> where
    templated: dict[str, list[str]] = field(default_factory=dict)  # a channel or owner template -> where
    users: dict[str, list[str]] = field(default_factory=dict)  # U… / W… -> where
    groups: dict[str, list[str]] = field(default_factory=dict)  # S… (user groups) -> where
    names: dict[str, list[str]] = field(default_factory=dict)  # owners that are neither ids nor pools (team names)


def named_in(settings: Settings, rules: RuleSet | None) -> Named:
    """Which Slack channels, users and user groups `settings` and `rules` name, and where.

    Channels: each rule's and metric rule's `alert.channel`, escalation channels, routes,
    SLACK_DEFAULT_CHANNEL and the root-cause digest's (rule digests and rate-limit summaries go
    to their rule's channel). People: rule, metric rule, escalation and route owners, the
    members of owner pools and TASK_ACTORS. A pool's name is not a person; a value with `{{` is a
    template, known only once an event arrives.
    """
    named = Named()

    def channel(value: str | None, where: str) -> None:
        if not value or not value.strip("#").strip():
            return
        if "{{" in value:
            named.templated.setdefault(value, []).append(where)
        else:
            key = value if CHANNEL_ID.match(value) else "#" + value.removeprefix("#")
            named.channels.setdefault(key, []).append(where)

    def owner(value: str | None, where: str) -> None:
        if not value:
            return
        if "{{" in value:
            named.templated.setdefault(value, []).append(where)
        elif value in settings.owners:
            return  # a pool: its members are named below
        elif USER_ID.match(value):
            named.users.setdefault(value, []).append(where)
        elif GROUP_ID.match(value):
            named.groups.setdefault(value, []).append(where)
        else:
            named.names.setdefault(value, []).append(where)

    for rule in rules.rules if rules is not None else ():
        where = f"rule {rule.id} ({rule.location})"
        channel(rule.alert.channel, where)
        if "owner" in rule.followup.model_fields_set:  # else routes, then the default owner
            owner(rule.followup.owner, where)
        escalate = rule.followup.escalate_to
        if escalate is not None:
            channel(escalate.channel, f"{where} escalate_to")
            owner(escalate.owner, f"{where} escalate_to")
    for metric_rule in rules.metric_rules if rules is not None else ():
        where = f"metric rule {metric_rule.id} ({metric_rule.location})"
        channel(metric_rule.channel, where)
        owner(metric_rule.owner, where)
    for index, route in enumerate(settings.routes):
        if isinstance(route, Mapping):
            location = getattr(route, "location", None)
            where = f"routes[{index}]" + (f" ({location})" if location is not None else "")
            channel(_text(route.get("channel")), where)
            owner(_text(route.get("owner")), where)
    channel(settings.slack_default_channel, "SLACK_DEFAULT_CHANNEL")
    if settings.root_cause_digest is not None:
        channel(settings.root_cause_digest.channel, "root_cause_digest")
    for pool, spec in settings.owners.items():
        for member in spec.members:
            named.users.setdefault(member, []).append(f"owners.{pool}")
    for actor in settings.task_actors:
        (named.groups if GROUP_ID.match(actor) else named.users).setdefault(actor, []).append("TASK_ACTORS")
    return named


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def required_scopes(settings: Settings, named: Named) -> dict[str, str]:
    """The bot scopes this configuration cannot run without, and why."""
    needed = {"chat:write": BOT_SCOPES["chat:write"]}
    if settings.slack_history_lookup:
        needed |= {scope: "SLACK_HISTORY_LOOKUP is on (finding an alert again after a crash)" for scope in HISTORY_SCOPES}
    if any(GROUP_ID.match(actor) for actor in settings.task_actors):
        needed["usergroups:read"] = "TASK_ACTORS names user groups"
    return needed
