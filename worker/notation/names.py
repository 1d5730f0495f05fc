"""Channel and owner names as ops write them: plain text, or a template over the event.

`alert.channel: "#cx-{{ customer.segment }}"` and `followup.owner: "{{ attributes.team }}"`
are rendered per event by the router (rules/routing.py); here they are only parsed, when a
rules file loads, so a broken template is a `file:line` error instead of a 3 a.m. surprise.
"""

from __future__ import annotations

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

_PARSER = SandboxedEnvironment()


def check_name_template(value: str | None) -> str | None:
    """A channel or owner that is a template must at least parse; raises ValueError naming it."""
    if value is not None and "{{" in value:
        try:
            _PARSER.parse(value)
        except TemplateSyntaxError as err:
            raise ValueError(f"invalid template {value!r}: {err.message}") from None
    return value
