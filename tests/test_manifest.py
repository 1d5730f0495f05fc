"""The Slack app manifest, the docs' scope table and the scopes `doctor` checks against say the same thing.

deploy/slack/manifest.yaml is what an operator pastes into "Create New App → From an app manifest";
docs/slack.md's "Required scopes" table says what each scope is for; worker/cli/doctor's BOT_SCOPES is
what `doctor` compares the token's scopes with. A scope added to one and not the others would make the
app, the docs and the check disagree; the fake Slack grants the same set by default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.fake_slack.fake import ALL_SCOPES, APP_SCOPES
from worker.cli.doctor import BOT_SCOPES, HISTORY_SCOPES
from worker.cli.doctor.names import APP_SCOPE

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "deploy" / "slack" / "manifest.yaml"


def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(loaded, dict)
    return loaded


def table_scopes(token: str) -> list[str]:
    """The scopes docs/slack.md's "Required scopes" table lists for rows whose token column starts with `token`."""
    text = (ROOT / "docs" / "slack.md").read_text()
    section = text.split("### Required scopes", 1)[1].split("\n#", 1)[0]
    scopes = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith(token):
            scopes += re.findall(r"`([a-z]+:[a-z]+)`", cells[1])
    return scopes


def test_the_manifest_the_docs_and_doctor_name_the_same_bot_scopes() -> None:
    in_manifest = manifest()["oauth_config"]["scopes"]["bot"]
    assert len(in_manifest) == len(set(in_manifest)), "a scope listed twice"
    assert sorted(in_manifest) == sorted(table_scopes("bot")) == sorted(BOT_SCOPES)
    assert set(HISTORY_SCOPES) <= set(BOT_SCOPES)
    assert set(ALL_SCOPES) - APP_SCOPES == set(BOT_SCOPES), "the fake Slack grants what the manifest asks for"


def test_the_app_level_token_scope_is_the_one_socket_mode_needs() -> None:
    assert table_scopes("app-level") == [APP_SCOPE] == sorted(APP_SCOPES)
    assert APP_SCOPE in MANIFEST.read_text(), "the manifest says how to make the app-level token"
    assert APP_SCOPE not in manifest()["oauth_config"]["scopes"]["bot"], "an app-level scope, not a bot scope"


def test_the_manifest_is_a_socket_mode_app_with_interactivity_and_a_bot_user() -> None:
    app = manifest()
    assert app["_metadata"]["major_version"] == 1
    assert app["display_information"]["name"] and len(app["display_information"]["description"]) <= 140
    assert app["features"]["bot_user"]["display_name"] == "feedback-worker", "the name docs/slack.md says to /invite"
    assert app["settings"] == {
        "interactivity": {"is_enabled": True},
        "org_deploy_enabled": False,
        "socket_mode_enabled": True,
        "token_rotation_enabled": False,
    }
    assert "request_url" not in app["settings"]["interactivity"], "Socket Mode needs no public URL"
    assert set(app) == {"_metadata", "display_information", "features", "oauth_config", "settings"}
