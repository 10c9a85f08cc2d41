"""Turning mail bytes into text: declared charsets, aliases, and a fallback detector.

Real mail lies about its charset or does not declare one (raw 8-bit headers from old
clients, `charset=gb2312` bodies that are really GBK, `unknown-8bit`). Nothing here raises on
bad input: every function degrades to the best text it can produce.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re

# Declared names that Python does not know, or knows as a narrower charset than the senders
# actually use (Outlook labels GBK/GB18030 text "gb2312"; Korean mail says ks_c_5601-1987).
_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-mac-cyrillic": "mac_cyrillic",
    "iso-2022-jp-ms": "iso2022_jp_ext",
    "us-ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "latin1": "latin-1",
    "iso-8859-1": "cp1252",  # mail labelled latin-1 is routinely cp1252 (smart quotes, €)
}
_UNKNOWN = {"unknown-8bit", "x-unknown", "unknown", "8bit", "default", "x-user-defined"}

# Letters that are frequent in running Russian text; used to tell cp1251 from koi8-r.
_RU_FREQUENT = set("оеаинтсрвлкмдпуяыьгзбчйхжшюцщэфъё")
# cp1250 bytes for Polish letters that are rare symbols in cp1252 (ą ś ź ł ż Ą Ś Ź Ł Ż).
_PL_CP1250_BYTES = frozenset(b"\xb9\x9c\x9f\xb3\xbf\xa5\x8c\x8f\xa3\xaf")


def lookup_charset(name: str | None) -> str | None:
    """Python codec name for a declared charset, or None when unknown / meaningless."""
    if not name:
        return None
    name = name.strip().strip('"\'').lower()
    if "*" in name:  # RFC 2231 language suffix: utf-8*en
        name = name.split("*", 1)[0]
    if not name or name in _UNKNOWN:
        return None
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def detect_charset(data: bytes) -> str:
    """Guess the charset of undeclared bytes.

    Why a small detector instead of a library: the inboxes this serves get English, Russian
    and Polish mail, and the cases that actually occur undeclared are few and recognisable.
    UTF-8 validates itself, so it is tried first. Of the legacy 8-bit charsets only the
    Cyrillic ones change meaning completely when guessed wrong: Cyrillic words are *runs*
    of bytes >= 0xC0 (Latin text has isolated accented letters between ASCII ones), and
    cp1251 and koi8-r put lowercase and uppercase in swapped halves of that range, so the
    decoding with more frequent lowercase Russian letters wins. Otherwise cp1250 when Polish
    letters that only cp1250 has show up, else cp1252 (a superset of latin-1 for text).
    """
    if not any(b >= 0x80 for b in data):
        return "ascii"
    if _mostly_utf8(data):
        return "utf-8"
    if _looks_cyrillic(data):
        return max(("cp1251", "koi8_r"), key=lambda cs: _russian_score(data.decode(cs, "replace")))
    if any(b in _PL_CP1250_BYTES for b in data):
        return "cp1250"
    return "cp1252"


def _mostly_utf8(data: bytes) -> bool:
    """UTF-8, allowing a few broken sequences (a header cut in the middle of a character):
    legacy 8-bit text almost never forms valid multi-byte sequences by accident."""
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ord(ch) > 127 and ch != "\ufffd")
    return bad == 0 or (good >= 2 and bad * 4 <= good)


def _looks_cyrillic(data: bytes) -> bool:
    letters = [i for i, b in enumerate(data) if b >= 0xC0]
    if len(letters) < 2:
        return False
    in_runs = sum(1 for i in letters if (i > 0 and data[i - 1] >= 0xC0)
                  or (i + 1 < len(data) and data[i + 1] >= 0xC0))
    return in_runs / len(letters) >= 0.6


def _russian_score(text: str) -> int:
    return sum(1 for ch in text if ch in _RU_FREQUENT) - sum(1 for ch in text if "А" <= ch <= "Я")


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode with the declared charset when it works, else detect; never raises."""
    codec = lookup_charset(declared)
    if codec:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            pass
    guess = detect_charset(data)
    # A label that is plainly wrong (8-bit bytes in "us-ascii", latin-1 in "utf-8", utf-8
    # in "windows-1251") loses to the detector; a label that is right but for a few bad
    # bytes keeps its meaning and only those bytes become U+FFFD.
    if codec and codec not in ("ascii", "utf-8") and guess != "utf-8":
        return data.decode(codec, "replace")
    if codec == "utf-8" and _mostly_utf8(data):
        return data.decode("utf-8", "replace")
    return data.decode(guess, "replace")


def unescape_surrogates(value: str) -> str:
    """Header strings from the email package carry undeclared 8-bit bytes as surrogates."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("utf-8", "surrogateescape"))


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"^[ \t\r\n]*$")


def decode_header_value(value: str | None) -> str:
    """Decode RFC 2047 encoded-words (and raw 8-bit bytes) of one header value.

    Written by hand rather than with email.header.decode_header because that one maps
    unknown charsets and mixed 8-bit text badly; here adjacent words in the same charset are
    joined as bytes first (clients split multi-byte characters across words), and each run
    falls back to the detector when its charset is unknown or wrong.
    """
    if not value:
        return ""
    value = unescape_surrogates(str(value))
    out: list[str] = []
    pending: list[tuple[str, bytes]] = []  # (charset, bytes) of adjacent encoded words
    pos = 0
    for m in _ENCODED_WORD.finditer(value):
        gap = value[pos:m.start()]
        if gap and not (pending and _BETWEEN_WORDS.match(gap)):
            _flush(pending, out)
            out.append(gap)
        charset, enc, payload = m.group(1), m.group(2).upper(), m.group(3)
        data = _decode_word_payload(enc, payload)
        if pending and pending[-1][0].lower() == charset.lower():
            pending[-1] = (pending[-1][0], pending[-1][1] + data)
        else:
            pending.append((charset, data))
        pos = m.end()
    _flush(pending, out)
    out.append(value[pos:])
    text = "".join(out)
    return re.sub(r"\r?\n[ \t]*", " ", text).strip()


def _flush(pending: list[tuple[str, bytes]], out: list[str]) -> None:
    for charset, data in pending:
        out.append(decode_bytes(data, charset))
    pending.clear()


def _decode_word_payload(enc: str, payload: str) -> bytes:
    if enc == "B":
        try:
            return base64.b64decode(payload + "=" * (-len(payload) % 4))
        except (binascii.Error, ValueError):
            return payload.encode("ascii", "replace")
    return quopri.decodestring(payload.replace("_", " ").encode("ascii", "replace"), header=False)
