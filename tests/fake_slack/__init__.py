"""A local fake of Slack (Web API over HTTP, Socket Mode over WebSocket), answering like Slack does.

fake.py         FakeSlack: the workspace's state, the HTTP server, tokens, scopes, scripted failures
methods.py      the Web API methods (chat.*, conversations.*, views.open, users.info, auth.test, ...)
socket_mode.py  the Socket Mode server: hello, envelopes spread over connections, acks, disconnects
payloads.py     block_actions / view_submission payloads shaped like Slack's
"""

from tests.fake_slack.fake import Call, FakeSlack, Scripted, channel_id_of
from tests.fake_slack.socket_mode import Ack

__all__ = ["Ack", "Call", "FakeSlack", "Scripted", "channel_id_of"]
