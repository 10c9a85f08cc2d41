"""One error family (app/domain/errors.py), translated to HTTP by one handler on the API
blueprint: the status, the message, and {"json": {field: [message]}} when the error names
its field; the transaction is rolled back."""
from __future__ import annotations

from sqlalchemy import func, select

from app.domain.errors import Conflict, DomainError, NotFound
from app.infra.models import Customer, MergeSuggestion
from app.infra.state import db
from tests import inbox_helpers as h


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_family():
    from app.domain.customers import FieldError
    from app.domain.merge import MergeError
    from app.usecases.outbox import ReplyError

    assert issubclass(FieldError, DomainError) and FieldError("f", "m").status == 422
    assert issubclass(MergeError, Conflict) and MergeError("m").status == 409
    assert MergeError("m", field="keep", status=422).status == 422
    assert issubclass(ReplyError, DomainError) and str(ReplyError("no channel")) == "no channel"
    assert NotFound("id", "gone").status == 404
    assert DomainError("name", "too long").detail() == {"json": {"name": ["too long"]}}
    assert Conflict(None, "busy").detail() == {}


def test_customer_and_merge_errors_answer_the_field(ctx, api):
    created = api.post("/orders", json={"external_ref": "E-1", "customer": {"email": "a@example.com"}})
    assert created.status_code == 201, created.json
    customer_id = created.json["customer_id"]

    bad = api.patch(f"/customers/{customer_id}", json={"name": "Новое имя",
                                                        "custom_fields": {"nope": "x"}})
    assert bad.status_code == 422
    reason = "no such custom field (an admin defines them)"
    assert bad.json == {"message": reason, "detail": {"json": {"custom_fields.nope": [reason]}}}
    db.session.expire_all()
    assert db.session.get(Customer, customer_id).name != "Новое имя"

    itself = api.post(f"/customers/{customer_id}/merge", json={"other_id": customer_id})
    assert itself.status_code == 409
    assert itself.json == {"message": "a customer cannot be merged with itself",
                           "detail": {"json": {"other_id": ["a customer cannot be merged with itself"]}}}


def test_a_refused_upsert_writes_nothing(ctx, api):
    before = _count(Customer)
    refused = api.post("/deals", json={"customer": {"email": "nobody-yet@example.com"}})
    assert refused.status_code == 422
    assert refused.json["detail"] == {"json": {"title": ["required for a new deal"]}}
    assert _count(Customer) == before  # the customer made for the deal was rolled back


def test_a_crm_record_naming_two_customers_suggests_merging_them(ctx, api):
    one = api.post("/orders", json={"external_ref": "S-1", "customer": {"email": "jan@example.pl"}})
    two = api.post("/orders", json={"external_ref": "S-2", "customer": {"phone": "+48 601 234 567"}})
    assert one.json["customer_id"] != two.json["customer_id"]
    both = api.post("/deals", json={"title": "Dostawa", "customer": {
        "email": "jan@example.pl", "phone": "+48601234567"}})
    assert both.status_code == 201, both.json
    suggestion = db.session.scalar(select(MergeSuggestion))
    assert suggestion is not None
    assert {suggestion.customer_id, suggestion.other_customer_id} == {
        one.json["customer_id"], two.json["customer_id"]}


def test_reply_errors_answer_the_field_and_retry_a_conflict(ctx, api, telegram_api):
    support, _sales = h.channels(telegram_api)
    message = h.inbound(support, 501, "Здравствуйте")
    conversation = h.conversation_of(message)

    retried = api.post(f"/messages/{message.id}/retry")
    assert retried.status_code == 409
    assert retried.json == {"message": "only a failed outbound message can be retried",
                            "detail": {}}

    support.active = False
    db.session.commit()
    refused = api.post(f"/conversations/{conversation.id}/messages", json={"text": "Ответ"})
    assert refused.status_code == 422
    reason = f"channel {support.id} is not active"
    assert refused.json == {"message": reason, "detail": {"json": {"channel_id": [reason]}}}


def test_conversation_rules_answer_as_before(ctx, api, telegram_api):
    support, _sales = h.channels(telegram_api)
    first = h.conversation_of(h.inbound(support, 502, "Первый вопрос"))
    url = f"/conversations/{first.id}"

    snooze = api.patch(url, json={"status": "snoozed"})
    assert snooze.status_code == 422
    assert snooze.json == {"message": "snoozed_until is required",
                           "detail": {"json": {"snoozed_until": ["required when snoozing"]}}}
    nobody = api.patch(url, json={"assignee_id": 987654})
    assert nobody.status_code == 422
    assert nobody.json == {"message": "unknown agent",
                           "detail": {"json": {"assignee_id": ["no such active agent"]}}}
    no_team = api.patch(url, json={"team_id": 987654})
    assert no_team.json == {"message": "unknown team",
                            "detail": {"json": {"team_id": ["no such team"]}}}

    assert api.patch(url, json={"status": "resolved"}).json["status"] == "resolved"
    second = h.conversation_of(h.inbound(support, 502, "Второй вопрос"))
    assert second.id != first.id
    reopen = api.patch(url, json={"status": "open"})
    assert reopen.status_code == 409
    assert reopen.json == {"message": f"the customer already has open conversation {second.id}",
                           "detail": {}}
    # a refused bulk change leaves every conversation as it was
    refused = api.post("/conversations/bulk", json={"ids": [second.id, first.id], "status": "open",
                                                    "priority": "high"})
    assert refused.status_code == 409
    db.session.expire_all()
    from app.infra.models import Conversation

    assert db.session.get(Conversation, second.id).priority != "high"


def test_crm_definitions_and_unmerge_answer_as_before(ctx, app, api, admin_token):
    stage = api.post("/pipeline/stages", json={"key": "lead", "name": "Лид", "position": 0})
    assert stage.status_code == 201
    taken = api.post("/pipeline/stages", json={"key": "lead", "name": "Again"})
    assert taken.status_code == 422
    assert taken.json == {"message": "key taken",
                          "detail": {"json": {"key": ["a stage with this key exists"]}}}
    deal = api.post("/deals", json={"title": "Zamówienie", "stage": "lead",
                                    "customer": {"email": "ola@example.pl"}})
    assert deal.status_code == 201, deal.json
    in_use = app.test_client().delete(f"/api/v1/pipeline/stages/{stage.json['id']}",
                                      headers={"Authorization": f"Bearer {admin_token}"})
    assert in_use.status_code == 409
    assert in_use.json == {"message": "deals are in stage lead; move them first", "detail": {}}

    no_choices = api.post("/custom-fields", json={"key": "size", "label": "Размер",
                                                  "type": "choice", "choices": []})
    assert no_choices.status_code == 422
    assert no_choices.json == {"message": "choices required",
                               "detail": {"json": {"choices": ["a choice field needs choices"]}}}
    field = api.post("/custom-fields", json={"key": "size", "label": "Размер", "type": "choice",
                                             "choices": ["S", "M"]})
    assert field.status_code == 201, field.json
    again = api.post("/custom-fields", json={"key": "size", "label": "x", "type": "text"})
    assert again.json == {"message": "key taken",
                          "detail": {"json": {"key": ["a field with this key exists"]}}}
    emptied = api.patch(f"/custom-fields/{field.json['id']}", json={"choices": []})
    assert emptied.status_code == 422 and emptied.json["message"] == "choices required"

    customer_id = deal.json["customer_id"]
    nothing = api.post(f"/customers/{customer_id}/unmerge", json={})
    assert nothing.status_code == 409
    assert nothing.json == {"message": "nothing to unmerge", "detail": {}}
    no_such = api.post(f"/customers/{customer_id}/unmerge", json={"merge_id": 999})
    assert no_such.status_code == 422
    assert no_such.json == {"message": "no such merge",
                            "detail": {"json": {"merge_id": ["not a merge into this customer"]}}}

    other = api.post("/orders", json={"external_ref": "M-2", "customer": {"email": "ala@example.pl"}})
    merged = api.post(f"/customers/{customer_id}/merge", json={"other_id": other.json["customer_id"]})
    assert merged.status_code == 201, merged.json
    edit = api.patch(f"/customers/{other.json['customer_id']}", json={"name": "Ala"})
    assert edit.status_code == 409
    assert edit.json == {"message": f"customer was merged into {customer_id}; edit that one",
                         "detail": {}}


def test_a_taken_shortcut_answers_as_before(ctx, api):
    first = api.post("/canned-replies", json={"shortcut": "hi", "title": "Привет", "text": "Добрый день!"})
    assert first.status_code == 201, first.json
    taken = api.post("/canned-replies", json={"shortcut": "hi", "title": "x", "text": "y"})
    assert taken.status_code == 422
    assert taken.json == {"message": "shortcut taken",
                          "detail": {"json": {"shortcut": ["already in use"]}}}
    second = api.post("/canned-replies", json={"shortcut": "bye", "title": "Пока", "text": "Do widzenia"})
    moved = api.patch(f"/canned-replies/{second.json['id']}", json={"shortcut": "hi"})
    assert moved.status_code == 422 and moved.json == taken.json
    kept = api.patch(f"/canned-replies/{first.json['id']}", json={"shortcut": "hi", "title": "Hej"})
    assert kept.status_code == 200 and kept.json["title"] == "Hej"


def test_a_delivery_being_sent_is_not_replayed(ctx, api, monkeypatch):
    from app.infra.models import WebhookDelivery
    from app.infra.state import config

    # the endpoint is on loopback (nothing listens there): allowed for this test
    monkeypatch.setitem(config["security"], "allow_private_webhook_urls", True)

    endpoint = api.post("/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                           "events": ["customer.created"]})
    assert endpoint.status_code == 201, endpoint.json
    assert api.post("/orders", json={"external_ref": "W-1",
                                     "customer": {"email": "hook@example.com"}}).status_code == 201
    delivery = db.session.scalar(select(WebhookDelivery))
    assert delivery is not None
    delivery.status = "sending"
    db.session.commit()
    busy = api.post(f"/webhook-deliveries/{delivery.id}/replay")
    assert busy.status_code == 409
    assert busy.json == {"message": "delivery is being sent right now", "detail": {}}
    db.session.expire_all()
    assert db.session.get(WebhookDelivery, delivery.id).status == "sending"
