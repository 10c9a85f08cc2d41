"""Every real-world sample parses: no crash, headers decoded, no mojibake."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.connectors.email.email_helpers import BASE_SETTINGS, FIXTURES, SHARED_CORPUS

from connectors.base import Inbound
from connectors.email import parse_message
from tests.corpus import require_shared_corpus

LOCAL = sorted(p for p in FIXTURES.rglob("*") if p.suffix in (".eml", ".txt")
               and p.parent.name != "reply_bodies")
# Samples whose *source* carries broken bytes: an invalid charset name / undecodable octets
# (zbateson invalid-charset), a lone undeclared 8-bit byte in the subject (flanker), a
# truncated character in a filename (yahoo). A replacement char is the honest result there.
BROKEN_AT_SOURCE = {"zbateson__headers_invalid-charset.txt", "flanker__mailformed-headers.eml"}
# Bodies with an invalid octet inside declared UTF-8 (one broken character in a Russian
# newsletter): U+FFFD there is correct, the rest of the text must still be right.
BROKEN_BODY_AT_SOURCE = BROKEN_AT_SOURCE | {"mail-parser__mail_test_6.eml"}
# A forward whose enclosed message has headers only.
EMPTY_BODY = {"cpython__msg_06.eml"}
# Latin-1 read as cp1251/koi8 (or the reverse) shows up as these pairs.
MOJIBAKE = re.compile(r"Ã.|Ð.|Ñ.|â€|Ä…|Å‚|Ð\u00a0|Ã©")


def corpus() -> list[Path]:
    """The shared corpus (63 real messages) plus the synthetic local samples. Without the
    shared corpus (never on CI: test_corpus_is_not_empty fails there) the local copies."""
    if SHARED_CORPUS is None:
        return LOCAL
    shared = sorted(p for p in SHARED_CORPUS.iterdir() if p.suffix in (".eml", ".txt")
                    and p.name != "SOURCES.md")
    return shared + [p for p in LOCAL if p.parent.name == "synthetic"]


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.name)
def test_sample_parses_cleanly(path: Path):
    raw = path.read_bytes()
    msg = parse_message(raw, BASE_SETTINGS)
    assert isinstance(msg, Inbound)
    assert msg.external_id and "<" not in msg.external_id and ">" not in msg.external_id
    assert msg.sender.value == msg.sender.value.lower() and msg.sender.value.strip()
    for value in (msg.subject or "", msg.sender_name or ""):
        assert "=?" not in value, f"undecoded encoded-word in {value!r}"
        assert not MOJIBAKE.search(value), f"mojibake in {value!r}"
        if path.name not in BROKEN_AT_SOURCE:
            assert "\ufffd" not in value, f"replacement char in {value!r}"
    assert "\ufffd" not in msg.text or path.name in BROKEN_BODY_AT_SOURCE
    if path.name not in EMPTY_BODY:
        assert msg.meta["full_text"].strip() or msg.html or msg.attachments or not _has_body(raw)
    if msg.html:
        assert "<script" not in msg.html.lower()
    assert msg.sent_at.tzinfo is not None


def _has_body(raw: bytes) -> bool:
    head, sep, rest = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    return bool(sep and rest.strip())


def test_corpus_is_not_empty():
    """Fails on CI (skips elsewhere) when the shared corpus is missing: the local copies are
    only 8 of its 63 messages."""
    require_shared_corpus("email")
    assert len(corpus()) >= 60


def test_every_sample_subject_matches_sources_table():
    """SOURCES.md lists the decoded Subject of each sample; ours must agree."""
    table = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    checked = 0
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 9 or not cells[1].endswith((".eml", ".txt")) or "/" in cells[1]:
            continue
        name, expected = cells[1], cells[7]
        if expected == "(none)" or "\ufffd" in expected or name in BROKEN_AT_SOURCE:
            continue
        subject = parse_message((FIXTURES / name).read_bytes(), BASE_SETTINGS).subject or ""
        # The table truncates long subjects and trims whitespace.
        assert " ".join(subject.split()).startswith(" ".join(expected.split())), name
        checked += 1
    assert checked >= 55


def test_mangled_samples_never_crash():
    """Truncated and bit-flipped mail (cut downloads, broken relays) still parses."""
    import random

    rng = random.Random(20261123)
    for path in corpus():
        raw = path.read_bytes()
        variants = [raw[: len(raw) // 3], raw[: len(raw) // 2] + b"\r\n--", raw.replace(b"\r\n", b"\n\r")]
        mutated = bytearray(raw)
        for _ in range(max(1, len(raw) // 200)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        variants.append(bytes(mutated))
        for variant in variants:
            msg = parse_message(variant, BASE_SETTINGS)
            assert isinstance(msg, Inbound) and msg.sender.value, path.name


@pytest.mark.parametrize("raw", [
    b"",
    b"\r\n\r\n",
    b"garbage without headers",
    b"From: \r\nSubject: =?utf-8?B?!!!?=\r\nContent-Type: multipart/mixed\r\n\r\n--x--",
    b"Content-Type: text/plain; charset=no-such-charset\r\n\r\n\xff\xfe\xfd",
    b"Content-Type: multipart/alternative; boundary=\"a\"\r\n\r\n--a\r\nContent-Type: text/html\r\n\r\n<b>unclosed",
    b"From: a@b.c\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!",
    b"From: a@b.c\r\nDate: not a date\r\nMessage-ID: <>\r\n\r\nx",
])
def test_degenerate_input(raw):
    msg = parse_message(raw, BASE_SETTINGS)
    assert msg.external_id and "<" not in msg.external_id and msg.sender.value
