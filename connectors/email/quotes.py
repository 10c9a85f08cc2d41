"""Folding quoted history and signatures away, normalizing subjects, html -> text.

An agent wants to read what the customer wrote *this time*; the history is already in the
thread. `split_quoted` never loses text: whatever it folds is returned as the second value
(the app keeps the complete original in meta["full_text"] as well).
"""
from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser

# --- quote headers ---------------------------------------------------------------------

# Attribution lines that introduce a quote: "On <date>, X wrote:" and its translations.
_WROTE = re.compile(
    r"^\s*(On|Am|Le|El|Il|Op|Em|W dniu|Dnia|\d|[A-ZА-Я][a-zа-яё]{1,3}[,.]).*"
    r"(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|napisał\(a\)|napisał|"
    r"napisała|пишет|написал\(а\)|написал|написала)\s*:\s*$",
    re.IGNORECASE | re.DOTALL,
)
# Localized Gmail / mail.ru / Yandex attributions without a verb:
# "ср, 30 апр. 2025 г. в 15:19, John Doe <doe@example.com>:" or
# "26.06.2014, 14:41, "Alexander L" <abc@example.com>:"
_DATED_ADDRESS = re.compile(r"^.*\d.*<\s*[^<>\s]+@[^<>\s]+\s*>\s*:\s*$", re.DOTALL)
# Separators after which everything is the original message.
_SEPARATOR = re.compile(
    r"^\s*[-_=*]{2,}\s*(original message|ursprüngliche nachricht|исходное сообщение|"
    r"пересылаемое сообщение|oryginalna wiadomość|wiadomość oryginalna|"
    r"przekazana wiadomość|message d'origine|mensaje original|messaggio originale|"
    r"forwarded message|begin forwarded message)\s*[-_=*]{0,}\s*$|"
    r"^\s*(begin forwarded message|начало переадресованного сообщения)\s*:\s*$",
    re.IGNORECASE,
)
_UNDERSCORE_RULE = re.compile(r"^\s*_{10,}\s*$")
# Outlook-style header blocks: "From:" followed within a few lines by "Sent:"/"Date:"...
_FROM = re.compile(r"^\s*\*?(From|Von|De|Od|От|Від|Da|Van)\s*:\*?\s*\S", re.IGNORECASE)
_FROM_FOLLOWER = re.compile(
    r"^\s*\*?(Sent|Date|To|Subject|Gesendet|Datum|An|Betreff|Envoyé|Wysłano|Data|Do|Temat|"
    r"Отправлено|Дата|Кому|Тема|Enviado|Para|Asunto|Inviato|Oggetto|Verzonden|Onderwerp)"
    r"\s*:\*?",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^(-- ?|--)$")
_QUOTED_LINE = re.compile(r"^\s*>")


def split_quoted(text: str) -> tuple[str, str]:
    """Split a plain-text body into (visible, quoted).

    quoted holds quoted history ("> " lines and their attribution), everything after an
    "original message" header, and the "-- " signature. Text between quote blocks (inline
    answers) stays visible. When folding would leave nothing visible (a bare forward), the
    whole text is visible: hiding all of a message is worse than showing a quote.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    hidden = [False] * len(lines)
    i = 0
    while i < len(lines):
        span = _header_span(lines, i)
        if span:
            if _is_attribution(lines, i, span) and _followed_by_quote(lines, i + span):
                for j in range(i, i + span):
                    hidden[j] = True
                i += span
                continue
            for j in range(i, len(lines)):
                hidden[j] = True
            break
        if _QUOTED_LINE.match(lines[i]):
            hidden[i] = True
        elif _SIGNATURE.match(lines[i]):
            j = i
            while j < len(lines) and not _QUOTED_LINE.match(lines[j]) and not _header_span(lines, j):
                hidden[j] = True
                j += 1
            i = j
            continue
        i += 1
    visible = _tidy("\n".join(line for line, h in zip(lines, hidden) if not h))
    quoted = _tidy("\n".join(line for line, h in zip(lines, hidden) if h))
    if not visible:
        return _tidy(text), ""
    return visible, quoted


def _is_attribution(lines: list[str], i: int, span: int) -> bool:
    """An "On ... wrote:"-style header (followed by "> " lines), not an Outlook block."""
    joined = " ".join(s.strip() for s in lines[i:i + span])
    return bool(_WROTE.match(joined) or _DATED_ADDRESS.match(joined))


def _header_span(lines: list[str], i: int) -> int:
    """Number of lines (1..3) of a quote header starting at line i, or 0."""
    line = lines[i]
    if not line.strip():
        return 0
    if _SEPARATOR.match(line):
        return 1
    if _UNDERSCORE_RULE.match(line) and any(_FROM.match(s) for s in lines[i + 1:i + 3]):
        return 1
    if _FROM.match(line) and _outlook_block(lines, i):
        return 1
    for span in (1, 2, 3):
        chunk = lines[i:i + span]
        if len(chunk) < span or any(not s.strip() for s in chunk):
            break
        joined = " ".join(s.strip() for s in chunk)
        if len(joined) > 300:
            break
        if _WROTE.match(joined) or _DATED_ADDRESS.match(joined):
            # "Hi,\nOn Tue ... wrote:" is a greeting followed by a one-line header: the
            # header starts at the later line when the shorter span already matches.
            if span > 1 and _header_span(lines, i + 1) == span - 1:
                return 0
            return span
    return 0


def _outlook_block(lines: list[str], i: int) -> bool:
    followers = [s for s in lines[i + 1:i + 6] if _FROM_FOLLOWER.match(s)]
    return len(followers) >= 2 or (len(followers) == 1 and i + 1 < len(lines)
                                   and _FROM_FOLLOWER.match(lines[i + 1]) is not None)


def _followed_by_quote(lines: list[str], start: int) -> bool:
    for line in lines[start:]:
        if line.strip():
            return bool(_QUOTED_LINE.match(line))
    return True


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().split("\n")]
    # A rule line left dangling above a folded header ("-----", "_____") is noise.
    while lines and re.fullmatch(r"\s*[-_=*]{3,}\s*", lines[-1] or "x"):
        lines.pop()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- subjects ------------------------------------------------------------------------------

_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?"  # a list tag before the prefix: [support] Re: ...
    r"(re|fwd?|aw|wg|sv|vs|antw|odp|pd|tr|rif|r|i|отв|ответ|пересл|перес|fw)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)


def normalize_subject(subject: str | None) -> str:
    """Strip reply/forward prefixes repeatedly: "RE: Fwd: Re[2]: Отв: Hi" -> "Hi"."""
    s = (subject or "").strip()
    while (m := _SUBJECT_PREFIX.match(s)) is not None:
        s = s[m.end():]
    return re.sub(r"\s+", " ", s).strip()


# --- html -> text ---------------------------------------------------------------------------

_BLOCK = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul",
          "ol", "pre", "hr", "section", "article", "header", "footer", "dl", "dt", "dd"}
_SKIP = {"style", "script", "head", "title", "xml", "template"}


class _TextExtractor(HTMLParser):
    """Visible text of an html body; blockquote content is prefixed with "> " so that
    split_quoted folds it like a plain-text quote."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.depth = 0
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "blockquote":
            self._newline()
            self.depth += 1
        elif tag in _BLOCK:
            self._newline()

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag in _BLOCK:
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "blockquote":
            self._newline()
            self.depth = max(0, self.depth - 1)
        elif tag in _BLOCK:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        data = re.sub(r"\s+", " ", data.replace("\xa0", " "))
        if not data.strip() and not self.lines[-1].strip():
            return
        if not self.lines[-1]:
            data = data.lstrip()
            self.lines[-1] = "> " * self.depth
        self.lines[-1] += data

    def _newline(self) -> None:
        if self.lines[-1].strip() or (len(self.lines) > 1 and self.lines[-2].strip()):
            self.lines.append("")


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # noqa: BLE001 - HTMLParser on hostile input; fall back to tag stripping
        return html_lib.unescape(re.sub(r"<[^>]*>", " ", markup)).strip()
    return _tidy("\n".join(line.rstrip() for line in parser.lines))
