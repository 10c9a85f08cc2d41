"""Which channel reaches which handle: one map (app/domain/handles.py) for the CRM card and
the outbox, so the card never offers a route the outbox refuses."""
from __future__ import annotations

from app.domain.handles import CHANNEL_IDENTITY_KINDS, IDENTITY_CHANNEL_KINDS, can_reach
from tests import inbox_helpers as h


def test_the_card_map_is_the_outbox_map_read_the_other_way():
    identity_kinds = {k for kinds in CHANNEL_IDENTITY_KINDS.values() for k in kinds}
    assert identity_kinds >= {"email", "phone", "telegram", "whatsapp", "webchat", "site_user"}
    for channel_kind in CHANNEL_IDENTITY_KINDS:
        for identity_kind in identity_kinds:
            assert (channel_kind in IDENTITY_CHANNEL_KINDS[identity_kind]) == \
                can_reach(channel_kind, identity_kind), (channel_kind, identity_kind)
    assert IDENTITY_CHANNEL_KINDS["phone"] == ("whatsapp",)  # a Telegram bot cannot dial


def test_the_card_and_the_outbox_agree_on_a_phone_of_a_telegram_customer(ctx, api, telegram_api):
    support, _sales = h.channels(telegram_api)
    message = h.inbound(support, 7001, "Позвоните мне, пожалуйста")
    customer_id, conversation_id = message.customer_id, message.conversation_id
    added = api.post(f"/customers/{customer_id}/identities",
                     json={"kind": "phone", "value": "+7 916 123-45-67"})
    assert added.status_code == 201, added.json
    card = api.get(f"/customers/{customer_id}").json
    routes = {i["kind"]: [c["id"] for c in i["channels"]] for i in card["identities"]}
    assert routes["telegram"] == [support.id]
    assert routes["phone"] == []  # the card offers no channel for the phone ...

    reply = api.post(f"/conversations/{conversation_id}/messages",
                     json={"text": "Звоним", "identity_id": added.json["id"]})
    assert reply.status_code == 422  # ... and the outbox takes none
    assert list(reply.json["detail"]["json"]) == ["identity_id"]
    forced = api.post(f"/conversations/{conversation_id}/messages",
                      json={"text": "Звоним", "identity_id": added.json["id"],
                            "channel_id": support.id})
    assert forced.status_code == 422
    assert "cannot send to the phone handle" in forced.json["message"]
