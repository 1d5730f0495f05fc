"""`feedback-worker rules check PATH [--templates DIR]` as an operator runs it before a deploy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from worker.cli import EXIT_OK, EXIT_USAGE
from worker.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]


def check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m worker rules check ...` from the repo root, without any worker settings in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_", "RULES_", "TEMPLATES_"))}
    return subprocess.run(
        [sys.executable, "-m", "worker", "rules", "check", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_the_shipped_rules_pass_with_a_summary_that_matches_the_files() -> None:
    result = check("rules/")
    assert result.returncode == EXIT_OK == 0, result.stderr
    assert result.stderr == ""
    rules = load_rules(ROOT / "rules")
    line, tests_line = result.stdout.splitlines()  # the second: the rules files' own tests (tests/test_ruletests.py)
    assert re.fullmatch(r"ok: \d+ rule test\(s\) pass", tests_line)
    assert line.startswith(f"ok: {len(rules)} rules and {len(rules.metric_rules)} metric rule(s) in {len(rules.files)} file(s) (")
    assert line.endswith("; templates render")
    counts = dict((sev, int(n)) for n, sev in re.findall(r"(\d+) (critical|high|medium|low|info)", line))
    every = [*rules.rules, *rules.metric_rules]
    assert counts == {sev: sum(r.severity == sev for r in every) for sev in {r.severity for r in every}}
    assert list(counts) == [s for s in ("critical", "high", "medium", "low", "info") if s in counts]  # most severe first


def test_a_broken_file_exits_2_with_file_line_rule_and_key(tmp_path: Path) -> None:
    text = "rules:\n  - id: fine\n    when: {survey: nps}\n  - id: typo\n    when:\n      score:\n        lesser: 3\n"
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = check(path)
    assert result.returncode == EXIT_USAGE == 2
    assert "ok:" not in result.stdout
    assert result.stderr.splitlines() == [
        "error: 1 problem(s) in rules:",
        f"  {path}:{line_of(text, 'lesser')}: rule 'typo': when.score: unknown operator 'lesser' "
        "(known: eq, ne, lt, lte, gt, gte, in, not_in, contains, contains_any, matches, exists)",
    ]


def test_every_problem_is_printed_on_its_own_line(tmp_path: Path) -> None:
    a_text = "rules:\n  - id: a\n    when:\n      score: {lte: six}\n  - id: b\n    when: {survey: nps}\n    severity: urgent\n"
    b_text = "rules:\n  - id: a\n    when: {survey: csat}\n"
    c_text = "rules:\n  - id: c\n    when:\n\tsurvey: nps\n"  # a tab cannot indent YAML
    a, b, c = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    a.write_text(a_text)
    b.write_text(b_text)
    c.write_text(c_text)
    result = check(tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "error: 4 problem(s) in rules:"
    assert lines[1].startswith(f"  {a}:{line_of(a_text, 'six')}: rule 'a': when.score.lte: score is a number")
    assert lines[2].startswith(f"  {a}:{line_of(a_text, 'urgent')}: rule 'b': severity must be one of")
    assert lines[3] == f"  {b}:{line_of(b_text, 'id: a')}: duplicate rule id 'a' (first defined at {a}:{line_of(a_text, 'id: a')})"
    assert lines[4].startswith(f"  {c}:{line_of(c_text, chr(9))}: invalid YAML: ")
    assert len(lines) == 5


def test_templates_option_checks_that_each_rules_template_exists(tmp_path: Path) -> None:
    text = "rules:\n  - id: a\n    when: {survey: nps}\n    alert:\n      template: detractor.slack.j2\n"
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    only_default = tmp_path / "templates"
    only_default.mkdir()
    (only_default / "alert.slack.j2").write_text((ROOT / "templates" / "alert.slack.j2").read_text())
    result = check(path, "--templates", only_default)
    assert result.returncode == 2
    assert (
        f"  {path}:{line_of(text, 'template:')}: rule 'a': template 'detractor.slack.j2' not found (available: alert.slack.j2)"
    ) in result.stderr.splitlines()


def test_a_template_that_does_not_render_fails_the_check(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - id: a\n    when: {survey: nps}\n")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "alert.slack.j2").write_text('{"text": "hi"}\n{{ broken\n')
    result = check(path, "--templates", templates)
    assert result.returncode == 2
    assert "ok:" not in result.stdout
    assert "alert.slack.j2:" in result.stderr and "TemplateSyntaxError" in result.stderr


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = check(missing)
    assert result.returncode == 2
    assert f"{missing}:0: no such rules file or directory" in result.stderr
