"""Themes as ops write them (`themes:` in any rules file), checked all at once with the path of each mistake.

    themes:
      - id: delivery
        label: Delivery
      - id: shipping-delay
        label: Shipping delay
        parent: delivery
        terms:
          en: [late, delay, "never arrived"]
          nl: [vertraging, "te laat"]
          any: [PostNL]

`Theme` checks one entry's shape (pydantic); `build_themes` checks the entries together (ids unique,
parents that exist, no cycle, known languages, terms that have words) and reports every problem, each
with the path of the value at fault (`themes[1].terms.nl[0]`) as `loc`: the rules loader turns a
`loc` into `file:line` with `notation.locate`, as it does for a rule's blocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .text import LANGUAGES, tokenize

#: A theme's id: a slug, as root causes are (they name the same kind of thing, and are keys in metrics).
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

#: The key of the terms that match a comment in any language (brand names, product codes).
ANY = "any"

#: A path inside one `themes:` list: (1, "terms", "nl", 0) is `themes[1].terms.nl[0]`.
Loc = tuple[int | str, ...]


class Theme(BaseModel):
    """One entry of `themes:`. A theme with no terms of its own is mentioned through its children."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="A slug: lower-case letters, digits and '-' (e.g. shipping-delay).")
    label: str = Field(min_length=1, description="What people read: Slack, digests, reports.")
    parent: str | None = Field(None, description="The id of a broader theme, mentioned whenever this one is.")
    terms: dict[str, list[str]] = Field(
        default_factory=dict, description="Per ISO 639-1 language code, or `any`: words and phrases that mention the theme."
    )

    @field_validator("id", "parent")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not _SLUG.match(value):
            raise ValueError(f"{value!r} is not a theme id: lower-case letters, digits and '-' (e.g. shipping-delay)")
        return value


@dataclass(frozen=True)
class ThemeProblem:
    """One mistake: where (`source`: which `themes:` list, `loc`: the path inside it) and what."""

    source: int
    loc: Loc
    message: str
    theme: str | None = None  # the id, when the entry has a usable one

    @property
    def path(self) -> str:
        """`themes[1].terms.nl[0]`."""
        text = "themes"
        for part in self.loc:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text

    def __str__(self) -> str:
        named = f"theme {self.theme!r}: " if self.theme else ""
        return f"{named}{self.path}: {self.message}"


class ThemesError(Exception):
    """Every problem found in the `themes:` lists, in the order of the lists and their entries."""

    def __init__(self, problems: list[ThemeProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


@dataclass(frozen=True)
class ThemeSet:
    """Checked themes, in file order, with each one's ancestors (parent, grandparent, ...)."""

    themes: tuple[Theme, ...] = ()
    _by_id: dict[str, Theme] = field(init=False, repr=False, compare=False)
    _ancestors: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {theme.id: theme for theme in self.themes}
        ancestors: dict[str, tuple[str, ...]] = {}
        for theme in self.themes:
            chain: list[str] = []
            parent = theme.parent
            while parent is not None and parent in by_id and parent not in chain and parent != theme.id:
                chain.append(parent)
                parent = by_id[parent].parent
            ancestors[theme.id] = tuple(chain)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_ancestors", ancestors)

    def __len__(self) -> int:
        return len(self.themes)

    def __iter__(self) -> Iterator[Theme]:
        return iter(self.themes)

    def __contains__(self, theme_id: object) -> bool:
        return theme_id in self._by_id

    def __getitem__(self, theme_id: str) -> Theme:
        return self._by_id[theme_id]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(theme.id for theme in self.themes)

    def ancestors(self, theme_id: str) -> tuple[str, ...]:
        """Parent first, then its parent, up to the root."""
        return self._ancestors[theme_id]

    def label(self, theme_id: str) -> str:
        return self._by_id[theme_id].label

    def labels(self, theme_ids: Iterable[str]) -> list[str]:
        """What a person reads for a comment's themes: the most specific ones, each under its ancestors
        ("Delivery › Shipping delay"), in the order the themes are defined. Ids no longer defined (a task
        opened before a reload) are shown as they are."""
        ids = set(theme_ids)
        implied = {ancestor for theme_id in ids if theme_id in self._by_id for ancestor in self._ancestors[theme_id]}
        shown = [theme.id for theme in self.themes if theme.id in ids and theme.id not in implied]
        shown += sorted(theme_id for theme_id in ids if theme_id not in self._by_id)
        return [
            " › ".join([*(self.label(a) for a in reversed(self._ancestors[t])), self.label(t)]) if t in self._by_id else t for t in shown
        ]

    @property
    def languages(self) -> tuple[str, ...]:
        """The language codes the terms use (not `any`), in order of first use: the candidates for detection."""
        seen: dict[str, None] = {}
        for theme in self.themes:
            seen.update((language, None) for language in theme.terms if language != ANY)
        return tuple(seen)


#: No themes: what a rules directory without `themes:` gives.
NO_THEMES = ThemeSet()


def build_themes(lists: Sequence[Any], where: Callable[[int, Loc], str] | None = None) -> ThemeSet:
    """The themes of every `themes:` list (one per rules file, in file order), checked together.

    Raises ThemesError with every problem. `where(source, loc)` names a place in a message that points
    at another entry (a duplicate's first definition); by default its path, with the list's number when
    there are several. An absent list (None) is no themes.
    """
    problems: list[ThemeProblem] = []
    entries: list[tuple[int, int, Theme]] = []  # (source, index, theme)
    declared: set[str] = set()  # every id written, so an entry with another mistake is still a parent that exists
    for source, items in enumerate(lists):
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(ThemeProblem(source, (), "`themes:` must be a list of themes (id, label, parent, terms)"))
            continue
        for index, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                declared.add(item["id"])
            theme = _theme(source, index, item, problems)
            if theme is not None:
                entries.append((source, index, theme))
    kept = _unique(entries, where or _default_where(len(lists)), problems)
    by_id = {theme.id: (source, index, theme) for source, index, theme in kept}
    for source, index, theme in kept:
        if theme.parent is not None and theme.parent not in declared:
            problems.append(ThemeProblem(source, (index, "parent"), f"no theme has the id {theme.parent!r}", theme.id))
    problems.extend(_cycles(by_id))
    if problems:
        raise ThemesError(sorted(problems, key=lambda problem: (problem.source, problem.loc[:1])))
    return ThemeSet(tuple(theme for _, _, theme in kept))


def _default_where(lists: int) -> Callable[[int, Loc], str]:
    """`themes[0]`, or `themes[0] of list 2` when there are several lists."""
    return lambda source, loc: ThemeProblem(source, loc, "").path + (f" of list {source + 1}" if lists > 1 else "")


def _theme(source: int, index: int, item: Any, problems: list[ThemeProblem]) -> Theme | None:
    """One entry as a Theme, or None with its problems added (shape first, then languages and terms)."""
    theme_id = item.get("id") if isinstance(item, dict) else None
    named = theme_id if isinstance(theme_id, str) and _SLUG.match(theme_id) else None
    if not isinstance(item, dict):
        problems.append(ThemeProblem(source, (index,), "expected a mapping with id, label and terms"))
        return None
    try:
        theme = Theme.model_validate(item)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = f"unknown key (expected: {', '.join(Theme.model_fields)})"
            elif err["type"] == "value_error":
                message = str(err.get("ctx", {}).get("error", message))
            elif err["type"] == "string_type" and err["loc"][:1] == ("terms",):  # YAML reads `no`, `on`, `12` as other types
                message = f"not text (YAML read {err['input']!r}): quote it"
            problems.append(ThemeProblem(source, (index, *err["loc"]), message, named))
        return None
    before = len(problems)
    for language, words in theme.terms.items():
        if language != ANY and language not in LANGUAGES:
            known = ", ".join(sorted(LANGUAGES))
            message = f"unknown language {language!r}: an ISO 639-1 code with a stemmer ({known}), or `any`"
            problems.append(ThemeProblem(source, (index, "terms", language), message, theme.id))
            continue
        if not words:
            problems.append(ThemeProblem(source, (index, "terms", language), "give at least one term, or leave the language out", theme.id))
        for number, word in enumerate(words):
            if not tokenize(word):
                problems.append(
                    ThemeProblem(source, (index, "terms", language, number), f"{word!r} has no word in it (letters or digits)", theme.id)
                )
    return theme if len(problems) == before else None


def _unique(
    entries: list[tuple[int, int, Theme]], name: Callable[[int, Loc], str], problems: list[ThemeProblem]
) -> list[tuple[int, int, Theme]]:
    first: dict[str, tuple[int, int]] = {}
    kept = []
    for source, index, theme in entries:
        if theme.id in first:
            at = name(first[theme.id][0], (first[theme.id][1],))
            problems.append(ThemeProblem(source, (index, "id"), f"duplicate theme id {theme.id!r} (first defined at {at})", theme.id))
            continue
        first[theme.id] = (source, index)
        kept.append((source, index, theme))
    return kept


def _cycles(by_id: dict[str, tuple[int, int, Theme]]) -> list[ThemeProblem]:
    """Each cycle of parents once, reported at its first member in file order: `a → b → a`."""
    problems = []
    reported: set[str] = set()
    for theme_id, (source, index, theme) in by_id.items():
        chain = [theme_id]
        parent = theme.parent
        while parent is not None and parent in by_id and parent not in chain:
            chain.append(parent)
            parent = by_id[parent][2].parent
        if parent != theme_id or theme_id in reported:
            continue
        reported.update(chain)
        loop = " → ".join([*chain, theme_id])
        problems.append(ThemeProblem(source, (index, "parent"), f"the parents form a cycle: {loop}", theme_id))
    return problems
