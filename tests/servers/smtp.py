"""A recording SMTP server for tests (aiosmtpd on a free loopback port).

It accepts everything and records each mail, unless told to answer the next RCPT or DATA
with an error (`fail_next("RCPT", "452 4.2.2 Mailbox full")`).
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[ReceivedMail] = []
        self.failures: dict[str, str] = {}  # "RCPT"/"DATA" -> reply for the next one
        self.peers: list[Any] = []   # the client's address of each accepted mail

    def _take_failure(self, stage: str) -> str | None:
        with self.lock:
            return self.failures.pop(stage, None)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list) -> str:
        failure = self._take_failure("RCPT")
        if failure:
            return failure
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        failure = self._take_failure("DATA")
        if failure:
            return failure
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        with self.lock:
            self.received.append(ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), raw))
            self.peers.append(session.peer)
        return "250 2.0.0 OK queued"


class RecordingSMTP:
    host = "127.0.0.1"

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        """auth=(user, password) makes the server require AUTH (PLAIN/LOGIN, no TLS)."""
        self.port = _free_port()
        self.handler = _Handler()
        self.auth = auth
        self.controller: Controller | None = None

    @property
    def received(self) -> list[ReceivedMail]:
        with self.handler.lock:
            return list(self.handler.received)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self.auth is not None
              and auth_data.login.decode() == self.auth[0]
              and auth_data.password.decode() == self.auth[1])
        return AuthResult(success=ok, handled=False)

    def fail_next(self, stage: str, reply: str) -> None:
        """Answer the next RCPT or DATA command with reply (e.g. "550 5.1.1 No such user")."""
        if stage not in ("RCPT", "DATA"):
            raise ValueError(f"stage must be RCPT or DATA, got {stage!r}")
        with self.handler.lock:
            self.handler.failures[stage] = reply

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.received.clear()
            self.handler.failures.clear()

    def start(self) -> "RecordingSMTP":
        """Listen (again) on the same port; a Controller cannot be restarted, so each start
        makes a new one around the same handler."""
        if self.controller is None:
            extra: dict[str, Any] = {}
            if self.auth:
                extra = {"authenticator": self._authenticate, "auth_required": True,
                         "auth_require_tls": False}
            self.controller = Controller(self.handler, hostname=self.host, port=self.port,
                                         server_hostname="smtp.test", **extra)
            self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def settings(self, **extra: object) -> dict[str, object]:
        return {"smtp_host": self.host, "smtp_port": self.port, "smtp_security": "none", **extra}

    def __enter__(self) -> "RecordingSMTP":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
