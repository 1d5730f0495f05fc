"""Customer text in Slack, safely: escaping, the sandbox, and the filters templates use.

Customer text is untrusted, so safety does not depend on template authors remembering a
filter: every `{{ ... }}` output passes through `_finalize`, which escapes `&`, `<` and `>`
for Slack (so `<!channel>` or `<@U123>` in a comment can never ping anyone or forge a link)
and JSON-escapes it (so a quote or newline cannot break out of the string it sits in).
Templates run in Jinja2's sandbox (`Environment`), and the comment is passed as data:
`{{ 7*7 }}` in a comment stays those seven characters.
"""

from __future__ import annotations

import re
from json.encoder import encode_basestring
from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel

_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def slack_escape(text: str) -> str:
    """Escape the three characters Slack treats as control characters in message text."""
    if "&" in text or "<" in text or ">" in text:  # most values have none: three scans beat a translate
        return text.translate(_SLACK_ESCAPES)
    return text


class _Rendered(str):
    """Output the template already produced (and so already escaped), e.g. `self.headline()`."""


def _finalize(value: Any) -> str:
    """Applied to every `{{ }}` output: Slack-escape, then escape for a JSON string body."""
    if value is None:
        return ""
    if isinstance(value, _Rendered):
        return value
    # What json.dumps(text, ensure_ascii=False) does for a str, without building an encoder per value.
    return encode_basestring(slack_escape(value if type(value) is str else str(value)))[1:-1]


_DICT_ATTRIBUTES = frozenset(dir(dict))
_MODEL_FIELDS: dict[type, frozenset[str]] = {}


class _Environment(SandboxedEnvironment):
    # Blocks, macros and `{% set %}` blocks are joined with this: marking their output lets
    # `{{ self.block() }}` reuse it without escaping it twice.
    concat = staticmethod(lambda parts: _Rendered("".join(parts)))

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`event.customer.name`, `rule.id`: a model's field or a dict's key at once, as the sandbox would return it.

        The sandbox tries the attribute, fails on a dict, then checks every value it returns; for these
        two it would return the same value, so the checks (a third of a render) are skipped. Anything
        else, and any name that is not a field or key, goes through the sandbox as before."""
        kind = type(obj)
        if kind is dict:
            if attribute in obj and attribute not in _DICT_ATTRIBUTES:
                return obj[attribute]
        elif isinstance(obj, BaseModel):
            fields = _MODEL_FIELDS.get(kind)
            if fields is None:
                fields = _MODEL_FIELDS[kind] = frozenset(kind.model_fields)
            if attribute in fields:
                return obj.__dict__[attribute]
        return super().getattr(obj, attribute)


def _slack_date(value: Any) -> str:
    """`2026-11-24 10:00 UTC` for a datetime; Slack shows it as written."""
    try:
        return value.strftime("%Y-%m-%d %H:%M %Z").strip()
    except AttributeError:
        return str(value)


def fit(value: Any, limit: int) -> str:
    """Shorten text so that, once escaped for Slack, it is at most `limit` characters.

    `truncate` counts characters before escaping; `&` becomes five, so a hostile comment
    cut by `truncate` can still break Slack's per-block limit and get the alert refused.
    """
    text = "" if value is None else str(value)
    if len(text) * 5 <= limit:  # cannot exceed the limit even if every character grows
        return text
    size = 0
    for index, char in enumerate(text):
        size += len(slack_escape(char))
        if size > limit - 1:
            return text[:index] + "…"
    return text


_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,20}$")


def slack_mention(value: Any) -> str:
    """<@U01ABC> for a Slack user id, <!subteam^S01> for a user group, the escaped text for anything else
    (a team name). Ids are checked, so nothing else can ping."""
    if value is None:
        return ""
    text = str(value)
    if _SLACK_USER.match(text):
        return f"<@{text}>"
    if _SLACK_GROUP.match(text):
        return f"<!subteam^{text}>"
    return slack_escape(text)


def mention(value: Any) -> str:
    """`{{ task.assignee | mention }}` in a template: slack_mention, escaped for the JSON string it sits in."""
    return _Rendered(encode_basestring(slack_mention(value))[1:-1])


def _money(value: Any) -> str:
    """`$1,234.50`, or `—` when unknown."""
    if value is None:
        return "—"
    return f"${value:,.2f}"


def sandbox(**options: Any) -> SandboxedEnvironment:
    """A sandboxed Jinja2 environment whose every output is escaped for Slack and JSON, with the filters templates
    use (`slack_date`, `money`, `fit`, `mention`)."""
    env = _Environment(autoescape=False, finalize=_finalize, **options)
    env.filters.update(slack_date=_slack_date, money=_money, fit=fit, mention=mention)
    return env
