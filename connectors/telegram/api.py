"""Talking to the Bot API through python-telegram-bot, from synchronous code.

The app (Flask views, rq jobs, the polling thread) is synchronous; PTB is asyncio-only. Each
process keeps one event loop thread and one `Bot` (with its httpx connection pools) per
token (`_BotPool`); calls from any thread run on that loop, and a forked child starts its
own loop and bots.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import os
import posixpath
import warnings
from datetime import timedelta
from typing import Any, Awaitable, Callable, Mapping, TypeVar

import telegram
from telegram import error as tg_error
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning, PTBUserWarning

from connectors.base import (
    TELEGRAM,
    Button,
    ChannelError,
    Outbound,
    OutboundAttachment,
    PermanentError,
    SendResult,
    TransientError,
)

from .entities import utf16_len
from .parse import ALLOWED_UPDATES

DEFAULT_API_BASE_URL = "https://api.telegram.org"
TEXT_LIMIT = 4096                     # sendMessage text, in UTF-16 code units
PHOTO_LIMIT = 10 * 1024 * 1024        # sendPhoto; bigger images go out as documents
DOWNLOAD_LIMIT = 20 * 1024 * 1024     # getFile on the cloud Bot API


def _quiet_ptb_warnings() -> None:
    """Silence two PTB warnings that do not apply to us (targeted, idempotent).

    - getUpdates goes through `do_api_request` to get the raw JSON (PTB's Update objects
      would reject one malformed update and block the whole batch); PTB suggests its named
      method instead.
    - `RetryAfter.retry_after` warns it will become a timedelta; `_seconds` takes both.
    Re-adding an identical filter replaces it, so calling this on every use is safe, and it
    survives test runners that reset the filter list between tests.
    """
    warnings.filterwarnings("ignore", message=r".*Please use 'Bot\.getUpdates'",
                            category=PTBUserWarning)
    warnings.filterwarnings("ignore", message=r".*In a future major version attribute "
                            r"`retry_after`", category=PTBDeprecationWarning)


T = TypeVar("T")


class PollingConflict(ChannelError):
    """getUpdates answered 409: another poller runs with this token, or a webhook is set."""


# ---- plumbing ------------------------------------------------------------------------------

def _base_url(settings: Mapping[str, Any]) -> str:
    return str(settings.get("api_base_url") or DEFAULT_API_BASE_URL).rstrip("/")


def _token(settings: Mapping[str, Any]) -> str:
    token = settings.get("token")
    if not token:
        raise PermanentError("telegram channel has no bot token configured")
    return str(token)


class _BotPool:
    """One event loop thread per process and one Bot (with its HTTP connection pools) per
    token, base URL and timeout. Building a Bot, two httpx clients and an event loop for
    every call cost far more than the call itself (the outbound benchmark ran at 0.04x the
    bare sendMessage rate that way)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        self._bots: dict[tuple[str, str, float], telegram.Bot] = {}

    def _loop_for_this_process(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked child starts anew
                self._loop = asyncio.new_event_loop()
                self._pid, self._bots = os.getpid(), {}
                threading.Thread(target=self._loop.run_forever, name="telegram-bot-loop",
                                 daemon=True).start()
            return self._loop

    def _bot(self, settings: Mapping[str, Any], read_timeout: float) -> telegram.Bot:
        base = _base_url(settings)
        key = (_token(settings), base, read_timeout)
        bot = self._bots.get(key)
        if bot is None:
            # several worker threads send through one Bot: give it a pool, not PTB's default 1
            request = HTTPXRequest(connect_timeout=10.0, read_timeout=read_timeout,
                                   write_timeout=60.0, connection_pool_size=8, pool_timeout=30.0)
            updates_request = HTTPXRequest(connect_timeout=10.0, read_timeout=read_timeout)
            # PTB appends the token to base_url / base_file_url: ".../bot" -> ".../bot<token>/<method>"
            bot = telegram.Bot(key[0], base_url=f"{base}/bot", base_file_url=f"{base}/file/bot",
                               request=request, get_updates_request=updates_request)
            self._bots[key] = bot
        return bot

    def run(self, settings: Mapping[str, Any], action: Callable[[telegram.Bot], Awaitable[T]],
            read_timeout: float) -> T:
        _quiet_ptb_warnings()   # RetryAfter warns already while PTB constructs it
        loop = self._loop_for_this_process()

        async def call() -> T:
            return await action(self._bot(settings, read_timeout))

        return asyncio.run_coroutine_threadsafe(call(), loop).result()

    def bot(self, settings: Mapping[str, Any], read_timeout: float) -> telegram.Bot:
        """The token's Bot, for a coroutine running on this process's loop (`submit`)."""
        return self._bot(settings, read_timeout)

    def submit(self, coro: Awaitable[T]) -> "concurrent.futures.Future[T]":
        """Run `coro` on this process's event loop; its future, without waiting for it
        (many sends go out side by side on the one loop, no thread each)."""
        _quiet_ptb_warnings()
        return asyncio.run_coroutine_threadsafe(coro, self._loop_for_this_process())


_POOL = _BotPool()


def _run_with_bot(settings: Mapping[str, Any], action: Callable[[telegram.Bot], Awaitable[T]],
                  read_timeout: float = 30.0) -> T:
    return _POOL.run(settings, action, read_timeout)


def _call(settings: Mapping[str, Any], action: Callable[[telegram.Bot], Awaitable[T]],
          read_timeout: float = 30.0) -> T:
    try:
        return _run_with_bot(settings, action, read_timeout)
    except tg_error.TelegramError as exc:
        raise map_error(exc, _token(settings)) from None


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def map_error(exc: tg_error.TelegramError, token: str = "") -> ChannelError:
    """PTB's exception -> ours. The token is scrubbed: messages end up in logs and the UI."""
    message = str(exc.message if hasattr(exc, "message") else exc)
    if token:
        message = message.replace(token, "***")
    if isinstance(exc, tg_error.RetryAfter):
        retry_after = _seconds(exc.retry_after)
        return TransientError(f"Telegram flood control: retry in {retry_after:g} s",
                              retry_after=retry_after)
    if isinstance(exc, tg_error.ChatMigrated):
        return PermanentError(f"group chat migrated to supergroup {exc.new_chat_id}")
    if isinstance(exc, tg_error.Forbidden):
        return PermanentError(message)           # e.g. "Forbidden: bot was blocked by the user"
    if isinstance(exc, tg_error.InvalidToken):
        return PermanentError(f"the bot token was rejected by Telegram ({message})")
    if isinstance(exc, tg_error.BadRequest):     # before NetworkError: BadRequest subclasses it
        return PermanentError(message)
    if isinstance(exc, tg_error.Conflict):
        return PollingConflict(message)      # only getUpdates/setWebhook can conflict
    return TransientError(message)               # NetworkError, TimedOut, 5xx


# ---- text splitting ------------------------------------------------------------------------

def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Cut `text` into parts of at most `limit` UTF-16 units; `"".join(parts) == text`.

    A part ends after a run of whitespace (a line break preferred, else a space) when there
    is one in the second half of the part, so the whitespace at the cut stays at the end of
    the earlier part, character for character. One long word is cut between code points
    (never inside a surrogate pair). No part is whitespace only (Telegram refuses an empty
    text) unless the text itself has no visible character there.
    """
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        cut = _fit(rest, limit)                      # rest[:cut] fits
        visible_end = len(rest.rstrip())
        if 0 < visible_end <= cut:                   # what would follow is only whitespace:
            cut = visible_end - 1                    # keep a visible character for it
        floor = max(cut // 2, 1)
        boundary = (_boundary(rest, cut, floor, "\n") or _boundary(rest, cut, floor, None)
                    or max(cut, 1))                  # one long word: hard cut
        parts.append(rest[:boundary])
        rest = rest[boundary:]
    if rest or not parts:
        parts.append(rest)
    return parts


def _boundary(text: str, cut: int, floor: int, needle: str | None) -> int:
    """The largest floor <= p <= cut where a whitespace run ends (text[p-1] blank, text[p]
    not) and, with `needle`, the run contains it; 0 when there is none."""
    p = cut
    while p >= floor:
        if text[p - 1].isspace() and p < len(text) and not text[p].isspace():
            start = p
            while start > 0 and text[start - 1].isspace():
                start -= 1
            if start > 0 and (needle is None or needle in text[start:p]):
                return p                     # (a part of whitespace alone is no boundary)
            p = start
        p -= 1
    return 0


def _fit(text: str, limit: int) -> int:
    """Largest n such that text[:n] is at most `limit` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


# ---- sending -------------------------------------------------------------------------------

def _chat_id(outbound: Outbound) -> int:
    if outbound.to.kind != TELEGRAM:
        raise PermanentError(f"cannot send to a {outbound.to.kind} handle over Telegram")
    try:
        return int(outbound.to.value)
    except ValueError:
        raise PermanentError(f"not a Telegram chat id: {outbound.to.value!r}") from None


def _reply_parameters(reply_to: str | None, chat_id: int) -> telegram.ReplyParameters | None:
    if not reply_to:
        return None
    try:
        reply_chat, message_id = (int(p) for p in reply_to.rsplit(":", 1))
    except ValueError:
        raise PermanentError(f"not a Telegram message id: {reply_to!r}") from None
    # allow_sending_without_reply: a customer deleting the original must not fail the answer.
    return telegram.ReplyParameters(
        message_id=message_id,
        chat_id=None if reply_chat == chat_id else reply_chat,
        allow_sending_without_reply=True,
    )


def _is_photo(att: OutboundAttachment) -> bool:
    return (att.content_type in ("image/jpeg", "image/png", "image/webp")
            and len(att.data) <= PHOTO_LIMIT)


CALLBACK_DATA_LIMIT = 64            # bytes of an inline button's callback_data


def keyboard(buttons: tuple[Button, ...]) -> telegram.InlineKeyboardMarkup | None:
    """Quick-reply buttons as an inline keyboard, one button per row (titles may be long)."""
    if not buttons:
        return None
    for button in buttons:
        if len(button.id.encode("utf-8")) > CALLBACK_DATA_LIMIT:
            raise PermanentError(f"button id {button.id!r} is longer than Telegram's "
                                 f"{CALLBACK_DATA_LIMIT} bytes of callback_data")
    return telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton(b.title, callback_data=b.id)] for b in buttons])


async def _send_all(bot: telegram.Bot, chat_id: int, outbound: Outbound) -> list[str]:
    reply = _reply_parameters(outbound.reply_to_external_id, chat_id)
    markup = keyboard(outbound.buttons)
    ids: list[str] = []

    def remember(message: telegram.Message) -> None:
        nonlocal reply
        ids.append(f"{message.chat.id}:{message.message_id}")
        reply = None                     # only the first part quotes the customer's message

    parts = split_text(outbound.text) if outbound.text else []
    count = len(parts) + len(outbound.attachments)

    def keys(index: int) -> telegram.InlineKeyboardMarkup | None:
        return markup if index == count - 1 else None   # the buttons ride on the last one

    for index, part in enumerate(parts):
        remember(await bot.send_message(chat_id, part, reply_parameters=reply,
                                        reply_markup=keys(index)))
    for offset, att in enumerate(outbound.attachments):
        upload = telegram.InputFile(att.data, filename=att.filename)
        index = len(parts) + offset
        if _is_photo(att):
            remember(await bot.send_photo(chat_id, upload, reply_parameters=reply,
                                          reply_markup=keys(index)))
        else:
            remember(await bot.send_document(chat_id, upload, reply_parameters=reply,
                                             reply_markup=keys(index)))
    if not ids:
        raise PermanentError("nothing to send: no text and no attachments")
    return ids


def send(settings: Mapping[str, Any], outbound: Outbound) -> SendResult:
    chat_id = _chat_id(outbound)
    ids = _call(settings, lambda bot: _send_all(bot, chat_id, outbound), read_timeout=60.0)
    return SendResult(external_id=ids[0], extra_ids=tuple(ids[1:]))


async def send_async(settings: Mapping[str, Any], outbound: Outbound) -> SendResult:
    """`send` as a coroutine on this process's event loop (`submit`): the outbox sends a
    round's Telegram messages side by side on the loop, with the same Bot and errors."""
    chat_id = _chat_id(outbound)
    try:
        ids = await _send_all(_POOL.bot(settings, 60.0), chat_id, outbound)
    except tg_error.TelegramError as exc:
        raise map_error(exc, _token(settings)) from None
    return SendResult(external_id=ids[0], extra_ids=tuple(ids[1:]))


def submit(coro: Awaitable[T]) -> "concurrent.futures.Future[T]":
    return _POOL.submit(coro)


def answer_callback(settings: Mapping[str, Any], callback_query_id: str) -> None:
    """answerCallbackQuery: the customer's client stops its spinner on the pressed button."""
    _call(settings, lambda bot: bot.answer_callback_query(callback_query_id))


def describe_bot(settings: Mapping[str, Any]) -> str:
    me = _call(settings, lambda bot: bot.get_me())
    return f"@{me.username} (id {me.id}, name {me.full_name})"


# ---- polling, webhooks, files --------------------------------------------------------------

def fetch_updates(settings: Mapping[str, Any], offset: int | None, timeout: int) -> list[dict]:
    """One getUpdates long poll: raw update dicts, oldest first.

    Pass `offset = last update_id + 1` to confirm everything before it (Telegram then forgets
    those updates). Raises PollingConflict on 409, TransientError on other failures.
    """
    api_kwargs: dict[str, Any] = {"timeout": int(timeout), "allowed_updates": list(ALLOWED_UPDATES)}
    if offset is not None:
        api_kwargs["offset"] = int(offset)

    async def action(bot: telegram.Bot) -> Any:
        return await bot.do_api_request("getUpdates", api_kwargs=api_kwargs,
                                        read_timeout=timeout + 10)

    try:
        result = _run_with_bot(settings, action, read_timeout=timeout + 10)
    except tg_error.TelegramError as exc:
        mapped = map_error(exc, _token(settings))
        # A revoked token will not heal by retrying; everything else in polling is retried.
        if isinstance(mapped, PollingConflict) or isinstance(exc, tg_error.InvalidToken):
            raise mapped from None
        raise TransientError(str(mapped), getattr(mapped, "retry_after", None)) from None
    if not isinstance(result, list):
        raise TransientError(f"getUpdates returned {type(result).__name__}, expected a list")
    return [u for u in result if isinstance(u, dict)]


def set_webhook(settings: Mapping[str, Any], url: str) -> str:
    secret = settings.get("secret_token")
    if not secret:
        raise ValueError("secret_token is required to set a webhook (it authenticates Telegram)")
    _call(settings, lambda bot: bot.set_webhook(url=url, secret_token=str(secret),
                                                allowed_updates=list(ALLOWED_UPDATES)))
    return f"webhook set to {url} (updates: {', '.join(ALLOWED_UPDATES)})"


def delete_webhook(settings: Mapping[str, Any]) -> None:
    _call(settings, lambda bot: bot.delete_webhook(drop_pending_updates=False))


def download_file(settings: Mapping[str, Any], file_id: str,
                  max_bytes: int = DOWNLOAD_LIMIT) -> tuple[bytes, str]:
    """getFile, then fetch the bytes. Returns (data, filename from Telegram's file_path)."""

    async def action(bot: telegram.Bot) -> tuple[bytes, str]:
        try:
            tg_file = await bot.get_file(file_id)
        except tg_error.BadRequest as exc:
            if "too big" in exc.message:
                raise PermanentError(f"file too large: {exc.message}") from None
            raise
        if tg_file.file_size is not None and tg_file.file_size > max_bytes:
            raise PermanentError(f"file too large: {tg_file.file_size} bytes > {max_bytes}")
        data = bytes(await tg_file.download_as_bytearray())
        if len(data) > max_bytes:
            raise PermanentError(f"file too large: {len(data)} bytes > {max_bytes}")
        return data, _filename(tg_file.file_path, file_id)

    return _call(settings, action, read_timeout=120.0)


def _filename(file_path: str | None, file_id: str) -> str:
    name = posixpath.basename(file_path or "")
    return name or os.path.basename(file_id) or "file"
