"""Render Telegram message entities into sanitized HTML.

Telegram gives formatting as entities (offset, length) measured in UTF-16 code units, not in
Python characters: an emoji before a bold word shifts the offsets by two. We therefore slice
the UTF-16 encoding. Entities are either disjoint or fully nested (Bot API rule); a partially
overlapping one, which a buggy client could send, is dropped rather than corrupting the text.
"""
from __future__ import annotations

import html
from typing import Any, Iterable

import nh3

_SIMPLE_TAGS = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strikethrough": "s",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "expandable_blockquote": "blockquote",
}
_ALLOWED_TAGS = {"b", "i", "u", "s", "code", "pre", "blockquote", "a", "br"}
_URL_SCHEMES = {"http", "https", "mailto", "tg", "tel"}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _Utf16Text:
    """The message text addressable by UTF-16 code-unit offsets."""

    def __init__(self, text: str) -> None:
        self._raw = text.encode("utf-16-le")
        self.length = len(self._raw) // 2

    def slice(self, start: int, end: int) -> str:
        # errors="replace": an offset inside a surrogate pair (bad entity) must not crash.
        return self._raw[2 * start:2 * end].decode("utf-16-le", errors="replace")


def render_html(text: str, entities: Iterable[dict[str, Any]] | None) -> str | None:
    """HTML for `text` with its entities, or None when nothing is formatted."""
    spans = _clean_entities(entities or (), utf16_len(text))
    if not spans:
        return None
    source = _Utf16Text(text)
    rendered = _render(source, 0, source.length, spans)
    return sanitize(rendered.replace("\n", "<br>"))


def sanitize(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href"}},
        url_schemes=_URL_SCHEMES,
    )


def _clean_entities(entities: Iterable[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    spans = []
    seen: set[tuple[Any, int, int]] = set()
    for ent in entities:
        try:
            start, length = int(ent["offset"]), int(ent["length"])
        except (KeyError, TypeError, ValueError):
            continue  # formatting is decoration: a broken entity never loses the message
        end = min(start + length, limit)
        key = (ent.get("type"), start, end)
        if 0 <= start < end and key not in seen and _open_tag(ent, "") is not None:
            seen.add(key)          # the same entity twice would nest <a> inside <a>
            spans.append({**ent, "offset": start, "end": end})
    # Outer entities first so that nested ones become their children.
    spans.sort(key=lambda e: (e["offset"], -e["end"]))
    return spans


def _render(source: _Utf16Text, start: int, end: int, spans: list[dict[str, Any]]) -> str:
    out: list[str] = []
    pos = start
    i = 0
    while i < len(spans):
        ent = spans[i]
        if ent["offset"] < pos:          # partial overlap with a previous sibling: drop it
            i += 1
            continue
        children = []
        j = i + 1
        while j < len(spans) and spans[j]["offset"] < ent["end"]:
            if spans[j]["end"] <= ent["end"]:
                children.append(spans[j])
            j += 1
        inner_text = source.slice(ent["offset"], ent["end"])
        out.append(html.escape(source.slice(pos, ent["offset"])))
        out.append(_open_tag(ent, inner_text) or "")
        out.append(_render(source, ent["offset"], ent["end"], children))
        out.append(_close_tag(ent))
        pos = ent["end"]
        i = j
    out.append(html.escape(source.slice(pos, end)))
    return "".join(out)


def _open_tag(ent: dict[str, Any], inner_text: str) -> str | None:
    kind = ent.get("type")
    if kind in _SIMPLE_TAGS:
        return f"<{_SIMPLE_TAGS[kind]}>"
    if kind == "text_link" and ent.get("url"):
        return f'<a href="{html.escape(str(ent["url"]))}">'
    if kind == "url":
        href = inner_text if "://" in inner_text else f"http://{inner_text}"
        return f'<a href="{html.escape(href)}">'
    if kind == "email":
        return f'<a href="mailto:{html.escape(inner_text)}">'
    if kind == "mention":
        return f'<a href="https://t.me/{html.escape(inner_text.lstrip("@"))}">'
    return None


def _close_tag(ent: dict[str, Any]) -> str:
    kind = ent.get("type")
    if kind in _SIMPLE_TAGS:
        return f"</{_SIMPLE_TAGS[kind]}>"
    return "</a>"
