"""Realistic customer-service text in Russian, Polish and English, deterministic per seed.

Each language has everyday words (in many messages) and rare words (in about one message
in ten thousand): the search benchmark looks both up.
"""
from __future__ import annotations

import random

WORDS = {
    "ru": ("здравствуйте добрый день подскажите пожалуйста когда будет доставка заказ номер "
           "оплатил картой но статус не изменился можно ли вернуть товар размер не подошёл "
           "курьер не приехал спасибо за быстрый ответ хочу уточнить цену скидка действует "
           "ещё есть в наличии пришлите трек посылка задерживается уже неделю жду отмените "
           "пожалуйста перезвоните мне сегодня вечером магазин работает выходные адрес самовывоз "
           "гарантия чек потерял поменять цвет синий чёрный белый ёлка приложение не открывается "
           "пароль забыл аккаунт почта телефон").split(),
    "pl": ("dzień dobry czy mogę prosić o informację kiedy przyjdzie zamówienie numer "
           "zapłaciłem kartą ale status się nie zmienił chciałbym zwrócić towar rozmiar "
           "nie pasuje kurier nie przyjechał dziękuję za szybką odpowiedź jaka jest cena "
           "rabat paczka opóźniona czekam tydzień proszę oddzwonić sklep otwarty w sobotę "
           "odbiór osobisty gwarancja paragon zgubiłem kolor niebieski czarny biały żółty "
           "łódź kraków aplikacja hasło konto").split(),
    "en": ("hello hi could you please tell me when my order will arrive number paid by card "
           "but the status did not change can I return the item size does not fit courier "
           "never came thanks for the quick reply what is the price discount still in stock "
           "send the tracking parcel delayed waiting a week cancel please call me back tonight "
           "store open weekend pickup address warranty receipt lost change colour blue black "
           "white app password account email phone invoice refund").split(),
}
RARE = {
    "ru": "брусника снегоход валенки самовар кокошник балалайка жостово гжель".split(),
    "pl": "pierogi żubrówka oscypek krówki szarlotka bigos kremówka obwarzanek".split(),
    "en": "zeppelin marmalade kaleidoscope harpsichord bagpipes xylophone quokka".split(),
}
NAMES = {
    "ru": ("Анна Мария Ольга Ирина Дмитрий Сергей Алексей Наталья Екатерина Павел",
           "Иванова Смирнов Кузнецова Попов Соколова Лебедев Козлова Новиков Морозова Волков"),
    "pl": ("Zofia Katarzyna Łukasz Marek Agnieszka Piotr Małgorzata Paweł Ewa Tomasz",
           "Nowak Kowalska Wiśniewski Wójcik Kamińska Lewandowski Zielińska Szymański Woźniak Dąbrowski"),
    "en": ("Sarah John Emily Michael Jessica David Laura James Olivia Daniel",
           "Smith Johnson Brown Taylor Wilson Davies Evans Thomas Roberts Walker"),
}
LANGS = ("ru", "ru", "ru", "ru", "ru", "pl", "pl", "en", "en", "en")  # 50% ru, 20% pl, 30% en


def language(rng: random.Random) -> str:
    return rng.choice(LANGS)


def name(rng: random.Random, lang: str) -> str:
    first, last = NAMES[lang]
    return f"{rng.choice(first.split())} {rng.choice(last.split())}"


def sentence(rng: random.Random, lang: str, rare_every: int = 10_000) -> str:
    words = WORDS[lang]
    out = [words[int(rng.random() * len(words))] for _ in range(4 + int(rng.random() * 18))]
    if rng.random() * rare_every < 1:
        out[int(rng.random() * len(out))] = RARE[lang][int(rng.random() * len(RARE[lang]))]
    text = " ".join(out)
    return text[0].upper() + text[1:] + rng.choice((".", "?", "!", "", " 🙂"))
