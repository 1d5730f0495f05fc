"""Every problem of every rule in one run: `rules check` lists them all, each with its file:line.

A rule with a bad severity, a broken regex and a misspelt field used to take three runs to
fix; now one run names all three. The CLI test runs the real command; the others check the
collector (yamlsource.Problems) and that no mistake hides another or is reported twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.config import ConfigError, load_settings
from worker.events import KNOWN_PATHS
from worker.loop.startup import make_router
from worker.notation.yamlsource import Location, Problems
from worker.rules import RulesError, load_rules

ROOT = Path(__file__).resolve().parents[2]
KNOWN_OPS = "(known: eq, ne, lt, lte, gt, gte, in, not_in, contains, contains_any, matches, exists)"


def line_of(text: str, needle: str, nth: int = 1) -> int:
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(found) >= nth, f"{needle!r} is not in the YAML {nth} time(s)"
    return found[nth - 1]


def problems(path: Path, templates: Path | None = None) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_rules(path, templates)
    return [str(e) for e in caught.value.errors]


SIX_MISTAKES = (
    "rules:\n"
    "  - id: fine\n"
    "    when: {survey: nps}\n"
    "  - id: careless\n"
    "    sevrity: high\n"  # unknown key
    "    severity: urgent\n"  # bad severity
    "    when:\n"
    "      survey: nps\n"
    "      comment: {matches: '(refund'}\n"  # invalid regular expression
    "      customer.segmnt: enterprise\n"  # unknown field path
    "      score: {below: 7}\n"  # unknown operator
    "    followup:\n"
    "      owner: cx\n"
    "      due_in: soon\n"  # bad duration
)


def test_rules_check_prints_all_six_mistakes_of_one_rule_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "careless.yaml"
    path.write_text(SIX_MISTAKES, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_", "RULES_", "TEMPLATES_"))}
    result = subprocess.run(
        [sys.executable, "-m", "worker", "rules", "check", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    at = lambda needle: f"  {path}:{line_of(SIX_MISTAKES, needle)}: rule 'careless': "  # noqa: E731
    assert result.stderr.splitlines() == [
        "error: 6 problem(s) in rules:",
        at("sevrity") + "unknown key 'sevrity' (expected: id, description, when, severity, followup, alert, throttle, group)",
        at("urgent") + "severity must be one of critical, high, medium, low, info, got 'urgent'",
        at("(refund") + "when.comment.matches: invalid regular expression '(refund': missing ), unterminated subpattern at position 0",
        at("segmnt")
        + f"when: unknown field path 'customer.segmnt' (known: {', '.join(sorted(KNOWN_PATHS))}, comment.themes, attributes.<name>, or all/any/not)",
        at("below") + f"when.score: unknown operator 'below' {KNOWN_OPS}",
        at("soon") + "followup.due_in: bad duration 'soon': use a positive number and a unit, like 30s, 15m, 4h, 2d or 1w",
    ]


def test_the_collector_orders_by_file_then_line_and_keeps_the_order_found_within_a_line() -> None:
    found = Problems()
    found.add(Location("b.yaml", 2), "b2")
    found.add(Location("a.yaml", 9), "a9 first")
    found.add(Location("a.yaml", 3), "a3")
    found.add(Location("a.yaml", 9), "a9 second")
    assert len(found) == 4 and found
    assert [e.message for e in found.ordered()] == ["a3", "a9 first", "a9 second", "b2"]
    # The load order of the files wins over their names (a directory is read in name order, a list need not be).
    assert [e.message for e in found.ordered(["b.yaml", "a.yaml"])] == ["b2", "a3", "a9 first", "a9 second"]
    assert [str(e) for e in found.ordered()][0] == "a.yaml:3: a3"
    assert not Problems()


def test_sibling_keys_list_items_and_nested_combinators_each_report_their_mistake(tmp_path: Path) -> None:
    text = (
        "rules:\n"
        "  - id: r\n"
        "    when:\n"
        "      any:\n"
        "        - score: {lte: six}\n"
        "        - customer.segment:\n"
        "            in: [enterprise, null, 3]\n"
        "      not:\n"
        "        survey: nsp\n"
        "      all: []\n"
        "      comment: {contains: 'x', ignore_accents: maybe}\n"
    )
    path = tmp_path / "r.yaml"
    path.write_text(text)
    at = lambda needle, nth=1: f"{path}:{line_of(text, needle, nth)}: rule 'r': when"  # noqa: E731
    assert problems(path) == [
        at("six") + ".any[0].score.lte: score is a number, got str 'six'",
        # both bad items of one list, each with its index (the YAML flow list is on one line)
        at("in:") + ".any[1].customer.segment.in[1]: null is not a value to compare; use `exists: false` for a missing field",
        at("in:") + ".any[1].customer.segment.in[2]: customer.segment is text, got int 3; quote it",
        at("nsp") + ".not.survey: survey is one of nps, csat, ces, got str 'nsp'",
        at("all:") + ".all: expected a non-empty list of conditions",
        at("ignore_accents") + ".comment.ignore_accents: expected true or false",
    ]


def test_a_mistake_is_reported_once_not_followed_by_complaints_it_caused(tmp_path: Path) -> None:
    # The only operator is unknown: "no operator given" would be a second, misleading message.
    text = "rules:\n  - id: r\n    when:\n      score: {below: 3, ignore_accents: true}\n"
    path = tmp_path / "r.yaml"
    path.write_text(text)
    assert problems(path) == [f"{path}:4: rule 'r': when.score: unknown operator 'below' {KNOWN_OPS}"]


def test_every_pydantic_error_of_a_block_is_its_own_located_problem(tmp_path: Path) -> None:
    text = (
        "rules:\n"
        "  - id: r\n"
        "    when: {survey: nps}\n"
        "    followup:\n"
        "      owner: ''\n"
        "      due_in: 0s\n"
        "      guidance: {hear: 3, fly: x}\n"
        "    throttle:\n"
        "      key: customer.idd\n"
        "    group:\n"
        "      by: [customer.segment]\n"
        "      max_items: 0\n"
        "      wait: forever\n"
    )
    path = tmp_path / "r.yaml"
    path.write_text(text)
    found = problems(path)
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines)
    where = {p.split(": ", 2)[2].split(":")[0]: int(p.split(":")[1]) for p in found}
    assert where["followup.owner"] == line_of(text, "owner")
    assert where["followup.due_in"] == line_of(text, "due_in")
    assert where["followup.guidance.hear"] == line_of(text, "guidance")
    assert where["followup.guidance.fly.[key]"] == line_of(text, "guidance")
    assert where["throttle.key"] == line_of(text, "customer.idd")
    assert where["throttle.window"] == line_of(text, "customer.idd")  # missing: the block's first line
    assert where["group.max_items"] == line_of(text, "max_items")
    assert where["group.wait"] == line_of(text, "forever")
    assert len(found) == 8, found


def test_a_rule_without_a_usable_id_is_still_checked_and_named_by_its_place(tmp_path: Path) -> None:
    text = "rules:\n  - id: ok\n    when: {survey: nps}\n  - severity: urgent\n    when: {scor: 3}\n"
    path = tmp_path / "r.yaml"
    path.write_text(text)
    found = problems(path)
    assert found[0] == f"{path}:4: rule id must be text of letters, digits, '.', '_' or '-', got None"
    assert found[1] == f"{path}:4: rules[1]: severity must be one of critical, high, medium, low, info, got 'urgent'"
    assert found[2].startswith(f"{path}:5: rules[1]: when: unknown field path 'scor'")
    assert len(found) == 3


def test_a_missing_template_is_reported_alongside_another_mistake_in_the_alert_block(tmp_path: Path) -> None:
    text = "rules:\n  - id: r\n    when: {survey: nps}\n    alert:\n      chanel: '#cx'\n      template: nope.j2\n"
    path = tmp_path / "r.yaml"
    path.write_text(text)
    found = problems(path, ROOT / "templates")
    assert found[0].startswith(f"{path}:5: rule 'r': alert.chanel: unknown key")
    assert found[1].startswith(f"{path}:6: rule 'r': template 'nope.j2' not found")
    assert len(found) == 2


def test_every_route_mistake_is_reported_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    text = (
        "routes:\n  - when: {customer.segmnt: enterprise}\n    channel: '#x'\n  - channel: 7\n    ownr: cx\n  - when: {score: {lt: low}}\n"
    )
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        make_router(load_settings(config, environ={}))
    found = str(caught.value).splitlines()
    assert found[0].startswith(f"{config}:2: routes[0].when: unknown field path 'customer.segmnt'")
    assert found[1:] == [
        f"{config}:4: routes[1].channel: expected text",
        f"{config}:5: routes[1]: unknown key 'ownr' (expected: when, channel, owner)",
        f"{config}:6: routes[2]: give a channel, an owner or both",
        f"{config}:6: routes[2].when.score.lt: score is a number, got str 'low'",
    ]
