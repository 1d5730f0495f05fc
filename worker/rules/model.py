"""The rule model: a rule compiled for the hot path, the rule set, and what one event matched.

One event opens at most one task and one alert: among the rules that match, the one with
the highest severity owns it (ties: the first in file order), and the task and the alert
list every rule that matched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..events import FeedbackEvent
from ..metrics import MetricRule
from ..tasks import SEVERITY_RANK, FollowupSpec, Severity
from ..yamlsource import Location
from .blocks import AlertSpec, GroupSpec, ThrottleSpec
from .conditions import Predicate


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    severity: Severity
    when: Predicate = field(repr=False)
    followup: FollowupSpec
    alert: AlertSpec
    location: Location
    order: int  # position across all files: ties in severity go to the lower number
    throttle: ThrottleSpec | None = None  # one task and one Slack thread per key per window
    group: GroupSpec | None = None  # batch this rule's alerts into digests

    @property
    def rank(self) -> tuple[int, int]:
        return (SEVERITY_RANK[self.severity], -self.order)


@dataclass(frozen=True)
class Match:
    """The outcome for one event: the owning rule and every rule that matched."""

    owner: Rule
    rules: tuple[Rule, ...]

    @property
    def rule_ids(self) -> list[str]:
        return [rule.id for rule in self.rules]


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    files: tuple[str, ...] = ()
    metric_rules: tuple[MetricRule, ...] = ()  # `when: {metric: ...}`: checked on snapshots, not events

    def evaluate(self, event: FeedbackEvent) -> Match | None:
        """The hot path: run every precompiled predicate once."""
        matched = [rule for rule in self.rules if rule.when(event)]
        if not matched:
            return None
        owner = matched[0] if len(matched) == 1 else max(matched, key=lambda rule: rule.rank)
        return Match(owner=owner, rules=tuple(matched))

    def __len__(self) -> int:
        return len(self.rules)
