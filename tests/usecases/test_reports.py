"""Reports (issue 20): figures of a hand-computed small world across a time-zone boundary,
the recount equality (aggregates == a full recount from the raw tables), 403/422, CSV."""
from __future__ import annotations

import csv
import io
import itertools
import random
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import run_jobs, wait_until

UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def set_zone(app, name: str) -> None:
    app.config["THREADLINE"]["account"]["time_zone"] = name


class World:
    pass


def build_world(admin) -> World:
    """Moscow is UTC+3 all year. Period 2026-11-10..12 in Moscow = [11-09 21:00, 11-12 21:00) UTC."""
    from app.domain.agents import create_agent, create_token
    from app.infra.models import (CannedReply, Channel, Conversation, Customer, Message, Order,
                                  Team)
    from app.infra.state import db

    s = db.session
    teams = {t.name: t for t in s.query(Team)}
    w = World()
    w.tg = Channel(kind="telegram", name="TG бот", settings={})
    w.mail = Channel(kind="email", name="Почта", settings={})
    s.add_all([w.tg, w.mail])
    w.tg.teams.append(teams["Support"])
    w.mail.teams.append(teams["Sales"])
    w.ann = create_agent("ann@example.com", "Анна", "password-ann-1", teams=["Support"])
    w.bob = create_agent("bob@example.com", "Bob", "password-bob-1", teams=["Sales"])
    w.cr1 = CannedReply(shortcut="привет", title="Приветствие", text="Здравствуйте!")
    w.cr2 = CannedReply(shortcut="bye", title="Bye", text="Bye!")
    s.add_all([w.cr1, w.cr2])
    w.c1 = Customer(name="Ольга", source={"channel": "telegram",
                                          "utm": {"utm_source": "google", "utm_campaign": "spring"}})
    w.c2 = Customer(name="Piotr", source={"channel": "email"})
    w.c3 = Customer(name="Jan", source={"channel": "telegram", "deep_link": "promo42"})
    s.add_all([w.c1, w.c2, w.c3])
    s.flush()

    def conv(customer, channel, created, **kw):
        c = Conversation(customer_id=customer.id, channel_id=channel.id, created_at=at(created),
                         last_activity_at=at(created), **kw)
        s.add(c)
        s.flush()
        return c

    def msg(c, channel, direction, when, author=None, canned=None, automated=False):
        m = Message(conversation_id=c.id, customer_id=c.customer_id,
                    channel_id=channel.id if channel else None, direction=direction,
                    author_id=author.id if author else None, text="…", created_at=at(when),
                    canned_reply_id=canned.id if canned else None, automated=automated,
                    status="received" if direction == "in" else "sent")
        s.add(m)
        s.flush()
        return m

    # D: c3, before the period, created resolved
    w.D = conv(w.c3, w.tg, "2026-11-09 12:00", status="resolved",
               resolved_at=at("2026-11-09 13:00"))
    msg(w.D, w.tg, "in", "2026-11-09 12:00")
    # A: c1 on Telegram, starts 23:50 Moscow on the 10th
    w.A = conv(w.c1, w.tg, "2026-11-10 20:50", assignee_id=w.ann.id)
    msg(w.A, w.tg, "in", "2026-11-10 20:50")
    msg(w.A, w.tg, "in", "2026-11-10 20:55")
    msg(w.A, w.tg, "out", "2026-11-10 21:10", w.ann, w.cr1)      # first response 1200 s
    msg(w.A, w.tg, "in", "2026-11-10 22:00")
    msg(w.A, w.tg, "out", "2026-11-10 22:05", w.ann)             # next response 300 s
    s.commit()
    w.A.status, w.A.resolved_at = "resolved", at("2026-11-10 23:00")   # resolution 7800 s
    s.commit()
    # B: c2 by email
    w.B = conv(w.c2, w.mail, "2026-11-11 06:00", assignee_id=w.bob.id)
    msg(w.B, w.mail, "in", "2026-11-11 06:00")
    msg(w.B, w.mail, "out", "2026-11-11 07:00", w.bob, w.cr1)    # first response 3600 s
    msg(w.B, w.mail, "out", "2026-11-11 07:05", w.bob, w.cr2)    # nobody waiting: no sample
    # C: c1 again, by email, 00:30 Moscow on the 12th
    w.C = conv(w.c1, w.mail, "2026-11-11 21:30", assignee_id=admin.id)
    msg(w.C, w.mail, "in", "2026-11-11 21:30")
    msg(w.C, w.mail, "out", "2026-11-11 21:31", automated=True)  # a bot: not a response
    msg(w.C, None, "note", "2026-11-11 21:40", admin)
    msg(w.C, w.mail, "out", "2026-11-11 23:30", admin)           # first response 7200 s
    s.commit()
    for status, when in (("resolved", "2026-11-12 00:00"), ("open", None),
                         ("resolved", "2026-11-12 02:00")):     # resolution 16200 s
        w.C.status = status
        if when:
            w.C.resolved_at = at(when)
        s.commit()
    # E: c3 returns, 13:00 Moscow on the 12th
    w.E = conv(w.c3, w.tg, "2026-11-12 10:00")
    msg(w.E, w.tg, "in", "2026-11-12 10:00")
    # after the period: 00:30 Moscow on the 13th
    msg(w.E, w.tg, "in", "2026-11-12 21:30")
    s.add_all([Order(customer_id=w.c1.id, placed_at=at("2026-11-11 12:00"), total=Decimal("100.50"),
                     currency="RUB"),
               Order(customer_id=w.c1.id, placed_at=at("2026-10-01 12:00"), total=Decimal("999"),
                     currency="RUB"),
               Order(customer_id=w.c1.id, placed_at=at("2026-11-12 08:00"), total=Decimal("10"),
                     currency="EUR"),
               Order(customer_id=w.c2.id, placed_at=at("2026-11-12 10:00"), total=Decimal("50"),
                     currency="EUR")])
    s.commit()
    w.ann_token = create_token(w.ann, "t")
    s.commit()
    return w


PERIOD = "from=2026-11-10&to=2026-11-12"


def rollup():
    from app.usecases import reports

    return reports.rollup()


def test_hand_computed_world(app, ctx, admin, api):
    set_zone(app, "Europe/Moscow")
    w = build_world(admin)
    rollup()
    body = api.get(f"/reports/volume?{PERIOD}").get_json()
    assert body["period"] == {"from": "2026-11-10", "to": "2026-11-12", "time_zone": "Europe/Moscow"}
    items = {i["channel_id"]: i for i in body["items"]}
    assert items[w.tg.id] == {**items[w.tg.id], "messages_in": 4, "messages_out": 2,
                              "conversations": 2, "customers": 2, "new_customers": 1,
                              "returning_customers": 1, "channel_name": "TG бот"}
    assert items[w.mail.id] == {**items[w.mail.id], "messages_in": 2, "messages_out": 4,
                                "conversations": 2, "customers": 2, "new_customers": 2,
                                "returning_customers": 0}
    assert body["totals"] == {"messages_in": 6, "messages_out": 6, "conversations": 4,
                              "customers": 3, "new_customers": 2, "returning_customers": 1}
    series = {d["date"]: d for d in body["series"]}
    assert [(series[d]["messages_in"], series[d]["messages_out"], series[d]["conversations"])
            for d in ("2026-11-10", "2026-11-11", "2026-11-12")] == [(2, 0, 1), (2, 4, 1), (2, 2, 2)]
    heat = body["heatmap"]   # Monday = 0; 2026-11-10 is a Tuesday
    assert heat[1][23] == 2 and heat[2][1] == 1 and heat[2][9] == 1
    assert heat[3][0] == 1 and heat[3][13] == 1 and sum(map(sum, heat)) == 6

    # the same days in UTC cut differently: the zone is applied, not ignored
    set_zone(app, "UTC")
    rollup()
    utc = api.get(f"/reports/volume?{PERIOD}").get_json()
    series = {d["date"]: d for d in utc["series"]}
    assert (series["2026-11-10"]["messages_in"], series["2026-11-12"]["messages_in"]) == (3, 2)
    set_zone(app, "Europe/Moscow")
    rollup()

    rt = api.get(f"/reports/response-times?{PERIOD}").get_json()
    by = {i["channel_id"]: i for i in rt["items"]}
    assert by[w.tg.id]["first_response"] == {"count": 1, "median": 1200, "p90": 1200}
    assert by[w.tg.id]["next_response"] == {"count": 1, "median": 300, "p90": 300}
    assert by[w.mail.id]["first_response"] == {"count": 2, "median": 3600, "p90": 7200}
    assert by[w.tg.id]["resolution"] == {"count": 1, "median": 7800, "p90": 7800}
    assert by[w.mail.id]["resolution"] == {"count": 1, "median": 16200, "p90": 16200}
    assert rt["totals"]["first_response"] == {"count": 3, "median": 3600, "p90": 7200}
    assert "SLA" in rt["note"]

    ag = {i["agent_id"]: i for i in api.get(f"/reports/agents?{PERIOD}").get_json()["items"]}
    assert ag[w.ann.id] == {**ag[w.ann.id], "handled": 1, "replies": 2, "canned_replies": 1,
                            "median_first_response": 1200, "resolved": 1, "reopened": 0}
    assert ag[w.bob.id] == {**ag[w.bob.id], "handled": 1, "replies": 2, "canned_replies": 2,
                            "median_first_response": 3600, "resolved": 0}
    assert ag[admin.id] == {**ag[admin.id], "handled": 1, "replies": 1,
                            "median_first_response": 7200, "resolved": 2, "reopened": 0}
    # the reopen happened now (the status change's own time), so it counts in today's period
    today = datetime.now(ZoneInfo("Europe/Moscow")).date().isoformat()
    ag = {i["agent_id"]: i for i in api.get(f"/reports/agents?from=2026-11-10&to={today}")
          .get_json()["items"]}
    assert (ag[admin.id]["resolved"], ag[admin.id]["reopened"]) == (2, 1)

    cu = api.get(f"/reports/canned-usage?{PERIOD}").get_json()
    assert [(i["shortcut"], i["uses"], i["agents"]) for i in cu["items"]] == [("привет", 2, 2),
                                                                            ("bye", 1, 1)]
    assert cu["totals"] == {"replies": 5, "canned_replies": 3, "share": 0.6}

    src = api.get(f"/reports/sources?{PERIOD}").get_json()["items"]
    google = next(i for i in src if i["utm_source"] == "google")
    assert (google["utm_campaign"], google["conversations"], google["customers"], google["buyers"],
            google["orders"], google["revenue"]) == ("spring", 2, 1, 1, 2,
                                                     {"RUB": "100.50", "EUR": "10.00"})
    email = next(i for i in src if i["source_channel"] == "email")
    assert (email["conversations"], email["orders"], email["revenue"]) == (1, 1, {"EUR": "50.00"})
    promo = next(i for i in src if i["deep_link"] == "promo42")
    assert (promo["conversations"], promo["customers"], promo["orders"]) == (1, 1, 0)

    bot = api.get(f"/reports/bot?{PERIOD}").get_json()
    assert [(i["channel_id"], i["automated_replies"]) for i in bot["items"]] == [(w.mail.id, 1)]
    csat = api.get(f"/reports/csat?{PERIOD}").get_json()
    # no feedback question was asked in this world (tests/web/api/test_csat_api.py has figures)
    assert csat["totals"]["asked"] == 0 and csat["totals"]["average"] is None
    assert [i["group"] for i in csat["items"]] == ["total"]

    # filters: one channel, one agent
    one = api.get(f"/reports/volume?{PERIOD}&channel_id={w.mail.id}").get_json()
    assert [i["channel_id"] for i in one["items"]] == [w.mail.id]
    bobs = api.get(f"/reports/volume?{PERIOD}&agent_id={w.bob.id}").get_json()
    assert bobs["totals"]["messages_out"] == 2 and bobs["totals"]["messages_in"] == 0
    assert bobs["totals"]["customers"] == 1 and bobs["totals"]["conversations"] == 1


def test_csv_export(app, ctx, admin, api):
    set_zone(app, "Europe/Moscow")
    w = build_world(admin)
    rollup()
    for name in ("volume", "response-times", "agents", "canned-usage", "sources", "csat", "bot"):
        response = api.get(f"/reports/{name}?{PERIOD}&format=csv")
        assert response.status_code == 200, name
        assert response.mimetype == "text/csv"
        assert len(response.get_data(as_text=True).splitlines()) >= 2, name
    rows = list(csv.DictReader(io.StringIO(
        api.get(f"/reports/volume?{PERIOD}&format=csv").get_data(as_text=True))))
    tg = next(r for r in rows if r["channel_id"] == str(w.tg.id))
    assert (tg["channel_name"], tg["messages_in"], tg["customers"]) == ("TG бот", "4", "2")
    rt = list(csv.DictReader(io.StringIO(
        api.get(f"/reports/response-times?{PERIOD}&format=csv").get_data(as_text=True))))
    assert next(r for r in rt if r["channel_id"] == str(w.mail.id))["first_response_p90"] == "7200"


def relabel(conversation, *labels) -> None:
    from app.infra.state import db

    conversation.labels = list(labels)
    db.session.commit()


def test_label_filter_hand_computed(app, ctx, admin, api):
    """Labels put on after the messages were folded, then taken off and moved: the label's
    figures follow (added, subtracted), unfiltered figures stay as they were."""
    set_zone(app, "Europe/Moscow")
    w = build_world(admin)
    rollup()
    relabel(w.A, "vip")
    relabel(w.B, "vip", "опт")
    relabel(w.E, "vip")
    rollup()

    def volume(label):
        body = api.get(f"/reports/volume?{PERIOD}&label={label}").get_json()
        assert body["filters"]["label"] == label
        return body, {i["channel_id"]: i for i in body["items"]}

    body, items = volume("vip")
    assert {k: items[w.tg.id][k] for k in ("messages_in", "messages_out", "conversations",
                                           "customers", "new_customers")} == \
        {"messages_in": 4, "messages_out": 2, "conversations": 2, "customers": 2,
         "new_customers": 1}
    assert {k: items[w.mail.id][k] for k in ("messages_in", "messages_out", "conversations",
                                             "customers", "new_customers")} == \
        {"messages_in": 1, "messages_out": 2, "conversations": 1, "customers": 1,
         "new_customers": 1}
    assert body["totals"] == {"messages_in": 5, "messages_out": 4, "conversations": 3,
                              "customers": 3, "new_customers": 2, "returning_customers": 1}

    # A loses "vip" (its 5 messages and Olga's reach are taken away), C gains "опт"
    relabel(w.A)
    relabel(w.C, "опт")
    rollup()
    body, items = volume("vip")
    assert (items[w.tg.id]["messages_in"], items[w.tg.id]["messages_out"],
            items[w.tg.id]["conversations"], items[w.tg.id]["customers"],
            items[w.tg.id]["new_customers"]) == (1, 0, 1, 1, 0)       # E: Jan, returning
    assert body["totals"] == {"messages_in": 2, "messages_out": 2, "conversations": 2,
                              "customers": 2, "new_customers": 1, "returning_customers": 1}
    series = {d["date"]: d for d in body["series"]}
    assert [series[d]["messages_in"] for d in ("2026-11-10", "2026-11-11", "2026-11-12")] == [0, 1, 1]
    assert sum(map(sum, body["heatmap"])) == 2
    opt, items = volume("опт")    # B and C, both by email
    assert (items[w.mail.id]["messages_in"], items[w.mail.id]["messages_out"],
            items[w.mail.id]["conversations"], items[w.mail.id]["customers"]) == (2, 4, 2, 2)
    assert w.tg.id not in {i["channel_id"] for i in opt["items"] if i["messages_in"]}

    rt = api.get(f"/reports/response-times?{PERIOD}&label=vip").get_json()
    assert rt["totals"]["first_response"] == {"count": 1, "median": 3600, "p90": 3600}
    assert rt["totals"]["resolution"]["count"] == 0
    rt = api.get(f"/reports/response-times?{PERIOD}&label=%D0%BE%D0%BF%D1%82").get_json()
    assert rt["totals"]["first_response"] == {"count": 2, "median": 3600, "p90": 7200}
    assert rt["totals"]["resolution"] == {"count": 1, "median": 16200, "p90": 16200}
    ag = {i["agent_id"]: i for i in api.get(f"/reports/agents?{PERIOD}&label=vip").get_json()["items"]}
    assert (ag[w.bob.id]["replies"], ag[w.bob.id]["canned_replies"], ag[w.bob.id]["handled"]) == (2, 2, 1)
    assert (ag[w.ann.id]["replies"], ag[w.ann.id]["handled"], ag[w.ann.id]["resolved"]) == (0, 0, 0)
    cu = api.get(f"/reports/canned-usage?{PERIOD}&label=vip").get_json()
    assert [(i["shortcut"], i["uses"]) for i in cu["items"]] == [("bye", 1), ("привет", 1)]
    assert cu["totals"] == {"replies": 2, "canned_replies": 2, "share": 1.0}
    src = {(i["source_channel"], i["deep_link"]): i["conversations"]
           for i in api.get(f"/reports/sources?{PERIOD}&label=vip").get_json()["items"]}
    assert src == {("email", ""): 1, ("telegram", "promo42"): 1}
    bot = api.get(f"/reports/bot?{PERIOD}&label=опт").get_json()["items"]
    assert [(i["channel_id"], i["automated_replies"]) for i in bot] == [(w.mail.id, 1)]
    assert api.get(f"/reports/bot?{PERIOD}&label=vip").get_json()["items"] == []
    # unfiltered figures did not move
    assert api.get(f"/reports/volume?{PERIOD}").get_json()["totals"]["messages_in"] == 6
    # the page offers the labels in use
    from app.usecases.reports import known_labels
    assert known_labels() == ["vip", "опт"]
    assert api.get(f"/reports/volume?{PERIOD}&label=нет").status_code == 422


def sla_world(w, admin) -> None:
    """Due times as the work distribution computes them (set here directly), one breach row
    the sweep recorded for C and one for B. Period end is 2026-11-12 21:00 UTC (exclusive)."""
    from app.infra.models import SlaBreach, SlaPolicy, Team
    from app.infra.state import db

    s = db.session
    teams = {t.name: t.id for t in s.query(Team)}
    policy = SlaPolicy(name="Стандарт", first_response_minutes=30, resolution_minutes=240)
    s.add(policy)
    s.flush()
    plan = {  # conversation: team, first response due, first response at, resolution due
        w.A: ("Support", "2026-11-10 21:00", "2026-11-10 21:10", "2026-11-11 00:00"),  # late; met
        w.B: ("Sales", "2026-11-11 07:30", "2026-11-11 07:00", "2026-11-12 06:00"),    # met; overdue
        w.C: ("Sales", "2026-11-11 22:00", "2026-11-11 23:30", "2026-11-12 20:59"),    # breach; met
        w.E: ("Support", "2026-11-12 10:30", None, "2026-11-12 21:00"),               # overdue; -
        w.D: ("Support", "2026-11-09 12:30", None, None),                             # before
    }
    for c, (team, first_due, first_at, resolution_due) in plan.items():
        c.team_id, c.sla_policy_id = teams[team], policy.id
        c.first_response_due_at = at(first_due)
        c.first_response_at = at(first_at) if first_at else None
        c.resolution_due_at = at(resolution_due) if resolution_due else None
    s.add_all([SlaBreach(conversation_id=w.C.id, policy_id=policy.id, kind="first_response",
                         due_at=at("2026-11-11 22:00"), breached_at=at("2026-11-11 22:01"),
                         team_id=teams["Sales"], assignee_id=admin.id),
               SlaBreach(conversation_id=w.B.id, policy_id=policy.id, kind="resolution",
                         due_at=at("2026-11-12 06:00"), breached_at=at("2026-11-12 06:01"),
                         team_id=teams["Sales"], assignee_id=w.bob.id)])
    s.commit()


def test_sla_met_and_breached_hand_computed(app, ctx, admin, api):
    set_zone(app, "Europe/Moscow")
    w = build_world(admin)
    sla_world(w, admin)
    rollup()
    rt = api.get(f"/reports/response-times?{PERIOD}").get_json()

    def counts(block):
        return {k: (v["met"], v["breached"], v["pending"]) for k, v in block.items()
                if k in ("first_response", "resolution")}

    # first response: B met; A late, C breach row, E overdue. Resolution: A, C met; B breached
    # (E's resolution is due at the period's end, excluded; D is before the period)
    assert counts(rt["sla"]) == {"first_response": (1, 3, 0), "resolution": (2, 1, 0)}
    assert rt["sla"]["first_response"]["met_share"] == 0.25
    assert rt["sla"]["resolution"]["met_share"] == round(2 / 3, 4)
    by_channel = {i["channel_id"]: counts(i) for i in rt["sla_by_channel"]}
    assert by_channel == {w.tg.id: {"first_response": (0, 2, 0), "resolution": (1, 0, 0)},
                          w.mail.id: {"first_response": (1, 1, 0), "resolution": (1, 1, 0)}}
    items = {i["channel_id"]: counts(i["sla"]) for i in rt["items"]}
    assert items[w.mail.id] == by_channel[w.mail.id]
    by_team = {i["name"]: counts(i) for i in rt["sla_by_team"]}
    assert by_team == {"Support": {"first_response": (0, 2, 0), "resolution": (1, 0, 0)},
                       "Sales": {"first_response": (1, 1, 0), "resolution": (1, 1, 0)}}
    by_agent = {i["agent_id"]: counts(i) for i in rt["sla_by_agent"]}
    assert by_agent == {w.ann.id: {"first_response": (0, 1, 0), "resolution": (1, 0, 0)},
                        w.bob.id: {"first_response": (1, 0, 0), "resolution": (0, 1, 0)},
                        admin.id: {"first_response": (0, 1, 0), "resolution": (1, 0, 0)},
                        None: {"first_response": (0, 1, 0), "resolution": (0, 0, 0)}}
    # filters: an agent, a label, a channel
    bob = api.get(f"/reports/response-times?{PERIOD}&agent_id={w.bob.id}").get_json()
    assert counts(bob["sla"]) == {"first_response": (1, 0, 0), "resolution": (0, 1, 0)}
    relabel(w.B, "vip")
    relabel(w.E, "vip")
    rollup()
    vip = api.get(f"/reports/response-times?{PERIOD}&label=vip").get_json()
    assert counts(vip["sla"]) == {"first_response": (1, 1, 0), "resolution": (0, 1, 0)}
    tg = api.get(f"/reports/response-times?{PERIOD}&channel_id={w.tg.id}").get_json()
    assert counts(tg["sla"]) == {"first_response": (0, 2, 0), "resolution": (1, 0, 0)}
    # a target due later than now is pending
    w.E.first_response_due_at = datetime.now(UTC) + timedelta(hours=1)
    db_commit()
    today = datetime.now(ZoneInfo("Europe/Moscow")).date()
    now = api.get(f"/reports/response-times?from={today - timedelta(days=1)}&to={today + timedelta(days=1)}").get_json()
    assert now["sla"]["first_response"]["pending"] == 1
    # CSV: SLA columns per channel; the team and agent tables by name
    rows = list(csv.DictReader(io.StringIO(
        api.get(f"/reports/response-times?{PERIOD}&format=csv").get_data(as_text=True))))
    mail = next(r for r in rows if r["channel_id"] == str(w.mail.id))
    assert (mail["sla_first_response_met"], mail["sla_first_response_breached"],
            mail["sla_resolution_breached"]) == ("1", "1", "1")
    teams = list(csv.DictReader(io.StringIO(api.get(
        f"/reports/response-times?{PERIOD}&format=csv&table=sla_by_team").get_data(as_text=True))))
    sales = next(r for r in teams if r["name"] == "Sales")
    assert (sales["first_response_met"], sales["first_response_breached"],
            sales["first_response_met_share"]) == ("1", "1", "0.5")
    bad = api.get(f"/reports/response-times?{PERIOD}&format=csv&table=nonsense")
    assert bad.status_code == 422 and "sla_by_agent" in str(bad.get_json()["detail"])


def test_business_hours_hand_computed(app, ctx, admin, api):
    """Times in the open hours of the conversation's team (Support: Warsaw, Mon-Fri 09-17)
    and in calendar time, across a weekend on which Warsaw's clocks went back (2026-10-25,
    CEST UTC+2 -> CET UTC+1), reported in Moscow's days (UTC+3). A conversation without a
    team is always open: both clocks agree."""
    from app.domain.agents import create_agent
    from app.infra.models import Channel, Conversation, Customer, Message, Team
    from app.infra.state import db

    set_zone(app, "Europe/Moscow")
    s = db.session
    support = s.query(Team).filter_by(name="Support").one()
    support.business_hours = {"timezone": "Europe/Warsaw",
                              "days": {d: [["09:00", "17:00"]]
                                       for d in ("mon", "tue", "wed", "thu", "fri")}}
    tg = Channel(kind="telegram", name="TG", settings={})
    mail = Channel(kind="email", name="Mail", settings={})
    ann = create_agent("ann@example.com", "Анна", "password-ann-1", teams=["Support"])
    olga, jan = Customer(name="Ольга"), Customer(name="Jan")
    s.add_all([tg, mail, olga, jan])
    s.flush()

    def msg(c, channel, direction, when, author=None):
        s.add(Message(conversation_id=c.id, customer_id=c.customer_id, channel_id=channel.id,
                      direction=direction, author_id=author.id if author else None, text="…",
                      created_at=at(when), status="sent" if author else "received"))
        s.flush()

    # X (Support): Friday 16:00 Warsaw (CEST) -> answered Monday 10:00 Warsaw (CET)
    x = Conversation(customer_id=olga.id, channel_id=tg.id, team_id=support.id,
                     created_at=at("2026-10-23 14:00"), last_activity_at=at("2026-10-23 14:00"))
    # Y (no team): Saturday, answered in 20 minutes
    y = Conversation(customer_id=jan.id, channel_id=mail.id, created_at=at("2026-10-24 10:00"),
                     last_activity_at=at("2026-10-24 10:00"))
    s.add_all([x, y])
    s.flush()
    msg(x, tg, "in", "2026-10-23 14:00")
    msg(x, tg, "out", "2026-10-26 09:00", ann)  # 67 h calendar; 16-17 Fri + 09-10 Mon = 7200 s
    msg(x, tg, "in", "2026-10-26 15:30")        # Monday 16:30 Warsaw
    msg(x, tg, "out", "2026-10-27 08:30", ann)  # Tuesday 09:30: 17 h calendar; 3600 s open
    msg(y, mail, "in", "2026-10-24 10:00")
    msg(y, mail, "out", "2026-10-24 10:20", ann)  # 1200 s on both clocks
    s.commit()
    x.status, x.resolved_at = "resolved", at("2026-10-27 09:00")   # Tuesday 10:00 Warsaw
    s.commit()
    rollup()
    period = "from=2026-10-23&to=2026-10-27"
    cal = api.get(f"/reports/response-times?{period}").get_json()
    biz = api.get(f"/reports/response-times?{period}&hours=business").get_json()
    assert (cal["clock"], biz["clock"]) == ("calendar", "business")
    assert biz["filters"]["hours"] == "business" and "team" in biz["business_hours"]
    c, b = ({i["channel_id"]: i for i in r["items"]} for r in (cal, biz))
    one = lambda v: {"count": 1, "median": v, "p90": v}   # noqa: E731
    assert c[tg.id]["first_response"] == one(241200)         # 67 h: the clocks went back
    assert b[tg.id]["first_response"] == one(7200)
    assert c[tg.id]["next_response"] == one(61200)
    assert b[tg.id]["next_response"] == one(3600)
    # resolution: Friday 14:00 UTC -> Tuesday 09:00 UTC = 91 h; open: 1 + 8 + 1 h
    assert c[tg.id]["resolution"] == one(327600)
    assert b[tg.id]["resolution"] == one(36000)
    assert c[mail.id]["first_response"] == b[mail.id]["first_response"] == one(1200)
    assert cal["totals"]["first_response"] == {"count": 2, "median": 1200, "p90": 241200}
    assert biz["totals"]["first_response"] == {"count": 2, "median": 1200, "p90": 7200}
    # the agent filter reads the agent's own samples: the same figures
    mine = api.get(f"/reports/response-times?{period}&hours=business&agent_id={ann.id}").get_json()
    assert mine["totals"]["first_response"] == biz["totals"]["first_response"]
    assert {i["channel_id"]: i["resolution"] for i in mine["items"]}[tg.id]["count"] == 0  # nobody resolved as assignee
    ag = {i["agent_id"]: i for i in api.get(f"/reports/agents?{period}&hours=business")
          .get_json()["items"]}
    assert ag[ann.id]["median_first_response"] == 1200 and ag[ann.id]["first_responses"] == 2
    # a day of the period in Moscow: Saturday 24th holds only Y's answer
    sat = api.get("/reports/response-times?from=2026-10-24&to=2026-10-24&hours=business").get_json()
    assert sat["totals"]["first_response"] == one(1200)
    csv_rows = list(csv.DictReader(io.StringIO(api.get(
        f"/reports/response-times?{period}&hours=business&format=csv").get_data(as_text=True))))
    assert next(r for r in csv_rows if r["channel_id"] == str(tg.id))["first_response_median"] == "7200"


def db_commit() -> None:
    from app.infra.state import db

    db.session.commit()


def test_access_and_bad_input(app, ctx, admin, api):
    w = build_world(admin)
    rollup()
    client = app.test_client()
    ann = {"Authorization": f"Bearer {w.ann_token}"}

    def get(path):
        return client.get(f"/api/v1/reports/{path}", headers=ann)

    own = get(f"volume?{PERIOD}")
    assert own.status_code == 200
    assert [i["channel_id"] for i in own.get_json()["items"]] == [w.tg.id]
    assert all(i["channel_id"] == w.tg.id for i in get(f"response-times?{PERIOD}").get_json()["items"])
    assert get(f"volume?{PERIOD}&channel_id={w.mail.id}").status_code == 403
    sales = next(t.id for t in w.bob.teams)
    assert get(f"agents?{PERIOD}&team_id={sales}").status_code == 403
    assert get(f"agents?{PERIOD}&agent_id={w.bob.id}").status_code == 403
    assert get(f"agents?{PERIOD}&agent_id={admin.id}").status_code == 200   # admin is in Support
    for query, field in (("from=2026-11-12&to=2026-11-10", "to"),
                         ("from=2025-01-01&to=2026-11-10", "from"),
                         ("from=11/10/2026", "from"), ("label=vip", "label"),
                         ("table=sla_by_team", "table"),
                         ("channel_id=999999", "channel_id"), ("channel_id=abc", "channel_id"),
                         ("team_id=999999", "team_id"), ("agent_id=999999", "agent_id"),
                         ("format=xml", "format"), ("hours=office", "hours")):
        response = api.get(f"/reports/volume?{query}")
        assert response.status_code == 422, query
        assert field in response.get_json()["detail"]["query"], query
    assert api.get("/reports/nonsense").status_code == 404
    assert app.test_client().get("/api/v1/reports/volume").status_code == 401


def test_a_rollup_reads_the_watermarks_another_rollup_moved(app, ctx, admin, api):
    """The session keeps the state row across commits: a rollup must not fold again what
    another one (the job's thread, a worker) folded since this session last read it (a
    rebuild racing the rollup job counted batches twice)."""
    import threading

    from app.infra.models import Message
    from app.infra.state import db
    from app.usecases import reports

    set_zone(app, "Europe/Moscow")
    w = build_world(admin)
    conversation, customer, channel = w.A.id, w.A.customer_id, w.tg.id
    reports.rollup()
    run_jobs(app)                     # the jobs woken by the world's commits are done
    # this session now holds the state row as it is (and keeps it, as rebuild() does while
    # it calls rollup(): the identity map holds objects weakly)
    held = reports._lock_state(db.session)
    db.session.commit()
    # two more customer messages, written without the ORM (no job is woken)
    with db.session.get_bind().begin() as connection:
        connection.execute(Message.__table__.insert(), [
            {"conversation_id": conversation, "customer_id": customer, "channel_id": channel,
             "direction": "in", "text": "…", "created_at": at("2026-11-11 10:00")}
            for _ in range(2)])

    def elsewhere():
        with app.app_context():
            assert reports.rollup()["messages"] == 2
            db.session.remove()

    other = threading.Thread(target=elsewhere)
    other.start()
    other.join()
    assert reports.rollup()["messages"] == 0     # nothing left for this one
    assert held is not None
    body = api.get(f"/reports/volume?{PERIOD}").get_json()
    assert (body["totals"]["messages_in"], body["totals"]["messages_out"]) == (8, 6)


def test_an_older_aggregate_layout_is_rebuilt(app, ctx, admin, api):
    """After an upgrade that adds aggregate tables (they start empty), the first rollup sees
    the older layout in its state and rebuilds everything from the raw rows."""
    from sqlalchemy import delete, func, select
    from sqlalchemy.orm.attributes import flag_modified

    from app.infra.models import ReportChannelHourly, ReportState, ReportTimeBin
    from app.infra.state import db
    from app.usecases import reports

    set_zone(app, "Europe/Moscow")
    build_world(admin)
    reports.rollup()
    run_jobs(app)
    expected = api.get(f"/reports/response-times?{PERIOD}").get_json()["totals"]
    db.session.execute(delete(ReportTimeBin))
    db.session.execute(delete(ReportChannelHourly))
    state = db.session.get(ReportState, "rollup")
    state.value = {k: v for k, v in state.value.items() if k != "version"}   # as 0015 left it
    flag_modified(state, "value")
    db.session.commit()
    assert api.get(f"/reports/response-times?{PERIOD}").get_json()["totals"]["first_response"]["count"] == 0
    reports.rollup()
    assert db.session.scalar(select(func.count()).select_from(ReportTimeBin)) > 0
    assert api.get(f"/reports/response-times?{PERIOD}").get_json()["totals"] == expected
    assert api.get(f"/reports/volume?{PERIOD}").get_json()["totals"]["messages_in"] == 6


def test_rollup_is_woken_after_commit(app, ctx, admin, api):
    """No explicit rollup: the job queued after the commit folds the new messages in."""
    from app.infra.models import Channel, Conversation, Customer, Message
    from app.infra.state import db

    s = db.session
    channel = Channel(kind="telegram", name="T", settings={})
    customer = Customer(name="Зоя")
    s.add_all([channel, customer])
    s.flush()
    c = Conversation(customer_id=customer.id, channel_id=channel.id)
    s.add(c)
    s.flush()
    s.add(Message(conversation_id=c.id, customer_id=customer.id, channel_id=channel.id,
                  direction="in", text="привет"))
    s.commit()
    run_jobs(app)
    today = datetime.now(UTC).date().isoformat()
    wait_until(lambda: api.get(f"/reports/volume?to={today}").get_json()["totals"]["messages_in"] == 1,
               message="the rollup job to count the message")


# --- the recount ---------------------------------------------------------------------------

LABELS = ["vip", "опт", "returns"]


def random_world(seed: int, admin):
    """Random conversations (some across midnight, some resolved and reopened) over 20 days."""
    from app.domain.agents import create_agent
    from app.infra.models import CannedReply, Channel, Conversation, Customer, Message
    from app.infra.state import db

    from app.infra.models import Team

    rng = random.Random(seed)
    s = db.session
    channels = [Channel(kind=k, name=f"{k}-{n}", settings={})
                for n, k in enumerate(["telegram", "email", "whatsapp"])]
    s.add_all(channels)
    # business hours: Support works in Warsaw on weekdays, Sales has no schedule (always open)
    teams = {t.name: t for t in s.query(Team)}
    teams["Support"].business_hours = {"timezone": "Europe/Warsaw",
                                       "days": {d: [["09:00", "17:00"]]
                                                for d in ("mon", "tue", "wed", "thu", "fri")},
                                       "holidays": ["2026-11-11"]}
    team_ids = [teams["Support"].id, teams["Sales"].id, None]
    agents = [admin] + [create_agent(f"a{n}@example.com", f"Агент {n}", "password-xyz-1")
                        for n in range(3)]
    canned = [CannedReply(shortcut=f"c{n}", text="…") for n in range(3)]
    s.add_all(canned)
    customers = [Customer(name=f"Клиент {n}", source={"channel": "telegram",
                                                        "utm_source": rng.choice(["google", "vk", ""])})
                 for n in range(25)]
    s.add_all(customers)
    s.flush()
    base = at("2026-11-01 00:00")
    for customer in customers:
        count = rng.randint(1, 3)
        for number in range(count):
            last = number == count - 1   # at most one open conversation per customer
            channel = rng.choice(channels)
            when = base + timedelta(minutes=rng.randint(0, 20 * 24 * 60))
            c = Conversation(customer_id=customer.id, channel_id=channel.id, created_at=when,
                             assignee_id=rng.choice(agents).id, team_id=rng.choice(team_ids),
                             labels=rng.sample(LABELS, k=rng.randint(0, 2)))
            s.add(c)
            s.flush()
            for _ in range(rng.randint(1, 8)):
                when += timedelta(minutes=rng.randint(1, 300))
                direction = rng.choice(["in", "in", "out", "out", "note"])
                agent = rng.choice(agents)
                s.add(Message(conversation_id=c.id, customer_id=customer.id,
                              channel_id=None if direction == "note" else rng.choice(channels).id,
                              direction=direction, text="…", created_at=when,
                              author_id=agent.id if direction != "in" else None,
                              automated=direction == "out" and rng.random() < 0.1,
                              canned_reply_id=rng.choice(canned).id
                              if direction == "out" and rng.random() < 0.4 else None))
            s.flush()
            if rng.random() < 0.6 or not last:
                c.status, c.resolved_at = "resolved", when + timedelta(minutes=rng.randint(1, 600))
                s.commit()
                if rng.random() < 0.3:
                    c.status = "open"
                    s.commit()
                    if rng.random() < 0.5 or not last:
                        c.status, c.resolved_at = "resolved", c.resolved_at + timedelta(hours=5)
            s.commit()
    return channels, agents


def recount(first_day: date, last_day: date, tz: ZoneInfo, label: str | None = None) -> dict:
    """Everything again, straight from messages, conversations and customers (with a label:
    the messages and conversations of conversations carrying it now)."""
    from sqlalchemy import select

    from app.domain.business_hours import always_open, business_minutes_between
    from app.infra.models import Conversation, Customer, Message, Team
    from app.infra.state import db
    from app.usecases.reports import bin_of

    schedule = {c.id: (db.session.get(Team, c.team_id).business_hours if c.team_id else None)
                for c in db.session.scalars(select(Conversation))}

    def business(cid, begin, finish):
        hours = schedule[cid]
        if always_open(hours):
            return max(0, int((finish - begin).total_seconds()))
        return round(business_minutes_between(hours, begin, finish) * 60)

    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=tz)
    end = datetime(last_day.year, last_day.month, last_day.day, tzinfo=tz) + timedelta(days=1)
    messages = [m for m in db.session.scalars(select(Message).order_by(Message.id))
                if m.direction in ("in", "out")]
    labelled = {c.id for c in db.session.scalars(select(Conversation))
                if label is None or label in (c.labels or [])}
    volume = defaultdict(lambda: defaultdict(int))
    reach = defaultdict(set)
    first_seen: dict[int, datetime] = {}
    first_message: dict[int, Message] = {}
    for m in messages:   # new vs returning: the customer's first message in any conversation
        first_seen[m.customer_id] = min(first_seen.get(m.customer_id, m.created_at), m.created_at)
    messages = [m for m in messages if m.conversation_id in labelled]
    for m in messages:
        first_message.setdefault(m.conversation_id, m)
        if start <= m.created_at < end:
            volume[m.channel_id]["messages_" + m.direction] += 1
            reach[m.channel_id].add(m.customer_id)
    automated = sum(1 for m in messages if m.direction == "out" and m.automated
                    and start <= m.created_at < end)
    by_source = defaultdict(int)
    for m in first_message.values():
        if start <= m.created_at < end:
            volume[m.channel_id]["conversations"] += 1
            source = db.session.get(Customer, m.customer_id).source or {}
            by_source[source.get("utm_source") or ""] += 1
    for channel_id, customers in reach.items():
        volume[channel_id]["customers"] = len(customers)
        volume[channel_id]["new_customers"] = sum(start <= first_seen[c] < end for c in customers)
    # replies per agent (authored outbound messages), and how many used a canned reply
    replies: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for m in messages:
        if m.direction == "out" and m.author_id and start <= m.created_at < end:
            replies[m.author_id][0] += 1
            replies[m.author_id][1] += m.canned_reply_id is not None
    # responses: an agent's (not a bot's) reply to the oldest unanswered customer message,
    # in calendar seconds and in the open hours of the conversation's team
    first, nxt = defaultdict(list), defaultdict(list)
    first_b, nxt_b = defaultdict(list), defaultdict(list)
    waiting: dict[int, datetime] = {}
    answered: set[int] = set()
    for m in messages:
        if m.direction == "in":
            waiting.setdefault(m.conversation_id, m.created_at)
        elif not m.automated and m.conversation_id in waiting:
            since = waiting.pop(m.conversation_id)
            seconds = max(0, int((m.created_at - since).total_seconds()))
            if start <= m.created_at < end:
                is_next = m.conversation_id in answered
                (nxt if is_next else first)[m.channel_id].append(seconds)
                (nxt_b if is_next else first_b)[m.channel_id].append(
                    business(m.conversation_id, since, m.created_at))
            answered.add(m.conversation_id)
    resolution, resolution_b = defaultdict(list), defaultdict(list)
    for c in db.session.scalars(select(Conversation)):
        if c.status == "resolved" and c.resolved_at and start <= c.resolved_at < end \
                and c.id in first_message:
            resolution[first_message[c.id].channel_id].append(
                max(0, int((c.resolved_at - c.created_at).total_seconds())))
            resolution_b[first_message[c.id].channel_id].append(
                business(c.id, c.created_at, c.resolved_at))

    def at_rank(values, fraction):
        # the histograms' precision, computed here from the raw samples: the nearest-rank
        # sample's bin (reports.bin_of), answered as the mean of the samples in that bin
        ordered = sorted(values)
        pick = ordered[max(0, -(-int(fraction * 10) * len(ordered) // 10) - 1)]
        same = [v for v in values if bin_of(v) == bin_of(pick)]
        return (2 * sum(same) + len(same)) // (2 * len(same))

    def stats(values):
        return {"count": len(values), "median": at_rank(values, 0.5), "p90": at_rank(values, 0.9)}

    def per_channel(groups):
        out = {k: stats(v) for k, v in groups.items()}
        everything = [v for vs in groups.values() for v in vs]
        if everything:
            out[None] = stats(everything)
        return out

    return {"volume": {k: dict(v) for k, v in volume.items()},
            "first": per_channel(first), "next": per_channel(nxt),
            "resolution": per_channel(resolution),
            "first_b": per_channel(first_b), "next_b": per_channel(nxt_b),
            "resolution_b": per_channel(resolution_b),
            "replies": {k: v for k, v in replies.items()},
            "automated": automated,
            "total_customers": len(set().union(*reach.values())) if reach else 0,
            "sources": dict(by_source)}


def shuffle_labels(seed: int) -> None:
    """Labels added and taken off after the messages were folded, and new messages in
    relabelled conversations (folded after the change)."""
    from sqlalchemy import select

    from app.infra.models import Conversation, Message
    from app.infra.state import db

    rng = random.Random(seed)
    s = db.session
    conversations = list(s.scalars(select(Conversation).order_by(Conversation.id)))
    for c in rng.sample(conversations, len(conversations) // 2):
        c.labels = rng.sample(LABELS, k=rng.randint(0, 2))
    s.commit()
    for c in rng.sample(conversations, 5):
        last = s.scalars(select(Message).where(Message.conversation_id == c.id)
                         .order_by(Message.created_at.desc())).first()
        s.add(Message(conversation_id=c.id, customer_id=c.customer_id, channel_id=c.channel_id,
                      direction="in", text="…", created_at=last.created_at + timedelta(hours=1)))
        c.labels = [*c.labels, "поздно"] if "поздно" not in c.labels else c.labels
    s.commit()


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/New_York"])
def test_aggregates_equal_a_full_recount(app, ctx, admin, api, monkeypatch, zone):
    from app.usecases import reports

    set_zone(app, zone)
    random_world(20, admin)
    monkeypatch.setattr(reports, "BATCH", 17)   # many batches, each its own transaction
    rollup()
    rollup()                                    # idempotent: nothing is counted twice
    shuffle_labels(21)
    rollup()
    seen = set()
    for (first_day, last_day), label in itertools.product(
            ((date(2026, 11, 3), date(2026, 11, 9)), (date(2026, 10, 25), date(2026, 11, 30))),
            (None, "vip", "опт", "поздно")):
        expected = recount(first_day, last_day, ZoneInfo(zone), label)
        q = f"from={first_day}&to={last_day}" + (f"&label={label}" if label else "")
        if expected["first"] and expected["volume"]:
            seen.add(label)
        volume = api.get(f"/reports/volume?{q}").get_json()
        got = {i["channel_id"]: {k: i[k] for k in ("messages_in", "messages_out", "conversations",
                                                   "customers", "new_customers") if i[k]}
               for i in volume["items"] if i["messages_in"] + i["messages_out"]}
        assert got == {k: {n: c for n, c in v.items() if c} for k, v in expected["volume"].items()}
        assert volume["totals"]["customers"] == expected["total_customers"]
        sources = api.get(f"/reports/sources?{q}").get_json()["items"]
        assert {i["utm_source"]: i["conversations"] for i in sources} == expected["sources"]
        for hours, suffix in (("calendar", ""), ("business", "_b")):
            body = api.get(f"/reports/response-times?{q}&hours={hours}").get_json()
            assert body["clock"] == hours
            rt = {i["channel_id"]: i for i in body["items"]}
            for key, name in (("first", "first_response"), ("next", "next_response"),
                              ("resolution", "resolution")):
                got = {cid: i[name] for cid, i in rt.items() if i[name]["count"]}
                if body["totals"][name]["count"]:
                    got[None] = body["totals"][name]
                assert got == expected[key + suffix], (key, hours, q)
        ag = api.get(f"/reports/agents?{q}").get_json()["items"]
        assert {i["agent_id"]: [i["replies"], i["canned_replies"]] for i in ag if i["replies"]} \
            == expected["replies"], q
        bot = api.get(f"/reports/bot?{q}").get_json()["items"]
        assert sum(i["automated_replies"] for i in bot) == expected["automated"], q
    assert expected["first"] and expected["resolution"]   # the world is not trivially empty
    assert seen == {None, "vip", "опт", "поздно"}         # nor is any label's part of it
    # business hours made a difference somewhere (Support's weekday hours, the holiday)
    everything = recount(date(2026, 10, 25), date(2026, 11, 30), ZoneInfo(zone))
    assert everything["first_b"][None] != everything["first"][None]
    assert everything["resolution_b"][None]["median"] < everything["resolution"][None]["median"]

    # every aggregate table, as the incremental folds left it, equals a rebuild from scratch
    before = aggregate_rows()
    reports.rebuild()
    assert aggregate_rows() == before


def aggregate_rows() -> dict[str, list]:
    """Every aggregate row (without surrogate ids), sorted; rows whose counts are all zero
    are the same as absent ones."""
    from sqlalchemy import select

    from app.infra.state import db
    from app.usecases.reports import AGGREGATES

    out = {}
    for model in AGGREGATES:
        name = model.__name__
        columns = [c for c in model.__table__.columns if c.name != "id"]
        rows = [tuple(str(v) for v in row) for row in db.session.execute(select(*columns))]
        out[name] = sorted(rows)
        assert rows or name in ("ReportLabelChange",), name   # none of them is empty here
    db.session.commit()
    return out


def test_late_commit_below_the_watermark_is_counted(app, ctx, admin, api, backend):
    """A message whose id was taken before a later one committed is counted when it commits."""
    if backend != "postgres":
        pytest.skip("SQLite serializes writers: ids always commit in order")
    from sqlalchemy.orm import Session

    from app.infra.models import Channel, Conversation, Customer, Message
    from app.infra.state import db

    s = db.session
    channel = Channel(kind="telegram", name="T", settings={})
    customer = Customer(name="Зоя")
    s.add_all([channel, customer])
    s.flush()
    c = Conversation(customer_id=customer.id, channel_id=channel.id)
    s.add(c)
    s.commit()

    def message():
        return Message(conversation_id=c.id, customer_id=customer.id, channel_id=channel.id,
                       direction="in", text="…")

    with Session(db.engine) as slow:
        early = message()
        slow.add(early)
        slow.flush()                 # id taken, not committed
        later = message()
        s.add(later)
        s.commit()
        assert later.id > early.id
        rollup()
        today = datetime.now(UTC).date().isoformat()
        count = lambda: api.get(f"/reports/volume?to={today}").get_json()["totals"]["messages_in"]  # noqa: E731
        assert count() == 1
        slow.commit()
    rollup()
    assert count() == 2


def test_a_reply_carries_its_canned_reply_and_is_counted(app, ctx, admin, api, telegram_api):
    """POST a reply with canned_reply_id (as the composer does): stored, returned, counted."""
    from app.infra.models import CannedReply
    from app.infra.state import db
    from tests import inbox_helpers as h

    support, _sales = h.channels(telegram_api)
    h.inbound(support, 901, "Здравствуйте", "Мария")
    canned = CannedReply(shortcut="цена", text="Цена — 100 ₽")
    db.session.add(canned)
    db.session.commit()
    conversation = api.get("/conversations").get_json()["items"][0]["id"]
    bad = api.post(f"/conversations/{conversation}/messages",
                   json={"text": "…", "canned_reply_id": 424242})
    assert bad.status_code == 422 and "canned_reply_id" in bad.get_json()["detail"]["json"]
    sent = api.post(f"/conversations/{conversation}/messages",
                    json={"text": "Цена — 100 ₽", "canned_reply_id": canned.id})
    assert sent.status_code == 201 and sent.get_json()["canned_reply_id"] == canned.id
    api.post(f"/conversations/{conversation}/messages", json={"text": "без шаблона"})
    rollup()
    today = datetime.now(UTC).date().isoformat()
    usage = api.get(f"/reports/canned-usage?to={today}").get_json()
    assert [(i["shortcut"], i["uses"]) for i in usage["items"]] == [("цена", 1)]
    assert usage["totals"] == {"replies": 2, "canned_replies": 1, "share": 0.5}


def test_merging_customers_is_followed(app, ctx, admin, api):
    """A merge moves messages with bulk updates: reach and new/returning follow it (and an
    unmerge puts them back), equal to a recount."""
    from app.domain.merge import merge, unmerge
    from app.infra.models import Customer, CustomerMerge
    from app.infra.state import db

    set_zone(app, "Europe/Moscow")
    w = build_world(admin)
    rollup()
    q = f"from=2026-11-10&to=2026-11-12"
    before = api.get(f"/reports/volume?{q}").get_json()["totals"]
    assert (before["customers"], before["new_customers"]) == (3, 2)
    # Piotr (c2, email only) turns out to be Jan (c3, Telegram, first seen on the 9th)
    c2, c3 = db.session.get(Customer, w.c2.id), db.session.get(Customer, w.c3.id)
    record = merge(db.session, c3, c2, admin)
    db.session.commit()
    rollup()
    after = api.get(f"/reports/volume?{q}").get_json()
    assert (after["totals"]["customers"], after["totals"]["new_customers"]) == (2, 1)
    expected = recount(date(2026, 11, 10), date(2026, 11, 12), ZoneInfo("Europe/Moscow"))
    assert {i["channel_id"]: i["customers"] for i in after["items"] if i["customers"]} == \
        {k: v["customers"] for k, v in expected["volume"].items()}
    unmerge(db.session, db.session.get(CustomerMerge, record.id), admin)
    db.session.commit()
    rollup()
    again = api.get(f"/reports/volume?{q}").get_json()["totals"]
    assert (again["customers"], again["new_customers"]) == (3, 2)


def test_reports_page_needs_login_and_lists_only_own_channels(app, ctx, admin):
    from app.infra.extensions import limiter
    from app.infra.state import db

    w = build_world(admin)
    db.session.commit()
    client = app.test_client()
    response = client.get("/reports")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    limiter.reset()
    page = client.get("/login").get_data(as_text=True)
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"email": "ann@example.com", "password": "password-ann-1",
                                "csrf_token": token})
    html = client.get("/reports").get_data(as_text=True)
    assert "TG бот" in html and "Почта" not in html      # Ann's team sees Telegram only
    assert "vendor/uPlot.min.css" in html and "reports.js" in html
