"""Channel connectors: one folder per channel kind, each exposing a `Connector` subclass.

A connector verifies webhooks, parses raw payloads into `connectors.base` records and sends
one `Outbound`. It never touches the database or Socket.IO.
"""
from __future__ import annotations

import importlib
from typing import Any, Mapping

from .base import DEFAULT_MAX_TEXT_CHARS, Outbound, Record, SendResult

# "crm" (signed upserts from a shop or CRM) joins with the CRM work.
CHANNEL_KINDS = ("email", "telegram", "whatsapp", "webchat", "crm")


# the answer bot answers from the knowledge base: never, outside the team's business hours,
# or always first (app/usecases/answer_bot.py)
ANSWER_BOT_MODES = ("off", "after_hours", "always")
CUSTOMER_CHANNEL_KEYS = ("answer_bot", "bot_menu")
# the answer bot's menu (issue 18): a greeting and up to MENU_MAX_ITEMS buttons, each doing
# one action: {"title", "action": "article", "article_id"} | {"action": "handoff",
# "team_id"?} | {"action": "text", "text"}. Whether the article / team exists is checked by
# app/domain/channels.py (a connector never reads the database).
MENU_ACTIONS = ("article", "handoff", "text")
MENU_MAX_ITEMS = 10
MENU_MAX_TITLE = 20       # Telegram and WhatsApp reply buttons show about 20 characters
MENU_MAX_TEXT = 1000


def validate_menu(menu: Any) -> dict[str, Any] | None:
    """The normalized menu, None for "no menu", or ValueError("bot_menu.<path>: reason")."""
    if menu in (None, "", {}):
        return None
    if not isinstance(menu, Mapping):
        raise ValueError("bot_menu: an object with greeting and items")
    unknown = set(menu) - {"greeting", "items"}
    if unknown:
        raise ValueError(f"bot_menu: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    greeting = str(menu.get("greeting") or "").strip()
    items = menu.get("items") or []
    if not isinstance(items, list):
        raise ValueError("bot_menu.items: a list")
    if not items:
        if greeting:
            raise ValueError("bot_menu.items: at least one item for the greeting")
        return None
    if len(items) > MENU_MAX_ITEMS:
        raise ValueError(f"bot_menu.items: at most {MENU_MAX_ITEMS} items, got {len(items)}")
    if not greeting:
        raise ValueError("bot_menu.greeting: required with items")
    if len(greeting) > MENU_MAX_TEXT:
        raise ValueError(f"bot_menu.greeting: at most {MENU_MAX_TEXT} characters")
    clean = []
    for n, item in enumerate(items):
        at = f"bot_menu.items.{n}"
        if not isinstance(item, Mapping):
            raise ValueError(f"{at}: an object with title and action")
        title = str(item.get("title") or "").strip()
        if not title:
            raise ValueError(f"{at}.title: required")
        if len(title) > MENU_MAX_TITLE:
            raise ValueError(f"{at}.title: at most {MENU_MAX_TITLE} characters")
        action = str(item.get("action") or "").strip().lower()
        if action not in MENU_ACTIONS:
            raise ValueError(f"{at}.action: one of {', '.join(MENU_ACTIONS)}, "
                             f"got {item.get('action')!r}")
        entry: dict[str, Any] = {"title": title, "action": action}
        if action == "article":
            article_id = item.get("article_id")
            if isinstance(article_id, bool) or not str(article_id or "").strip().isdigit():
                raise ValueError(f"{at}.article_id: the number of a published article")
            entry["article_id"] = int(str(article_id).strip())
        elif action == "handoff":
            team_id = item.get("team_id")
            if team_id not in (None, ""):
                if isinstance(team_id, bool) or not str(team_id).strip().isdigit():
                    raise ValueError(f"{at}.team_id: the number of a team")
                entry["team_id"] = int(str(team_id).strip())
        else:
            text = str(item.get("text") or "").strip()
            if not text:
                raise ValueError(f"{at}.text: required for a text item")
            if len(text) > MENU_MAX_TEXT:
                raise ValueError(f"{at}.text: at most {MENU_MAX_TEXT} characters")
            entry["text"] = text
        clean.append(entry)
    return {"greeting": greeting, "items": clean}


class Connector:
    """Base class; each channel module defines `Connector = <subclass>`."""

    kind: str = ""
    #: every setting key `threadline channel add <kind> --set key=value` accepts
    setting_keys: tuple[str, ...] = ()
    #: keys whose values are secrets: never printed, never logged
    secret_keys: frozenset[str] = frozenset()
    #: keys that must be present
    required_keys: tuple[str, ...] = ()
    #: the most text one stored message may hold; longer is cut with a visible marker
    #: (`connectors.base.bounded_inbound`), the raw payload keeps it whole
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS

    def default_settings(self) -> dict[str, Any]:
        """Values filled in at `channel add` (e.g. a generated webhook secret)."""
        return {}

    #: settings every customer channel takes besides its own (the answer bot: issue 18)
    customer_channel: bool = True

    def validate_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Return normalized settings or raise ValueError naming the bad key."""
        known = set(self.setting_keys) | (set(CUSTOMER_CHANNEL_KEYS) if self.customer_channel
                                          else set())
        unknown = set(settings) - known
        if unknown:
            raise ValueError(
                f"unknown setting(s) for {self.kind}: {', '.join(sorted(unknown))}; "
                f"known: {', '.join(self.setting_keys)}"
            )
        missing = [k for k in self.required_keys if not settings.get(k)]
        if missing:
            raise ValueError(f"missing setting(s) for {self.kind}: {', '.join(missing)}")
        clean = dict(settings)
        if "answer_bot" in clean:
            mode = str(clean["answer_bot"] or "off").strip().lower()
            if mode not in ANSWER_BOT_MODES:
                raise ValueError(f"answer_bot: one of {', '.join(ANSWER_BOT_MODES)}, "
                                 f"got {clean['answer_bot']!r}")
            clean["answer_bot"] = mode
        if "bot_menu" in clean:
            menu = validate_menu(clean["bot_menu"])
            if menu is None:
                del clean["bot_menu"]
            else:
                clean["bot_menu"] = menu
        return clean

    def verify_webhook(self, settings: Mapping[str, Any], headers: Mapping[str, str],
                       body: bytes) -> None:
        """Raise `VerificationError` unless the request is authentic."""
        raise NotImplementedError(f"{self.kind} takes no webhooks")

    def event_key(self, payload: Any, body: bytes) -> str:
        """The channel's id of one raw delivery; repeated deliveries share it."""
        raise NotImplementedError

    def parse(self, settings: Mapping[str, Any], payload: Any) -> list[Record]:
        """Turn one raw payload into records. Raise `MalformedPayload` on a missing field."""
        raise NotImplementedError

    def send(self, settings: Mapping[str, Any], outbound: Outbound) -> SendResult:
        """Send one message. Raise TransientError / PermanentError on failure."""
        raise NotImplementedError(f"{self.kind} cannot send")

    # Optional (Telegram): `async def send_async(settings, outbound) -> SendResult`, the same
    # send as a coroutine, and `submit(coro) -> concurrent.futures.Future`, which runs a
    # coroutine on the connector's event loop. The outbox then sends a round's messages side
    # by side on that loop instead of a thread each.
    send_async: Any = None
    submit: Any = None

    def download(self, settings: Mapping[str, Any], remote_ref: str, max_bytes: int,
                 hints: Mapping[str, Any]) -> tuple[bytes, str]:
        """Fetch an attachment the payload only referenced; returns (bytes, content type).
        `hints` carries what the payload said of it (expected sha256, mime type)."""
        raise NotImplementedError(f"{self.kind} has no downloads")

    def test(self, settings: Mapping[str, Any]) -> str:
        """Check the settings against the channel; return a one-line human summary."""
        raise NotImplementedError(f"{self.kind} has no connection test")

    def redact(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        return {k: ("***" if k in self.secret_keys and v else v) for k, v in settings.items()}


def get_connector(kind: str) -> Connector:
    if kind not in CHANNEL_KINDS:
        raise ValueError(f"unknown channel kind {kind!r}; choose one of: {', '.join(CHANNEL_KINDS)}")
    module = importlib.import_module(f"connectors.{kind}")
    return module.Connector()
