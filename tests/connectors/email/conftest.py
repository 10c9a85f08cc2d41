"""Fixtures for the email connector tests: sample mail and real IMAP/SMTP servers."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # tests.servers and email_helpers from the repo root
    sys.path.insert(0, str(ROOT))

from tests.servers.dovecot import Dovecot, DovecotMissing  # noqa: E402
from tests.servers.smtp import RecordingSMTP  # noqa: E402

from tests.connectors.email.email_helpers import BASE_SETTINGS  # noqa: E402


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
