"""The README and the reference in docs/ hold together: every relative link resolves, the README stays short.

A link resolves when the file (or folder) it names exists, relative to the page, and its `#anchor`,
in a Markdown target, is the slug of one of that page's headings as GitHub makes it (lowercase, spaces
to `-`, punctuation but `-` and `_` removed, `-1`, `-2`... for repeats). Links in code are not links.
No broker needed.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 300

#: Every page whose links are checked: the README, the docs, and the benchmarks' README (which may link them).
PAGES = [README, *sorted(DOCS.rglob("*.md")), ROOT / "bench" / "README.md"]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code spans blanked out."""
    lines, in_fence = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append((number, CODE_SPAN.sub("code", line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (github-slugger, over the text as rendered)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text, not its target
    text = text.replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a page has: its headings' slugs (repeats numbered as GitHub does) and HTML anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    text = page.read_text(encoding="utf-8")
    in_fence = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if match := HEADING.match(line):
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(HTML_ANCHOR.findall(line))
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link and image in a page's prose."""
    found = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        found += [(number, target) for target in INLINE_LINK.findall(line)]
        if match := REFERENCE.match(line):
            found.append((number, match.group(1)))
    return found


def resolve(page: Path, target: str) -> tuple[Path | None, str]:
    """The file a relative link names and its anchor; (None, "") for a link off this repository."""
    if SCHEME.match(target) or target.startswith("//"):
        return None, ""
    path, _, anchor = target.partition("#")
    return (page.parent / unquote(path)).resolve() if path else page, unquote(anchor)


def broken_links(page: Path) -> list[str]:
    """`file:line: target: why` for each relative link of the page that does not resolve."""
    problems = []
    for number, target in links(page):
        path, anchor = resolve(page, target)
        where = f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name}:{number}: {target}"
        if path is None:
            continue
        if not target:
            problems.append(f"{where}: an empty link")
        elif not path.exists():
            problems.append(f"{where}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            problems.append(f"{where}: no heading #{anchor} in {path.name}")
    return problems


# -- the checker itself ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Delivery guarantees", "delivery-guarantees"),
        ("No alert floods: throttling and silences", "no-alert-floods-throttling-and-silences"),
        ("Why the figures stay exact across crashes and replicas", "why-the-figures-stay-exact-across-crashes-and-replicas"),
        ("/metrics and the quiet path (issue 13)", "metrics-and-the-quiet-path-issue-13"),
        ("The cost of an alert (issue 14, second part)", "the-cost-of-an-alert-issue-14-second-part"),
        ("`SLACK_APP_TOKEN` and [Socket Mode](https://api.slack.com)", "slack_app_token-and-socket-mode"),
        ("HEARD — follow-up", "heard--follow-up"),
    ],
)
def test_slugs_are_github_s(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_a_broken_link_or_anchor_is_found(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# A page\n\n## Real section: yes\n\n## Twice\n\n## Twice\n\n```\n## not a heading\n```\n")
    page = tmp_path / "sub" / "b.md"
    page.write_text(
        "# B\n\n"
        "[fine](../a.md#real-section-yes) and [fine too](../a.md#twice-1) and [here](#b) and [folder](../sub/)\n"
        "[gone](../a.md#missing-section) and [no file](../nowhere.md) and [repeat](../a.md#twice-2)\n"
        "[not a heading](../a.md#not-a-heading) and [off site](https://example.com/x.md#y)\n"
        "`[in code](../nowhere.md)`\n"
        "```\n[in a block](../nowhere.md)\n```\n"
        "[ref]: ../also-nowhere.md\n"
    )
    assert [problem.split(": ", 1)[1] for problem in broken_links(page)] == [
        "../a.md#missing-section: no heading #missing-section in a.md",
        "../nowhere.md: no such file",
        "../a.md#twice-2: no heading #twice-2 in a.md",
        "../a.md#not-a-heading: no heading #not-a-heading in a.md",
        "../also-nowhere.md: no such file",
    ]


# -- the pages --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [page for page in PAGES if page.exists()], ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_readme_is_a_first_hour_page() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < MAX_README_LINES, f"README.md has {lines} lines: move reference into docs/ (under {MAX_README_LINES})"


def test_the_readme_links_every_docs_page() -> None:
    linked = {resolve(README, target)[0] for _, target in links(README)}
    unlinked = [page.relative_to(ROOT).as_posix() for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert unlinked == [], 'link them from the README\'s "Read on"'


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda page: page.name)
def test_each_docs_page_says_what_it_is_and_links_back_to_the_readme(page: Path) -> None:
    title, blank, first, *_ = page.read_text(encoding="utf-8").splitlines() + ["", "", ""]
    assert title.startswith("# ") and blank == "", f"{page.name}: start with '# Title' and a blank line"
    assert "](../README.md)" in first, f"{page.name}: the line under the title says what the page is and links ../README.md"
