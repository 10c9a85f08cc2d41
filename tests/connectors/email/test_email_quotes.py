"""split_quoted / html_to_text / normalize_subject against the reply_bodies fixtures."""
from __future__ import annotations

import pytest
from tests.connectors.email.email_helpers import FIXTURES

from connectors.email import html_to_text, normalize_subject, split_quoted

BODIES = FIXTURES / "reply_bodies"
LOREM_END = "Fusce sed odio id arcu varius aliquet nec nec nibh."


def body(name: str) -> str:
    text = (BODIES / name).read_text(encoding="utf-8")
    return html_to_text(text) if name.endswith(".html") else text


@pytest.mark.parametrize("name, quote_start", [
    ("crisp-erp__email_14.txt", "W dniu 2017-01-09 11:59:39 użytkownik"),
    ("crisp-erp__email_16.txt", "Dnia 27 grudnia 2016 12:08"),
    ("crisp-erp__email_17.txt", "W dniu 2017-01-09"),
    ("crisp-erp__email_german_outlook.txt", "-----Ursprüngliche Nachricht-----"),
    ("crisp-erp__email_gmail_split_line_from.txt", "On Mon, Aug 26, 2019 at 4:37 PM"),
    ("crisp-erp__email_original_message.txt", "-----original message-----"),
    ("crisp-erp__email_outlook_split_line_from.txt", "From: Human Resources"),
    ("crisp-erp__email_russian.txt", "ср, 30 апр. 2025"),
])
def test_lorem_replies_keep_only_the_answer(name, quote_start):
    visible, quoted = split_quoted(body(name))
    assert visible.startswith("Fusce bibendum")
    assert visible.endswith(LOREM_END)
    assert quoted.startswith(quote_start)


def test_ios_outlook_keeps_client_footer_folds_header():
    visible, quoted = split_quoted(body("crisp-erp__email_ios_outlook.txt"))
    assert visible.endswith("Get Outlook for iOS<https://aka.ms/o0ukef>")
    assert quoted.startswith("________________________________\nFrom: The Hiring Engine")
    assert "Chauffeur" not in visible


@pytest.mark.parametrize("name, expected_visible", [
    ("crisp-erp__email_thread.txt", "This is new email reply in thread from bellow."),
    ("crisp-erp__email_tricky_17_forward_header.txt", "See the forwarded message below."),
    ("crisp-erp__email_tricky_9_nested_quotes.txt", "I agree with the points below."),
    ("github-erp__email_2_1.txt", "Outlook with a reply"),
    ("github-erp__email_BlackBerry.txt", "Here is another email\n\nSent from my BlackBerry"),
    ("github-erp__email_iPhone.txt", "Here is another email\n\nSent from my iPhone"),
    ("talon__iphone_reply_text.txt", "Hello\n\nSent from my iPhone"),
    ("talon__sparrow_reply_text.txt", "Hello"),
])
def test_exact_visible_text(name, expected_visible):
    assert split_quoted(body(name))[0] == expected_visible


def test_inline_answers_between_quotes_stay_visible():
    visible, quoted = split_quoted(body("github-erp__email_1_2.txt"))
    assert visible.startswith("Hi,\n\nYou can list the keys for the bucket")
    assert "would do it." in visible
    assert "What is the best way to clear a Riak bucket" in quoted
    assert quoted.startswith("On Tue, 2011-03-01 at 18:02 +0530, Abhishek Kona wrote:")


def test_top_posted_answer_over_nested_quotes():
    visible, quoted = split_quoted(body("github-erp__email_1_3.txt"))
    assert visible.startswith("Oh thanks.\n\nHaving the function would be great.")
    assert "Russell Brown wrote" in quoted and "Russell Brown" not in visible


def test_colon_lines_that_are_not_headers():
    visible, quoted = split_quoted(body("github-erp__greedy_on.txt"))
    assert visible.startswith("On your remote host you can run:")
    assert "telnet 127.0.0.1 52698" in visible
    assert quoted.startswith("On 9 Jan 2014, at 2:47, George Plymale wrote:")
    visible, _ = split_quoted(body("github-erp__email_one_is_not_on.txt"))
    assert "One outstanding question I had:" in visible
    assert visible.endswith("Locally (on development), when I run...")


@pytest.mark.parametrize("name, header", [
    ("talon__html_reply_gmail.html", "On Thu, Jun 26, 2014 at 2:14 PM, Alexander L"),
    ("talon__html_reply_mail_ru.html", "Thu, 26 Jun 2014 14:00:51 +0400 от Alexander L"),
    ("talon__html_reply_ms_outlook_2010.html", "From: Foo [mailto:foo@bar.com]"),
    ("talon__html_reply_thunderbird.html", "On 26.06.2014 14:41, Alexander L"),
    ("talon__html_reply_yandex_ru.html", '26.06.2014, 14:41, "Alexander L"'),
])
def test_html_replies(name, header):
    visible, quoted = split_quoted(body(name))
    assert visible.replace("\n", " ").replace("  ", " ").startswith("Hi. I am fine.")
    assert visible.rstrip().endswith("Alex")
    assert quoted.startswith(header)
    assert "Hello! How are you?" in quoted and "How are you" not in visible


@pytest.mark.parametrize("text, visible", [
    ("Привет!\n\nВторник, 13 мая 2025, 10:00 +03:00 от Иван <ivan@mail.ru>:\n> Добрый день", "Привет!"),
    ("Да.\n\n12.05.2025 10:00, Иван Петров пишет:\n> Вопрос", "Да."),
    ("Да.\n\n12.05.2025, 10:00, Иван Петров написал(а):\n> Вопрос", "Да."),
    ("Ок.\n\n-----Original Message-----\nFrom: a@b.c\nSent: today\n\nold", "Ок."),
    ("Ок.\n\nОт: Магазин <shop@x.ru>\nОтправлено: 12 мая 2025 г. 10:00\nКому: я\n\nold", "Ок."),
    ("Tak.\n\nOd: Sklep <s@x.pl>\nWysłano: 12 maja 2025\nDo: ja\n\nold", "Tak."),
    ("Yes.\n\nOn Mon, 12 May 2025 at 10:00, Shop <s@x.com> wrote:\n\n> old", "Yes."),
    ("Thanks\n-- \nJane\nACME", "Thanks"),
    ("> only a quote\n> nothing else", "> only a quote\n> nothing else"),
    ("", ""),
])
def test_localized_headers_and_edge_cases(text, visible):
    assert split_quoted(text)[0] == visible


def test_nothing_is_lost():
    text = body("crisp-erp__email_thread.txt")
    visible, quoted = split_quoted(text)
    words = sorted(text.split())
    assert sorted((visible + "\n" + quoted).split()) == words


@pytest.mark.parametrize("subject, expected", [
    ("Re: Hello", "Hello"),
    ("RE: Fwd: FW: Hello", "Hello"),
    ("Re[2]: Re: Hello", "Hello"),
    ("AW: WG: Anfrage", "Anfrage"),
    ("Odp: Pd: Zamówienie", "Zamówienie"),
    ("Отв: Ответ: Пересл: Заказ", "Заказ"),
    ("Re:Re:Re:", ""),
    ("Regarding: price", "Regarding: price"),
    ("Reply needed", "Reply needed"),
    (None, ""),
])
def test_normalize_subject(subject, expected):
    assert normalize_subject(subject) == expected
