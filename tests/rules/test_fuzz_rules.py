"""Fuzzing rules files: random and mutated YAML through `load_rules`, as `rules check` and `run` load them.

Whatever someone types: the file either loads, or RulesError lists problems that each read
`file:line: message` on one line. Never another exception, never a hang (billion laughs and
deep nesting included). A file that loads also goes through its in-file tests (`rules check`
runs them) and its rules are evaluated on an event.

20,000 files, not 100,000: PyYAML's pure-Python parser (the loader needs its line marks) takes
~0.8 ms for even a small file, so 100,000 would take over a minute and a half on their own on
this machine, against a CI budget of ~2 minutes for all the fuzzing. Seeded: same inputs every run.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fuzzing import RULE_SEEDS, RulesMutator, billion_laughs, cpu_budget, cpu_time, watchdog
from worker.loop.startup import SAMPLE_EVENT
from worker.notation.yamlsource import MAX_DEPTH, MAX_VALUES
from worker.rules import RulesError, load_rules, load_tests, run_tests

pytestmark = pytest.mark.fuzz

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
FILES = 20_000
SEED = 20261124
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<message>\S.*)$")


def check_rules_file(path: Path, text: str, outcome: Counter[str], reasons: Counter[str]) -> None:
    """load_rules, then what `rules check` does with rules that load; tally the outcome."""
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        rules = load_rules(path, TEMPLATES)
    except RulesError as err:
        outcome["refused"] += 1
        assert err.errors, text
        for problem in err.errors:
            shown = str(problem)
            found = LOCATED.match(shown)
            assert found and shown.splitlines() == [shown], (text, shown)
            assert found["file"] == str(path) and 0 <= int(found["line"]) <= text.count("\n") + 2, (text, shown)
            reasons[_reason_class(found["message"])] += 1
        return
    outcome["loaded"] += 1
    rules.evaluate(SAMPLE_EVENT)
    try:
        tests = load_tests(path, rules)
    except RulesError as err:
        outcome["loaded, tests refused"] += 1
        assert all(LOCATED.match(str(p)) and str(p).splitlines() == [str(p)] for p in err.errors), (text, err)
        return
    run_tests(tests, rules)


def _reason_class(message: str) -> str:
    """A coarse class of a problem, for the summary: the words before any quoted value."""
    message = re.sub(r"^(rule '[^']*'|rules\[\d+\]): ", "", message)
    message = re.sub(r"^[\w.\[\]]+: ", "", message)  # the key path
    return re.split(r"['\"(:,{`]", message, maxsplit=1)[0].strip() or message[:30]


def test_20000_random_and_mutated_rules_files_load_or_fail_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED)
    mutator = RulesMutator(rng)
    outcome: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    path = tmp_path / "rules.yaml"
    shipped = (ROOT / "rules" / "core.yaml").read_text(encoding="utf-8")
    slowest = (0.0, "")
    started = time.perf_counter()
    with watchdog():
        for _ in range(FILES):
            roll = rng.random()
            if roll < 0.05:
                text = rng.choice(RULE_SEEDS)  # unchanged: these must load (or be empty)
            elif roll < 0.06:
                text = mutator.mutate(shipped)
            elif roll < 0.062:
                text = billion_laughs(rng.randrange(3, 12), rng.randrange(2, 12))
            else:
                text = mutator.mutate(rng.choice(RULE_SEEDS))
            one = cpu_time()
            check_rules_file(path, text, outcome, reasons)
            if (cost := cpu_time() - one) > slowest[0]:
                slowest = (cost, text)
    seconds = time.perf_counter() - started
    with capsys.disabled():
        top = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common(25))
        print(
            f"\nrules fuzz: {FILES} files in {seconds:.1f}s: "
            + ", ".join(f"{k} {v}" for k, v in outcome.items())
            + f"; {sum(reasons.values())} problems, most common: {top}; slowest {slowest[0] * 1000:.0f} ms CPU"
        )
    assert sum(outcome[k] for k in ("loaded", "refused")) == FILES
    assert outcome["loaded"] >= FILES * 0.05 and outcome["refused"] >= FILES * 0.5
    assert len(reasons) >= 30, reasons  # the mutators reach many kinds of mistake
    assert slowest[0] < cpu_budget(2.0), slowest[1][:500]  # CPU seconds for one file


def test_the_seeds_are_valid_rules_files(tmp_path: Path) -> None:
    """Mutation starts from files that load: otherwise it would only ever test the first check."""
    for n, text in enumerate(RULE_SEEDS):
        path = tmp_path / f"seed{n}.yaml"
        path.write_text(text, encoding="utf-8")
        if "id:" not in text:
            assert [str(e).split(": ", 1)[1] for e in pytest.raises(RulesError, load_rules, path).value.errors] == ["no rules found"]
            continue
        rules = load_rules(path, TEMPLATES)
        assert all(result.passed for result in run_tests(load_tests(path, rules), rules))


# -- regressions: what the fuzzer found -------------------------------------------------------


def refused(path: Path, text: str) -> list[str]:
    path.write_text(text, encoding="utf-8")
    started = cpu_time()
    with watchdog(30), pytest.raises(RulesError) as caught:
        load_rules(path)
    assert cpu_time() - started < cpu_budget(2.0)  # CPU seconds, as in the fuzz run
    return [str(e) for e in caught.value.errors]


def test_billion_laughs_is_refused_at_the_line_where_the_expansion_gets_too_big(tmp_path: Path) -> None:
    # Each rule is valid and short as written; laughs5 expands to 9**5 = 59,049 copies of `{survey: nps}`
    # (3 YAML values each), the first over the limit. Before: compiling `when:` walked every copy (laughs6
    # took 11 s, laughs9 would take hours) and the compiled predicate would walk them again for every event.
    text = billion_laughs(9, 9)
    path = tmp_path / "laughs.yaml"
    line = next(n for n, line in enumerate(text.splitlines(), 1) if "&a5" in line)
    assert refused(path, text) == [f"{path}:{line}: more than {MAX_VALUES:,} values once aliases are expanded (aliases of aliases?)"]


def test_an_anchor_used_a_few_times_still_works(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "rules:\n  - id: a\n    when: &detractor {survey: nps, score: {lte: 6}}\n"
        "  - id: b\n    when: {all: [*detractor, {customer.segment: enterprise}]}\n    severity: critical\n"
    )
    assert [rule.id for rule in load_rules(path).rules] == ["a", "b"]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 400, 20_000])
def test_deep_nesting_is_a_located_error_not_a_recursion_error(tmp_path: Path, depth: int) -> None:
    # Before: from ~330 levels PyYAML's composer raised RecursionError, which escaped load_rules (and `run`).
    text = "rules:\n  - id: deep\n    when:\n      all: " + "[" * depth + "]" * depth + "\n"
    assert refused(tmp_path / "deep.yaml", text) == [f"{tmp_path / 'deep.yaml'}:4: nested more than {MAX_DEPTH} levels deep"]


def test_deep_nesting_through_a_chain_of_aliases_is_refused_too(tmp_path: Path) -> None:
    chain = ["rules:", "  - id: a", "    when: {survey: nps}", "    description: &a0 [x]"]
    chain += [f"    d{i}: &a{i} [*a{i - 1}]" for i in range(1, 150)]
    text = "\n".join(chain) + "\n"
    # a0 is 2 levels (the list and its item), each alias adds one: a99 is the first at 101
    line = next(n for n, line in enumerate(text.splitlines(), 1) if f"&a{MAX_DEPTH - 1} " in line)
    problems = refused(tmp_path / "chain.yaml", text)
    assert problems == [f"{tmp_path / 'chain.yaml'}:{line}: nested more than {MAX_DEPTH} levels deep (through aliases)"]


def test_not_nested_as_deep_as_allowed_still_loads_and_works(tmp_path: Path) -> None:
    # The file's mapping, the rules list and the rule are 3 levels; each `{not: ...}` one; `{survey: nps}` two.
    def nots(levels: int) -> Path:
        path = tmp_path / f"not{levels}.yaml"
        path.write_text("rules:\n  - id: a\n    when: " + "{not: " * levels + "{survey: nps}" + "}" * levels + "\n")
        return path

    deepest = MAX_DEPTH - 5
    assert load_rules(nots(deepest - 1)).evaluate(SAMPLE_EVENT) is not None  # an even number of nots: survey is nps
    assert load_rules(nots(deepest)).evaluate(SAMPLE_EVENT) is None
    assert refused(nots(deepest + 1), (tmp_path / f"not{deepest + 1}.yaml").read_text())[0].endswith("levels deep")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2026-02-30", "'2026-02-30' is not a valid date or time"),  # unquoted, YAML reads a date: was a ValueError
        ("!!float ''", "'' is not a valid number"),  # was an IndexError inside PyYAML
        ("!!bool maybe", "'maybe' is not a valid true or false"),  # was a KeyError
        ("!!timestamp soon", "'soon' is not a valid date or time"),  # was an AttributeError
        ("!!int 0x", "'0x' is not a valid integer"),  # was a ValueError
    ],
)
def test_a_scalar_yaml_cannot_construct_is_a_located_error_not_a_crash(tmp_path: Path, value: str, problem: str) -> None:
    text = f"rules:\n  - id: a\n    when:\n      occurred_at: {{gte: {value}}}\n"
    path = tmp_path / "r.yaml"
    assert refused(path, text) == [f"{path}:4: invalid YAML: {problem}"]


def test_a_control_character_names_its_line_on_one_line(tmp_path: Path) -> None:
    # Before: line 1, and a second line `in "<unicode string>", position 52` under `rules check`'s list.
    text = 'rules:\n  - id: a\n    when:\n      comment: {contains: "a\x00b"}\n'
    path = tmp_path / "r.yaml"
    assert refused(path, text) == [f"{path}:4: invalid YAML: unacceptable character #x0000: special characters are not allowed"]
