"""Loading rules files: every mistake is reported as `file:line: rule 'id': key: problem`.

Line numbers are computed from the YAML each test writes (the line holding the offending
key), so a test fails if an error points anywhere else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.events import FeedbackEvent
from worker.rules import RulesError, load_rules

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based number of the nth line of `text` containing `needle`."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(found) >= nth, f"{needle!r} is not in the YAML {nth} time(s)"
    return found[nth - 1]


def problems(path: Path, templates: Path | None = None) -> list[str]:
    """Every error load_rules reports, as the `file:line: ...` text a user sees."""
    with pytest.raises(RulesError) as caught:
        load_rules(path, templates)
    assert str(caught.value) == "\n".join(str(e) for e in caught.value.errors)
    return [str(e) for e in caught.value.errors]


def only_problem(path: Path, templates: Path | None = None) -> str:
    (problem,) = problems(path, templates)
    return problem


# -- invalid YAML -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bad_line"),
    [
        ("rules:\n  - id: a\n    when:\n\tsurvey: nps\n", "\tsurvey"),  # a tab cannot indent YAML
        ("rules:\n  - id: a\n    when:\n      survey: nps\n     score: 3\n", "     score"),  # bad indentation
        ("rules:\n  - id: a\n    when: {survey: nps}\n    description: 'never closed\n", None),  # runs to end of file
    ],
)
def test_invalid_yaml_names_the_file_and_line(tmp_path: Path, text: str, bad_line: str | None) -> None:
    path = write(tmp_path / "broken.yaml", text)
    line = line_of(text, bad_line) if bad_line else len(text.splitlines()) + 1
    assert only_problem(path).startswith(f"{path}:{line}: invalid YAML: ")


def test_a_key_given_twice_in_one_mapping_is_an_error_not_last_one_wins(tmp_path: Path) -> None:
    text = "rules:\n  - id: a\n    when:\n      score: {lte: 6}\n      survey: nps\n      score: {gte: 9}\n"
    path = write(tmp_path / "r.yaml", text)
    assert only_problem(path) == f"{path}:{line_of(text, 'score', nth=2)}: duplicate key 'score'"


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("rules:\n  - id: a\n    description: Reembolsó\n    when: {survey: nps}\n".encode("latin-1"))
    assert only_problem(path).startswith(f"{path}:1: file is not UTF-8 text")


# -- mistakes inside `when:` ------------------------------------------------------------

WHEN_MISTAKES = [
    # (when-body lines, the line text to point at, expected `key: problem` after the rule name)
    (["score:", "  lesser: 3"], "lesser", "when.score: unknown operator 'lesser' (known: eq, ne, lt, lte, gt, gte, in, not_in"),
    (["score:", "  lte: six"], "lte", "when.score.lte: score is a number, got str 'six'"),
    (["survey: nps", "scor: 3"], "scor", "when: unknown field path 'scor' (known: "),
    (["customer.tier: gold"], "customer.tier", "when: unknown field path 'customer.tier'"),
    (["any:", "  - survey: nps", "  - attributes.: x"], "attributes.:", "when.any[1]: unknown field path 'attributes.'"),
    (["lte: 3"], "lte", "when: operator 'lte' needs a field, e.g. `score: {lte: ...}`"),
    (["comment:", "  matches: '(unclosed'"], "matches", "when.comment.matches: invalid regular expression '(unclosed': missing )"),
    (["comment:", "  eq: null"], "eq: null", "when.comment.eq: null is not a value to compare; use `exists: false`"),
    (["survey: nps", "comment:"], "comment:", "when.comment: null is not a value to compare"),  # an empty value is null
    (["customer.segment:", "  in:", "    - enterprise", "    - null"], "- null", "when.customer.segment.in[1]: null is not a value"),
]


@pytest.mark.parametrize(("body", "at", "expected"), WHEN_MISTAKES, ids=[m[2].split(":")[0] + ":" + m[1] for m in WHEN_MISTAKES])
def test_a_mistake_in_when_names_file_line_rule_and_key(tmp_path: Path, body: list[str], at: str, expected: str) -> None:
    text = "rules:\n  - id: ok\n    when: {survey: nps}\n  - id: broken\n    when:\n"
    text += "".join(f"      {line}\n" for line in body) + "    severity: high\n"
    path = write(tmp_path / "rules.yaml", text)
    assert only_problem(path).startswith(f"{path}:{line_of(text, at)}: rule 'broken': {expected}")


# -- mistakes in the rest of a rule -----------------------------------------------------


@pytest.mark.parametrize("due_in", ["4 hours", "0s", "0.0000001s", "99999999999999d", "3651d", "-1h", "90"])
def test_a_bad_duration_names_followup_due_in(tmp_path: Path, due_in: str) -> None:
    text = f"rules:\n  - id: slow\n    when: {{survey: nps}}\n    followup:\n      owner: cx\n      due_in: {due_in}\n"
    path = write(tmp_path / "rules.yaml", text)
    problem = only_problem(path)
    assert problem.startswith(f"{path}:{line_of(text, 'due_in')}: rule 'slow': followup.due_in: bad duration ")
    assert due_in in problem  # the value as the user wrote it


def test_the_longest_duration_allowed_is_ten_years(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", "rules:\n  - id: a\n    when: {survey: nps}\n    followup: {due_in: 3650d}\n")
    assert load_rules(path).rules[0].followup.due_in.days == 3650
    write(path, "rules:\n  - id: a\n    when: {survey: nps}\n    followup: {due_in: 3651d}\n")
    assert "at most 3650d" in only_problem(path)


def test_a_missing_template_names_the_template_key(tmp_path: Path) -> None:
    text = "rules:\n  - id: a\n    when: {survey: nps}\n    alert:\n      channel: '#cx'\n      template: nope.slack.j2\n"
    path = write(tmp_path / "rules.yaml", text)
    assert only_problem(path, TEMPLATES) == (
        f"{path}:{line_of(text, 'template')}: rule 'a': template 'nope.slack.j2' not found "
        f"(available: {', '.join(sorted(p.name for p in TEMPLATES.iterdir()))})"
    )


def test_the_default_template_must_exist_too(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "detractor.slack.j2").write_text("{}")
    text = "rules:\n  - id: uses-default\n    when: {survey: nps}\n"
    path = write(tmp_path / "rules.yaml", text)
    problem = only_problem(path, templates)
    assert problem.startswith(f"{path}:{line_of(text, 'uses-default')}: rule 'uses-default': template 'alert.slack.j2' not found")


def test_a_bad_severity_lists_the_valid_ones(tmp_path: Path) -> None:
    text = "rules:\n  - id: a\n    when: {survey: nps}\n    severity: urgent\n"
    path = write(tmp_path / "rules.yaml", text)
    assert only_problem(path) == (
        f"{path}:{line_of(text, 'severity')}: rule 'a': severity must be one of critical, high, medium, low, info, got 'urgent'"
    )


def test_a_misspelt_rule_key_is_not_ignored(tmp_path: Path) -> None:
    text = "rules:\n  - id: a\n    when: {survey: nps}\n    sevrity: critical\n"
    path = write(tmp_path / "rules.yaml", text)
    assert only_problem(path).startswith(f"{path}:{line_of(text, 'sevrity')}: rule 'a': unknown key 'sevrity'")


def test_an_unknown_followup_key_names_its_path(tmp_path: Path) -> None:
    text = "rules:\n  - id: a\n    when: {survey: nps}\n    followup:\n      owner: cx\n      due: 4h\n"
    path = write(tmp_path / "rules.yaml", text)
    assert only_problem(path).startswith(f"{path}:{line_of(text, 'due:')}: rule 'a': followup.due: unknown key")


# -- duplicate ids ----------------------------------------------------------------------


def test_a_duplicate_id_points_at_the_second_and_names_the_first(tmp_path: Path) -> None:
    first_text = "rules:\n  - id: detractor\n    when: {survey: nps}\n"
    first = write(tmp_path / "a.yaml", first_text)
    text = "rules:\n  - id: other\n    when: {survey: csat}\n  - id: detractor\n    when: {survey: ces}\n"
    second = write(tmp_path / "b.yaml", text)
    assert only_problem(tmp_path) == (
        f"{second}:{line_of(text, 'detractor')}: duplicate rule id 'detractor' (first defined at {first}:{line_of(first_text, 'detractor')})"
    )


def test_a_duplicate_id_is_reported_even_when_the_first_rule_does_not_compile(tmp_path: Path) -> None:
    text = "rules:\n  - id: dup\n    when:\n      score: {lesser: 3}\n  - id: dup\n    when: {survey: nps}\n"
    path = write(tmp_path / "rules.yaml", text)
    assert problems(path) == [
        f"{path}:{line_of(text, 'lesser')}: rule 'dup': when.score: unknown operator 'lesser' "
        "(known: eq, ne, lt, lte, gt, gte, in, not_in, contains, contains_any, matches, exists)",
        f"{path}:{line_of(text, 'id: dup', nth=2)}: duplicate rule id 'dup' (first defined at {path}:{line_of(text, 'id: dup')})",
    ]


def test_a_duplicate_id_is_reported_when_the_duplicate_does_not_compile(tmp_path: Path) -> None:
    text = "rules:\n  - id: dup\n    when: {survey: nps}\n  - id: dup\n    when: {scor: 3}\n"
    path = write(tmp_path / "rules.yaml", text)
    assert f"{path}:{line_of(text, 'id: dup', nth=2)}: duplicate rule id 'dup'" in problems(path)[0]


# -- every problem at once; directories -------------------------------------------------


def test_all_problems_in_all_files_are_reported_in_one_run(tmp_path: Path) -> None:
    a_text = (
        "rules:\n"
        "  - id: fine\n    when: {survey: nps}\n"
        "  - id: op\n    when:\n      score: {below: 3}\n"
        "  - id: sev\n    when: {survey: nps}\n    severity: huge\n"
        "  - id: due\n    when: {survey: nps}\n    followup:\n      due_in: soon\n"
    )
    a = write(tmp_path / "10-a.yaml", a_text)
    b_text = "rules:\n  - id: fine\n    when: {survey: csat}\n  - id: rx\n    when:\n      comment: {matches: '[z-a]'}\n"
    b = write(tmp_path / "20-b.yaml", b_text)
    c_text = "rules: [\n"  # never closed: the parser gives up at the end of the file
    c = write(tmp_path / "30-c.yaml", c_text)
    found = problems(tmp_path)
    expected_prefixes = [
        f"{a}:{line_of(a_text, 'below')}: rule 'op': when.score: unknown operator 'below'",
        f"{a}:{line_of(a_text, 'huge')}: rule 'sev': severity must be one of",
        f"{a}:{line_of(a_text, 'soon')}: rule 'due': followup.due_in: bad duration 'soon'",
        f"{b}:{line_of(b_text, 'fine')}: duplicate rule id 'fine' (first defined at {a}:{line_of(a_text, 'fine')})",
        f"{b}:{line_of(b_text, 'matches')}: rule 'rx': when.comment.matches: invalid regular expression",
        f"{c}:{len(c_text.splitlines()) + 1}: invalid YAML: ",
    ]
    assert len(found) == len(expected_prefixes), found
    for problem, prefix in zip(found, expected_prefixes, strict=True):
        assert problem.startswith(prefix), (problem, prefix)


def test_a_directory_loads_every_yaml_file_in_file_name_order(tmp_path: Path) -> None:
    write(tmp_path / "20-later.yaml", "rules:\n  - {id: later-high, severity: high, when: {survey: nps}}\n")
    write(
        tmp_path / "10-first.yaml",
        "rules:\n  - {id: first-high, severity: high, when: {survey: nps}}\n  - {id: first-low, severity: low, when: {survey: nps}}\n",
    )
    write(tmp_path / "README.md", "not rules: `rules: [oops`\n")
    write(tmp_path / "old.yaml.bak", "rules: [oops\n")
    rules = load_rules(tmp_path)
    assert [Path(f).name for f in rules.files] == ["10-first.yaml", "20-later.yaml"]
    assert [rule.id for rule in rules.rules] == ["first-high", "first-low", "later-high"]
    event = FeedbackEvent.model_validate(
        {"event_id": "e", "occurred_at": "2026-11-24T10:00:00Z", "survey": "nps", "score": 9, "customer": {"id": "c"}}
    )
    match = rules.evaluate(event)
    assert match is not None and match.owner.id == "first-high"  # the tie goes to the earlier file
    assert match.rule_ids == ["first-high", "first-low", "later-high"]


def test_an_empty_directory_or_a_missing_path_is_an_error(tmp_path: Path) -> None:
    assert "no rules found" in only_problem(tmp_path)
    missing = tmp_path / "nope.yaml"
    assert only_problem(missing) == f"{missing}:0: no such rules file or directory"


def test_the_shipped_rules_load_with_the_shipped_templates() -> None:
    rules = load_rules(ROOT / "rules", TEMPLATES)
    assert len(rules) > 0
    assert len({rule.id for rule in rules.rules}) == len(rules)


# -- known bugs -------------------------------------------------------------------------


@pytest.mark.parametrize("block", ["alert: false", "followup: []"])
def test_a_falsy_non_mapping_alert_or_followup_is_a_type_error(tmp_path: Path, block: str) -> None:
    text = f"rules:\n  - id: quiet\n    when: {{survey: nps}}\n    {block}\n"
    path = write(tmp_path / "rules.yaml", text)
    key = block.split(":")[0]
    assert only_problem(path).startswith(f"{path}:{line_of(text, key)}: rule 'quiet': {key}")
