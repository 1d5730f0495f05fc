"""Comment themes (issue 21): which themes ops defined a comment mentions, and a suggested root cause for its task.

model.py     `themes:` as ops write it: Theme, build_themes (every mistake with its path), ThemeSet
text.py      tokens, Snowball stems without accents, the per-language stem cache
language.py  the language of a comment without one, among the languages the themes use
matcher.py   ThemeMatcher: a comment → Tagging (themes, language, words, stems)
suggest.py   CauseCounts: naive Bayes over stems, learned from resolved tasks → Suggestion
emerging.py  rising complaints: `emerging:` (EmergingSpec), when a term is rising, which themes cover it
discovery.py new themes from the comments no theme covers (`themes suggest`): candidates, as YAML to paste

**Loading** (rules/loader.py). Each rules file may have a `themes:` list; pass every file's (None where
absent) to `build_themes`, which checks them together (ids unique across files, parents that exist, no
cycle, languages with a stemmer, terms with words) and raises ThemesError with every problem. A problem
says which list (`source`, the file's position) and where in it (`loc`, a path as pydantic gives one), so
the loader locates it as it does a rule's blocks, and its text names the theme and the field::

    lists = [document.get("themes") for document in documents]          # LineList (or None) per file
    at = lambda source, loc: locate(lists[source], loc, Location(files[source], 1))
    try:
        themes = build_themes(lists, where=lambda source, loc: str(at(source, loc)))
    except ThemesError as err:
        for problem in err.problems:
            problems.add(at(problem.source, problem.loc), str(problem))
    # rules/themes.yaml:14: theme 'shipping-delay': themes[1].terms.xx: unknown language 'xx': an ISO 639-1 code ...
    # rules/themes.yaml:19: theme 'delivery': themes[2].id: duplicate theme id 'delivery' (first defined at rules/themes.yaml:3)

**Tagging** (the loop, per commented answer). Build one `ThemeMatcher(themes)` per ThemeSet, at load and
on each hot reload (~25 ms of CPU for 20 themes and 200 terms in five languages; its caches start empty).
Then, for an answer::

    tagging = matcher.tag(event.comment, event.language)   # language: ISO 639-1 or None
    tagging.themes      # frozenset of theme ids, ancestors included: what rules and snapshots count
    tagging.language    # the event's, or the one decided here; None: undecided
    tagging.stems       # every token's stem, for a later feature ("rising complaints") without re-stemming

Matching, exactly as the issue says: tokens are the maximal runs of Unicode word characters (NFC first),
casefolded; each is stemmed by the Snowball stemmer of the comment's language, then its accents are
removed; a term is tokenised and stemmed the same way, and a term of k words matches where its k stems
occur consecutively. A comment mentions a theme when a term of its language or of `any` matches; a parent
is mentioned whenever a child is.

**The language of a comment without one** (language.py): chosen among the languages the themes' terms use,
by stop-word hits (stopwordsiso's lists), the letters a language writes beyond a–z (õ, ß, ñ, ä...) and a
few spellings typical of each language (ij, sch, -ción, -nud...), each shared between the candidates that
have it. No evidence, or a tie at the top, is undecided: the comment is then stemmed and matched in every
candidate language (cheap: such comments are short), so "Late delivery" still finds its theme. An event
language without a stemmer (ja, zh...) matches the `any` terms, casefolded and without accents.

How often it is right, candidates en, nl, et, de, es (tests/themes/test_language.py keeps floors under these):

- the demo's comments (worker/demo/samples.py, 23 distinct): 21 right; 1 undecided (de "Alles bestens, danke":
  as Dutch as German); 1 wrong (nl "Super snelle levering, top!" is taken for English: "super" and "top" are
  in stopwordsiso's English list). Weighted as the demo generates them, 81.6 % right, 9.1 % undecided,
  9.3 % wrong (of 17,614 commented answers, seed 7);
- 35 comments per language written for the tests (plus the demo's): en 45/45, nl 37/39, et 35/39, de 35/37,
  es 38/38 (96 %; the spelling table was tuned on them);
- 15 per language written afterwards and measured before any further change: 93.3 % (en 14, nl 15, et 12,
  de 14, es 15), 94.7 % now. Estonian is the weakest: its stop-word list has 35 words. An event that carries
  `language` needs none of this.

**Suggested root cause** (tasks/learning.py's CauseModel keeps the counts in the state topic; the replica
that opens a task asks it). `CauseCounts` is the model: naive Bayes over the comment's keywords (and its
themes, as `#theme` features that link comments in different languages); the counts are additive, so every
replica that reads the same records holds the same model::

    counts.add(root_cause, tagging.keywords)         # a task resolved (its comment's stems, kept in its Open)
    suggestion = counts.suggest(tagging.keywords, tagging.keyword_words, min_examples=20)
    # {"root_cause": "shipping-delay", "confidence": 0.87, "terms": ["late", "parcel", "arrived"]}

**Cost** (bench/themes.py): tagging a commented answer, 20 themes in five languages, is ~5 µs of CPU with
the event's language and ~7 µs without (warm caches); each new spelling is stemmed once, ~5 µs with PyStemmer
(a dependency: the same Snowball 3 stemmers in C, which snowballstemmer uses by itself; tests/themes/
test_stemmers.py keeps the two in agreement, so every replica stems alike), ~100 µs in pure Python. A short
comment seen before (the latest REMEMBERED, up to REMEMBERED_LENGTH characters) costs one look-up; only the
first MAX_WORDS words of a comment are tagged (customer text is untrusted).
"""

from .discovery import DEFAULT_LANGUAGES, Answer, Candidate, Discovery, candidate_for, discover, term_forms, to_yaml
from .emerging import EmergingSpec, RisingTerm, covering, rising_terms
from .language import LanguageGuesser
from .matcher import Tagging, ThemeMatcher
from .model import ANY, NO_THEMES, Loc, Theme, ThemeProblem, ThemesError, ThemeSet, build_themes
from .suggest import DEFAULT_MIN_EXAMPLES, CauseCounts, Suggestion
from .text import LANGUAGES, StemCache, strip_accents, tokenize

__all__ = [
    "ANY",
    "Answer",
    "Candidate",
    "Discovery",
    "EmergingSpec",
    "RisingTerm",
    "covering",
    "rising_terms",
    "term_forms",
    "candidate_for",
    "discover",
    "to_yaml",
    "CauseCounts",
    "DEFAULT_LANGUAGES",
    "DEFAULT_MIN_EXAMPLES",
    "LANGUAGES",
    "LanguageGuesser",
    "Loc",
    "NO_THEMES",
    "StemCache",
    "Suggestion",
    "Tagging",
    "Theme",
    "ThemeMatcher",
    "ThemeProblem",
    "ThemeSet",
    "ThemesError",
    "build_themes",
    "strip_accents",
    "tokenize",
]
