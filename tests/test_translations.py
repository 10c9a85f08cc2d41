"""The Russian catalog covers every string `pybabel extract` finds (babel.cfg), and the
committed .mo is the compiled .po (README: extract, update, compile)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

CATALOG = ROOT / "app" / "translations" / "ru" / "LC_MESSAGES"


def _read_po(path):
    from babel.messages.pofile import read_po

    with open(path, "rb") as f:
        return read_po(f)


def test_every_extracted_string_has_a_russian_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
                    "babel.cfg", "-o", str(pot), "."], cwd=ROOT, check=True,
                   capture_output=True)
    template, russian = _read_po(pot), _read_po(CATALOG / "messages.po")
    missing = []
    for message in template:
        if not message.id:
            continue
        found = russian.get(message.id)
        strings = found.string if found is not None else ""
        if isinstance(strings, tuple):
            strings = all(strings) and strings
        if not strings or found.fuzzy:
            missing.append(message.id)
    assert missing == []


def test_the_committed_mo_is_the_compiled_po():
    from babel.messages.mofile import read_mo

    with open(CATALOG / "messages.mo", "rb") as f:
        compiled = read_mo(f)
    source = _read_po(CATALOG / "messages.po")
    want = {m.id: m.string for m in source if m.id and m.string and not m.fuzzy}
    have = {m.id: m.string for m in compiled if m.id}
    assert have == want


@pytest.mark.parametrize("backend", ["sqlite"])
def test_board_and_inbox_strings_in_russian(backend, ctx):
    from flask_babel import force_locale

    from app.web import board, inbox

    with force_locale("ru"):
        board_strings, inbox_strings = board.ui_strings(), inbox.ui_strings()
    assert board_strings["board"] == "Воронка продаж" and board_strings["total"] == "Итого"
    assert board_strings["no_owner"] == "Без ответственного" and board_strings["closes"] == "закрытие"
    assert "Enter — открыть" in inbox_strings["shortcuts"]
    assert inbox_strings["attach_files"] == "Прикрепить файлы"
