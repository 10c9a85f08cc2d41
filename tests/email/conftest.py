"""Fixtures for the email connector tests: sample mail and real IMAP/SMTP servers."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for path in (ROOT, HERE):  # tests.servers from the repo root, email_helpers from here
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.servers.dovecot import Dovecot, DovecotMissing  # noqa: E402
from tests.servers.smtp import RecordingSMTP  # noqa: E402

from email_helpers import BASE_SETTINGS  # noqa: E402


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    try:
        server = Dovecot()
    except DovecotMissing as exc:
        # Never skip: a missing server would turn the IMAP tests silently green.
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[RecordingSMTP]:
    with RecordingSMTP() as server:
        yield server


@pytest.fixture
def settings(dovecot: Dovecot, smtp_server: RecordingSMTP) -> dict:
    """Complete connector settings pointing at both real servers."""
    return {**BASE_SETTINGS, **dovecot.settings(), **smtp_server.settings()}
