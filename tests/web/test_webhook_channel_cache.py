"""The webhook door reads its channel from the process's cache (issue 15): a change made in
this process counts at the next request; one committed elsewhere within the cache's TTL."""
from __future__ import annotations

import time

from sqlalchemy import event, text

from app.infra import channel_cache
from app.infra.models import Channel, InboundEvent
from app.infra.state import db
from tests.conftest import telegram_update

SECRET = "s3cret-token-value"


def post(client, channel_id: int, update_id: int, secret: str = SECRET):
    return client.post(f"/webhooks/telegram/{channel_id}", json=telegram_update(update_id, 42, "hi"),
                       headers={"X-Telegram-Bot-Api-Secret-Token": secret})


def count_statements(app):
    seen: list[str] = []

    def listen(_conn, _cursor, statement, *_args):
        seen.append(statement)

    engine = app.extensions["threadline.db"].engine
    event.listen(engine, "before_cursor_execute", listen)
    return seen, lambda: event.remove(engine, "before_cursor_execute", listen)


def test_a_webhook_is_one_insert_once_the_channel_is_cached(app, ctx, telegram_channel,
                                                            monkeypatch):
    monkeypatch.setattr(channel_cache, "TTL", 60.0)   # a loaded machine may take > 1 s here
    client = app.test_client()
    assert post(client, telegram_channel.id, 1).status_code == 200
    seen, stop = count_statements(app)
    try:
        assert post(client, telegram_channel.id, 2).status_code == 200
    finally:
        stop()
    dml = [s for s in seen if not s.startswith(("BEGIN", "SAVEPOINT", "RELEASE"))]
    assert len(dml) == 1 and dml[0].lstrip().upper().startswith("INSERT INTO INBOUND_EVENTS"), seen
    assert db.session.query(InboundEvent).count() == 2


def test_a_channel_changed_in_this_process_counts_at_the_next_request(app, ctx, telegram_channel):
    client = app.test_client()
    assert post(client, telegram_channel.id, 1).status_code == 200
    channel = db.session.get(Channel, telegram_channel.id)
    channel.settings = {**channel.settings, "secret_token": "a-new-secret-value"}
    db.session.commit()
    assert post(client, telegram_channel.id, 2).status_code in (401, 403)
    assert post(client, telegram_channel.id, 3, secret="a-new-secret-value").status_code == 200
    db.session.get(Channel, telegram_channel.id).active = False
    db.session.commit()
    assert post(client, telegram_channel.id, 4, secret="a-new-secret-value").status_code == 404
    # an UPDATE statement (no object flushed) counts too
    db.session.query(Channel).filter(Channel.id == telegram_channel.id).update({"active": True})
    db.session.commit()
    assert post(client, telegram_channel.id, 5, secret="a-new-secret-value").status_code == 200


def test_a_change_committed_by_another_process_counts_within_the_ttl(app, ctx, telegram_channel):
    client = app.test_client()
    assert post(client, telegram_channel.id, 1).status_code == 200
    # as another process would: its own connection, no session of this process
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE channels SET active = :off WHERE id = :id"),
                           {"off": False, "id": telegram_channel.id})
    started = time.monotonic()
    while post(client, telegram_channel.id, 2).status_code == 200:
        assert time.monotonic() - started < channel_cache.TTL + 1, "the cached channel never expired"
        time.sleep(0.05)
    assert post(client, telegram_channel.id, 3).status_code == 404


def test_each_database_has_its_own_cache(app, ctx, telegram_channel):
    cache = channel_cache.cache_for(db)
    assert channel_cache.cache_for(db) is cache
    assert cache.get(db.session, telegram_channel.id).settings["secret_token"] == SECRET
    assert cache.get(db.session, 10_000) is None
    assert 10_000 not in cache._entries   # unknown ids (anyone can post them) are not kept
    db.session.rollback()
