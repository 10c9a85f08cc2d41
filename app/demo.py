"""`threadline demo`: realistic sample data for a fresh database.

Inbound messages go through the real ingest path (customer resolution, conversations),
so the demo looks exactly like live traffic. Demo channels are marked in their state:
pollers skip them and replies on them are recorded as sent without leaving the machine.
"""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Callable

from sqlalchemy import func, select

from connectors.base import EMAIL, PHONE, TELEGRAM, WEBCHAT, Handle, Inbound

from app.domain.channels import add_channel
from app.domain.customers import DEFAULT_STAGES
from app.usecases.ingest import apply_inbound
from app.infra.models import (Agent, CannedReply, Channel, Conversation, Deal, Message, Note, Order,
                              Segment, Team)
from app.infra.state import db
from app.domain.agents import create_agent, ensure_teams
from app.usecases import automation
from app.usecases.automation import install_standard_rules
from app.usecases import campaigns
from app.domain.segments import validate_filter


class DemoError(RuntimeError):
    pass


PEOPLE = [
    # name, language, company
    ("Анна Смирнова", "ru", None), ("Дмитрий Козлов", "ru", "ООО «Вектор»"),
    ("Ольга Петрова", "ru", None), ("Сергей Иванов", "ru", "ИП Иванов"),
    ("Екатерина Волкова", "ru", None), ("Алексей Соколов", "ru", "Фотостудия «Свет»"),
    ("Мария Новикова", "ru", None), ("Иван Фёдоров", "ru", None),
    ("Наталья Морозова", "ru", "Цветочная лавка"), ("Павел Лебедев", "ru", None),
    ("Юлия Егорова", "ru", None), ("Артём Васильев", "ru", None),
    ("Светлана Попова", "ru", None), ("Михаил Ёлкин", "ru", "Кофейня «Зёрна»"),
    ("Agnieszka Wiśniewska", "pl", None), ("Łukasz Zieliński", "pl", "Zieliński Sp. z o.o."),
    ("Małgorzata Wójcik", "pl", None), ("Paweł Kowalczyk", "pl", None),
    ("Katarzyna Kamińska", "pl", "Kwiaciarnia Róża"), ("Michał Lewandowski", "pl", None),
    ("Zofia Dąbrowska", "pl", None), ("Grzegorz Szymański", "pl", None),
    ("Joanna Woźniak", "pl", "Studio Jogi Łąka"), ("Tomasz Kozłowski", "pl", None),
    ("Ewa Jankowska", "pl", None), ("Piotr Mazur", "pl", None),
    ("Emily Carter", "en", None), ("James O'Connor", "en", "O'Connor Bakery"),
    ("Sophie Martin", "en", None), ("Daniel Kim", "en", "Kim Design Ltd"),
    ("Olivia Brown", "en", None), ("Noah Williams", "en", None),
    ("Ava Johnson", "en", "Green Leaf Café"), ("Liam Davies", "en", None),
    ("Mia Thompson", "en", None), ("Ethan Walker", "en", None),
    ("Isla Robertson", "en", None), ("Lucas Garcia", "en", "Garcia & Sons"),
    ("Виктория Орлова", "ru", None), ("Роман Никитин", "ru", None),
    ("Ксения Белова", "ru", "Салон «Лотос»"), ("Denis Marchenko", "en", None),
    ("Hanna Nowak", "pl", None), ("Krzysztof Wróbel", "pl", "Wróbel Auto"),
    ("Charlotte Evans", "en", None), ("Тимур Гарипов", "ru", None),
    ("Алёна Зайцева", "ru", None), ("Bartosz Pietrzak", "pl", None),
    ("Grace Wilson", "en", "Wilson Florals"), ("Елизавета Крылова", "ru", None),
]

SCRIPTS = {
    "ru": [
        ["Здравствуйте! Где мой заказ №{order}? Жду уже неделю.",
         "Трек-номер так и не пришёл, подскажите, пожалуйста."],
        ["Добрый день. Хочу вернуть товар, не подошёл размер. Как это сделать?",
         "Спасибо, отправила фото чека."],
        ["Подскажите, есть ли это пальто в размере M и в сером цвете?"],
        ["Оплата картой не проходит, пишет «ошибка 3-D Secure». Что делать?",
         "Попробовала ещё раз — то же самое."],
        ["Можно ли оформить оптовый заказ на 40 штук со счётом для юрлица?",
         "Нам нужна доставка до 15-го числа, это реально?"],
        ["Спасибо, всё получила! Очень довольна качеством 👍"],
    ],
    "pl": [
        ["Dzień dobry, kiedy wyślecie moje zamówienie nr {order}?",
         "Płaciłam BLIKiem w poniedziałek."],
        ["Chciałbym zwrócić buty — są za małe. Jak to zrobić?",
         "Czy zwrot jest bezpłatny przez Paczkomat?"],
        ["Czy ta sukienka jest dostępna w rozmiarze 38?"],
        ["Przesyłka przyszła uszkodzona, załączam zdjęcie. Proszę o wymianę.",
         "Karton był zgnieciony, a szkło pęknięte."],
        ["Interesuje nas współpraca hurtowa — 50 sztuk miesięcznie. Jakie są ceny?",
         "Potrzebujemy faktury VAT na firmę."],
        ["Dziękuję, wszystko doszło! Świetna obsługa 😊"],
    ],
    "en": [
        ["Hi! Where is my order #{order}? The tracking page hasn't moved since Monday.",
         "Could you check with the courier, please?"],
        ["I'd like to return a jacket, it's too big. What's the process?",
         "I've attached the receipt."],
        ["Do you have the linen shirt in navy, size L?"],
        ["My card was charged twice for the same order. Can you refund one?",
         "Here is the screenshot from my banking app."],
        ["We're opening a second café and need 30 units with an invoice. Any bulk discount?",
         "Delivery to Manchester by the 20th would be ideal."],
        ["Got it today, thank you so much! Lovely packaging."],
    ],
}

REPLIES = {
    "ru": ["Здравствуйте! Проверим и вернёмся с ответом сегодня.",
           "Заказ передан в доставку, трек-номер отправили вам на почту.",
           "Оформили возврат, курьер заберёт товар завтра с 10 до 14."],
    "pl": ["Dzień dobry! Sprawdzamy i odpiszemy jeszcze dziś.",
           "Zamówienie zostało nadane, numer przesyłki wysłaliśmy mailem.",
           "Zwrot przyjęty — etykieta do Paczkomatu jest w załączniku."],
    "en": ["Hi! We're looking into it and will get back to you today.",
           "Your order has shipped; the tracking number is in your inbox.",
           "Return approved — the courier will collect it tomorrow between 10 and 2."],
}

NOTES = ["VIP: ordered 5+ times, offer free shipping.", "Клиент просил звонить после 18:00.",
         "Prefers WhatsApp over email.", "Zapytać o opinię po dostawie."]

AGENTS = [("Ирина Соколова", "irina@demo.threadline.local", ["Support"]),
          ("Marek Nowicki", "marek@demo.threadline.local", ["Sales"]),
          ("Sarah Lee", "sarah@demo.threadline.local", ["Support", "Sales"])]
DEMO_PASSWORD = "demo-password"


def _slug(name: str) -> str:
    table = str.maketrans("абвгдеёжзийклмнопрстуфхцчшщыэюяąćęłńóśźż",
                          "abvgdeezziiklmnoprstufhccss_eyaacelnoszz")
    return "".join(ch for ch in name.lower().translate(table) if ch.isalnum() or ch == " ") \
        .replace(" ", ".")


def _channels() -> dict[str, Channel]:
    specs = {
        "email": ("Support mailbox", {"imap_host": "imap.demo.invalid", "imap_user": "support",
                                      "imap_password": "demo", "smtp_host": "smtp.demo.invalid",
                                      "from_address": "support@demo.threadline.local"}),
        "telegram": ("Shop bot", {"token": "000000:demo"}),
        "whatsapp": ("WhatsApp +48 22 000 00 00", {
            "phone_number_id": "100000000000001", "access_token": "demo",
            "app_secret": "demo", "verify_token": "demo",
            "templates": [{"name": "order_update", "language": "pl"},
                          {"name": "delivery_delay", "language": "ru"}]}),
        # the answer bot answers the site chat from the knowledge base at night
        "webchat": ("Site chat", {"answer_bot": "after_hours"}),
    }
    channels = {}
    for kind, (name, settings) in specs.items():
        channel = add_channel(kind, name, settings)
        channel.state = {"demo": True}
        channels[kind] = channel
    db.session.flush()
    return channels


# per language, the canned reply ("script") each of REPLIES' kinds of answer comes from
SCRIPTS = {"ru": ("privet", "trek", "vozvrat"), "pl": ("dzien-dobry", "przesylka", "zwrot"),
           "en": ("hello", "tracking", "returns")}


def _handle(kind: str, index: int, name: str) -> Handle:
    if kind == "email":
        return Handle(EMAIL, f"{_slug(name)}@example.com")
    if kind == "telegram":
        return Handle(TELEGRAM, str(500000000 + index * 7919))
    if kind == "whatsapp":
        return Handle(PHONE, f"+4879{index:07d}")
    return Handle(WEBCHAT, f"visitor-{index:04d}")


def load_demo(force: bool = False, echo: Callable[[str], None] = print,
              seed: int = 7) -> dict[str, int]:
    session = db.session
    if not force and session.scalar(select(func.count(Conversation.id))):
        raise DemoError("the database has conversations already; use --force to add demo data anyway")
    rng = random.Random(seed)
    teams = {t.name: t for t in ensure_teams(["Support", "Sales"])}
    agents = []
    for name, email, team_names in AGENTS:
        existing = session.scalar(select(Agent).where(Agent.email == email))
        agents.append(existing or create_agent(email, name, DEMO_PASSWORD, teams=team_names))
    channels = _channels()
    counts = {"customers": 0, "conversations": 0, "messages": 0, "orders": 0, "deals": 0,
              "canned_replies": _canned_replies(session)}
    session.flush()
    by_shortcut = {r.shortcut: r for r in session.scalars(select(CannedReply))}
    scripts = {lang: [by_shortcut.get(s) for s in shortcuts] for lang, shortcuts in SCRIPTS.items()}
    script_rng = random.Random(seed + 1)  # its own sequence: the rest of the demo is unchanged
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for index, (name, lang, company) in enumerate(PEOPLE):
        kinds = rng.sample(list(channels), k=rng.choice([1, 1, 2, 3]))
        handles = {k: _handle(k, index, name) for k in kinds}
        start = now - timedelta(days=rng.randint(20, 90), minutes=rng.randint(0, 600))
        customer_id = None
        episodes = 4
        for episode in range(episodes):
            kind = rng.choice(kinds)
            when = start + timedelta(days=episode * rng.randint(3, 6), minutes=rng.randint(0, 500))
            script = rng.choice(SCRIPTS[lang])
            message = None
            for n, text in enumerate(script):
                when += timedelta(minutes=rng.randint(1, 40))
                inbound = Inbound(
                    external_id=f"demo-{index}-{episode}-{n}", sender=handles[kind],
                    also_known_as=tuple(h for k, h in handles.items() if k != kind),
                    sent_at=min(when, now), sender_name=name,
                    text=text.format(order=10000 + index * 10 + episode),
                    subject=("Order question" if lang == "en" else "Вопрос по заказу"
                             if lang == "ru" else "Pytanie o zamówienie") if kind == "email" else None,
                    source={"channel": kind, "utm_source": rng.choice(["google", "instagram", "yandex", "facebook"]),
                            "utm_campaign": rng.choice(["spring_sale", "brand", "retargeting"])},
                )
                message = apply_inbound(session, channels[kind], inbound) or message
                counts["messages"] += 1
            conversation = message.conversation
            customer_id = conversation.customer_id
            agent = rng.choice(agents)
            conversation.assignee_id = agent.id if rng.random() < 0.7 else None
            conversation.team_id = teams["Sales" if "опт" in script[0] or "hurt" in script[0]
                                         or "bulk" in script[0] else "Support"].id
            conversation.labels = rng.sample(["delivery", "returns", "payment", "wholesale", "vip"], k=rng.randint(0, 2))
            last = episode == episodes - 1
            if not last or rng.random() < 0.5:
                reply_at = min(when + timedelta(minutes=rng.randint(3, 90)), now)
                reply = rng.choice(REPLIES[lang])
                # about half of the replies were inserted from a canned reply ("script")
                script = scripts[lang][REPLIES[lang].index(reply)] if script_rng.random() < 0.5 else None
                session.add(Message(conversation_id=conversation.id, customer_id=customer_id,
                                    channel_id=channels[kind].id, direction="out",
                                    author_id=agent.id, text=reply,
                                    canned_reply_id=script.id if script else None,
                                    status=rng.choice(["delivered", "read", "sent"]),
                                    external_id=f"demo-out-{index}-{episode}",
                                    created_at=reply_at, sent_at=reply_at))
                conversation.last_activity_at = reply_at
                conversation.unread_count = 0
                counts["messages"] += 1
            if not last:
                conversation.status, conversation.resolved_at = "resolved", conversation.last_activity_at
            elif rng.random() < 0.2:
                conversation.status = "pending"
            session.flush()
            counts["conversations"] += 1
        counts["customers"] += 1
        _crm(session, rng, customer_id, company, agents, index, now, counts)
        if company:
            conversation.customer.company = company
        if (index + 1) % 10 == 0:
            echo(f"  {index + 1}/{len(PEOPLE)} customers")
    _sla(session, now)
    # the standard rules (off until switched on), and the history is not news to them
    install_standard_rules(session)
    automation.READER.skip_history(session)
    campaigns.READER.skip_history(session)   # nor to the campaigns' opt-out keywords and replies
    # a salesperson's segment (issue 21): bought in the last 30 days, came from Instagram
    session.add(Segment(name="Bought in the last 30 days, came from Instagram",
                        filter=validate_filter({"orders": {"last_within_days": 30},
                                                "source": {"utm_source": ["instagram"]}})))
    for team in teams.values():   # ready for "Distribute between agents" (switched off)
        team.distribution, team.capacity = "round_robin", 50
    if not teams["Support"].business_hours:   # what "after hours" means for the answer bot
        teams["Support"].business_hours = SUPPORT_HOURS
    counts["kb_articles"] = _knowledge_base(session)
    _site_chat_menu(session, channels["webchat"], teams["Support"])
    session.commit()
    echo(f"demo agents (password {DEMO_PASSWORD!r}): " + ", ".join(a.email for a in agents))
    return counts


SUPPORT_HOURS = {"timezone": "Europe/Moscow",
                 "days": {day: [["09:00", "21:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
                 | {"sat": [["10:00", "18:00"]]}}

# the knowledge base (/help, the site chat's answer search, the answer bot): (language,
# category, title, keywords, short answer, body in Markdown)
KB_ARTICLES = [
    ("ru", "Доставка", "Сроки доставки по России", ["срок", "сколько дней", "Казань", "Москва"],
     "По Москве доставляем за 1–2 дня, в Казань и другие города — за 2–5 рабочих дней.",
     "Заказ передаём курьерской службе в день оплаты.\n\n| Город | Срок |\n|---|---|\n"
     "| Москва, Санкт-Петербург | 1–2 дня |\n| Казань, Нижний Новгород | 2–3 дня |\n"
     "| Екатеринбург, Новосибирск | 3–5 дней |\n\nТрек-номер приходит в SMS после отправки."),
    ("ru", "Доставка", "Стоимость доставки", ["цена доставки", "бесплатная доставка"],
     "Доставка бесплатна от 3000 ₽, иначе стоит 300 ₽.",
     "Курьерская доставка стоит **300 ₽**. При заказе от 3000 ₽ доставка бесплатная."),
    ("ru", "Возврат", "Возврат товара", ["вернуть", "возврат", "не подошёл"],
     "Вернуть товар можно в течение 14 дней, если сохранены упаковка и чек.",
     "Оформите заявление в личном кабинете, и мы пришлём этикетку для возврата. Деньги "
     "вернутся на карту в течение 10 дней после получения товара."),
    ("ru", "Оплата", "Способы оплаты", ["оплатить", "карта", "СБП", "наличные"],
     "Оплатить можно картой, через СБП или наличными курьеру.",
     "Принимаем карты Visa, Mastercard и МИР, оплату через СБП, наличные при получении. "
     "Если оплата не проходит, проверьте подтверждение 3-D Secure."),
    ("pl", "Dostawa", "Czas dostawy", ["kiedy dotrze", "ile dni", "kurier", "paczkomat"],
     "Kurier dostarcza zamówienia w 1–2 dni robocze od nadania.",
     "Zamówienie nadajemy w dniu zaksięgowania płatności. Dostawa kurierem trwa 1–2 dni "
     "robocze, do paczkomatu 2 dni."),
    ("pl", "Zwroty", "Zwrot towaru", ["zwrot", "oddać", "30 dni"],
     "Masz 30 dni na zwrot towaru bez podania przyczyny.",
     "Wypełnij formularz zwrotu w Moim koncie i nadaj paczkę bezpłatną etykietą."),
    ("pl", "Płatności", "Metody płatności", ["BLIK", "karta", "przelew", "za pobraniem"],
     "Zapłacisz BLIKIEM, kartą, szybkim przelewem lub za pobraniem.",
     "Akceptujemy BLIK, karty płatnicze, szybkie przelewy oraz płatność przy odbiorze."),
    ("pl", "Zamówienia", "Śledzenie przesyłki", ["numer przesyłki", "gdzie jest paczka"],
     "Numer przesyłki wysyłamy e-mailem; status sprawdzisz na stronie przewoźnika.",
     "Po nadaniu paczki wysyłamy e-mail z numerem przesyłki."),
    ("en", "Delivery", "Delivery times", ["how long", "shipping", "days"],
     "Couriers deliver in 1–2 working days in the city and 2–5 days elsewhere.",
     "We hand your order to the courier on the day it is paid."),
    ("en", "Returns", "Returning an item", ["return", "refund", "14 days"],
     "You can return an item within 14 days in its original packaging.",
     "Request a return in your account and we will email a return label."),
    ("en", "Payment", "Payment methods", ["pay", "card", "cash on delivery"],
     "Pay by card, bank transfer or cash on delivery.",
     "We accept Visa and Mastercard, bank transfers and cash on delivery."),
    ("en", "Account", "Resetting your password", ["password", "log in", "sign in"],
     "Click “Forgot password?” on the sign-in page: a reset link arrives by email.",
     "The reset link is valid for one hour."),
]


def _knowledge_base(session) -> int:
    from app.domain import kb
    from app.infra.models import KbArticle

    if session.scalar(select(func.count(KbArticle.id))):
        return 0
    for language, category, title, keywords, short, body in KB_ARTICLES:
        kb.create(session, {"language": language, "category": category, "title": title,
                            "keywords": keywords, "short_answer": short, "body": body,
                            "published": True})
    return len(KB_ARTICLES)


def _site_chat_menu(session, channel: Channel, support) -> None:
    """The answer bot's menu on the site chat (issue 18): a vague first message at night
    ("Здравствуйте") gets these buttons; a clear question is answered from the articles."""
    from connectors import validate_menu

    from app.infra.models import KbArticle

    ids = {title: id_ for title, id_ in session.execute(select(KbArticle.title, KbArticle.id))}
    menu = validate_menu({
        "greeting": "Здравствуйте! Выберите тему или напишите вопрос.\n"
                    "Dzień dobry! Wybierz temat lub napisz pytanie.",
        "items": [
            {"title": "Доставка", "action": "article", "article_id": ids["Сроки доставки по России"]},
            {"title": "Возврат", "action": "article", "article_id": ids["Возврат товара"]},
            {"title": "Zwrot towaru", "action": "article", "article_id": ids["Zwrot towaru"]},
            {"title": "Часы работы", "action": "text",
             "text": "Операторы на связи пн–пт 9:00–21:00 и в субботу 10:00–18:00 (Москва). "
                     "Ночью отвечает бот, а вопрос можно оставить здесь."},
            {"title": "Оператор", "action": "handoff", "team_id": support.id},
        ]})
    channel.settings = {**channel.settings, "bot_menu": menu}


# canned replies in the shops' three languages: `/` in the reply box works on day one
CANNED_REPLIES = [
    ("privet", "Приветствие", "Здравствуйте, {{customer.first_name}}! Меня зовут {{agent.name}}, "
                              "чем могу помочь?"),
    ("trek", "Трек-номер", "{{customer.first_name}}, ваш заказ передан в доставку. Трек-номер "
                           "пришлём в этот чат, как только он появится."),
    ("vozvrat", "Возврат", "Вернуть товар можно в течение 14 дней: напишите номер заказа, и мы "
                           "пришлём этикетку для возврата."),
    ("dzien-dobry", "Powitanie", "Dzień dobry, {{customer.first_name}}! Nazywam się {{agent.name}}, "
                                 "w czym mogę pomóc?"),
    ("przesylka", "Numer przesyłki", "{{customer.first_name}}, Twoje zamówienie zostało wysłane. "
                                     "Numer przesyłki wyślemy w tej rozmowie."),
    ("zwrot", "Zwrot", "Zwrot jest możliwy w ciągu 14 dni: podaj numer zamówienia, a prześlemy "
                       "etykietę zwrotną."),
    ("hello", "Greeting", "Hello {{customer.first_name}}! This is {{agent.name}}, how can I help?"),
    ("tracking", "Tracking number", "{{customer.first_name}}, your order has shipped; we will post "
                                    "the tracking number in this chat as soon as we have it."),
    ("returns", "Returns", "You can return an item within 14 days: send us the order number and "
                           "we will email a return label."),
]


def _canned_replies(session) -> int:
    """The demo's canned replies (Russian, Polish, English); shortcuts already taken are kept."""
    taken = set(session.scalars(select(CannedReply.shortcut)))
    added = 0
    for shortcut, title, body in CANNED_REPLIES:
        if shortcut not in taken:
            session.add(CannedReply(shortcut=shortcut, title=title, text=body))
            added += 1
    return added


def _crm(session, rng: random.Random, customer_id: int, company: str | None, agents: list[Agent],
         index: int, now: datetime, counts: dict[str, int]) -> None:
    for n in range(rng.randint(0, 3)):
        items = [{"sku": f"SKU-{rng.randint(100, 999)}", "name": rng.choice(
            ["Пальто шерстяное", "Sukienka lniana", "Linen shirt", "Кроссовки", "Buty skórzane"]),
            "qty": rng.randint(1, 3), "price": str(rng.choice([49, 89, 129, 3490, 5990]))}]
        session.add(Order(customer_id=customer_id, external_ref=f"demo-order-{index}-{n}",
                          placed_at=now - timedelta(days=rng.randint(1, 120)),
                          total=Decimal(sum(int(i["price"]) * i["qty"] for i in items)),
                          currency=rng.choice(["RUB", "PLN", "EUR"]),
                          status=rng.choice(["paid", "shipped", "delivered", "returned"]), items=items))
        counts["orders"] += 1
    if company or rng.random() < 0.25:
        session.add(Deal(customer_id=customer_id, external_ref=f"demo-deal-{index}",
                         title=f"{company or 'Wholesale'}: {rng.choice(['опт', 'hurt', 'bulk order'])}",
                         stage=rng.choice(DEFAULT_STAGES), amount=Decimal(rng.randint(10, 400) * 100),
                         currency=rng.choice(["RUB", "PLN", "EUR"]),
                         owner_id=rng.choice(agents).id,
                         expected_close=date.today() + timedelta(days=rng.randint(5, 60))))
        counts["deals"] += 1
    if rng.random() < 0.3:
        session.add(Note(customer_id=customer_id, author_id=rng.choice(agents).id,
                         text=rng.choice(NOTES)))


def _sla(session, now: datetime) -> None:
    """An SLA policy (first response in two hours, resolution in a day) with the due times it
    gives each demo conversation from its first customer message, and the breaches the sweep
    would have recorded: the Reports page's SLA block has something to show."""
    from app.infra.models import SlaPolicy
    from app.usecases.automation import record_breaches

    policy = SlaPolicy(name="Standard", first_response_minutes=120, resolution_minutes=24 * 60)
    session.add(policy)
    session.flush()
    first_in = dict(session.execute(select(Message.conversation_id, func.min(Message.created_at))
                                    .where(Message.direction == "in")
                                    .group_by(Message.conversation_id)).all())
    first_out = dict(session.execute(select(Message.conversation_id, func.min(Message.created_at))
                                     .where(Message.direction == "out")
                                     .group_by(Message.conversation_id)).all())
    for conversation in session.scalars(select(Conversation)):
        start = first_in.get(conversation.id)
        if start is None:
            continue
        conversation.sla_policy_id = policy.id
        conversation.first_response_due_at = start + timedelta(minutes=120)
        conversation.resolution_due_at = start + timedelta(hours=24)
        conversation.first_response_at = conversation.first_response_at or first_out.get(conversation.id)
    session.flush()
    record_breaches(session, now)
