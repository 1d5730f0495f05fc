"""The rule model: a rule compiled for the hot path, the rule set, and what one event matched.

One event opens at most one task and one alert: among the rules that match, the one with
the highest severity owns it (ties: the first in file order), and the task and the alert
list every rule that matched.

The hot path runs few tests per event: every rule is specialised, at load time, for each
(survey, score) a valid event can have (conditions.specialize). Most rules test the survey or
the score, so most events leave one or two rules with something to check, and those only their
other fields; what is left is one generated function per (survey, score) (compiled.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..events import NO_THEME_IDS, VALID_SCORES, EventData, FeedbackEvent
from ..metrics import MetricRule
from ..notation import Location
from ..tasks import SEVERITY_RANK, FollowupSpec, Severity
from ..themes import NO_THEMES, EmergingSpec, Tagging, ThemeMatcher, ThemeSet
from .blocks import AlertSpec, GroupSpec, ThrottleSpec
from .compiled import Form, matcher
from .conditions import Cond, specialize

#: Per valid (survey, score): a function of the event returning the rules it matches, in file order.
Matchers = dict[tuple[str, int], Callable[[Any], list["Rule"]]]


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    severity: Severity
    when: Callable[[EventData], bool] = field(repr=False)  # the condition over EventData (events.event_data)
    condition: Cond = field(repr=False, compare=False)  # `when` as a tree: what the pre-filter specialises
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
    themes: ThemeSet = NO_THEMES  # `themes:` in the rules files: what `comment.themes` and the snapshots count
    emerging: EmergingSpec | None = None  # `emerging:`: rising complaints, when on
    # Built in __post_init__: not arguments, and no part of the value (repr, ==, hash).
    _data: Matchers = field(init=False, repr=False, compare=False)
    _tagger: ThemeMatcher | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_data", _matchers(self.rules, "data"))
        object.__setattr__(self, "_tagger", ThemeMatcher(self.themes) if len(self.themes) else None)

    @property
    def matcher(self) -> ThemeMatcher | None:
        """The themes' matcher (None: no themes): what `tag` uses, for whoever tags other text alike."""
        return self._tagger

    def tag(self, data: EventData) -> Tagging | None:
        """The themes `data`'s comment mentions, set as `data["themes"]` for rules and metrics to read.

        None: no themes defined, or no comment (then `data["themes"]` is empty). Deterministic: every
        replica tags an answer alike, whatever it tagged before (the caches only save time)."""
        if self._tagger is None:
            return None
        comment = data["comment"]
        if not comment:
            data["themes"] = NO_THEME_IDS
            return None
        tagging = self._tagger.tag(comment, data.get("language"))
        data["themes"] = tagging.themes
        return tagging

    def evaluate(self, event: FeedbackEvent) -> Match | None:
        """Every rule that matches `event`, and the one that owns it (not on the hot path: `evaluate_data` is)."""
        data = event.model_dump()
        self.tag(data)
        if (event.survey, event.score) not in self._data:  # not a valid event (a model built without validation)
            return _match([rule for rule in self.rules if rule.when(data)])
        return self.evaluate_data(data)

    def evaluate_data(self, data: EventData) -> Match | None:
        """`evaluate` for the hot path's EventData (events.event_data): the same answer, without the models.

        `data` is tagged first (`tag`) unless the caller did."""
        if self._tagger is not None and "themes" not in data:
            self.tag(data)
        matcher = self._data.get((data["survey"], data["score"]))
        if matcher is None:
            raise ValueError(f"not a valid event: {data['survey']!r} score {data['score']!r}")
        matched = matcher(data)
        return _match(matched) if matched else None  # most events: no match, no further call

    def __len__(self) -> int:
        return len(self.rules)


def _match(matched: list[Rule]) -> Match | None:
    if not matched:
        return None
    owner = matched[0] if len(matched) == 1 else max(matched, key=lambda rule: rule.rank)
    return Match(owner=owner, rules=tuple(matched))


def _matchers(rules: tuple[Rule, ...], form: Form) -> Matchers:
    table: Matchers = {}
    for survey, score in sorted(VALID_SCORES):
        rests = [(rule, specialize(rule.condition, {"survey": survey, "score": score})) for rule in rules]
        table[(survey, score)] = matcher([(rule, rest) for rule, rest in rests if rest is not False], form)
    return table
