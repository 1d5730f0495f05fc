"""Rule tests inside rules files (`tests:`), run by `feedback-worker rules check` as ops and CI run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from worker.rules import RulesError, load_rules, load_tests, run_tests

ROOT = Path(__file__).resolve().parents[2]

RULES = """\
rules:
  - id: nps-detractor
    when: {survey: nps, score: {lte: 6}}
    severity: high
    followup: {owner: cx-oncall}
    alert: {channel: "#cx-alerts", template: detractor.slack.j2}
  - id: churn-words
    when:
      comment: {contains_any: [cancel, refund, geld terug], ignore_accents: true}
    severity: high
    followup: {owner: retention}
  - id: nps-drop
    when: {metric: nps.score, window: 24h, lt: 0, min_responses: 30}
    severity: medium
"""


def check(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m worker rules check ...` from the repo root, with no worker settings in the environment but `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_", "RULES_", "TEMPLATES_"))}
    return subprocess.run(
        [sys.executable, "-m", "worker", "rules", "check", *map(str, args)],
        cwd=ROOT,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def write(tmp_path: Path, tests: str, rules: str = RULES, name: str = "rules.yaml") -> tuple[Path, str]:
    text = rules + tests
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, text


# -- the shipped rules ---------------------------------------------------------------------------


def test_the_shipped_rules_tests_all_pass_and_cover_every_rule() -> None:
    rules = load_rules(ROOT / "rules", ROOT / "templates")
    tests = load_tests(ROOT / "rules", rules)
    result = check("rules/")
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.splitlines()[1] == f"ok: {len(tests)} rule test(s) pass"
    owned = {test.expect["rule"] for test in tests}
    every = {rule.id for rule in (*rules.rules, *rules.metric_rules)}
    assert every <= owned, f"rules without a test that they own: {sorted(every - owned)}"
    assert sum(test.expect["rule"] is None and test.kind == "event" for test in tests) >= 2  # answers that stay quiet
    ties = [r for r in run_tests(tests, rules) if len({sev for _, sev in r.matched}) == 1 and len(r.matched) > 1]
    assert ties, "a test should pin down who owns on a severity tie"


# -- passing and failing -------------------------------------------------------------------------


def test_passing_tests_are_counted_after_the_rules_line(tmp_path: Path) -> None:
    path, _ = write(
        tmp_path,
        """
tests:
  - name: detractor with refund request - a tie, the first rule in the file owns
    event: {survey: nps, score: 2, comment: "Ik wil mijn geld terug", customer: {id: c-1, segment: smb}}
    expect: {rule: nps-detractor, severity: high, channel: "#cx-alerts", owner: cx-oncall,
             template: detractor.slack.j2, matched: [churn-words, nps-detractor]}
  - name: a promoter asking for a refund goes to retention, on the default channel
    event: {survey: nps, score: 10, comment: "I want a REFUND"}
    expect: {rule: churn-words, channel: "(default channel)", owner: retention, template: alert.slack.j2}
  - name: promoter stays quiet
    event: {survey: nps, score: 10, customer: {id: c-2}}
    expect: {rule: null, matched: []}
""",
    )
    result = check(path)
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "ok: 2 rules and 1 metric rule(s) in 1 file(s) (2 high, 1 medium); templates render",
        "ok: 3 rule test(s) pass",
    ]


def test_a_failing_test_shows_where_what_was_given_and_each_difference(tmp_path: Path) -> None:
    path, text = write(
        tmp_path,
        """
tests:
  - name: refund request goes to retention
    event: {survey: nps, score: 2, comment: "Ik wil mijn geld terug", customer: {segment: smb}}
    expect: {rule: churn-words, severity: high, channel: "#cx-retention"}
  - name: promoter stays quiet
    event: {survey: nps, score: 10}
    expect: {rule: null}
""",
    )
    result = check(path)
    assert result.returncode == EXIT_FAILED == 1
    assert result.stdout.startswith("ok: 2 rules")  # the rules themselves are valid
    assert result.stderr.splitlines() == [
        f"FAIL {path}:{line_of(text, 'refund request goes')}: test 'refund request goes to retention'",
        '  event: {"survey": "nps", "score": 2, "comment": "Ik wil mijn geld terug", "customer": {"segment": "smb"}}',
        "  defaults: event_id=test-1, occurred_at=2026-11-24T10:00:00+00:00, customer.id=test-customer",
        "  rule: expected churn-words, got nps-detractor",
        "  channel: expected #cx-retention, got #cx-alerts",
        "  rules that matched: nps-detractor (high), churn-words (high); nps-detractor owns (a tie at high: the first in file order wins)",
        "error: 1 of 2 rule test(s) failed",
    ]


def test_expecting_no_match_shows_what_matched_and_a_wrong_matched_list_is_a_difference(tmp_path: Path) -> None:
    path, text = write(
        tmp_path,
        """
tests:
  - name: quiet detractor?
    event: {survey: nps, score: 3, customer: {id: c-9}}
    expect: {rule: null}
  - name: matched lists every rule
    event: {survey: nps, score: 3, comment: cancel}
    expect: {rule: nps-detractor, matched: [nps-detractor]}
""",
    )
    result = check(path)
    assert result.returncode == EXIT_FAILED
    lines = result.stderr.splitlines()
    assert "  rule: expected no rule (null), got nps-detractor" in lines
    assert "  rules that matched: nps-detractor (high)" in lines
    assert "  matched: expected [nps-detractor], got [nps-detractor, churn-words]" in lines
    assert lines[-1] == "error: 2 of 2 rule test(s) failed"


def test_tests_in_one_file_see_the_rules_of_every_file(tmp_path: Path) -> None:
    write(tmp_path, "", name="a.yaml")
    (tmp_path / "b.yaml").write_text("""\
rules:
  - id: enterprise-anything
    when: {customer.segment: enterprise}
    severity: critical
tests:
  - name: an enterprise detractor - the critical rule in b.yaml beats the high one in a.yaml
    event: {survey: nps, score: 1, customer: {id: c-3, segment: enterprise}}
    expect: {rule: enterprise-anything, matched: [nps-detractor, enterprise-anything]}
""")
    result = check(tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.splitlines()[1] == "ok: 1 rule test(s) pass"


def test_the_channel_is_the_workers_slack_default_channel_and_routes(tmp_path: Path) -> None:
    path, _ = write(
        tmp_path,
        """
tests:
  - name: churn words name no channel
    event: {survey: nps, score: 9, comment: cancel, customer: {id: c-1, segment: enterprise}}
    expect: {rule: churn-words, channel: "#cx-fallback", owner: retention}
""",
    )
    assert check(path, env={"SLACK_DEFAULT_CHANNEL": "#cx-fallback"}).returncode == EXIT_OK
    config = tmp_path / "worker.yaml"
    config.write_text('routes:\n  - {when: {customer.segment: enterprise}, channel: "#enterprise-escalations"}\n')
    routed = check(path, "--config", config, env={"SLACK_DEFAULT_CHANNEL": "#cx-fallback"})
    assert routed.returncode == EXIT_FAILED
    assert "  channel: expected #cx-fallback, got #enterprise-escalations" in routed.stderr.splitlines()


def test_snapshot_tests_check_metric_rules(tmp_path: Path) -> None:
    path, _ = write(
        tmp_path,
        """
tests:
  - name: NPS -20 from 40 answers fires
    snapshot: {window: 24h, nps: {responses: 40, score: -20.0}}
    expect: {rule: nps-drop, severity: medium, channel: "(default channel)", template: metric.slack.j2}
  - name: too few answers to trust
    snapshot: {window: 24h, nps: {responses: 12, score: -50.0}}
    expect: {rule: null}
  - name: another window is not watched
    snapshot: {window: 1h, nps: {responses: 400, score: -20.0}}
    expect: {rule: nps-drop}
""",
    )
    result = check(path)
    assert result.returncode == EXIT_FAILED
    lines = result.stderr.splitlines()
    assert lines[0].endswith(": test 'another window is not watched'")
    assert lines[2] == ("  defaults: window=2026-11-24T09:00:00+00:00/2026-11-24T10:00:00+00:00, other figures=0 (scores and means null)")
    assert "  rule: expected nps-drop, got no rule (null)" in lines
    assert lines[-1] == "error: 1 of 3 rule test(s) failed"


# -- defaults ------------------------------------------------------------------------------------


def test_missing_event_fields_get_harmless_defaults(tmp_path: Path) -> None:
    path, _ = write(
        tmp_path,
        """
tests:
  - name: only a comment
    event: {comment: "please cancel"}
    expect: {rule: churn-words}
  - name: a CSAT without a score gets the happiest one
    event: {survey: csat, customer: {id: c-7, segment: smb}}
    expect: {rule: null}
""",
    )
    rules = load_rules(path)
    first, second = load_tests(path, rules)
    assert first.defaults == {
        "event_id": "test-1",
        "occurred_at": "2026-11-24T10:00:00+00:00",
        "survey": "nps",
        "score": 10,
        "customer.id": "test-customer",
    }
    assert (first.subject.survey, first.subject.score, first.subject.customer.id) == ("nps", 10, "test-customer")
    assert second.defaults == {"event_id": "test-2", "occurred_at": "2026-11-24T10:00:00+00:00", "score": 5}
    assert second.subject.customer.segment == "smb"
    assert all(result.passed for result in run_tests([first, second], rules))


def test_the_worker_ignores_tests(tmp_path: Path) -> None:
    path, _ = write(tmp_path, "tests:\n  - {name: x, event: {}, expect: {rule: null}}\n")
    assert [rule.id for rule in load_rules(path).rules] == ["nps-detractor", "churn-words"]


# -- mistakes in tests ---------------------------------------------------------------------------


def test_mistakes_in_tests_exit_2_with_file_line_and_test_name(tmp_path: Path) -> None:
    path, text = write(
        tmp_path,
        """
tests:
  - name: out of range
    event: {survey: nps, score: 11, customer: {id: c-1}}
    expect: {rule: nps-detractor}
  - name: typos
    event: {survey: nps, scroe: 2}
    expect: {rule: nps-detracter, sevrity: high}
  - name: no expectation
    event: {survey: csat, score: 1, occurred_at: "2026-11-24T10:00:00"}
  - name: wrong kind of rule
    event: {survey: nps, score: 1}
    expect: {rule: nps-drop}
  - name: rule null with a channel
    event: {}
    expect:
      rule: null
      channel: "#cx-quiet"
""",
    )
    result = check(path)
    assert result.returncode == EXIT_USAGE == 2
    assert "ok:" not in result.stdout
    at = lambda needle: f"  {path}:{line_of(text, needle)}: "  # noqa: E731
    assert result.stderr.splitlines() == [
        "error: 8 problem(s) in rules:",
        at("score: 11") + "test 'out of range': event.score: 11 is outside the nps range 0-10",
        at("scroe") + "test 'typos': event.scroe: unknown field; did you mean 'score'?",
        at("sevrity") + "test 'typos': expect.sevrity: unknown key (expected: rule, severity, channel, owner, template, matched)",
        at("sevrity") + "test 'typos': expect.rule: unknown rule 'nps-detracter' (did you mean 'nps-detractor'?)",
        at("name: no expectation") + "test 'no expectation': missing `expect:` (at least `rule:`, the owning rule id or null)",
        at('2026-11-24T10:00:00"') + "test 'no expectation': event.occurred_at: Input should have timezone info",
        at("rule: nps-drop")
        + "test 'wrong kind of rule': expect.rule: 'nps-drop' is a metric rule: test it with `snapshot:`, not `event:`",
        at("#cx-quiet") + "test 'rule null with a channel': expect.channel: nothing is alerted when `rule: null`; remove it",
    ]


@pytest.mark.parametrize(
    ("tests", "needle", "message"),
    [
        ("tests: {name: x}\n", "tests:", "`tests:` must be a list of tests"),
        ("tests:\n  - just text\n", "just text", "tests[0]: expected a mapping with name, event (or snapshot) and expect"),
        ("tests:\n  - event: {}\n    expect: {rule: null}\n", "event: {}", "tests[0]: missing `name:` (say what the example shows)"),
        (
            "tests:\n  - name: x\n    event: {}\n    snapshot: {window: 1h}\n    expect: {rule: null}\n",
            "name: x",
            "test 'x': give exactly one of `event:` or `snapshot:`",
        ),
        (
            "tests:\n  - name: x\n    snapshot: {nps: {score: 1}}\n    expect: {rule: null}\n",
            "snapshot:",
            "test 'x': snapshot: missing `window:` (a window size, e.g. 24h)",
        ),
        (
            "tests:\n  - name: x\n    event: {}\n    expect: {rule: null}\n    owner: me\n",
            "owner: me",
            "test 'x': unknown key 'owner' (expected: name, event, snapshot, expect)",
        ),
    ],
)
def test_each_structural_mistake_is_named(tmp_path: Path, tests: str, needle: str, message: str) -> None:
    path, text = write(tmp_path, tests)
    with pytest.raises(RulesError) as caught:
        load_tests(path, load_rules(path))
    assert [str(e) for e in caught.value.errors] == [f"{path}:{line_of(text, needle)}: {message}"]
