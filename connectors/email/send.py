"""Outbound mail: build the RFC 5322 message and hand it to SMTP."""
from __future__ import annotations

import email.policy
import functools
import html as html_lib
import logging
import os
import smtplib
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any, Mapping

import re

from connectors.base import EMAIL, Outbound, PermanentError, SendResult, TransientError

from .settings import normalize_settings

log = logging.getLogger(__name__)
TIMEOUT_S = 30


def build_message(settings: Mapping[str, Any], outbound: Outbound) -> EmailMessage:
    """The message exactly as it will be sent; the same Outbound always yields the same
    Message-ID, so a retried send is recognisable as a duplicate by every receiver."""
    cfg = normalize_settings(settings)
    if not cfg.get("from_address"):
        raise ValueError("from_address: required to send mail")
    _check_outbound(outbound)
    domain = cfg["reply_domain"]
    msg = EmailMessage()
    msg["Message-ID"] = f"<{outbound.idempotency_key}@{domain}>"
    msg["Date"] = _parsed("Date", formatdate(localtime=False))
    msg["From"] = _parsed("From", formataddr((cfg.get("from_name") or "", cfg["from_address"])))
    msg["To"] = outbound.to.value
    msg["Subject"] = _parsed("Subject", _subject(outbound))
    refs = [r.strip().strip("<>") for r in outbound.references if r and r.strip()]
    if refs:
        msg["In-Reply-To"] = f"<{refs[-1]}>"
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    if outbound.reply_token:
        msg["Reply-To"] = f"reply+{outbound.reply_token}@{domain}"
    given = {name: value for name, value in outbound.headers
             if name in BULK_HEADERS and "\r" not in value and "\n" not in value}
    if given.get("Auto-Submitted") not in (None, "auto-generated", "auto-replied"):
        del given["Auto-Submitted"]
    if outbound.automated and "Auto-Submitted" not in given:
        msg["Auto-Submitted"] = "auto-replied"  # RFC 3834: receivers must not auto-answer
    for name, value in given.items():
        msg[name] = value if name == "List-Unsubscribe" else _parsed(name, value)
    text = _with_button_lines(outbound.text or "", outbound)
    msg.set_content(text)
    html = outbound.html if outbound.html and not outbound.buttons else _text_to_html(text)
    msg.add_alternative(html, subtype="html")
    for att in outbound.attachments:
        maintype, _, subtype = (att.content_type or "application/octet-stream").partition("/")
        msg.add_attachment(att.data, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=att.filename)
    return msg


@functools.lru_cache(maxsize=256)
def _parsed(name: str, value: str):
    """The header as `policy.default` parses it, for a value many mails share (the sender,
    a campaign's subject and bulk headers, this second's Date): parsed once, not per mail
    (`EmailMessage.__setitem__` keeps a header object of the same name as it is)."""
    return email.policy.default.header_factory(name, value)


# the headers a campaign email may carry (RFC 2369, RFC 8058 one-click unsubscribe; RFC 3834
# Auto-Submitted: a campaign is "auto-generated", not an "auto-replied" answer)
BULK_HEADERS = ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Precedence",
                "Auto-Submitted")

# What may appear inside <...@domain> and reply+...@domain without quoting (RFC 5322 atext
# minus the characters that confuse real-world parsers).
_ID_TEXT = re.compile(r"^[A-Za-z0-9._=+-]{1,200}$")


def _check_outbound(outbound: Outbound) -> None:
    """The app built these values; a wrong one is a bug to surface, not mail to send."""
    if outbound.to.kind != EMAIL or "@" not in outbound.to.value or any(
            c in outbound.to.value for c in " <>,\r\n"):
        raise ValueError(f"email needs a bare email address to send to, got {outbound.to!r}")
    if not _ID_TEXT.match(outbound.idempotency_key):
        raise ValueError(f"idempotency_key {outbound.idempotency_key!r} cannot be a Message-ID")
    if outbound.reply_token is not None and not _ID_TEXT.match(outbound.reply_token):
        raise ValueError(f"reply_token {outbound.reply_token!r} cannot be an address part")


def _with_button_lines(text: str, outbound: Outbound) -> str:
    """Email has no buttons: their titles as plain lines under the text (the customer answers
    in words, which the bot reads as it reads any message)."""
    if not outbound.buttons:
        return text
    lines = "\n".join(f"- {b.title}" for b in outbound.buttons)
    return f"{text}\n\n{lines}" if text else lines


def _subject(outbound: Outbound) -> str:
    subject = " ".join((outbound.subject or "").split())  # no header injection via CR/LF
    if outbound.references and not subject.lower().startswith("re:"):
        subject = f"Re: {subject}" if subject else "Re:"
    return subject


def _text_to_html(text: str) -> str:
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n")]
    body = "".join(f"<p>{html_lib.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return f"<!DOCTYPE html><html><body>{body}</body></html>"


def smtp_check(settings: Mapping[str, Any]) -> str:
    """Connect, log in when configured, NOOP; return the server's answer ("250 ...")."""
    cfg = normalize_settings(settings)
    try:
        with smtp_connect(cfg) as smtp:
            code, text = smtp.noop()
    except smtplib.SMTPResponseException as exc:  # e.g. 535 authentication failed
        raise _error(exc.smtp_code, exc.smtp_error) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"SMTP {cfg['smtp_host']}:{cfg['smtp_port']}: "
                             f"{type(exc).__name__}: {exc}") from exc
    return f"{code} {text.decode('utf-8', 'replace')}"


def send_message(settings: Mapping[str, Any], msg: EmailMessage) -> str:
    """Submit over SMTP; return the server's reply. Maps failures onto the contract:
    4xx and network trouble are transient, 5xx permanent (with the server's code and text).

    SMTP sessions per server and login per process, kept open between messages (a
    campaign's mails do not each pay for connect, EHLO, STARTTLS and AUTH): up to
    `_Sessions.CONNECTIONS` side by side, each carrying one mail at a time. A session the
    server closed meanwhile is opened again once."""
    cfg = normalize_settings(settings)
    sender = cfg["from_address"]
    recipients = [a.strip() for a in str(msg["To"]).split(",") if a.strip()]
    try:
        with _SESSIONS.session(cfg) as session:
            try:
                session.send(msg, sender, recipients)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                if not session.reused:   # a kept-open session the server has since closed
                    raise
                session.reopen()
                session.send(msg, sender, recipients)
            return "250 accepted"
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        raise _error(code, text) from exc
    except smtplib.SMTPResponseException as exc:  # sender refused, data error, auth...
        raise _error(exc.smtp_code, exc.smtp_error) from exc
    except (smtplib.SMTPException, OSError, ssl.SSLError, socket.timeout) as exc:
        raise TransientError(f"SMTP {cfg['smtp_host']}:{cfg['smtp_port']}: "
                             f"{type(exc).__name__}: {exc}") from exc


class _Session:
    """One kept-open SMTP session, used by one send at a time (`busy`, under _Sessions)."""

    IDLE_S = 60.0   # a session unused this long is closed and opened anew

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.busy = False
        self.smtp: smtplib.SMTP | None = None
        self.used_at = 0.0
        self.reused = False

    def open(self) -> None:
        if self.smtp is not None and time.monotonic() - self.used_at < self.IDLE_S:
            self.reused = True
            return
        self.close()
        self.smtp = smtp_connect(self.cfg)
        self.reused = False

    def reopen(self) -> None:
        self.close()
        self.smtp = smtp_connect(self.cfg)
        self.reused = False

    def send(self, msg: EmailMessage, sender: str, recipients: list[str]) -> None:
        assert self.smtp is not None
        try:
            self.smtp.send_message(msg, from_addr=sender, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused:
            self._reset()
            raise
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code in (421,):   # the server is closing the session
                self.close()
            else:
                self._reset()
            raise
        except BaseException:
            self.close()
            raise
        self.used_at = time.monotonic()

    def _reset(self) -> None:
        try:
            if self.smtp is not None:
                self.smtp.rset()
                self.used_at = time.monotonic()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


class _Sessions:
    """Kept-open sessions per server and login: up to `CONNECTIONS` side by side (the
    outbox sends a campaign's mails on several threads; one session would make them take
    turns), each used by one send at a time. A free session is reused before another is
    opened, so mails sent one after another share one session."""

    CONNECTIONS = 4

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._pid = os.getpid()
        self._sessions: dict[tuple, list[_Session]] = {}

    @contextmanager
    def session(self, cfg: Mapping[str, Any]):
        key = (cfg["smtp_host"], cfg["smtp_port"], cfg["smtp_security"],
               cfg.get("smtp_user") or "", cfg.get("smtp_password") or "")
        with self._lock:
            if self._pid != os.getpid():   # a forked child opens its own
                self._pid, self._sessions = os.getpid(), {}
            pool = self._sessions.setdefault(key, [])
            while True:
                session = next((s for s in pool if not s.busy), None)
                if session is None and len(pool) < self.CONNECTIONS:
                    session = _Session(cfg)
                    pool.append(session)
                if session is not None:
                    break
                self._lock.wait()
            session.busy = True
        try:
            session.open()
            yield session
        finally:
            with self._lock:
                session.busy = False
                self._lock.notify()


_SESSIONS = _Sessions()


def _error(code: int, text: bytes | str) -> Exception:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    message = f"SMTP {code} {text}"
    if 400 <= code < 500:
        return TransientError(message)
    if 500 <= code < 600:
        return PermanentError(message)
    return TransientError(message)  # unexpected code (e.g. -1 on a dropped connection)


def smtp_connect(cfg: Mapping[str, Any]) -> smtplib.SMTP:
    """An SMTP session per smtp_security, logged in when smtp_user is set."""
    host, port, security = cfg["smtp_host"], cfg["smtp_port"], cfg["smtp_security"]
    if security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_S,
                                              context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=TIMEOUT_S)
    try:
        smtp.ehlo()
        if security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if cfg.get("smtp_user"):
            smtp.login(cfg["smtp_user"], cfg.get("smtp_password") or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def send_outbound(settings: Mapping[str, Any], outbound: Outbound) -> SendResult:
    cfg = normalize_settings(settings)
    msg = build_message(cfg, outbound)
    send_message(cfg, msg)
    if cfg.get("sent_folder"):
        _append_sent(cfg, msg)
    return SendResult(external_id=str(msg["Message-ID"]).strip().strip("<>"))


def _append_sent(cfg: Mapping[str, Any], msg: EmailMessage) -> None:
    """Best effort: the mail is already out, a failed copy must not make the job retry."""
    from .imap import Mailbox  # local: sending must not need imapclient unless configured

    try:
        with Mailbox(cfg) as box:
            raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))  # IMAP wants CRLF
            box.append(cfg["sent_folder"], raw, (b"\\Seen",))
    except Exception as exc:  # noqa: BLE001
        log.warning("email: could not append sent message %s to %r: %s",
                    msg["Message-ID"], cfg["sent_folder"], exc)
