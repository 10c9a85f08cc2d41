"""The answer bot's menu on the channel settings page (issue 18): a greeting and one line per
button ("Title | article:12", "Title | handoff:Support", "Title | text:…"), an error naming the
line, the stored menu shown back as lines, cleared by emptying both fields; in ru and pl."""
from __future__ import annotations

import re

from sqlalchemy import select

from app.domain import kb
from app.infra.models import Channel, Team
from app.infra.state import db
from tests.web.test_settings_pages import _admin_client, _csrf


def test_the_menu_is_edited_as_lines_on_the_channel_page(app):
    client = _admin_client(app)
    with app.app_context():
        article = kb.create(db.session, {
            "title": "Сроки доставки", "language": "ru", "published": True,
            "short_answer": "2–5 дней.", "body": "Доставка занимает 2–5 дней."})
        channel = Channel(kind="webchat", name="Сайт",
                          settings={"secret": "s", "allowed_origins": "https://shop.example.com"})
        db.session.add(channel)
        db.session.commit()
        article_id, channel_id = article.id, channel.id
        support = db.session.scalar(select(Team).where(Team.name == "Support")).id
    page = client.get(f"/settings/channels/{channel_id}").get_data(as_text=True)
    assert 'name="bot_menu_items"' in page and f"article:{article_id}" in page  # the ids listed
    csrf = _csrf(page)
    form = {"csrf_token": csrf, "name": "Сайт", "allowed_origins": "https://shop.example.com",
            "answer_bot": "always", "bot_menu_greeting": "Здравствуйте! Чем помочь?"}

    lines = (f"Доставка | article:{article_id}\n"
             "Очень длинное название кнопки | handoff\n")
    bad = client.post(f"/settings/channels/{channel_id}", data={**form, "bot_menu_items": lines},
                      headers={"Accept-Language": "ru"})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert re.search(r'id="error-bot_menu_items"[^>]*>Строка 2: [^<]*20', body), body[-3000:]
    assert "Очень длинное название кнопки | handoff" in body          # kept as typed
    missing = client.post(f"/settings/channels/{channel_id}",
                          data={**form, "bot_menu_items": "Доставка | article:99999"})
    assert missing.status_code == 422
    assert "Line 1: No published article 99999." in missing.get_data(as_text=True)

    lines = (f"Доставка | article:{article_id}\n\nОператор | handoff:support\n"
             "Часы работы | text:Мы работаем с 9 до 18")
    good = client.post(f"/settings/channels/{channel_id}", data={**form, "bot_menu_items": lines})
    assert good.status_code == 302
    with app.app_context():
        assert db.session.get(Channel, channel_id).settings["bot_menu"] == {
            "greeting": "Здравствуйте! Чем помочь?", "items": [
                {"title": "Доставка", "action": "article", "article_id": article_id},
                {"title": "Оператор", "action": "handoff", "team_id": support},
                {"title": "Часы работы", "action": "text", "text": "Мы работаем с 9 до 18"}]}
        db.session.commit()
    shown = client.get(f"/settings/channels/{channel_id}").get_data(as_text=True)
    assert "Оператор | handoff:Support" in shown and "Часы работы | text:Мы работаем с 9 до 18" \
        in shown and 'value="Здравствуйте! Чем помочь?"' in shown
    polish = client.get(f"/settings/channels/{channel_id}",
                        headers={"Accept-Language": "pl"}).get_data(as_text=True)
    assert "Menu bota" in polish

    cleared = client.post(f"/settings/channels/{channel_id}",
                          data={**form, "bot_menu_greeting": "", "bot_menu_items": ""})
    assert cleared.status_code == 302
    with app.app_context():
        assert "bot_menu" not in db.session.get(Channel, channel_id).settings
        db.session.commit()
