"""The /campaigns page and the public unsubscribe page of campaign emails (a signed token;
one click from the page, or the mail client's RFC 8058 one-click POST)."""
from __future__ import annotations

from sqlalchemy import select

from app.domain import optouts
from app.domain.channels import add_channel
from app.infra.models import Customer, OptOut
from app.infra.state import db
from tests import inbox_helpers as h


def _customer_and_mailbox():
    channel = add_channel("email", "Sklep", {"imap_host": "127.0.0.1", "imap_user": "u",
                                             "imap_password": "p", "smtp_host": "127.0.0.1",
                                             "from_address": "shop@shop.example"})
    customer = Customer(name="Jan")
    db.session.add(customer)
    db.session.commit()
    return customer, channel


def test_the_unsubscribe_link_asks_once_then_records_the_opt_out(app, ctx):
    customer, channel = _customer_and_mailbox()
    token = optouts.unsubscribe_token(customer.id, channel.id)
    client = app.test_client()
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and b'id="unsubscribe"' in page.data
    assert db.session.scalar(select(OptOut)) is None      # a link scanner's GET changes nothing
    done = client.post(f"/unsubscribe/{token}")
    assert done.status_code == 200 and b'id="unsubscribed"' in done.data
    row = db.session.scalar(select(OptOut))
    assert (row.customer_id, row.channel_id, row.source) == (customer.id, channel.id,
                                                             "unsubscribe_link")
    assert client.post(f"/unsubscribe/{token}").status_code == 200   # again: still one row
    assert len(db.session.scalars(select(OptOut)).all()) == 1


def test_one_click_post_from_the_mail_client_and_forged_tokens(app, ctx):
    customer, channel = _customer_and_mailbox()
    token = optouts.unsubscribe_token(customer.id, channel.id, None)
    client = app.test_client()
    for forged in (token[:-1] + ("0" if token[-1] != "0" else "1"), "1.2.0.abc", "x",
                   optouts.unsubscribe_token(customer.id + 1, channel.id)):
        assert client.post(f"/unsubscribe/{forged}",
                           data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert db.session.scalar(select(OptOut)) is None
    one_click = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 204
    assert db.session.scalar(select(OptOut.source)) == "unsubscribe_link"


def test_the_campaigns_page_is_translated_for_agents(app):
    import re

    with app.app_context():
        sam = h.agent("sam@example.com", "Sam Sales", ["Sales"])
        sam.locale = "pl"
        db.session.commit()
        h.reset_login_limit()
    client = app.test_client()
    assert client.get("/campaigns").status_code == 302   # sign in first
    form = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    assert client.post("/login", data={"email": "sam@example.com", "password": h.PASSWORD,
                                       "csrf_token": csrf}).status_code == 302
    page = client.get("/campaigns").get_data(as_text=True)
    assert '<html lang="pl">' in page
    for text in ("Kampanie", "Nowy segment", "Klientów w segmencie", "Utwórz i uruchom"):
        assert text in page, text
