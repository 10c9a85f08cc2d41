"""The Russian and Polish catalogs cover every string `pybabel extract` finds (babel.cfg),
and each committed .mo is the compiled .po (README: extract, update, compile)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

CATALOG = ROOT / "app" / "translations" / "ru" / "LC_MESSAGES"
LANGUAGES = ["ru", "pl"]


def _read_po(path):
    from babel.messages.pofile import read_po

    with open(path, "rb") as f:
        return read_po(f)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_extracted_string_has_a_translation(tmp_path, language):
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
                    "babel.cfg", "-o", str(pot), "."], cwd=ROOT, check=True,
                   capture_output=True)
    catalog = ROOT / "app" / "translations" / language / "LC_MESSAGES" / "messages.po"
    template, translated = _read_po(pot), _read_po(catalog)
    missing = []
    for message in template:
        if not message.id:
            continue
        found = translated.get(message.id, message.context)
        strings = found.string if found is not None else ""
        if isinstance(strings, tuple):
            strings = all(strings) and strings
        if not strings or found.fuzzy:
            missing.append(message.id)
    assert missing == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_is_the_compiled_po(language):
    from babel.messages.mofile import read_mo

    folder = ROOT / "app" / "translations" / language / "LC_MESSAGES"
    with open(folder / "messages.mo", "rb") as f:
        compiled = read_mo(f)
    source = _read_po(folder / "messages.po")
    want = {(m.context, m.id): m.string for m in source if m.id and m.string and not m.fuzzy}
    have = {(m.context, m.id): m.string for m in compiled if m.id}
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


@pytest.mark.parametrize("backend", ["sqlite"])
def test_polish_strings_statuses_stages_and_teams(backend, ctx):
    from flask_babel import force_locale

    from app.web import board, inbox

    assert "pl" in inbox.LANGUAGES
    with force_locale("pl"):
        strings, board_strings = inbox.ui_strings(), board.ui_strings()
    assert strings["all_open"] == "Wszystkie otwarte" and strings["more_results"] == "Więcej wyników"
    assert board_strings["board"] == "Lejek sprzedaży"
    # the status select says what a conversation is, not the view's name
    assert strings["status_resolved"] == "Rozwiązana" and strings["resolved"] == "Rozwiązane"
    assert strings["stage_names"]["won"] == "Wygrana"
    assert strings["team_names"]["Support"] == "Wsparcie"
    assert strings["order_statuses"]["shipped"] == "wysłane"
    with force_locale("ru"):
        strings = inbox.ui_strings()
    assert strings["status_snoozed"] == "Отложен" and strings["snoozed"] == "Отложенные"
    assert strings["status_resolved"] == "Решён" and strings["order_statuses"]["paid"] == "оплачен"
