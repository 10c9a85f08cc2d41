"""Mailbox against a real Dovecot."""
from __future__ import annotations

import threading
import time

import pytest
from tests.connectors.email.email_helpers import sample

from connectors.base import PermanentError, TransientError
from connectors.email import FetchedMail, Mailbox, parse_message


def mail(n: int, subject: str = "Question") -> bytes:
    return (f"From: Customer {n} <customer{n}@example.com>\r\n"
            f"To: support@shop.example.test\r\nSubject: {subject} {n}\r\n"
            f"Message-ID: <m{n}@example.com>\r\nDate: Mon, 12 May 2025 10:00:00 +0000\r\n"
            f"\r\nHello number {n}\r\n").encode()


def fetch_all(box: Mailbox, last_uid: int, batch_size: int = 100) -> list[list[FetchedMail]]:
    return list(box.fetch_since("INBOX", last_uid, batch_size=batch_size))


def test_sync_in_batches_without_marking_read(dovecot):
    for n in (1, 2, 3):
        dovecot.deliver(mail(n))
    with Mailbox(dovecot.settings()) as box:
        state = box.folder_state("INBOX")
        assert state.uidnext == 4 and state.messages == 3 and state.uidvalidity > 0
        assert state.highestmodseq is not None  # Dovecot has CONDSTORE
        batches = fetch_all(box, 0, batch_size=2)
    assert [[m.uid for m in b] for b in batches] == [[1, 2], [3]]
    parsed = [parse_message(m.raw, {}) for b in batches for m in b]
    assert [p.external_id for p in parsed] == ["m1@example.com", "m2@example.com", "m3@example.com"]
    assert all(b"\\Seen" not in m.flags for b in batches for m in b)
    # The server agrees: nothing was marked read by the sync (BODY.PEEK, EXAMINE).
    assert all("\\Seen" not in flags for flags in dovecot.flags().values())


def test_fetch_since_returns_only_new_mail(dovecot):
    dovecot.deliver(mail(1))
    dovecot.deliver(mail(2))
    with Mailbox(dovecot.settings()) as box:
        assert fetch_all(box, 2) == []  # "UID 3:*" matches UID 2 on the server: filtered
        dovecot.deliver(mail(3))
        dovecot.deliver(mail(4))
        new = [m.uid for b in fetch_all(box, 2) for m in b]
    assert new == [3, 4]


def test_continue_after_server_restart(dovecot):
    dovecot.deliver(mail(1))
    with Mailbox(dovecot.settings()) as box:
        last = max(m.uid for b in fetch_all(box, 0) for m in b)
        before = box.folder_state("INBOX")
    dovecot.restart()
    dovecot.deliver(mail(2))
    with Mailbox(dovecot.settings()) as box:
        after = box.folder_state("INBOX")
        new = [parse_message(m.raw, {}).external_id for b in fetch_all(box, last) for m in b]
    assert after.uidvalidity == before.uidvalidity
    assert new == ["m2@example.com"]


def test_uidvalidity_reset_is_observed_and_message_ids_dedupe(dovecot):
    dovecot.deliver(mail(1))
    dovecot.deliver(mail(2))
    with Mailbox(dovecot.settings()) as box:
        before = box.folder_state("INBOX")
    new_validity = dovecot.reset_uidvalidity()
    with Mailbox(dovecot.settings()) as box:
        after = box.folder_state("INBOX")
        ids = box.message_ids("INBOX")
    assert after.uidvalidity == new_validity != before.uidvalidity
    assert ids == {"m1@example.com": 1, "m2@example.com": 2}


def test_append_to_sent_with_seen_flag(dovecot):
    raw = sample("synthetic/koi8r_reply.eml")
    with Mailbox(dovecot.settings()) as box:
        box.append("Sent", raw, (b"\\Seen",))
        (batch,) = box.fetch_since("Sent", 0)
    assert batch[0].raw == raw
    assert b"\\Seen" in batch[0].flags


def test_idle_wakes_up_on_delivery(dovecot):
    with Mailbox(dovecot.settings()) as box:
        assert box.has_capability("IDLE")
        timer = threading.Timer(0.5, dovecot.deliver, args=(mail(1),))
        timer.start()
        started = time.monotonic()
        try:
            arrived = box.idle_wait("INBOX", timeout_s=10)
        finally:
            timer.join()
        assert arrived is True
        assert time.monotonic() - started < 8
        assert [m.uid for b in fetch_all(box, 0) for m in b] == [1]


def test_idle_times_out_quietly(dovecot):
    with Mailbox(dovecot.settings()) as box:
        started = time.monotonic()
        assert box.idle_wait("INBOX", timeout_s=1) is False
        assert time.monotonic() - started < 5


def test_wrong_password_is_permanent(dovecot):
    with pytest.raises(PermanentError, match="login failed"):
        with Mailbox(dovecot.settings(imap_password="wrong")):
            pass


def test_unreachable_server_is_transient(dovecot):
    port = dovecot.port
    dovecot.stop()
    with pytest.raises(TransientError):
        with Mailbox({**dovecot.settings(), "imap_port": port}):
            pass


def test_batch_size_must_be_positive(dovecot):
    with Mailbox(dovecot.settings()) as box:
        with pytest.raises(ValueError):
            list(box.fetch_since("INBOX", 0, batch_size=0))


def test_connection_dropped_by_restart_is_transient(dovecot):
    dovecot.deliver(mail(1))
    with Mailbox(dovecot.settings()) as box:
        box.folder_state("INBOX")
        dovecot.restart()
        with pytest.raises(TransientError):
            list(box.fetch_since("INBOX", 0))


def test_missing_folder_is_a_channel_error(dovecot):
    from connectors.base import ChannelError
    with Mailbox(dovecot.settings()) as box:
        with pytest.raises(ChannelError, match="fetch_since"):
            list(box.fetch_since("No/Such/Folder", 0))


def test_missing_dovecot_is_a_loud_error(monkeypatch):
    """Without the binary the fixture fails (never skips); the message says how to fix it."""
    from pathlib import Path

    from tests.servers import dovecot as module

    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    monkeypatch.setattr(Path, "exists", lambda self: False)
    with pytest.raises(module.DovecotMissing, match="install-test-packages.sh"):
        module.Dovecot()


def test_idle_reports_mail_that_arrived_before_idle(dovecot):
    with Mailbox(dovecot.settings()) as box:
        uidnext = box.folder_state("INBOX").uidnext
        dovecot.deliver(mail(1))  # lands between the caller's fetch and its IDLE
        started = time.monotonic()
        assert box.idle_wait("INBOX", timeout_s=10, since_uidnext=uidnext) is True
        assert time.monotonic() - started < 2
        assert box.idle_wait("INBOX", timeout_s=0.5, since_uidnext=uidnext + 1) is False
