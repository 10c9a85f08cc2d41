"""Search by word forms (Russian and Polish), phone digits in any format, and pages of
results, on SQLite (FTS5 sidecar) and PostgreSQL (full-text over messages.search_stems).

Recall is measured on a word-form list written for this test: every form of a word is one
message, every form is a query, and a query should find the messages of all the forms of
its word. The figure is written to the test output folder (search-recall.txt)."""
from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import select

from app.infra.models import Identity, Message
from app.infra.state import db
from tests import inbox_helpers as h
from tests.conftest import OUTPUT

# lemma -> its forms as written by customers (cases, numbers; ё and е; Polish with and
# without diacritics)
WORD_FORMS = {
    "заказ": ["заказ", "заказа", "заказы", "заказов", "заказом", "заказу", "заказе"],
    "доставка": ["доставка", "доставки", "доставку", "доставкой", "доставке"],
    "возврат": ["возврат", "возврата", "возвраты", "возвратом"],
    "оплата": ["оплата", "оплаты", "оплату", "оплатой"],
    "посылка": ["посылка", "посылки", "посылку", "посылкой"],
    "счёт": ["счёт", "счета", "счет"],
    "zamówienie": ["zamówienie", "zamówienia", "zamówieniu", "zamówień", "zamówieniem",
                   "zamowienia"],
    "przesyłka": ["przesyłka", "przesyłki", "przesyłkę", "przesyłką", "przesylki"],
    "dostawa": ["dostawa", "dostawy", "dostawę", "dostawie"],
    "zwrot": ["zwrot", "zwrotu", "zwroty", "zwrotów"],
    "faktura": ["faktura", "faktury", "fakturę", "fakturze"],
    "paczka": ["paczka", "paczki", "paczkę", "paczką", "paczce"],
}
RECALL_FLOOR = 0.95


@pytest.fixture
def setup(ctx, admin, admin_token, telegram_api):
    return h.channels(telegram_api)


def _ids(api, query: str, **params) -> list[int]:
    extra = "".join(f"&{k}={v}" for k, v in params.items())
    answer = api.get(f"/search?q={quote(query)}&limit=50{extra}")
    assert answer.status_code == 200, answer.json
    return [m["message"]["id"] for m in answer.json["messages"]]


def test_word_forms_find_each_other_with_measured_recall(backend, api, setup):
    support, _ = setup
    by_form: dict[str, int] = {}
    lemma_of: dict[int, str] = {}
    for n, (lemma, forms) in enumerate(WORD_FORMS.items()):
        for k, form in enumerate(forms):
            message = h.inbound(support, 5000 + n, f"Клиент {n}.{k}: {form}!", f"Покупатель {n}")
            by_form[form] = message.id
            lemma_of[message.id] = lemma
    assert len(by_form) >= 30
    wanted = found = strays = 0
    misses = []
    for lemma, forms in WORD_FORMS.items():
        expected = {by_form[f] for f in forms}
        for query in forms:
            got = set(_ids(api, query))
            wanted += len(expected)
            found += len(expected & got)
            strays += len({i for i in got if lemma_of.get(i) != lemma})
            misses += [f"{query} ✗ {f}" for f in forms if by_form[f] not in got]
    recall = found / wanted
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / f"search-recall-{backend}.txt").write_text(
        f"{len(by_form)} forms of {len(WORD_FORMS)} words, {backend}: recall {recall:.3f} "
        f"({found}/{wanted} query-message pairs), {strays} hits of another word\n"
        f"misses: {', '.join(misses)}\n", encoding="utf-8")
    print(f"\nsearch recall on {backend}: {recall:.3f} ({found}/{wanted}); misses: {misses}")
    assert recall >= RECALL_FLOOR, misses
    assert strays == 0
    # the issue's own examples, exactly
    for query in ("заказа", "заказы", "ЗАКАЗОВ"):
        assert set(_ids(api, query)) == {by_form[f] for f in WORD_FORMS["заказ"]}, query
    assert set(_ids(api, "zamówienia")) == {by_form[f] for f in WORD_FORMS["zamówienie"]}
    assert set(_ids(api, "ZAMOWIENIE")) == {by_form[f] for f in WORD_FORMS["zamówienie"]}
    # a word being typed still matches as a prefix; two words must both match
    assert set(_ids(api, "зака")) == {by_form[f] for f in WORD_FORMS["заказ"]}
    assert _ids(api, "заказами клиент") and not _ids(api, "заказами zwrot")
    # the hit says which words matched, as written, and the snippet shows one of them
    hit = api.get(f"/search?q={quote('заказы')}").json
    mine = next(m for m in hit["messages"] if m["message"]["id"] == by_form["заказом"])
    assert mine["matches"] == ["заказом"] and "заказом" in mine["snippet"]
    assert "заказом" in hit["terms"]


def test_an_edited_or_deleted_message_is_searched_by_its_new_text(backend, api, setup):
    support, _ = setup
    message = h.inbound(support, 5100, "Где моя посылка?", "Ольга")
    assert _ids(api, "посылку") == [message.id]
    stored = db.session.get(Message, message.id)
    stored.text = "Где мой возврат?"
    db.session.commit()
    assert _ids(api, "посылку") == [] and _ids(api, "возврата") == [message.id]
    stored.deleted = True
    db.session.commit()
    assert _ids(api, "возврата") == []


def test_partial_phone_digits_in_any_format_find_the_customer(backend, api, setup):
    support, _ = setup
    first = h.inbound(support, 5200, "Добрый день", "Марина Котова")
    second = h.inbound(support, 5201, "Dzień dobry", "Paweł Nowak")
    db.session.add(Identity(customer_id=first.customer_id, kind="phone", value="+79161234567"))
    db.session.add(Identity(customer_id=second.customer_id, kind="whatsapp", value="48601234999"))
    db.session.commit()

    def names(query):
        answer = api.get(f"/search?q={quote(query)}")
        assert answer.status_code == 200
        return [c["name"] for c in answer.json["customers"]]

    for query in ("916123", "+7 (916) 123-45", "916-123-45-67", "916 123 45 67", "4567"):
        assert names(query) == ["Марина Котова"], query
    assert names("601 234 999") == ["Paweł Nowak"]
    assert sorted(names("1234")) == ["Paweł Nowak", "Марина Котова"]
    assert names("777888") == []
    # the customer's card still comes by name and the phone as stored
    assert names("котова") == ["Марина Котова"]
    assert names("+79161234567") == ["Марина Котова"]
    # each customer comes with the date of their latest conversation's activity
    answer = api.get("/search?q=916123").json
    assert answer["customer_activity"][str(first.customer_id)].startswith("20")


def test_results_come_in_pages_newest_first_with_dates(backend, api, setup, monkeypatch):
    from app.domain import search

    support, sales = setup
    made = [h.inbound(support if i % 3 else sales, 5300 + i, f"заказ номер {i}", f"Клиент {i}")
            for i in range(8)]
    first = api.get(f"/search?q={quote('заказы')}&limit=3").json
    assert len(first["messages"]) == 3 and first["next_cursor"]
    assert first["messages"][0]["message"]["created_at"]
    second = api.get(f"/search?q={quote('заказы')}&limit=3&cursor={first['next_cursor']}").json
    third = api.get(f"/search?q={quote('заказы')}&limit=3&cursor={second['next_cursor']}").json
    pages = [first, second, third]
    ids = [m["message"]["id"] for p in pages for m in p["messages"]]
    assert ids == sorted((m.id for m in made), reverse=True)
    assert third["next_cursor"] is None
    # customers come with the first page only, each with its conversation's last activity
    assert second["customers"] == [] and third["customers"] == []
    assert api.get(f"/search?q={quote('заказ')}&cursor=abc").status_code == 422

    # an agent who sees one channel gets whole pages of what they may see, even when the
    # index answers in batches full of what they may not
    monkeypatch.setattr(search, "SQLITE_BATCH", 2)
    agent = h.agent("support-only@example.com", "Support Only", ["Support"])
    token = h.token(agent)
    from flask import current_app

    client = current_app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    seen, cursor = [], ""
    while True:
        answer = client.get(f"/api/v1/search?q={quote('заказов')}&limit=2{cursor}", headers=auth).json
        seen += [m["message"]["id"] for m in answer["messages"]]
        if not answer["next_cursor"]:
            break
        cursor = f"&cursor={answer['next_cursor']}"
    visible = sorted((m.id for m in made if m.channel_id == support.id), reverse=True)
    assert seen == visible and len(visible) == 5


def test_stems_and_folding():
    from app.domain.search import fold, phone_digits, stems

    assert stems("Заказы и ЗАКАЗОВ") == "заказ и заказ"
    assert stems("ёлка") == stems("елка")
    assert fold("Zażółć gęślą jaźń") == "zazolc gesla jazn"
    assert fold("йод") == "йод"
    assert stems("zamówieniem") == stems("zamowieniem")
    assert phone_digits("+7 (916) 123") == "7916123" and phone_digits("заказ 12") is None
    assert phone_digits("12") is None
