"""Alerting: from a match to a Slack message, and everything that shapes the flow of messages.
Posting it, once, is the delivery core's (worker/delivery/).

    render.py     Jinja2 templates → Block Kit, with customer text made harmless
    throttle.py   one task and one Slack thread per key per window (episodes)
    silences.py   "no alerts for c-42 for two days": held back, tasks still open
    digest.py     rule groups and the per-channel rate limit: many matches, one message
    preview.py    `template render`: an alert as it would be posted, from an event file
    cards.py      the live task card on an alert (buttons, steps, status) and the resolve dialog
    rootcauses.py the root-cause digest as its template sees it, and sample cases to preview it
"""

from .cards import RESOLVE_VIEW, audit_line, card, is_card, likely_line, new_card, resolve_view, with_card
from .digest import Digest, Digests, Item
from .escaping import fit, slack_escape
from .preview import DigestPreview, Preview, PreviewError, read_event, render_preview, render_root_causes_preview
from .render import DIGEST_TEMPLATE, REPLY_TEMPLATE, Alert, AlertRenderer, TemplateRenderError, notice_alert
from .rootcauses import ROOT_CAUSES_TEMPLATE, root_cause_context, sample_cases, sample_period, span_text
from .silences import Silence, Silences, describe, parse_matchers, silenced_by, silenced_metric
from .throttle import Episode, Throttle

__all__ = [
    "Alert",
    "AlertRenderer",
    "DIGEST_TEMPLATE",
    "Digest",
    "DigestPreview",
    "Digests",
    "Episode",
    "Item",
    "Preview",
    "RESOLVE_VIEW",
    "ROOT_CAUSES_TEMPLATE",
    "PreviewError",
    "REPLY_TEMPLATE",
    "Silence",
    "Silences",
    "TemplateRenderError",
    "audit_line",
    "card",
    "is_card",
    "likely_line",
    "new_card",
    "resolve_view",
    "root_cause_context",
    "sample_cases",
    "sample_period",
    "span_text",
    "with_card",
    "Throttle",
    "describe",
    "fit",
    "notice_alert",
    "parse_matchers",
    "read_event",
    "render_preview",
    "render_root_causes_preview",
    "silenced_by",
    "silenced_metric",
    "slack_escape",
]
