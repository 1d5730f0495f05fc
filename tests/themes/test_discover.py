"""`themes suggest`: the comments no theme covers, grouped into candidate themes ready to paste.

The corpus is a week of comments as a shop might get them, in English, Dutch and German: three
recurring complaints no theme covers yet (a zipper that breaks, logging in after the app update,
a courier that skips Zeeland), comments the themes already cover (late deliveries, invoices), and
the usual one-off remarks. Some answers carry their language, some do not.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import stopwordsiso
import yaml

from tests.conftest import ROOT, produce
from worker.cli import EXIT_OK, EXIT_USAGE, main
from worker.themes import NO_THEMES, Answer, Candidate, ThemeMatcher, build_themes, candidate_for, discover, to_yaml, tokenize

THEMES_LIST: list[dict[str, object]] = [
    {"id": "delivery", "label": "Delivery"},
    {
        "id": "shipping-delay",
        "label": "Shipping delay",
        "parent": "delivery",
        "terms": {"en": ["late", "delay", "never arrived"], "nl": ["vertraging", "te laat"], "de": ["zu spät", "Verspätung"]},
    },
    {"id": "billing", "label": "Billing", "terms": {"en": ["invoice", "charged"], "nl": ["factuur"], "de": ["Rechnung"]}},
]
THEMES = build_themes([THEMES_LIST])

ZIPPER = [
    ("The zipper broke after two days", "en"),
    ("Zipper on the Explorer jacket broke the first time I closed it", "en"),
    ("zipper broken, jacket unusable", None),
    ("Cheap zipper, it came off after a week", "en"),
    ("My son's zipper broke on day one", "en"),
    ("The zipper keeps getting stuck and now it broke", "en"),
    ("Jacket looks great but the zipper is rubbish", None),
    ("Second jacket with a broken zipper!", "en"),
    ("De rits is na twee dagen kapot", "nl"),
    ("Rits van de jas kapot bij eerste gebruik", "nl"),
    ("Slechte rits, binnen een week kapot", None),
    ("De rits blijft haken en is nu kapot", "nl"),
    ("Mooie jas maar de rits is waardeloos", "nl"),
    ("Der Reißverschluss ist nach zwei Tagen kaputt", "de"),
    ("Reißverschluss der Jacke schon kaputt", "de"),
    ("Billiger Reißverschluss, nach einer Woche kaputt", None),
    ("Reißverschluss klemmt und ist jetzt kaputt", "de"),
]
LOGIN = [
    ("Since the update I can't log in anymore", "en"),
    ("Login fails after the latest app update", "en"),
    ("After updating the app the login keeps failing", None),
    ("The update broke login on my phone", "en"),
    ("Can't login since yesterday's update, password is correct", "en"),
    ("App update logged me out and login fails now", "en"),
    ("Login error after update, please fix", None),
    ("Sinds de update kan ik niet meer inloggen", "nl"),
    ("Inloggen mislukt na de laatste update van de app", "nl"),
    ("Na de update werkt de login niet meer", None),
    ("Login lukt niet sinds de update", "nl"),
    ("De app update heeft het inloggen kapot gemaakt", "nl"),
    ("Seit dem Update kann ich mich nicht mehr einloggen", "de"),
    ("Login funktioniert nach dem Update nicht", "de"),
    ("Nach dem App-Update schlägt die Anmeldung fehl", None),
    ("Einloggen geht seit dem letzten Update nicht mehr", "de"),
]
COURIER = [
    ("The courier refuses to deliver in Zeeland", "en"),
    ("Courier says Zeeland is outside his route", "en"),
    ("No courier delivers to our address in Zeeland", None),
    ("Courier skipped Zeeland again, parcel back to depot", "en"),
    ("Why does the courier not come to the Zeeland islands?", "en"),
    ("Courier only delivers to the mainland, not to Zeeland", "en"),
    ("De koerier komt niet naar Zeeland", "nl"),
    ("Koerier bezorgt niet in Zeeland, pakket terug naar depot", "nl"),
    ("Bezorger zegt dat Zeeland buiten zijn route valt", None),
    ("Geen koerier die in Zeeland bezorgt", "nl"),
    ("Der Kurier liefert nicht nach Zeeland", "de"),
    ("Kurier fährt nicht nach Zeeland, Paket zurück ins Depot", "de"),
    ("Zeeland wird vom Kurier nicht beliefert", None),
]
COVERED = [
    ("Parcel arrived three days late", "en"),
    ("Delivery was late again", None),
    ("Huge delay on my order", "en"),
    ("Order never arrived", "en"),
    ("The zipper is fine but delivery was late", "en"),  # complaint words, but a theme covers it
    ("The courier was late, Zeeland again", "en"),
    ("Het pakket kwam te laat", "nl"),
    ("Vertraging van een week", None),
    ("Die Lieferung kam zu spät", "de"),
    ("Wieder Verspätung bei der Lieferung", "de"),
    ("I was charged twice on my invoice", "en"),
    ("Invoice is wrong", None),
    ("De factuur klopt niet", "nl"),
    ("Die Rechnung ist falsch", "de"),
    ("Charged for shipping twice after the update", "en"),
]
ONE_OFFS = [
    ("Great service, thank you!", "en"),
    ("Fine, nothing special", None),
    ("It was okay", "en"),
    ("Alles bestens, danke", "de"),
    ("Prima, bedankt", "nl"),
    ("Love the colours of the new collection", "en"),
    ("Customer service was friendly", None),
    ("Size chart is confusing", "en"),
    ("Prices went up again", "en"),
    ("Te duur voor wat je krijgt", "nl"),
    ("Die Farbe ist anders als auf dem Foto", "de"),
    ("Would recommend to friends", "en"),
    ("The website is slow", None),
    ("Returns took two weeks to process", "en"),
    ("Ik mis de oude collectie", "nl"),
]


def answers(*groups: list[tuple[str, str | None]]) -> list[Answer]:
    """Answers for the comments; every other one unhappy."""
    pairs = [pair for group in groups for pair in group] if groups else ZIPPER + LOGIN + COURIER + COVERED + ONE_OFFS
    return [Answer(text, language, number % 2 == 0) for number, (text, language) in enumerate(pairs)]


CORPUS = answers()


def by_top_term(candidates: list[Candidate]) -> dict[str, Candidate]:
    return {candidate.keys[0]: candidate for candidate in candidates}


def test_the_corpus_is_what_the_docstring_says() -> None:
    assert len(CORPUS) == 76
    matcher = ThemeMatcher(THEMES)
    assert all(matcher.match(text, language) for text, language in COVERED)
    assert not any(matcher.match(text, language) for text, language in ZIPPER + LOGIN + COURIER + ONE_OFFS)


#: Each complaint's comments, and the stems a candidate for it has first (the zipper in each language: no shared word).
COMPLAINTS = {"updat": LOGIN, "zeeland": COURIER, "zipper": ZIPPER[:8], "rit": ZIPPER[8:13], "kaputt": ZIPPER[13:]}


def test_the_candidates_are_the_three_complaints_by_their_top_terms() -> None:
    found = discover(CORPUS, THEMES)
    assert [c.keys[0] for c in found.candidates] == ["updat", "zeeland", "zipper", "rit", "kaputt"]  # largest first
    update, zeeland, zipper, rits, kaputt = found.candidates
    assert {"login", "app"} <= set(update.keys) and update.terms["nl"][:2] == ["update", "login"] and "Update" in update.terms["de"]
    assert "courier" in zeeland.keys and "koerier" in zeeland.keys and zeeland.terms["de"] == ["Zeeland", "Depot"]
    assert {"jacket", "broke"} <= set(zipper.keys) and list(zipper.terms) == ["en"]
    assert rits.terms == {"nl": ["rits", "kapot", "jas"]} and kaputt.terms == {"de": ["kaputt", "Reißverschluss"]}
    assert [(c.id, c.count, c.unhappy) for c in found.candidates] == [
        ("update", 16, 8),
        ("zeeland", 13, 6),
        ("zipper", 8, 4),
        ("rits", 5, 3),
        ("kaputt", 4, 2),
    ]
    assert update.top_terms[:2] == (("update", 16), ("login", 9)) and update.label == "Update, login"
    assert zeeland.examples == (
        "The courier refuses to deliver in Zeeland",  # has most of its top terms, then the shortest
        "No courier delivers to our address in Zeeland",
        "Courier skipped Zeeland again, parcel back to depot",
    )
    assert (found.answers, found.commented, found.covered, found.uncovered, found.grouped) == (76, 76, 15, 61, 46)


def test_pasted_the_suggestions_cover_the_complaints_and_none_of_the_one_offs() -> None:
    found = discover(CORPUS, THEMES)
    suggested = yaml.safe_load(to_yaml(found.candidates))["themes"]
    matcher = ThemeMatcher(build_themes([THEMES_LIST, suggested]))
    for candidate in found.candidates:
        comments = COMPLAINTS[candidate.keys[0]]
        assert all(candidate.id in matcher.match(text, language) for text, language in comments), candidate.id
    assert not any(matcher.match(text, language) for text, language in ONE_OFFS)
    again = discover(CORPUS, build_themes([THEMES_LIST, suggested]))
    assert again.candidates == [] and again.covered == 61


def test_covered_comments_are_left_out() -> None:
    found = discover(CORPUS, THEMES)
    covered = {text for text, _ in COVERED}
    assert found.covered == len(COVERED) and not any(e in covered for c in found.candidates for e in c.examples)
    assert sum(c.count for c in found.candidates) == sum(map(len, COMPLAINTS.values()))  # none of the covered ones
    without = discover(CORPUS, NO_THEMES)  # nothing covered: the late deliveries are a candidate of their own
    assert without.covered == 0 and without.commented == 76
    assert any("late" in c.keys for c in without.candidates)


def test_the_yaml_loads_as_themes_alone_and_next_to_the_existing_ones() -> None:
    text = to_yaml(discover(CORPUS, THEMES).candidates)
    document = yaml.safe_load(text)
    assert list(document) == ["themes"] and len(document["themes"]) == 5
    assert build_themes([document["themes"]]).ids == ("update", "zeeland", "zipper", "rits", "kaputt")
    assert len(build_themes([THEMES_LIST, document["themes"]])) == 8
    assert text.splitlines()[2] == "  # 16 comments (8 unhappy); top terms: update 16, login 9, app 6, fails 3, inloggen 3"
    empty = to_yaml([])
    assert yaml.safe_load(empty) == {"themes": []} and len(build_themes([yaml.safe_load(empty)["themes"]])) == 0


def test_the_same_input_gives_the_same_bytes_in_any_order_and_any_process() -> None:
    """Deterministic: twice, shuffled, and in other processes (another PYTHONHASHSEED orders sets otherwise)."""
    first = to_yaml(discover(CORPUS, THEMES).candidates)
    assert to_yaml(discover(CORPUS, THEMES).candidates) == first
    for seed in range(3):
        shuffled = list(CORPUS)
        random.Random(seed).shuffle(shuffled)
        assert to_yaml(discover(shuffled, THEMES).candidates) == first
    code = "import sys; from tests.themes.test_discover import *; sys.stdout.write(to_yaml(discover(CORPUS, THEMES).candidates))"
    for hash_seed in ("0", "4242"):
        env = os.environ | {"PYTHONHASHSEED": hash_seed}
        run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        assert run.stdout == first


def test_stop_words_numbers_and_single_letters_are_never_terms() -> None:
    noisy = [
        Answer(f"The {n} of it is and was a {n} x for them, y ok {word}", language)
        for n in range(6)
        for word, language in (("zipper", "en"), ("rits", "nl"), ("Reißverschluss", "de"))
    ]
    for found in (discover(CORPUS, NO_THEMES), discover(CORPUS + noisy, THEMES, min_count=2, terms=10)):
        assert found.candidates
        for candidate in found.candidates:
            for language, terms in candidate.terms.items():
                stop = set(stopwordsiso.stopwords(language)) if language != "any" else set()
                for term in terms:
                    assert not any(word in stop or word.isdigit() or len(word) < 2 for word in tokenize(term)), (language, term)
    only_stop_words = [Answer("It was what it was, and that is that", "en")] * 5
    assert discover(only_stop_words, NO_THEMES).candidates == []


HOSTILE = [
    "Zipper broke\n# themes: []\n- id: evil \"quoted\" 'single'",
    "Zipper broke\r\nkey: value\u2028line separator\x85next line\tand a tab",
    "Zipper broke --- {{ 7*7 }} [a, b] & *alias !tag %directive @ `back` ... " + "very long " * 30,
    "Zipper broke \x00\x1b[2J\ufeff",
]


def test_customer_text_cannot_break_the_yaml() -> None:
    found = discover([Answer(text, "en") for text in HOSTILE], NO_THEMES)
    assert len(found.candidates) == 1 and len(found.candidates[0].examples) == 3
    text = to_yaml(found.candidates)
    assert yaml.safe_load(text) == {"themes": [found.candidates[0].as_theme()]}
    examples = [line for line in text.splitlines() if "e.g." in line]
    assert len(examples) == 3 and all(line.startswith('  # e.g. "Zipper broke') and len(line) <= 140 for line in examples)
    assert any("# themes: [] - id: evil" in line for line in examples)  # on the comment's own line, collapsed
    assert not set(text) & {"\x00", "\x1b", "\r", "\t", "\x85", "\u2028", "\ufeff"}


def test_terms_yaml_would_read_as_something_else_stay_text() -> None:
    odd = ["no", "yes", "null", "on", "1e3", "0x1F", "12", "true", "off"]  # each would load as a bool, null or number
    candidate = Candidate("odd", "No, yes", {"en": odd, "any": ["NaN"]}, 3, 1, (("no", 3),), ('He said: "no" # really',), ("no",))
    document = yaml.safe_load(to_yaml([candidate]))
    assert document == {"themes": [{"id": "odd", "label": "No, yes", "terms": {"en": odd, "any": ["NaN"]}}]}
    assert build_themes([document["themes"]]).ids == ("odd",)


def test_candidate_for_a_term_as_written_or_as_a_stem() -> None:
    zipper = candidate_for("Zipper", CORPUS, THEMES)
    assert zipper is not None and zipper.keys[0] == "zipper" and zipper.count == 8 and zipper.id == "zipper"
    assert candidate_for("zipper", CORPUS, THEMES) == zipper
    german = candidate_for("Reißverschluss", CORPUS, THEMES)
    assert german is not None and german.count == 4 and german.terms["de"][0] == "Reißverschluss"  # its term first
    phrase = candidate_for("login fails", CORPUS, THEMES)
    assert phrase is not None and phrase.count == 2 and phrase.top_terms[0] == ("login fails", 2)
    assert candidate_for("late", CORPUS, THEMES) is None  # a theme covers those comments
    assert candidate_for("umbrella", CORPUS, THEMES) is None
    assert yaml.safe_load(to_yaml([zipper]))["themes"][0]["terms"]["en"][0] == "zipper"


def test_ids_are_unique_and_leave_the_existing_ones_alone() -> None:
    taken = build_themes([[*THEMES_LIST, {"id": "zipper", "label": "Zipper (old)", "terms": {"en": ["velcro"]}}]])
    found = discover(CORPUS, taken)
    assert [c.id for c in found.candidates][:3] == ["update", "zeeland", "zipper-2"]
    build_themes([[*THEMES_LIST, {"id": "zipper", "label": "Z", "terms": {"en": ["velcro"]}}], [c.as_theme() for c in found.candidates]])


def test_min_count_and_max_candidates() -> None:
    assert [c.id for c in discover(CORPUS, THEMES, min_count=5).candidates] == ["update", "zeeland", "zipper", "rits"]
    assert [c.id for c in discover(CORPUS, THEMES, max_candidates=2).candidates] == ["update", "zeeland"]
    assert all(len(c.keys) <= 2 for c in discover(CORPUS, THEMES, terms=2).candidates)


# -- the command -------------------------------------------------------------------------------------

RULES = """\
rules:
  - id: detractor
    when: {survey: nps, score: {lte: 6}}
    severity: high
    followup: {owner: cx-oncall}
themes:
""" + "".join(f"  - {json.dumps(theme)}\n" for theme in THEMES_LIST)


def event_lines(corpus: list[Answer]) -> list[bytes]:
    lines = []
    for number, answer in enumerate(corpus):
        event = {"event_id": f"e{number}", "occurred_at": "2026-03-02T09:00:00+00:00", "survey": "nps", "score": 3 if answer.unhappy else 9}
        event |= {"comment": answer.comment, "customer": {"id": f"c-{number}"}} | ({"language": answer.language} if answer.language else {})
        lines.append(json.dumps(event).encode())
    return lines


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "answers.jsonl"
    path.write_bytes(b"\n".join([*event_lines(CORPUS), b"not json", b""]) + b"\n")
    return path


def test_the_command_prints_the_yaml_and_a_summary(rules_file: Path, events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["themes", "suggest", str(rules_file), "--events", str(events_file)]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out == to_yaml(discover(CORPUS, THEMES).candidates)
    assert err.splitlines()[-1] == (
        "77 answers read (1 invalid skipped, the first at line 77), 76 commented, 15 covered by the 3 existing theme(s), "
        "61 not; 5 candidate theme(s) for 46 of those"
    )
    out_file = events_file.with_name("suggested.yaml")
    assert main(["themes", "suggest", str(rules_file), "--events", str(events_file), "--max", "2", "--out", str(out_file)]) == EXIT_OK
    assert capsys.readouterr().out == "" and [t["id"] for t in yaml.safe_load(out_file.read_text())["themes"]] == ["update", "zeeland"]


def test_the_command_without_themes_and_its_usage_errors(tmp_path: Path, events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text(RULES.split("themes:")[0])
    assert main(["themes", "suggest", str(bare), "--events", str(events_file)]) == EXIT_OK
    assert "0 covered by the 0 existing theme(s)" in capsys.readouterr().err
    for args, message in [
        (["--events", str(tmp_path / "nope.jsonl")], "error: events file not found"),
        (["--events", str(events_file), "--since", "1d"], "error: --since and --bootstrap go with --from-topic"),
        (["--events", str(events_file), "--min-count", "0"], "error: --min-count must be 1 or more"),
        (["--from-topic", "t", "--since", "soon"], "error: --since:"),
    ]:
        assert main(["themes", "suggest", str(bare), *args]) == EXIT_USAGE, args
        assert capsys.readouterr().err.startswith(message), args
    broken = tmp_path / "broken.yaml"
    broken.write_text(RULES + "  - {id: Bad Id, label: x}\n")
    assert main(["themes", "suggest", str(broken), "--events", str(events_file)]) == EXIT_USAGE
    assert "is not a theme id" in capsys.readouterr().err


def test_the_command_reads_a_topic_range(
    kafka_bootstrap: str, topics: dict[str, str], rules_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = topics["FEEDBACK_TOPIC"]
    produce(kafka_bootstrap, topic, [(f"k{n}".encode(), line) for n, line in enumerate(event_lines(CORPUS))])
    assert main(["themes", "suggest", str(rules_file), "--from-topic", topic, "--since", "1h", "--bootstrap", kafka_bootstrap]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out == to_yaml(discover(CORPUS, THEMES).candidates)  # the order the partitions give does not matter
    assert "76 answers read, 76 commented" in err
