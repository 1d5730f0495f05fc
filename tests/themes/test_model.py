"""Checking `themes:`: every mistake reported at once, naming the theme and the field path, locatable to file:line.

The last tests load real YAML with notation.load_yaml and locate each problem as the rules loader
will, so a path that does not lead to the offending line fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from worker.notation import LineList, Location, load_yaml, locate
from worker.themes import ThemeProblem, ThemesError, ThemeSet, build_themes


def problems(*lists: Any) -> list[str]:
    with pytest.raises(ThemesError) as caught:
        build_themes(list(lists))
    assert str(caught.value) == "\n".join(str(problem) for problem in caught.value.problems)
    return [str(problem) for problem in caught.value.problems]


def test_the_issue_s_example_loads_with_its_hierarchy_and_languages() -> None:
    themes = build_themes(
        [
            [
                {"id": "delivery", "label": "Delivery"},
                {
                    "id": "shipping-delay",
                    "label": "Shipping delay",
                    "parent": "delivery",
                    "terms": {
                        "en": ["late", "delay", "never arrived"],
                        "nl": ["vertraging", "te laat"],
                        "et": ["hilinemine", "hilines"],
                        "any": ["PostNL"],
                    },
                },
            ]
        ]
    )
    assert themes.ids == ("delivery", "shipping-delay")
    assert themes.ancestors("shipping-delay") == ("delivery",) and themes.ancestors("delivery") == ()
    assert themes.label("shipping-delay") == "Shipping delay" and "delivery" in themes and len(themes) == 2
    assert themes.languages == ("en", "nl", "et")


def test_no_themes_list_is_no_themes() -> None:
    assert build_themes([None, None]) == ThemeSet() and len(build_themes([])) == 0


def test_a_duplicate_id_names_the_first_definition() -> None:
    assert problems([{"id": "a", "label": "A"}, {"id": "a", "label": "A again"}]) == [
        "theme 'a': themes[1].id: duplicate theme id 'a' (first defined at themes[0])"
    ]


def test_ids_are_unique_across_files_and_a_parent_may_be_in_another_file() -> None:
    assert len(build_themes([[{"id": "a", "label": "A"}], [{"id": "b", "label": "B", "parent": "a"}]])) == 2
    assert problems([{"id": "a", "label": "A"}], [{"id": "a", "label": "A"}]) == [
        "theme 'a': themes[0].id: duplicate theme id 'a' (first defined at themes[0] of list 1)"
    ]


def test_an_unknown_parent() -> None:
    assert problems([{"id": "late", "label": "Late", "parent": "delivry"}]) == [
        "theme 'late': themes[0].parent: no theme has the id 'delivry'"
    ]


def test_a_parent_with_a_mistake_of_its_own_still_exists() -> None:
    """Only the parent's own mistake is reported, not 'no theme has the id' for each of its children."""
    assert problems([{"id": "a", "label": "A", "terms": {"xx": ["x"]}}, {"id": "b", "label": "B", "parent": "a"}]) == [
        "theme 'a': themes[0].terms.xx: unknown language 'xx': an ISO 639-1 code with a stemmer "
        "(ar, ca, cs, da, de, el, en, eo, es, et, eu, fa, fi, fr, ga, hi, hu, hy, id, it, lt, ne, nl, no, pl, pt, ro, ru, sr, st, sv, ta, tr, yi), or `any`"
    ]


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([{"id": "a", "label": "A", "parent": "a"}], ["theme 'a': themes[0].parent: the parents form a cycle: a → a"]),
        (
            [{"id": "a", "label": "A", "parent": "c"}, {"id": "b", "label": "B", "parent": "a"}, {"id": "c", "label": "C", "parent": "b"}],
            ["theme 'a': themes[0].parent: the parents form a cycle: a → c → b → a"],
        ),
        (  # a theme under a cycle is not a cycle of its own
            [{"id": "a", "label": "A", "parent": "b"}, {"id": "b", "label": "B", "parent": "a"}, {"id": "c", "label": "C", "parent": "a"}],
            ["theme 'a': themes[0].parent: the parents form a cycle: a → b → a"],
        ),
    ],
)
def test_a_cycle_of_parents_is_reported_once(entries: list[dict[str, Any]], expected: list[str]) -> None:
    assert problems(entries) == expected


def test_language_codes_must_have_a_stemmer() -> None:
    (problem,) = problems([{"id": "a", "label": "A", "terms": {"english": ["late"]}}])
    assert problem.startswith("theme 'a': themes[0].terms.english: unknown language 'english': an ISO 639-1 code with a stemmer (")
    assert build_themes([[{"id": "a", "label": "A", "terms": {"fr": ["retard"], "sv": ["försenad"]}}]]).languages == ("fr", "sv")


def test_a_term_must_have_a_word_and_be_text() -> None:
    assert problems([{"id": "a", "label": "A", "terms": {"en": ["late"], "any": [False, 12]}}]) == [  # YAML's `no` and `12`
        "theme 'a': themes[0].terms.any[0]: not text (YAML read False): quote it",
        "theme 'a': themes[0].terms.any[1]: not text (YAML read 12): quote it",
    ]
    assert problems([{"id": "a", "label": "A", "terms": {"nl": ["vertraging", "?!", "te laat"], "en": []}}]) == [
        "theme 'a': themes[0].terms.nl[1]: '?!' has no word in it (letters or digits)",
        "theme 'a': themes[0].terms.en: give at least one term, or leave the language out",
    ]


def test_the_shape_of_an_entry() -> None:
    assert problems(
        [
            {"id": "Shipping Delay", "label": "x"},
            {"id": "b", "lable": "B"},
            "delivery",
            {"id": "c", "label": "C", "terms": ["late"]},
        ]
    ) == [
        "themes[0].id: 'Shipping Delay' is not a theme id: lower-case letters, digits and '-' (e.g. shipping-delay)",
        "theme 'b': themes[1].label: Field required",
        "theme 'b': themes[1].lable: unknown key (expected: id, label, parent, terms)",
        "themes[2]: expected a mapping with id, label and terms",
        "theme 'c': themes[3].terms: Input should be a valid dictionary",
    ]
    assert problems({"id": "a"}) == ["themes: `themes:` must be a list of themes (id, label, parent, terms)"]


def test_every_problem_of_every_entry_is_reported_in_file_order() -> None:
    found = problems(
        [
            {"id": "a", "label": "A", "parent": "nope"},
            {"id": "b", "label": "", "terms": {"xx": ["y"]}},
            {"id": "a", "label": "A2"},
        ]
    )
    assert [line.split(":")[1].strip() for line in found] == ["themes[0].parent", "themes[1].label", "themes[2].id"]


# -- file:line, as the rules loader will attach it ---------------------------------------------

YAML = """\
rules: []
themes:
  - id: delivery
    label: Delivery
  - id: shipping-delay
    label: Shipping delay
    parent: delivery
    terms:
      en: [late, delay]
      nl:
        - vertraging
        - "!!"
      xx: [late]
  - id: delivery
    label: Twice
"""


def test_each_problem_leads_to_its_line_in_the_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "themes.yaml"
    path.write_text(YAML, encoding="utf-8")
    document = load_yaml(path)
    lists: list[Any] = [document["themes"]]
    assert isinstance(lists[0], LineList)

    def where(source: int, loc: tuple[int | str, ...]) -> str:
        return str(locate(lists[source], loc))

    with pytest.raises(ThemesError) as caught:
        build_themes(lists, where=where)
    located = [f"{locate(lists[p.source], p.loc)}: {p}" for p in caught.value.problems]
    assert located == [
        f"{path}:12: theme 'shipping-delay': themes[1].terms.nl[1]: '!!' has no word in it (letters or digits)",
        f"{path}:13: theme 'shipping-delay': themes[1].terms.xx: unknown language 'xx': an ISO 639-1 code with a stemmer ("
        + located[1].split("stemmer (", 1)[1],
        f"{path}:14: theme 'delivery': themes[2].id: duplicate theme id 'delivery' (first defined at {path}:3)",
    ]
    assert locate(lists[0], ThemeProblem(0, (1, "parent"), "").loc) == Location(str(path), 7)
