"""Work distribution (issue 17): availability, team distribution with capacity, the queue,
reopened conversations, rules (conditions, actions, failures, loops), activity, SLA.

Every test runs on SQLite (in-process jobs) and on PostgreSQL + Redis (rq worker processes):
messages come in through the real ingest door, the rules engine runs as the job woken after
commit, replies leave through the real outbox to the local fake Telegram API."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.domain.agents import create_token
from app.domain.channels import add_channel
from app.infra.models import (
    Agent,
    AutomationRule,
    CannedReply,
    Conversation,
    ConversationActivity,
    Event,
    SlaBreach,
    Team,
    utcnow,
)
from app.infra.state import db
from app.usecases import automation, distribution
from tests.conftest import release_db, run_jobs
from tests.inbox_helpers import agent as _make_agent
from tests.inbox_helpers import inbound as _inbound


def inbound(channel, user_id: int, text: str, first_name: str = "Анна"):
    from app.infra.models import Channel

    message = _inbound(db.session.get(Channel, channel.id), user_id, text, first_name)
    return _snap(message)


def make_agent(email: str, name: str, teams: list[str]):
    """The agent's id and name: ORM objects do not outlive run_jobs' session release."""
    from types import SimpleNamespace

    found = _make_agent(email, name, teams)
    return SimpleNamespace(id=found.id, name=found.name)


@pytest.fixture
def shop(ctx, telegram_api):
    channel = add_channel("telegram", "Shop bot", {
        "token": "123456:TEST-token", "mode": "webhook", "secret_token": "s3cret-token-value",
        "api_base_url": telegram_api.base_url, "public_url": "https://inbox.example.com"},
        teams=["Support"])
    db.session.commit()
    return _snap(channel)


def _team(name: str):
    return _snap(db.session.scalar(select(Team).where(Team.name == name)))


def _online(*agents: Agent) -> None:
    for a in agents:
        distribution.set_availability(db.session, db.session.get(Agent, a.id), "online")
    db.session.commit()


def _three_agents(team: str = "Support") -> list[Agent]:
    return [make_agent(f"{n}@example.com", name, [team])
            for n, name in (("irina", "Ирина"), ("marek", "Marek"), ("sarah", "Sarah"))]


def _setup_team(mode: str, capacity: int = 2, team: str = "Support") -> Team:
    found = db.session.get(Team, _team(team).id)
    assert distribution.update_team_routing(db.session, found, {
        "distribution": mode, "capacity": capacity}) == {}
    db.session.commit()
    return _snap(found)


def _rule(name: str, event: str, conditions: list, actions: list, **kw) -> AutomationRule:
    rule = AutomationRule(name=name, event=event, conditions=conditions, actions=actions,
                          enabled=True, position=kw.pop("position", 0), options=kw.pop(
                              "options", {}), **kw)
    db.session.add(rule)
    db.session.commit()
    return _snap(rule)


def _distribute_rule() -> AutomationRule:
    return _rule("Distribute", "conversation_created", [], [{"type": "distribute"}])


def _snap(row):
    """A row's columns: API calls in the test end the thread's session, detaching rows."""
    from types import SimpleNamespace

    return SimpleNamespace(**{c.key: getattr(row, c.key) for c in row.__table__.columns})


def _conversations():
    db.session.expire_all()
    found = [_snap(c) for c in db.session.scalars(select(Conversation).order_by(Conversation.id))]
    db.session.commit()
    return found


def _activity(conversation_id: int):
    db.session.expire_all()
    found = [_snap(a) for a in db.session.scalars(select(ConversationActivity).where(
        ConversationActivity.conversation_id == conversation_id)
        .order_by(ConversationActivity.id))]
    db.session.commit()
    return found


def _burst(shop, count: int, start_user: int = 5000, text: str = "Где мой заказ?") -> None:
    for n in range(count):
        inbound(shop, start_user + n, f"{text} #{n}")
    run_jobs(app_of())


def app_of():
    from flask import current_app

    return current_app._get_current_object()


def _bearer(app, agent):
    token = create_token(db.session.get(Agent, agent.id), "tests")
    db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    return client, headers


# --- availability ------------------------------------------------------------------------

def test_availability_is_set_through_the_api_and_announced(app, shop):
    irina = make_agent("irina@example.com", "Ирина", ["Support"])
    client, headers = _bearer(app, irina)
    assert client.get("/api/v1/agents/me/availability", headers=headers).json["status"] == "offline"
    response = client.put("/api/v1/agents/me/availability", json={"status": "away"},
                          headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "away"
    bad = client.put("/api/v1/agents/me/availability", json={"status": "busy"}, headers=headers)
    assert bad.status_code == 422 and "status" in bad.json["detail"]["json"]
    events = list(db.session.scalars(select(Event).where(Event.type == "agent.availability")))
    assert [e.payload["status"] for e in events] == ["away"]
    # automatic: a socket makes the agent online, the last one gone makes them offline
    client.put("/api/v1/agents/me/availability", json={"status": "auto"}, headers=headers)
    distribution.socket_connected(db.session, irina.id, +1)
    assert db.session.get(Agent, irina.id).availability == "online"
    distribution.socket_connected(db.session, irina.id, -1)
    db.session.expire_all()
    assert db.session.get(Agent, irina.id).availability == "offline"
    db.session.commit()
    # a process killed with a page open leaves a count: the next embedded start forgets it
    distribution.socket_connected(db.session, irina.id, +1)
    assert distribution.forget_connections(db.session) == 1
    db.session.expire_all()
    assert db.session.get(Agent, irina.id).availability == "offline"
    db.session.commit()


# --- distribution ------------------------------------------------------------------------

def test_round_robin_with_capacity_and_the_queue_drained_oldest_first(app, shop, api):
    agents = _three_agents()
    _online(*agents)
    _setup_team("round_robin", capacity=2)
    _distribute_rule()
    _burst(shop, 8)
    conversations = _conversations()
    assert len(conversations) == 8
    ids = [a.id for a in agents]
    assert [c.assignee_id for c in conversations[:6]] == ids + ids
    assert [c.assignee_id for c in conversations[6:]] == [None, None]
    assert all(c.waiting_since is not None for c in conversations[6:])
    assert "assigned to Ирина by team Support's round-robin distribution (rule 'Distribute')" \
        in [a.text for a in _activity(conversations[0].id)]
    # Marek resolves one: the oldest waiting conversation (the 7th) goes to him
    response = api.patch(f"/conversations/{conversations[1].id}", json={"status": "resolved"})
    assert response.status_code == 200, response.json
    run_jobs(app)
    after = _conversations()
    assert after[6].assignee_id == agents[1].id and after[6].waiting_since is None
    assert "status set to resolved by Админ Тестовый" in [
        a.text for a in _activity(conversations[1].id)]
    assert after[7].assignee_id is None and after[7].waiting_since is not None
    # snoozing frees capacity too
    api.patch(f"/conversations/{conversations[2].id}", json={
        "status": "snoozed", "snoozed_until": (utcnow() + timedelta(hours=1)).isoformat()})
    run_jobs(app)
    assert _conversations()[7].assignee_id == agents[2].id
    loads = distribution.loads(db.session, ids)
    db.session.commit()
    assert max(loads.values()) <= 2


def test_least_loaded_prefers_the_emptiest_agent(app, shop, api):
    agents = _three_agents()
    _online(*agents)
    _setup_team("least_loaded", capacity=2)
    _burst(shop, 2, start_user=6000)          # no rule yet: nobody assigned
    first, second = _conversations()
    api.patch(f"/conversations/{first.id}", json={"assignee_id": agents[0].id})
    api.patch(f"/conversations/{second.id}", json={"assignee_id": agents[1].id})
    _distribute_rule()
    _burst(shop, 4, start_user=6100)
    new = _conversations()[2:]
    # Sarah (0 open) first, then by load and who waited longest: 1 each -> Ирина, Marek, Sarah
    assert [c.assignee_id for c in new] == [agents[2].id, agents[0].id, agents[1].id,
                                            agents[2].id]


def test_only_online_agents_get_work_and_coming_online_drains_the_queue(app, shop):
    irina, marek, sarah = _three_agents()
    _online(irina)
    client, headers = _bearer(app, marek)
    client.put("/api/v1/agents/me/availability", json={"status": "away"}, headers=headers)
    _setup_team("round_robin", capacity=1)
    _distribute_rule()
    _burst(shop, 3, start_user=7000)
    conversations = _conversations()
    assert [c.assignee_id for c in conversations] == [irina.id, None, None]
    # Marek comes back: the oldest waiting conversation is his at once
    client.put("/api/v1/agents/me/availability", json={"status": "online"}, headers=headers)
    run_jobs(app)
    conversations = _conversations()
    assert conversations[1].assignee_id == marek.id and conversations[2].assignee_id is None


def test_a_reopened_conversation_of_an_offline_agent_is_redistributed(app, shop, api):
    irina, marek, _sarah = _three_agents()
    _online(irina, marek)
    _setup_team("round_robin", capacity=5)
    _distribute_rule()
    message = inbound(shop, 8000, "Dzień dobry")
    run_jobs(app)
    conversation = _conversations()[0]
    assert conversation.assignee_id == irina.id
    api.patch(f"/conversations/{conversation.id}", json={
        "status": "snoozed", "snoozed_until": (utcnow() + timedelta(hours=2)).isoformat()})
    client, headers = _bearer(app, irina)
    client.put("/api/v1/agents/me/availability", json={"status": "offline"}, headers=headers)
    run_jobs(app)
    inbound(shop, 8000, "Halo? Jest tam ktoś?")     # the customer writes again: reopened
    run_jobs(app)
    conversation = _conversations()[0]
    assert conversation.id == message.conversation_id and conversation.status == "open"
    assert conversation.assignee_id == marek.id
    texts = [a.text for a in _activity(conversation.id)]
    assert any("reopened while Ирина is offline" in t for t in texts), texts
    # Marek goes away (not offline): his reopened conversation stays his
    api.patch(f"/conversations/{conversation.id}", json={
        "status": "snoozed", "snoozed_until": (utcnow() + timedelta(hours=2)).isoformat()})
    client, headers = _bearer(app, marek)
    client.put("/api/v1/agents/me/availability", json={"status": "away"}, headers=headers)
    run_jobs(app)
    inbound(shop, 8000, "Jeszcze raz")
    run_jobs(app)
    assert _conversations()[0].assignee_id == marek.id


def test_nobody_gets_a_conversation_they_could_not_open(app, shop):
    """Sales agents cannot see the Support-only shop bot: a rule that moves its conversation
    to Sales leaves it waiting (visible to admins) instead of handing it to someone who would
    never see it; once Sales may see the channel, the next drain assigns it."""
    marek = make_agent("marek@example.com", "Marek", ["Sales"])
    _online(marek)
    sales = _setup_team("round_robin", capacity=3, team="Sales")
    _rule("To Sales", "conversation_created", [],
          [{"type": "assign_team", "team_id": sales.id}, {"type": "distribute"}])
    message = inbound(shop, 9600, "Hej")
    run_jobs(app)
    waiting = _conversations()[0]
    assert waiting.team_id == sales.id and waiting.assignee_id is None
    assert waiting.waiting_since is not None
    from app.infra.models import Channel

    channel = db.session.get(Channel, shop.id)
    channel.teams = [*channel.teams, db.session.get(Team, sales.id)]
    db.session.commit()
    automation.tick()
    run_jobs(app)
    assert _conversations()[0].assignee_id == marek.id
    assert message.conversation_id == waiting.id


def test_the_cursor_waits_for_a_gap_then_gives_up_on_it(app, ctx):
    """On PostgreSQL an event id may commit after a higher one: ids past the gap are done,
    the gap is read when it commits, or skipped after GAP_TIMEOUT (a rollback)."""
    from app.infra.models import AutomationCursor

    release_db()
    run_jobs(app)
    cursor = db.session.get(AutomationCursor, "rules")
    start = cursor.position
    cursor.done = [start + 2, start + 3]          # start + 1 is a transaction not yet committed
    db.session.add_all([Event(id=start + 2, type="test", payload={}),
                        Event(id=start + 3, type="test", payload={})])
    db.session.commit()
    automation.run_automation()
    cursor = db.session.get(AutomationCursor, "rules")
    assert cursor.position == start and cursor.done == [start + 2, start + 3]
    assert cursor.gap_seen_at is not None
    # the late transaction commits: its event is read, the cursor moves past all three
    db.session.add(Event(id=start + 1, type="test", payload={}))
    db.session.commit()
    automation.run_automation()
    cursor = db.session.get(AutomationCursor, "rules")
    assert (cursor.position, cursor.done, cursor.gap_seen_at) == (start + 3, [], None)
    # a gap that never fills (a rolled-back id) is given up after GAP_TIMEOUT
    db.session.add(Event(id=start + 5, type="test", payload={}))
    db.session.commit()
    automation.run_automation()
    cursor = db.session.get(AutomationCursor, "rules")
    assert (cursor.position, cursor.done) == (start + 3, [start + 5])
    cursor.gap_seen_at = utcnow() - automation.GAP_TIMEOUT - timedelta(seconds=1)
    db.session.commit()
    automation.run_automation()
    cursor = db.session.get(AutomationCursor, "rules")
    assert (cursor.position, cursor.done, cursor.gap_seen_at) == (start + 5, [], None)
    db.session.commit()


# --- rules -------------------------------------------------------------------------------

def test_a_rule_routes_polish_customers_to_sales_with_the_reason_logged(app, shop, api):
    marek = make_agent("marek@example.com", "Marek", ["Sales"])
    _online(marek)
    sales = _setup_team("round_robin", capacity=3, team="Sales")
    from app.infra.models import Channel

    channel = db.session.get(Channel, shop.id)      # Sales may see the shop bot too
    channel.teams = [*channel.teams, db.session.get(Team, sales.id)]
    db.session.commit()
    response = api.post("/automation/rules", json={
        "name": "Polish customers → Sales", "event": "conversation_created",
        "conditions": [{"type": "language", "values": ["pl"]}],
        "actions": [{"type": "assign_team", "team_id": sales.id},
                    {"type": "distribute"}, {"type": "add_label", "label": "polski"}]})
    assert response.status_code == 201, response.json
    pl = inbound(shop, 9001, "Dzień dobry, gdzie jest moje zamówienie?", first_name="Zofia")
    ru = inbound(shop, 9002, "Здравствуйте, где мой заказ?")
    run_jobs(app)
    db.session.expire_all()
    polish = db.session.get(Conversation, pl.conversation_id)
    russian = db.session.get(Conversation, ru.conversation_id)
    db.session.commit()
    assert polish.team_id == sales.id and polish.assignee_id == marek.id
    assert "polski" in polish.labels
    assert russian.assignee_id is None and russian.team_id is None
    activity = api.get(f"/conversations/{polish.id}/activity").json["items"]
    texts = [a["text"] for a in activity]
    assert "moved to team Sales by rule 'Polish customers → Sales'" in texts
    assert ("assigned to Marek by team Sales's round-robin distribution "
            "(rule 'Polish customers → Sales')") in texts
    assert api.get(f"/conversations/{russian.id}/activity").json["items"] == []
    bad = api.post("/automation/rules", json={"name": "x", "event": "never",
                                              "actions": [{"type": "fly"}]})
    assert bad.status_code == 422
    assert {"event", "actions.0.type"} <= set(bad.json["detail"]["json"])


def test_words_are_matched_across_case_yo_and_diacritics(app, shop):
    _rule("Complaints", "customer_message",
          [{"type": "text_contains", "words": ["жалоба", "reklamacja", "ZAMÓWIENIE"]}],
          [{"type": "set_priority", "priority": "high"}])
    one = inbound(shop, 9101, "ЖАЛОБА на доставку")
    two = inbound(shop, 9102, "chcę złożyć REKLAMACJĘ")      # a different ending: no match
    three = inbound(shop, 9103, "moje zamowienie nie doszlo")  # no diacritics typed
    run_jobs(app)
    db.session.expire_all()
    priorities = [db.session.get(Conversation, m.conversation_id).priority
                  for m in (one, two, three)]
    db.session.commit()
    assert priorities == ["high", "normal", "high"]


def test_auto_reply_goes_out_through_the_outbox_on_the_customers_channel(app, shop, telegram_api):
    automation.install_standard_rules(db.session)
    greeting = db.session.scalar(select(AutomationRule).where(AutomationRule.standard == "greeting"))
    greeting.enabled = True
    db.session.commit()
    inbound(shop, 4242, "Привет!", first_name="Анна")
    run_jobs(app)
    sent = telegram_api.wait_for("sendMessage")
    assert sent[0].params["chat_id"] in (4242, "4242")
    assert sent[0].params["text"].startswith("Hello Анна! Thank you for writing to us")
    # only once per conversation: a second message is no new conversation
    inbound(shop, 4242, "Ещё вопрос")
    run_jobs(app)
    assert len(telegram_api.calls("sendMessage")) == 1


def test_a_rule_that_cannot_act_is_logged_and_the_conversation_waits_visibly(app, shop, api):
    gone = make_agent("gone@example.com", "Gone", ["Support"])
    reply = CannedReply(shortcut="bye", text="Bye")
    db.session.add(reply)
    db.session.commit()
    rule = _rule("To Gone", "conversation_created", [],
                 [{"type": "assign_agent", "agent_id": gone.id},
                  {"type": "auto_reply", "canned_reply_id": reply.id}])
    db.session.get(Agent, gone.id).active = False
    db.session.delete(db.session.get(CannedReply, reply.id))
    db.session.commit()
    message = inbound(shop, 9200, "Hello?")
    run_jobs(app)
    db.session.expire_all()
    conversation = db.session.get(Conversation, message.conversation_id)
    found = db.session.get(AutomationRule, rule.id)
    db.session.commit()
    assert conversation.assignee_id is None and conversation.waiting_since is not None
    assert conversation.team_id == _team("Support").id
    assert found.failed_count == 2 and "does not exist" in found.last_error
    texts = [a.text for a in _activity(conversation.id)]
    assert f"rule 'To Gone' could not act: agent {gone.id} does not exist or is deactivated" in texts
    assert f"rule 'To Gone' could not act: canned reply {reply.id} does not exist" in texts
    log = api.get(f"/automation/rules/{rule.id}/log").json["items"]
    assert [e["kind"] for e in log] == ["rule_failed", "rule_failed"]
    assert {e["conversation_id"] for e in log} == {conversation.id}
    db.session.commit()
    # and it is in a view agents look at
    unassigned = api.get("/conversations?assignee=none").json["items"]
    listed = [c for c in unassigned if c["id"] == conversation.id]
    assert len(listed) == 1 and listed[0]["waiting_since"] is not None


def test_a_rule_loop_is_stopped(app, shop, api):
    _rule("Resolved → snooze", "status_changed", [{"type": "status", "values": ["resolved"]}],
          [{"type": "snooze", "minutes": 5}])
    _rule("Snoozed → resolve", "status_changed", [{"type": "status", "values": ["snoozed"]}],
          [{"type": "resolve"}])
    message = inbound(shop, 9300, "hi")
    run_jobs(app)
    api.patch(f"/conversations/{message.conversation_id}", json={"status": "resolved"})
    run_jobs(app)
    kinds = [(a.kind, a.text) for a in _activity(message.conversation_id)]
    fired = [k for k in kinds if k[0] == "rule"]
    stopped = [k for k in kinds if k[0] == "loop_stopped"]
    assert len(fired) == 3, kinds           # depth 0, 1, 2 act; depth 3 is stopped
    assert len(stopped) == 1 and "a rule loop stopped" in stopped[0][1]
    release_db()


def test_idle_rule_fires_once_per_quiet_spell(app, shop, api):
    _rule("Stale", "conversation_idle", [{"type": "language", "values": ["ru"]}],
          [{"type": "add_label", "label": "stale"}], options={"minutes": 30})
    russian = inbound(shop, 9700, "Алло, есть кто?")
    english = inbound(shop, 9701, "Hello, anyone there?")
    run_jobs(app)
    db.session.expire_all()
    for message in (russian, english):
        db.session.get(Conversation, message.conversation_id).last_activity_at = \
            utcnow() - timedelta(minutes=31)
    db.session.commit()
    assert automation.fire_idle_rules(db.session) == 2      # both looked at
    db.session.commit()
    assert automation.fire_idle_rules(db.session) == 0      # nothing new since
    db.session.commit()
    labels = {c.id: c.labels for c in _conversations()}
    assert labels[russian.conversation_id] == ["stale"] and labels[english.conversation_id] == []
    # the look at the English one is remembered but not shown in its thread
    assert api.get(f"/conversations/{english.conversation_id}/activity").json["items"] == []
    texts = [a["text"] for a in api.get(f"/conversations/{russian.conversation_id}/activity")
             .json["items"]]
    assert texts == ["labelled stale by rule 'Stale'"]
    # an hour later the customer writes again, then goes quiet again: the rule looks again
    for entry in db.session.scalars(select(ConversationActivity).where(
            ConversationActivity.conversation_id == russian.conversation_id)):
        entry.created_at = entry.created_at - timedelta(hours=1)
    db.session.commit()
    inbound(shop, 9700, "Ну что?")
    db.session.expire_all()
    db.session.get(Conversation, russian.conversation_id).last_activity_at = \
        utcnow() - timedelta(minutes=31)
    db.session.commit()
    assert automation.fire_idle_rules(db.session) == 1
    db.session.commit()
    release_db()


# --- SLA ---------------------------------------------------------------------------------

def test_sla_due_times_in_business_hours_and_breaches_recorded(app, shop, api):
    support = _team("Support")
    assert api.patch(f"/teams/{support.id}/routing", json={"business_hours": {
        "timezone": "Europe/Warsaw", "days": {"mon": [["09:00", "17:00"]]}}}).status_code == 200
    bad = api.patch(f"/teams/{support.id}/routing", json={"business_hours": {
        "timezone": "Mars/Olympus", "days": {"mon": [["18:00", "09:00"]]}}})
    assert bad.status_code == 422
    assert {"business_hours.timezone", "business_hours.days.mon"} <= set(bad.json["detail"]["json"])
    response = api.post("/sla-policies", json={"name": "Support", "team_id": support.id,
                                               "first_response_minutes": 60,
                                               "resolution_minutes": 480})
    assert response.status_code == 201, response.json
    _rule("Support team", "conversation_created", [],
          [{"type": "assign_team", "team_id": support.id}])
    message = inbound(shop, 9400, "Где заказ?")
    run_jobs(app)
    conversation = api.get(f"/conversations/{message.conversation_id}").json
    from datetime import datetime
    from zoneinfo import ZoneInfo

    due = datetime.fromisoformat(conversation["first_response_due_at"]).astimezone(
        ZoneInfo("Europe/Warsaw"))
    # the first business hour after the message: a Monday between 10:00 and 17:00 local
    assert due.weekday() == 0 and (10, 0) <= (due.hour, due.minute) <= (17, 0), due
    resolution = datetime.fromisoformat(conversation["resolution_due_at"]).astimezone(
        ZoneInfo("Europe/Warsaw"))
    assert resolution.weekday() == 0 and resolution > due
    # a conversation past its due time gets a breach on the next tick
    db.session.expire_all()
    row = db.session.get(Conversation, conversation["id"])
    row.first_response_due_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    automation.record_breaches(db.session)
    db.session.commit()
    assert db.session.scalar(select(func.count(SlaBreach.id))) == 1
    automation.record_breaches(db.session)      # recorded once
    db.session.commit()
    assert db.session.scalar(select(func.count(SlaBreach.id))) == 1
    assert any(a.kind == "sla_breached" for a in _activity(conversation["id"]))


def test_sla_warning_rule_escalates_and_crm_conditions(app, shop, api):
    from decimal import Decimal

    from app.infra.models import Deal, Order

    api.post("/sla-policies", json={"name": "Default", "first_response_minutes": 30})
    _rule("Escalate", "sla_warning", [{"type": "open_deal"}],
          [{"type": "set_priority", "priority": "urgent"},
           {"type": "add_note", "text": "SLA at risk for {{customer.first_name}}"}])
    _rule("Buyers", "conversation_created", [{"type": "recent_order", "days": 30}],
          [{"type": "add_label", "label": "buyer"}])
    with_deal = inbound(shop, 9500, "Нужен опт", first_name="Олег")
    plain = inbound(shop, 9501, "Вопрос")
    run_jobs(app)     # the rules judge these conversations before the deal and the order exist
    db.session.add(Deal(customer_id=with_deal.customer_id, title="Опт", stage="new"))
    db.session.add(Order(customer_id=plain.customer_id, placed_at=utcnow() - timedelta(days=3),
                         total=Decimal("10"), currency="PLN"))
    db.session.commit()
    inbound(shop, 9502, "Ещё клиент")
    run_jobs(app)
    db.session.expire_all()
    for message in (with_deal, plain):
        row = db.session.get(Conversation, message.conversation_id)
        assert row.sla_warning_at is not None          # 80% of 30 min after the start
        row.sla_warning_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    automation.fire_sla_warning_rules(db.session)
    db.session.commit()
    automation.fire_sla_warning_rules(db.session)     # once per conversation
    db.session.commit()
    db.session.expire_all()
    escalated = db.session.get(Conversation, with_deal.conversation_id)
    other = db.session.get(Conversation, plain.conversation_id)
    assert (escalated.priority, other.priority) == ("urgent", "normal")
    from app.infra.models import Message as MessageRow

    notes = list(db.session.scalars(select(MessageRow.text).where(
        MessageRow.conversation_id == with_deal.conversation_id, MessageRow.direction == "note")))
    assert notes == ["SLA at risk for Олег"]
    db.session.commit()
    # the customer with the order writes again after resolution: a new conversation, a buyer
    api.patch(f"/conversations/{plain.conversation_id}", json={"status": "resolved"})
    again = inbound(shop, 9501, "Снова я")
    run_jobs(app)
    labels = {c.id: c.labels for c in _conversations()}
    assert again.conversation_id != plain.conversation_id
    assert labels[again.conversation_id] == ["buyer"]
    assert labels[plain.conversation_id] == [] and labels[with_deal.conversation_id] == []


def test_next_response_target_runs_from_each_unanswered_customer_message(app, shop, api,
                                                                          telegram_api):
    assert api.post("/sla-policies", json={"name": "Chat", "first_response_minutes": 60,
                                           "next_response_minutes": 30}).status_code == 201
    first = inbound(shop, 9800, "Здравствуйте")
    run_jobs(app)
    conversation_id = first.conversation_id
    assert api.get(f"/conversations/{conversation_id}").json["next_response_due_at"] is None
    assert api.post(f"/conversations/{conversation_id}/messages",
                    json={"text": "Добрый день!"}).status_code == 201
    run_jobs(app)
    answered = api.get(f"/conversations/{conversation_id}").json
    assert answered["first_response_at"] is not None and answered["next_response_due_at"] is None
    second = inbound(shop, 9800, "А где заказ?")
    run_jobs(app)
    from datetime import datetime

    due = api.get(f"/conversations/{conversation_id}").json["next_response_due_at"]
    assert due is not None
    assert datetime.fromisoformat(due) - second.created_at == timedelta(minutes=30)
    api.post(f"/conversations/{conversation_id}/messages", json={"text": "Уже едет"})
    run_jobs(app)
    assert api.get(f"/conversations/{conversation_id}").json["next_response_due_at"] is None
    inbound(shop, 9800, "Спасибо, а когда?")
    run_jobs(app)
    db.session.expire_all()
    row = db.session.get(Conversation, conversation_id)
    row.next_response_due_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert automation.record_breaches(db.session) == 1
    db.session.commit()
    kinds = list(db.session.scalars(select(SlaBreach.kind)))
    db.session.commit()
    assert kinds == ["next_response"]


# --- pages -------------------------------------------------------------------------------

def test_settings_pages_admin_adds_a_rule_switches_greeting_on_and_agents_get_403(app, shop):
    import re

    from tests.inbox_helpers import PASSWORD
    from tests.web.api.test_inbox_api import _login

    make_agent("plain@example.com", "Plain", ["Support"])
    _make_agent("boss@example.com", "Boss", ["Support"], role="admin")
    with app.app_context():   # a context of its own: requests keep their user in g
        assert app.test_client().get("/settings/rules").status_code == 302   # to the login
        agent_client = app.test_client()
        assert _login(agent_client, "plain@example.com", PASSWORD).status_code == 302
        for path in ("/settings/rules", "/settings/sla"):
            response = agent_client.get(path)
            assert response.status_code == 403 and "Admins only" in response.get_data(as_text=True)
    from app.infra.models import WebhookEndpoint

    hook = WebhookEndpoint(url="http://127.0.0.1:9/crm", secret="s", events=[],
                           description="Our CRM")
    db.session.add(hook)
    db.session.flush()
    _rule("Tell the CRM", "agent_reply", [], [{"type": "webhook", "endpoint_id": hook.id}])
    client = app.test_client()
    assert _login(client, "boss@example.com", PASSWORD).status_code == 302
    page = client.get("/settings/rules").get_data(as_text=True)
    assert "call the webhook Our CRM" in page
    # the standard rules are there, off
    for name in ("Greeting", "Away reply", "Distribute between agents"):
        assert name in page
    assert page.count('aria-checked="false"') == 3 and page.count('aria-checked="true"') == 1
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    sales = _team("Sales")
    added = client.post("/settings/rules", data={
        "csrf_token": csrf, "name": "Polish customers → Sales", "event": "conversation_created",
        "language": "pl", "words": "zamówienie, заказ", "assign_team": str(sales.id),
        "distribute": "1", "enabled": "1"})
    assert added.status_code == 302, added.get_data(as_text=True)
    rule = db.session.scalar(select(AutomationRule).where(
        AutomationRule.name == "Polish customers → Sales"))
    assert rule.enabled and rule.conditions == [
        {"type": "language", "values": ["pl"]},
        {"type": "text_contains", "words": ["zamówienie", "заказ"]}]
    assert rule.actions == [{"type": "assign_team", "team_id": sales.id}, {"type": "distribute"}]
    db.session.commit()
    empty = client.post("/settings/rules", data={"csrf_token": csrf, "name": "",
                                                 "event": "conversation_created"})
    assert empty.status_code == 422 and "Choose at least one action." in empty.get_data(as_text=True)
    greeting = db.session.scalar(select(AutomationRule.id).where(AutomationRule.standard == "greeting"))
    db.session.commit()
    assert client.post(f"/settings/rules/{greeting}/toggle",
                       data={"csrf_token": csrf}).status_code == 302
    db.session.expire_all()
    assert db.session.get(AutomationRule, greeting).enabled
    db.session.commit()
    # a team's distribution and business hours from the page
    saved = client.post(f"/settings/teams/{sales.id}/distribution", data={
        "csrf_token": csrf, "distribution": "least_loaded", "capacity": "3",
        "timezone": "Europe/Warsaw", "day_mon": "09:00-13:00, 14:00-18:00",
        "holidays": "2026-12-25"})
    assert saved.status_code == 302
    db.session.expire_all()
    team = db.session.get(Team, sales.id)
    assert (team.distribution, team.capacity) == ("least_loaded", 3)
    assert team.business_hours == {"timezone": "Europe/Warsaw", "days": {
        "mon": [["09:00", "13:00"], ["14:00", "18:00"]]}, "holidays": ["2026-12-25"]}
    db.session.commit()
    bad = client.post(f"/settings/teams/{sales.id}/distribution", data={
        "csrf_token": csrf, "distribution": "round_robin", "capacity": "3",
        "timezone": "Nowhere/City"})
    assert bad.status_code == 422
    # SLA page: add a policy
    sla = client.post("/settings/sla", data={"csrf_token": csrf, "name": "VIP", "priority": "urgent",
                                             "first_response_minutes": "15"})
    assert sla.status_code == 302
    sla_page = client.get("/settings/sla").get_data(as_text=True)
    assert "VIP" in sla_page and "15 min" in sla_page
    with app.app_context():   # Flask-Babel keeps the locale per context
        ru = app.test_client()
        _login(ru, "boss@example.com", PASSWORD)
        from flask_babel import refresh

        refresh()   # the login page cached English in this context
        ru_page = ru.get("/settings/rules", headers={"Accept-Language": "ru"}).get_data(as_text=True)
        assert "Распределение по командам" in ru_page and "Приветствие" not in ru_page
