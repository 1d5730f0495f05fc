"""The fake Slack behaves like Slack, seen through the real slack-sdk (WebClient, SocketModeClient).

Other tests trust the fake's answers; these check them: channel ids, history and threads with
pagination, chat.update, triggers, tokens and scopes, scripted failures, and Socket Mode's
hello / envelope / ack / reconnect cycle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.webhook import WebhookClient
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import wait_for
from tests.fake_slack import FakeSlack, Scripted, channel_id_of
from tests.fake_slack.fake import ALL_SCOPES


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(token="xoxb-fake-test") as slack:
        yield slack


@pytest.fixture
def web(fake: FakeSlack) -> WebClient:
    return WebClient(token=fake.token, base_url=fake.url)


def refused(call: Callable[[], Any]) -> dict[str, Any]:
    """Slack's answer to a call that must fail."""
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value.response.data  # type: ignore[return-value]


def post_thread(web: WebClient, channel: str, replies: int) -> tuple[str, list[str]]:
    parent = web.chat_postMessage(channel=channel, text="parent")["ts"]
    return parent, [web.chat_postMessage(channel=channel, text=f"reply {i}", thread_ts=parent)["ts"] for i in range(replies)]


# -- channels ------------------------------------------------------------------------------------


def test_a_channel_has_a_stable_id_that_posts_answer_with_and_accept(fake: FakeSlack, web: WebClient) -> None:
    answer = web.chat_postMessage(channel="#cx-alerts", text="one")
    cid = answer["channel"]
    assert re.fullmatch(r"C[A-Z0-9]{10}", cid)
    assert cid == fake.channel_id("cx-alerts") == fake.channel_id("#cx-alerts") == channel_id_of("#cx-alerts")
    assert fake.channel_id("#cx-retention") != cid
    web.chat_postMessage(channel=cid, text="two")  # the worker replies to the id it was answered
    assert [(m["channel"], m["channel_id"], m["text"]) for m in fake.messages] == [("#cx-alerts", cid, "one"), ("#cx-alerts", cid, "two")]
    assert fake.in_channel("#cx-alerts") == fake.in_channel(cid) == fake.messages


def test_unknown_ids_and_channels_outside_the_workspace_are_not_found(fake: FakeSlack, web: WebClient) -> None:
    assert refused(lambda: web.chat_postMessage(channel="C0NOSUCH000", text="x"))["error"] == "channel_not_found"
    fake.channels = {"#cx-alerts"}
    assert web.chat_postMessage(channel=channel_id_of("#cx-alerts"), text="by id")["ok"]  # an id never asked for here
    assert refused(lambda: web.chat_postMessage(channel="#cx-other", text="x"))["error"] == "channel_not_found"
    assert refused(lambda: web.chat_postMessage(channel=channel_id_of("#cx-other"), text="x"))["error"] == "channel_not_found"
    assert [m["text"] for m in fake.messages] == ["by id"]


def test_thread_replies_are_stored_with_their_thread_ts(fake: FakeSlack, web: WebClient) -> None:
    parent, (reply,) = post_thread(web, "#cx-alerts", 1)
    top, answer = fake.messages
    assert "thread_ts" not in top and top["ts"] == parent
    assert answer["thread_ts"] == parent and answer["ts"] == reply and answer["channel"] == "#cx-alerts"


# -- conversations.history / conversations.replies -----------------------------------------------------


def test_history_is_top_level_newest_first_in_pages(fake: FakeSlack, web: WebClient) -> None:
    cid = fake.channel_id("#cx-alerts")
    first, _ = post_thread(web, cid, 2)
    later = [web.chat_postMessage(channel=cid, text=f"top {i}")["ts"] for i in range(4)]
    web.chat_postMessage(channel="#elsewhere", text="not here")

    # slack-sdk follows next_cursor, reusing one response object: read each page as it comes
    pages = [(page["messages"], page["has_more"]) for page in web.conversations_history(channel=cid, limit=2)]
    assert [[m["ts"] for m in messages] for messages, _ in pages] == [later[:1:-1], [later[1], later[0]], [first]]
    assert [more for _, more in pages] == [True, True, False]
    parent = pages[-1][0][0]
    assert parent["reply_count"] == 2 and parent["thread_ts"] == first and parent["text"] == "parent"
    assert len(web.conversations_history(channel=cid)["messages"]) == 5  # limit defaults to 100
    assert refused(lambda: web.conversations_history(channel="#cx-alerts"))["error"] == "channel_not_found"
    assert refused(lambda: web.conversations_history(channel=cid, cursor="bm9wZQ=="))["error"] == "invalid_cursor"


def test_history_keeps_to_oldest_and_latest(fake: FakeSlack, web: WebClient) -> None:
    cid = fake.channel_id("#cx-alerts")
    ts = [web.chat_postMessage(channel=cid, text=str(i))["ts"] for i in range(4)]

    def texts(**window: Any) -> list[str]:
        return [m["text"] for m in web.conversations_history(channel=cid, **window)["messages"]]

    assert texts(oldest=ts[0], latest=ts[3]) == ["2", "1"]
    assert texts(oldest=ts[0], latest=ts[3], inclusive=True) == ["3", "2", "1", "0"]
    assert texts(oldest=ts[2]) == ["3"]


def test_metadata_comes_back_only_when_asked_for(fake: FakeSlack, web: WebClient) -> None:
    cid = fake.channel_id("#cx-alerts")
    metadata = {"event_type": "feedback_alert", "event_payload": {"event_id": "e-1"}}
    ts = web.chat_postMessage(channel=cid, text="alert", metadata=metadata)["ts"]
    assert "metadata" not in web.conversations_history(channel=cid)["messages"][0]
    assert web.conversations_history(channel=cid, include_all_metadata=True)["messages"][0]["metadata"] == metadata
    assert "metadata" not in web.conversations_replies(channel=cid, ts=ts)["messages"][0]
    assert web.conversations_replies(channel=cid, ts=ts, include_all_metadata=True)["messages"][0]["metadata"] == metadata


def test_replies_are_the_parent_then_its_replies_oldest_first_in_pages(fake: FakeSlack, web: WebClient) -> None:
    cid = fake.channel_id("#cx-alerts")
    parent, replies = post_thread(web, cid, 3)
    post_thread(web, cid, 1)  # another thread

    pages = [page["messages"] for page in web.conversations_replies(channel=cid, ts=parent, limit=3)]
    assert [[m["ts"] for m in messages] for messages in pages] == [[parent, *replies[:2]], [replies[2]]]
    assert all(m["thread_ts"] == parent for messages in pages for m in messages)
    assert [m["ts"] for m in web.conversations_replies(channel=cid, ts=replies[1])["messages"]] == [parent, *replies]
    assert refused(lambda: web.conversations_replies(channel=cid, ts="1.000001"))["error"] == "thread_not_found"


def test_without_the_history_scope_both_reads_are_refused(fake: FakeSlack, web: WebClient) -> None:
    cid = fake.channel_id("#cx-alerts")
    ts = web.chat_postMessage(channel=cid, text="x")["ts"]
    fake.scopes.discard("channels:history")
    for read in (lambda: web.conversations_history(channel=cid), lambda: web.conversations_replies(channel=cid, ts=ts)):
        answer = refused(read)
        assert (answer["error"], answer["needed"]) == ("missing_scope", "channels:history")
        assert "chat:write" in answer["provided"].split(",")
    assert web.chat_postMessage(channel=cid, text="still allowed")["ok"]


def test_every_answer_to_the_bot_token_names_its_scopes_as_slack_does(fake: FakeSlack, web: WebClient) -> None:
    def scopes(answer: Any) -> list[str]:
        header = {name.lower(): value for name, value in answer.headers.items()}["x-oauth-scopes"]
        return header.split(",")

    granted = scopes(web.auth_test())
    assert set(granted) == ALL_SCOPES - {"connections:write"}, "the app-level token's scope is never the bot's"
    fake.scopes.discard("channels:history")
    assert "channels:history" not in scopes(web.chat_postMessage(channel="#cx-alerts", text="x"))
    with pytest.raises(SlackApiError) as refusal:  # a refusal names them too: how a client sees what is missing
        web.conversations_history(channel=fake.channel_id("#cx-alerts"))
    assert "channels:history" not in scopes(refusal.value.response) and "chat:write" in scopes(refusal.value.response)
    assert {k.lower(): v for k, v in refusal.value.response.headers.items()}["x-accepted-oauth-scopes"] == "channels:history"
    with pytest.raises(SlackApiError) as bad_token:
        WebClient(token="xoxb-forged", base_url=fake.url).auth_test()
    assert "x-oauth-scopes" not in {k.lower() for k in bad_token.value.response.headers}
    opened = web.apps_connections_open(app_token=fake.app_token)
    assert "x-oauth-scopes" not in {k.lower() for k in opened.headers}, "only a bot token's answers carry them"


# -- conversations.info, conversations.list, membership -------------------------------------------------


def test_conversations_info_shows_a_channel_by_id_and_whether_the_bot_is_in_it(fake: FakeSlack, web: WebClient) -> None:
    fake.channels = {"#cx-alerts", "#cx-leads"}
    fake.not_member = {"cx-leads"}
    alerts = web.conversations_info(channel=channel_id_of("#cx-alerts"))["channel"]
    assert (alerts["id"], alerts["name"], alerts["is_channel"], alerts["is_member"], alerts["is_archived"]) == (
        channel_id_of("#cx-alerts"),
        "cx-alerts",
        True,
        True,
        False,
    )
    assert web.conversations_info(channel=channel_id_of("#cx-leads"))["channel"]["is_member"] is False
    assert refused(lambda: web.conversations_info(channel="#cx-alerts"))["error"] == "channel_not_found"  # an id, never a name
    assert refused(lambda: web.conversations_info(channel=channel_id_of("#cx-other")))["error"] == "channel_not_found"
    fake.scopes.discard("channels:read")
    assert refused(lambda: web.conversations_info(channel=channel_id_of("#cx-alerts")))["needed"] == "channels:read"


def test_conversations_list_pages_through_the_workspace_with_is_member(fake: FakeSlack, web: WebClient) -> None:
    fake.channels = {"#a", "#b", "#c"}
    fake.not_member = {"#b"}
    pages = [page["channels"] for page in web.conversations_list(limit=2)]
    assert [[(c["name"], c["is_member"]) for c in page] for page in pages] == [[("a", True), ("b", False)], [("c", True)]]
    assert all(c["id"] == channel_id_of(c["name"]) for page in pages for c in page)


def test_a_bot_not_invited_to_a_channel_can_neither_post_nor_read_there(fake: FakeSlack, web: WebClient) -> None:
    fake.not_member = {"#cx-leads"}
    assert refused(lambda: web.chat_postMessage(channel="#cx-leads", text="x"))["error"] == "not_in_channel"
    assert refused(lambda: web.conversations_history(channel=fake.channel_id("#cx-leads")))["error"] == "not_in_channel"
    assert web.chat_postMessage(channel="#cx-alerts", text="invited here")["ok"]
    assert [m["text"] for m in fake.messages] == ["invited here"]
    fake.reset()
    assert web.chat_postMessage(channel="#cx-leads", text="invited since")["ok"]


# -- chat.update, chat.postEphemeral, views.open, users.info, auth.test ------------------------------------


def test_chat_update_replaces_what_it_is_given_and_keeps_every_version(fake: FakeSlack, web: WebClient) -> None:
    cid = fake.channel_id("#cx-alerts")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "card"}}]
    ts = web.chat_postMessage(channel=cid, text="open", blocks=blocks)["ts"]
    answer = web.chat_update(channel=cid, ts=ts, text="claimed by Ada")
    assert (answer["channel"], answer["ts"], answer["text"]) == (cid, ts, "claimed by Ada")
    web.chat_update(channel=cid, ts=ts, text="closed", blocks=[])

    shown = web.conversations_history(channel=cid)["messages"]
    assert len(shown) == 1 and shown[0]["text"] == "closed" and "blocks" not in shown[0] and shown[0]["edited"]["ts"]
    assert [(u["channel"], u["ts"], u["text"], u["blocks"]) for u in fake.updates] == [
        ("#cx-alerts", ts, "claimed by Ada", blocks),
        ("#cx-alerts", ts, "closed", []),
    ]
    assert refused(lambda: web.chat_update(channel=cid, ts="1.000001", text="x"))["error"] == "message_not_found"
    assert refused(lambda: web.chat_update(channel="#cx-alerts", ts=ts, text="x"))["error"] == "channel_not_found"


def test_ephemeral_messages_are_recorded_apart_from_the_channel(fake: FakeSlack, web: WebClient) -> None:
    answer = web.chat_postEphemeral(channel="#cx-alerts", user="U0ADA", text="only you can see this")
    assert fake.messages == []
    (seen,) = fake.ephemerals
    assert (seen["channel"], seen["user"], seen["text"], seen["message_ts"]) == (
        "#cx-alerts",
        "U0ADA",
        "only you can see this",
        answer["message_ts"],
    )
    assert refused(lambda: web.chat_postEphemeral(channel="#cx-alerts", user="", text="x"))["error"] == "user_not_found"


def test_views_open_exchanges_a_trigger_once_while_it_is_fresh(fake: FakeSlack, web: WebClient) -> None:
    ts = web.chat_postMessage(channel="#cx-alerts", text="card")["ts"]
    trigger = fake.block_actions("#cx-alerts", ts, "close_task", value="task-1", user_id="U0ADA")["trigger_id"]
    modal = {
        "type": "modal",
        "callback_id": "close_task",
        "private_metadata": "task-1",
        "title": {"type": "plain_text", "text": "Close task"},
        "blocks": [],
    }
    view = web.views_open(trigger_id=trigger, view=modal)["view"]
    assert re.fullmatch(r"V[A-Z0-9]{10}", view["id"]) and view["callback_id"] == "close_task" and view["private_metadata"] == "task-1"
    assert [(v["trigger_id"], v["view"], v["view_id"], v["user_id"]) for v in fake.views] == [(trigger, modal, view["id"], "U0ADA")]

    assert refused(lambda: web.views_open(trigger_id=trigger, view=modal))["error"] == "exchanged_trigger_id"
    assert refused(lambda: web.views_open(trigger_id="12345.98765.abcd2358fdea", view=modal))["error"] == "invalid_trigger_id"
    fake.trigger_ttl_s = 0.0  # Slack's 3 s, without waiting them out
    stale = fake.new_trigger_id()
    assert refused(lambda: web.views_open(trigger_id=stale, view=modal))["error"] == "expired_trigger_id"
    assert len(fake.views) == 1


def test_users_info_knows_registered_users_and_auth_test_names_the_bot(fake: FakeSlack, web: WebClient) -> None:
    fake.add_user("U0ADA", "Ada Lovelace", team="T0002")
    user = web.users_info(user="U0ADA")["user"]
    assert (user["id"], user["real_name"], user["profile"]["real_name"], user["team_id"]) == (
        "U0ADA",
        "Ada Lovelace",
        "Ada Lovelace",
        "T0002",
    )
    assert refused(lambda: web.users_info(user="U0NOBODY"))["error"] == "user_not_found"
    me = web.auth_test()
    assert (me["team_id"], me["user_id"], me["bot_id"]) == ("T0001", fake.bot_user_id, fake.bot_id)


# -- tokens, scripted failures, the call log ---------------------------------------------------------------

EVERY_METHOD = [
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "conversations.history",
    "conversations.replies",
    "conversations.info",
    "conversations.list",
    "views.open",
    "users.info",
    "auth.test",
]


@pytest.mark.parametrize("method", EVERY_METHOD)
def test_every_method_checks_the_token(fake: FakeSlack, method: str) -> None:
    def ask(token: str | None) -> str:
        return refused(lambda: WebClient(token=token, base_url=fake.url).api_call(method, json={"channel": "C0NOSUCH000"}))["error"]

    assert ask("xoxb-not-the-token") == "invalid_auth"
    assert ask(None) == "not_authed"
    assert ask(fake.app_token) == "not_allowed_token_type"


def test_socket_mode_takes_the_app_level_token_only(fake: FakeSlack, web: WebClient) -> None:
    assert refused(lambda: web.apps_connections_open(app_token=fake.token))["error"] == "not_allowed_token_type"
    assert refused(lambda: web.apps_connections_open(app_token="xapp-1-forged"))["error"] == "invalid_auth"
    url = web.apps_connections_open(app_token=fake.app_token)["url"]
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/link/\?ticket=\w+&app_id=" + fake.app_id, url)


def test_scripted_failures_hit_the_next_request_or_one_method(fake: FakeSlack, web: WebClient) -> None:
    fake.add_user("U0ADA", "Ada")
    fake.fail_next(Scripted(error="fatal_error"))
    fake.fail_method("chat.postMessage", Scripted(status=503))
    assert refused(lambda: web.users_info(user="U0ADA"))["error"] == "fatal_error"  # fail_next: any method
    assert web.users_info(user="U0ADA")["ok"]
    assert refused(lambda: web.chat_postMessage(channel="#cx", text="x"))["error"] == "internal_error"
    assert web.chat_postMessage(channel="#cx", text="x")["ok"]
    assert [(c.method, c.error, c.status) for c in fake.calls] == [
        ("users.info", "fatal_error", 200),
        ("users.info", None, 200),
        ("chat.postMessage", "internal_error", 503),
        ("chat.postMessage", None, 200),
    ]
    assert fake.calls[-1].params == {"channel": "#cx", "text": "x"}  # never the token
    assert fake.attempts == 2 and len(fake.calls_to("chat.postMessage")) == 2


# -- payloads --------------------------------------------------------------------------------------------


def test_block_actions_carry_the_clicked_message_and_a_response_url_on_the_fake(fake: FakeSlack, web: WebClient) -> None:
    posted = web.chat_postMessage(channel="#cx-alerts", text="card", blocks=[{"type": "actions", "elements": []}])
    fake.add_user("U0ADA", "Ada Lovelace")
    click = fake.block_actions("#cx-alerts", posted["ts"], "claim", value="task-1", user_id="U0ADA")
    assert click["type"] == "block_actions" and click["user"] == {
        "id": "U0ADA",
        "username": "ada.lovelace",
        "name": "ada.lovelace",
        "team_id": "T0001",
    }
    assert click["container"] == {"type": "message", "message_ts": posted["ts"], "channel_id": posted["channel"], "is_ephemeral": False}
    assert click["channel"] == {"id": posted["channel"], "name": "cx-alerts"} and click["message"]["text"] == "card"
    (action,) = click["actions"]
    assert (action["type"], action["action_id"], action["value"]) == ("button", "claim", "task-1")
    assert click["response_url"].startswith(fake.url.removesuffix("/api/"))
    assert WebhookClient(click["response_url"]).send(text="done").status_code == 200  # as an app answers a click
    assert [r["body"] for r in fake.responses] == [{"text": "done"}]

    chosen = fake.block_actions(posted["channel"], posted["ts"], "severity", selected_options=["high"])["actions"][0]
    assert chosen["type"] == "static_select" and chosen["selected_option"]["value"] == "high"
    several = fake.block_actions(posted["channel"], posted["ts"], "tags", selected_options=[("a", "A"), ("b", "B")])["actions"][0]
    assert [(o["value"], o["text"]["text"]) for o in several["selected_options"]] == [("a", "A"), ("b", "B")]
    with pytest.raises(LookupError):
        fake.block_actions("#cx-alerts", "1.000001", "claim")


def test_view_submission_carries_the_opened_view_and_its_state(fake: FakeSlack, web: WebClient) -> None:
    ts = web.chat_postMessage(channel="#cx-alerts", text="card")["ts"]
    trigger = fake.block_actions("#cx-alerts", ts, "close_task")["trigger_id"]
    modal = {
        "type": "modal",
        "callback_id": "close_task",
        "private_metadata": "task-1",
        "title": {"type": "plain_text", "text": "Close"},
        "blocks": [{"type": "input", "block_id": "note", "element": {"type": "plain_text_input", "action_id": "text"}}],
    }
    view_id = web.views_open(trigger_id=trigger, view=modal)["view"]["id"]
    submitted = fake.view_submission(view_id, {"note": {"text": "called back"}, "reason": {"pick": ["churn", "price"]}})
    assert submitted["type"] == "view_submission" and submitted["view"]["id"] == view_id
    assert (submitted["view"]["callback_id"], submitted["view"]["private_metadata"]) == ("close_task", "task-1")
    values = submitted["view"]["state"]["values"]
    assert values["note"]["text"] == {"type": "plain_text_input", "value": "called back"}
    assert [o["value"] for o in values["reason"]["pick"]["selected_options"]] == ["churn", "price"]


# -- Socket Mode, through slack-sdk's built-in client -----------------------------------------------------------


class App:
    """A Socket Mode app: slack-sdk's SocketModeClient recording what it receives and acking it."""

    def __init__(self, fake: FakeSlack, ack_payload: dict[str, Any] | None = None, ack: bool = True) -> None:
        self.raw: list[dict[str, Any]] = []
        self.requests: list[SocketModeRequest] = []
        # ping_interval: how soon the client notices a dropped connection and reconnects
        self.client = SocketModeClient(
            app_token=fake.app_token,
            web_client=WebClient(base_url=fake.url),
            ping_interval=0.3,
            on_message_listeners=[lambda text: self.raw.append(json.loads(text))],
        )
        self.client.socket_mode_request_listeners.append(self._on_request)
        self.ack_payload, self.ack = ack_payload, ack

    def _on_request(self, client: Any, request: SocketModeRequest) -> None:
        self.requests.append(request)
        if self.ack:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=self.ack_payload))


@pytest.fixture
def apps(fake: FakeSlack) -> Iterator[Callable[..., App]]:
    started: list[App] = []

    def start(**kwargs: Any) -> App:
        app = App(fake, **kwargs)
        started.append(app)
        app.client.connect()
        return app

    yield start
    for app in started:
        app.client.auto_reconnect_enabled = app.client.default_auto_reconnect_enabled = False
    # Closing first wakes the clients' blocked reads now; else close() waits out their 3 s socket timeout.
    fake.drop_connections()
    for app in started:
        app.client.close()


def test_an_app_is_greeted_then_receives_an_envelope_and_its_ack_is_recorded(
    fake: FakeSlack, web: WebClient, apps: Callable[..., App]
) -> None:
    app = apps(ack_payload={"text": "thanks"})
    wait_for(lambda: fake.connections == 1, 5, "the app's connection")
    hello = wait_for(lambda: app.raw, 5, "hello")[0]
    assert (hello["type"], hello["num_connections"], hello["connection_info"]["app_id"]) == ("hello", 1, fake.app_id)

    ts = web.chat_postMessage(channel="#cx-alerts", text="card")["ts"]
    click = fake.block_actions("#cx-alerts", ts, "claim", value="task-1")
    envelope_id = fake.push_interactive(click)
    ack = fake.wait_ack(envelope_id, timeout=5)
    assert ack.payload == {"text": "thanks"} and ack.elapsed_s is not None and ack.elapsed_s < 3
    (request,) = app.requests
    assert (request.type, request.envelope_id, request.payload) == ("interactive", envelope_id, click)
    assert request.accepts_response_payload is False and fake.acks == {envelope_id: ack}


def test_an_unacked_envelope_times_out_waiting(fake: FakeSlack, apps: Callable[..., App]) -> None:
    app = apps(ack=False)
    wait_for(lambda: fake.connections == 1, 5, "the app's connection")
    envelope_id = fake.push_interactive({"type": "view_submission", "view": {}})
    wait_for(lambda: app.requests, 5, "the envelope")
    assert app.requests[0].accepts_response_payload is True  # a view_submission's ack may carry response_action
    with pytest.raises(TimeoutError, match=envelope_id):
        fake.wait_ack(envelope_id, timeout=0.2)


def test_after_its_connection_drops_the_app_reconnects_and_gets_the_next_envelope(fake: FakeSlack, apps: Callable[..., App]) -> None:
    apps()
    wait_for(lambda: fake.connections == 1, 5, "the app's connection")
    assert fake.drop_connections() == 1 and fake.connections == 0
    wait_for(lambda: fake.connections == 1, 10, "the app to reconnect")
    assert len(fake.calls_to("apps.connections.open")) == 2  # a fresh URL: tickets are single-use
    assert fake.wait_ack(fake.push_interactive({"type": "block_actions", "actions": []}), timeout=5).payload is None


def test_a_disconnect_request_makes_the_app_move_to_a_new_connection(fake: FakeSlack, apps: Callable[..., App]) -> None:
    apps()
    wait_for(lambda: fake.connections == 1, 5, "the app's connection")
    assert fake.request_disconnect() == 1
    wait_for(lambda: len(fake.calls_to("apps.connections.open")) == 2 and fake.connections == 1, 10, "the app on a new connection")
    assert fake.wait_ack(fake.push_interactive({"type": "block_actions", "actions": []}), timeout=5).payload is None


def test_envelopes_are_spread_over_the_open_connections(fake: FakeSlack, apps: Callable[..., App]) -> None:
    first, second = apps(), apps()
    wait_for(lambda: fake.connections == 2, 5, "two connections")
    sent = [fake.push_interactive({"type": "block_actions", "n": n}) for n in range(4)]
    for envelope_id in sent:
        fake.wait_ack(envelope_id, timeout=5)
    assert len(first.requests) == len(second.requests) == 2


def test_a_ticket_opens_one_connection_only(fake: FakeSlack, web: WebClient) -> None:
    url = web.apps_connections_open(app_token=fake.app_token)["url"]
    with connect(url) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
    with pytest.raises(InvalidStatus, match="401"):
        connect(url)
