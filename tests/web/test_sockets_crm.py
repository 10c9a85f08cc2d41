"""An order pushed through the API reaches a connected agent live (Socket.IO)."""
from __future__ import annotations

import pytest

from tests.conftest import AgentSocket, login_session


@pytest.mark.parametrize("backend", ["sqlite"])
def test_order_pushed_through_the_api_reaches_agents_live(backend, ctx, admin, admin_token,
                                                          start_server):
    server = start_server()
    agent = login_session(server.url, "admin@example.com", "correct horse battery")
    socket = AgentSocket(server.url, agent)
    try:
        import requests

        response = requests.post(f"{server.url}/api/v1/orders", timeout=10,
                                 headers={"Authorization": f"Bearer {admin_token}"},
                                 json={"external_ref": "LIVE-1", "total": "12.00",
                                       "currency": "EUR", "status": "paid",
                                       "customer": {"email": "live@example.com",
                                                    "name": "Live Customer"}})
        assert response.status_code == 201, response.text
        event = socket.wait_for("customer.updated",
                                lambda d: any(o["external_ref"] == "LIVE-1"
                                              for o in d["data"].get("orders", [])))
        assert event["data"]["id"] == response.json()["customer_id"]
        assert event["data"]["orders"][0]["total"] == "12.00"
        created = socket.wait_for("customer.created")
        assert created["data"]["name"] == "Live Customer"
        # the card through the same session-authenticated API the inbox uses
        card = agent.get(f"{server.url}/api/v1/customers/{event['data']['id']}").json()
        assert card["orders"][0]["status"] == "paid"
    finally:
        socket.close()
