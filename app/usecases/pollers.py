"""Channels we pull from: Telegram long polling and IMAP sync.

A supervisor thread (inside `serve` on the embedded default, inside `threadline worker`
with Redis) starts one poller per active channel that needs one, and notices channels
added later. With Redis, a lock per channel makes sure that only one worker polls it.
Every poller stores raw events through `app/ingest.receive` before it moves its cursor,
so a restart at any moment neither loses nor repeats a message.
"""
from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from typing import Any, Callable

from sqlalchemy import select

from connectors import get_connector
from connectors.base import ChannelError, PermanentError, TransientError

from app.usecases.ingest import receive
from app.infra.logs import register_channel_secrets
from app.infra.models import Channel
from app.infra.state import db

log = logging.getLogger(__name__)

SUPERVISE_EVERY = 30.0
LOCK_TTL = 120  # seconds; a poll round must finish well within it


class ChannelPoller(threading.Thread):
    """One channel's loop: `poll_once()` does a round and returns how long to wait."""

    kind = ""

    def __init__(self, app, channel_id: int, redis=None):
        super().__init__(name=f"threadline-{self.kind}-poller-{channel_id}", daemon=True)
        self.app = app
        self.channel_id = channel_id
        self.redis = redis
        self.lock_key = f"threadline:poller:{channel_id}"
        self.lock_token = uuid.uuid4().hex
        self._stop_event = threading.Event()
        self.failures = 0

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def _hold_lock(self) -> bool:
        if self.redis is None:
            return True
        if self.redis.set(self.lock_key, self.lock_token, nx=True, ex=LOCK_TTL):
            return True
        if (self.redis.get(self.lock_key) or b"").decode() == self.lock_token:
            self.redis.expire(self.lock_key, LOCK_TTL)
            return True
        return False

    def run(self) -> None:
        while not self.stopped:
            if not self._hold_lock():
                self._stop_event.wait(10)  # another worker polls this channel
                continue
            with self.app.app_context():
                try:
                    wait = self.poll_once()
                    self.failures = 0
                    self._set_error(None)
                except PermanentError as exc:
                    wait = 300.0
                    self._set_error(f"{self.kind}: {exc}")
                except (TransientError, ChannelError) as exc:
                    self.failures += 1
                    wait = min(300.0, 2.0 ** self.failures)
                    self._set_error(f"{self.kind}: {exc} (retrying in {wait:.0f}s)")
                except Exception as exc:
                    self.failures += 1
                    wait = min(300.0, 2.0 ** self.failures)
                    log.exception("poller for channel %s failed", self.channel_id)
                    self._set_error(f"{self.kind}: {type(exc).__name__}: {exc}")
                finally:
                    db.session.remove()
            self._stop_event.wait(wait)
        if self.redis is not None and (self.redis.get(self.lock_key) or b"").decode() == self.lock_token:
            self.redis.delete(self.lock_key)

    def channel(self) -> Channel:
        channel = db.session.get(Channel, self.channel_id)
        if channel is None or not channel.active:
            self.stop()
            raise ChannelError("channel removed or inactive")
        register_channel_secrets(get_connector(channel.kind), channel.settings)
        return channel

    def save_state(self, **values: Any) -> None:
        channel = db.session.get(Channel, self.channel_id)
        channel.state = {**channel.state, **values}  # a new dict: JSON columns track assignment
        db.session.commit()

    def _set_error(self, error: str | None) -> None:
        channel = db.session.get(Channel, self.channel_id)
        if channel is not None and channel.error != error:
            if error:
                log.warning("channel %s: %s", self.channel_id, error)
            channel.error = error
            db.session.commit()

    def poll_once(self) -> float:
        raise NotImplementedError


class TelegramPoller(ChannelPoller):
    kind = "telegram"
    long_poll_seconds = 25

    def poll_once(self) -> float:
        from connectors.telegram import PollingConflict, fetch_updates

        channel = self.channel()
        offset = channel.state.get("telegram_offset")
        settings = dict(channel.settings)
        db.session.commit()  # no transaction open during the long poll
        try:
            updates = fetch_updates(settings, offset, self.long_poll_seconds)
        except PollingConflict as exc:
            raise PermanentError(
                f"{exc} — another program polls this bot, or a webhook is set "
                "(`threadline telegram set-webhook` switches to webhook mode)") from exc
        if not updates:
            return 0.0
        for update in updates:
            receive(channel, str(update["update_id"]), update, process="queue")
        # the offset moves only after every update is stored
        self.save_state(telegram_offset=max(u["update_id"] for u in updates) + 1)
        return 0.0


class EmailPoller(ChannelPoller):
    kind = "email"
    idle_seconds = 60
    poll_seconds = 60.0

    def poll_once(self) -> float:
        from connectors.email import Mailbox, configured_folders

        channel = self.channel()
        settings = dict(channel.settings)
        db.session.commit()
        with Mailbox(settings) as box:
            folders = configured_folders(settings)
            states = [sync_folder(self, box, channel, folder) for folder in folders]
            if not box.has_capability("IDLE"):
                return self.poll_seconds
            # IDLE on the first folder; other folders are synced on every wake-up
            box.idle_wait(folders[0], self.idle_seconds, since_uidnext=states[0].uidnext)
        return 0.0


def sync_folder(poller: ChannelPoller, box, channel: Channel, folder: str,
                progress: Callable[[str], None] | None = None):
    """Fetch what arrived in `folder` since the stored cursor; returns the folder state."""
    cursors = dict(channel.state.get("imap", {}))
    cursor = dict(cursors.get(folder, {}))
    state = box.folder_state(folder)
    if cursor.get("uidvalidity") != state.uidvalidity:
        if cursor:
            log.warning("channel %s: %s UIDVALIDITY changed (%s -> %s): resyncing; known "
                        "messages are deduplicated", channel.id, folder,
                        cursor.get("uidvalidity"), state.uidvalidity)
        cursor = {"uidvalidity": state.uidvalidity, "last_uid": 0}
    total, done, started = max(0, state.uidnext - 1 - cursor["last_uid"]), 0, time.monotonic()
    for batch in box.fetch_since(folder, cursor["last_uid"]):
        for mail in batch:
            payload = {"raw": base64.b64encode(mail.raw).decode(), "folder": folder, "uid": mail.uid}
            key = get_connector("email").event_key(payload, mail.raw)
            receive(channel, key, payload, process="queue")
        cursor["last_uid"] = batch[-1].uid
        cursors[folder] = cursor
        poller.save_state(imap=cursors)  # the cursor moves only after the batch is stored
        done += len(batch)
        if total > len(batch):
            rate = done / max(time.monotonic() - started, 1e-6)
            message = (f"channel {channel.id}: {folder} {done}/{total} messages "
                       f"({rate:.0f}/s)")
            log.info(message)
            if progress:
                progress(message)
    if cursors.get(folder) != cursor:
        cursors[folder] = cursor
        poller.save_state(imap=cursors)
    return state


POLLERS: dict[str, type[ChannelPoller]] = {"telegram": TelegramPoller, "email": EmailPoller}


def needs_poller(channel: Channel) -> bool:
    if not channel.active or channel.state.get("demo") or channel.kind not in POLLERS:
        return False
    if channel.kind == "telegram":
        return channel.settings.get("mode", "polling") == "polling"
    return True


_changed = threading.Event()


def channels_changed() -> None:
    """A channel was added, edited or disabled in this process: look again now rather than at
    the next round (other processes notice within SUPERVISE_EVERY)."""
    _changed.set()


class PollerSupervisor(threading.Thread):
    """Keeps one poller per channel that needs one, including channels added later."""

    def __init__(self, app, redis=None):
        super().__init__(name="threadline-pollers", daemon=True)
        self.app = app
        self.redis = redis
        self.pollers: dict[int, ChannelPoller] = {}
        self._stop_event = threading.Event()

    def refresh(self) -> None:
        with self.app.app_context():
            try:
                wanted = {c.id: c.kind for c in db.session.scalars(select(Channel))
                          if needs_poller(c)}
            finally:
                db.session.remove()
        for channel_id, poller in list(self.pollers.items()):
            if channel_id not in wanted or not poller.is_alive():
                poller.stop()
                del self.pollers[channel_id]
        for channel_id, kind in wanted.items():
            if channel_id not in self.pollers:
                poller = POLLERS[kind](self.app, channel_id, self.redis)
                poller.start()
                self.pollers[channel_id] = poller
                log.info("polling %s channel %s", kind, channel_id)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.refresh()
            except Exception:
                log.exception("poller supervisor failed")
            _changed.wait(SUPERVISE_EVERY)
            _changed.clear()

    def stop(self) -> None:
        self._stop_event.set()
        _changed.set()
        for poller in self.pollers.values():
            poller.stop()


def start_pollers(app) -> list[Any]:
    redis = None
    if app.config["THREADLINE"]["redis_url"]:
        from redis import Redis

        redis = Redis.from_url(app.config["THREADLINE"]["redis_url"])
    supervisor = PollerSupervisor(app, redis)
    supervisor.start()
    return [supervisor]

