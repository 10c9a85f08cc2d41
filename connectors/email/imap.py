"""IMAP mailbox client. The app owns the cursor (UIDVALIDITY + last seen UID per folder) and
the loop; this class answers the questions the loop asks, one connection per `with` block.

Mail is always fetched with BODY.PEEK[] from a folder opened read-only (EXAMINE), so
syncing never marks a customer's mail as read for the humans who share the mailbox.
"""
from __future__ import annotations

import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass
import functools
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from connectors.base import ChannelError, PermanentError, TransientError

from .settings import normalize_settings

log = logging.getLogger(__name__)
TIMEOUT_S = 60.0
_MSGID = re.compile(rb"<([^<>\s]+)>")


F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def _mapped_errors(action: str) -> Iterator[None]:
    """A dropped connection (server restart, network) is worth a reconnect: TransientError.
    A refusal from the server (no such folder, quota) is a ChannelError with its text."""
    try:
        yield
    except (IMAPClientAbortError, OSError) as exc:
        raise TransientError(f"IMAP connection lost during {action}: "
                             f"{type(exc).__name__}: {exc}") from exc
    except IMAPClientError as exc:
        raise ChannelError(f"IMAP {action} failed: {exc}") from exc


def _channel_errors(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: "Mailbox", *args: Any, **kwargs: Any) -> Any:
        with _mapped_errors(method.__name__):
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None
    messages: int = 0


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes
    flags: tuple[bytes, ...]


class Mailbox:
    """`with Mailbox(settings) as box:` connects and logs in; leaving logs out."""

    def __init__(self, settings: Mapping[str, Any], timeout_s: float = TIMEOUT_S):
        self.cfg = normalize_settings(settings)
        self.timeout_s = timeout_s
        self.client: IMAPClient | None = None
        self._selected: tuple[str, bool] | None = None

    # --- connection ---------------------------------------------------------------------

    def __enter__(self) -> "Mailbox":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        host, port, security = self.cfg["imap_host"], self.cfg["imap_port"], self.cfg["imap_security"]
        try:
            client = IMAPClient(host, port=port, ssl=security == "tls",
                                ssl_context=ssl.create_default_context(), timeout=self.timeout_s)
            if security == "starttls":
                client.starttls(ssl.create_default_context())
        except (OSError, IMAPClientError) as exc:
            raise TransientError(f"IMAP {host}:{port}: {type(exc).__name__}: {exc}") from exc
        try:
            client.login(self.cfg["imap_user"], self.cfg.get("imap_password") or "")
        except LoginError as exc:
            _quiet_logout(client)
            raise PermanentError(f"IMAP login failed for {self.cfg['imap_user']}: {exc}") from exc
        except (OSError, IMAPClientError) as exc:
            _quiet_logout(client)
            raise TransientError(f"IMAP {host}:{port}: {type(exc).__name__}: {exc}") from exc
        self.client = client

    def close(self) -> None:
        if self.client is not None:
            _quiet_logout(self.client)
        self.client = None
        self._selected = None

    @property
    def imap(self) -> IMAPClient:
        if self.client is None:
            raise RuntimeError("Mailbox is not connected; use `with Mailbox(settings) as box:`")
        return self.client

    def has_capability(self, name: str) -> bool:
        return self.imap.has_capability(name)

    def _select(self, folder: str, readonly: bool = True) -> dict:
        info = self.imap.select_folder(folder, readonly=readonly)
        self._selected = (folder, readonly)
        return info

    # --- queries ----------------------------------------------------------------------

    @_channel_errors
    def folder_state(self, folder: str) -> FolderState:
        """UIDVALIDITY / UIDNEXT (and HIGHESTMODSEQ with CONDSTORE) without selecting."""
        items = [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY"]
        condstore = self.has_capability("CONDSTORE")
        if condstore:
            items.append(b"HIGHESTMODSEQ")
        status = self.imap.folder_status(folder, items)
        modseq = status.get(b"HIGHESTMODSEQ") if condstore else None
        return FolderState(uidvalidity=int(status[b"UIDVALIDITY"]),
                           uidnext=int(status[b"UIDNEXT"]),
                           highestmodseq=int(modseq) if modseq is not None else None,
                           messages=int(status.get(b"MESSAGES", 0)))

    def fetch_since(self, folder: str, last_uid: int,
                    batch_size: int = 100) -> Iterator[list[FetchedMail]]:
        """Messages with UID > last_uid, oldest first, in batches of at most batch_size."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        with _mapped_errors("fetch_since"):
            yield from self._fetch_batches(folder, int(last_uid), batch_size)

    def _fetch_batches(self, folder: str, last_uid: int,
                       batch_size: int) -> Iterator[list[FetchedMail]]:
        self._select(folder, readonly=True)
        # "UID n:*" always matches the newest message even when n > its UID (RFC 3501
        # 6.4.8: "*" is the largest UID in use), so the range is filtered again here.
        uids = sorted(u for u in self.imap.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
        for start in range(0, len(uids), batch_size):
            chunk = uids[start:start + batch_size]
            data = self.imap.fetch(chunk, ["BODY.PEEK[]", "FLAGS"])
            batch = [FetchedMail(uid=uid, raw=bytes(data[uid][b"BODY[]"]),
                                 flags=tuple(data[uid].get(b"FLAGS", ())))
                     for uid in chunk if uid in data and b"BODY[]" in data[uid]]
            if batch:
                yield batch

    @_channel_errors
    def idle_wait(self, folder: str, timeout_s: float, since_uidnext: int | None = None) -> bool:
        """Block until new mail arrives in folder (True) or timeout_s passes (False).

        Returns False at once when the server lacks IDLE: the caller then polls. The caller
        re-issues it at most every 10 minutes (servers drop IDLE after ~30, RFC 2177).
        since_uidnext (UIDNEXT when the caller last fetched) closes the race of mail that
        arrives between that fetch and the start of IDLE: it returns True at once.
        """
        if not self.has_capability("IDLE"):
            return False
        info = self._select(folder, readonly=True)
        exists = int(info.get(b"EXISTS", 0))
        if since_uidnext is not None and int(info.get(b"UIDNEXT", 0)) > since_uidnext:
            return True
        deadline = time.monotonic() + timeout_s
        self.imap.idle()
        try:
            # idle_check returns on *any* untagged response ("* OK Still here", FETCH flag
            # changes, EXPUNGE); keep waiting until mail arrives or time is up.
            while (remaining := deadline - time.monotonic()) > 0:
                for response in self.imap.idle_check(timeout=remaining):
                    if _is_arrival(response, exists):
                        return True
                    if len(response) >= 2 and response[1] == b"EXPUNGE":
                        exists = max(0, exists - 1)
            return False
        finally:
            self.imap.idle_done()

    @_channel_errors
    def append(self, folder: str, raw: bytes, flags: Sequence[bytes | str] = ()) -> None:
        """Store raw in folder (creating the folder when it does not exist yet)."""
        if not self.imap.folder_exists(folder):
            self.imap.create_folder(folder)
        self.imap.append(folder, raw, flags=tuple(flags))

    @_channel_errors
    def message_ids(self, folder: str, batch_size: int = 500) -> dict[str, int]:
        """Message-ID -> UID, for deduplicating after a UIDVALIDITY change."""
        self._select(folder, readonly=True)
        uids = sorted(self.imap.search(["ALL"]))
        out: dict[str, int] = {}
        key = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
        for start in range(0, len(uids), batch_size):
            chunk = uids[start:start + batch_size]
            data = self.imap.fetch(chunk, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            for uid in chunk:
                m = _MSGID.search(bytes(data.get(uid, {}).get(key, b"")))
                if m:
                    out.setdefault(m.group(1).decode("utf-8", "replace"), uid)
        return out


def _is_arrival(response: tuple, exists: int) -> bool:
    """`* n EXISTS` with n above the count at SELECT, or `* n RECENT` with n > 0."""
    if len(response) < 2 or not isinstance(response[0], int):
        return False
    return (response[1] == b"EXISTS" and response[0] > exists) or \
        (response[1] == b"RECENT" and response[0] > 0)


def _quiet_logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (OSError, IMAPClientError, socket.error) as exc:
        log.debug("IMAP logout failed: %s", exc)
