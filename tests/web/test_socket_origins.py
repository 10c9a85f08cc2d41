"""Socket.IO checks the browser's Origin (issue 14, Medium 5): `/agents` only from the
inbox's own origin (another site's page cannot ride on an agent's cookie), the site chat's
`/widget` only from its own frame (a frame token fetched server-side does not let another
site host a working copy of the chat), like the frame's HTTP calls."""
from __future__ import annotations

import re

import pytest
import requests
import socketio

from app.domain.channels import add_channel
from app.infra.state import db
from tests.conftest import login_session

SHOP = "https://shop.example.com"


def _client(origin, transport):
    """A Socket.IO client whose requests carry exactly this Origin (None: no Origin)."""
    if transport == "websocket":  # websocket-client sets its own Origin unless told
        extra = {"suppress_origin": True} if origin is None else {"origin": origin}
        return socketio.Client(reconnection=False, websocket_extra_options=extra), {}
    return socketio.Client(reconnection=False), ({"Origin": origin} if origin else {})


def _agents(server, session, origin=None, transport="websocket"):
    client, headers = _client(origin, transport)
    headers["Cookie"] = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    client.connect(server.url, namespaces=["/agents"], headers=headers,
                   transports=[transport], wait_timeout=10)
    return client


def _widget(server, frame, origin=None, transport="websocket"):
    client, headers = _client(origin, transport)
    client.connect(server.url, namespaces=["/widget"], headers=headers,
                   auth={"frame": frame, "page": {"url": f"{SHOP}/"}}, transports=[transport],
                   wait_timeout=10)
    return client


@pytest.mark.parametrize("backend", ["sqlite"])
def test_agents_socket_only_from_the_inbox_origin(backend, ctx, admin, start_server):
    server = start_server()
    session = login_session(server.url, "admin@example.com", "correct horse battery")
    for foreign in ("https://evil.example", server.url.replace("127.0.0.1", "localhost"),
                    "null", f"{server.url}.evil.example"):
        for transport in ("websocket", "polling"):
            with pytest.raises(socketio.exceptions.ConnectionError):
                _agents(server, session, foreign, transport)
    for own in (server.url, None):  # the inbox page itself; a non-browser client sends none
        for transport in ("websocket", "polling"):
            client = _agents(server, session, own, transport)
            assert client.connected
            client.disconnect()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_widget_socket_only_from_its_frame(backend, ctx, start_server):
    channel = add_channel("webchat", "Site chat", {"allowed_origins": SHOP})
    db.session.commit()
    server = start_server()
    # what another site could fetch server-side, posing as the shop
    page = requests.get(f"{server.url}/widget/frame?c={channel.public_id}",
                        headers={"Referer": f"{SHOP}/"}, timeout=10)
    assert page.status_code == 200
    frame = re.search(r'"frame": "([^"]+)"', page.text).group(1)
    for foreign in ("https://copycat.example", SHOP, "null"):
        for transport in ("websocket", "polling"):
            with pytest.raises(socketio.exceptions.ConnectionError):
                _widget(server, frame, foreign, transport)
    for own in (server.url, None):
        client = _widget(server, frame, own)
        assert client.connected
        client.disconnect()
