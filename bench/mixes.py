"""The rule sets the benchmarks run, derived from the shipped rules in a temporary directory.

- shipped: rules/ as shipped (about 1 in 5 of the demo's events alerts).
- quiet:   the shipped rules, each ANDed with a last condition no event meets. Nothing alerts,
           and every rule still pays for its shipped condition first: the cost of an event that
           needs no alert, under real rules. The shipped metric rule stays (it watches snapshots).
- burst:   the shipped rules plus a lowest-severity rule every valid event matches, so every
           event opens a task and an alert (the shipped rules keep the events they own).

The rule tests of the shipped files are left out of the derived copies: they describe the
shipped rules, not these. The shipped themes (`themes:`) and rising complaints (`emerging:`) are kept;
`themes=False` leaves them out, and the rules that test `comment.themes`: an answer without tagging.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

MIXES = ("shipped", "quiet", "burst")
NEVER = "bench-never-matches"  # no event has this event_id
BURST_CHANNEL = "#cx-every-answer"


def rules_for(mix: str, rules_dir: Path, metrics: bool = True, themes: bool = True) -> Path:
    """A rules directory for `mix` (`metrics=False`: without metric rules, which need metrics on;
    `themes=False`: without themes, nor the rules on them)."""
    if mix == "shipped" and metrics and themes:
        return rules_dir
    out = Path(tempfile.mkdtemp(prefix=f"bench-rules-{mix}-"))
    for path in sorted(rules_dir.glob("*.yaml")):
        document = yaml.safe_load(path.read_text()) or {}
        rules = []
        for rule in document.get("rules", []):
            when = rule.get("when") or {}
            if "metric" in when:
                if metrics:
                    rules.append(rule)
                continue
            if not themes and "comment.themes" in yaml.safe_dump(when):
                continue
            if mix == "quiet":
                rule = rule | {"when": {"all": [when, {"event_id": NEVER}]}}
            rules.append(rule)
        if mix == "burst" and path == sorted(rules_dir.glob("*.yaml"))[0]:
            rules.append(
                {
                    "id": "every-answer",
                    "description": "Every answer (benchmark)",
                    "when": {"survey": {"in": ["nps", "csat", "ces"]}},
                    "severity": "info",
                    "followup": {"owner": "bench", "due_in": "7d"},
                    "alert": {"channel": BURST_CHANNEL},
                }
            )
        kept = ("themes", "emerging") if themes else ()  # rising complaints count the terms of unhappy comments
        derived = {"rules": rules} | {key: document[key] for key in kept if document.get(key)}
        (out / path.name).write_text(yaml.safe_dump(derived, allow_unicode=True, sort_keys=False))
    return out
