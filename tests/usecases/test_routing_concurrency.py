"""Two processes creating conversations at the same moment while two rq workers (each with
its sweeper draining the queues) run the rules engine, on PostgreSQL: no agent above capacity,
every conversation assigned or visibly waiting."""
from __future__ import annotations

import multiprocessing
import subprocess

import pytest
from sqlalchemy import func, select

from app.infra.models import Agent, AutomationCursor, Conversation, Event, Team
from app.infra.state import db
from app.usecases import distribution
from tests.conftest import ROOT, SCALE_OUT, cli_env, release_db, telegram_update, threadline_cmd, wait_until

PER_PROCESS = 25
CAPACITY = 5


def _ingest(config, channel_id, offset, barrier, results):
    from app import create_app
    from app.infra.models import Channel
    from app.infra.state import db as worker_db
    from app.usecases import automation
    from app.usecases.ingest import receive

    app = create_app(config)
    with app.app_context():
        channel = worker_db.session.get(Channel, channel_id)
        for n in range(PER_PROCESS):
            barrier.wait(timeout=60)
            try:
                update = telegram_update(offset + n, offset + n, f"Где заказ {offset + n}?")
                receive(channel, str(offset + n), update, process="inline")
                automation.tick()          # a drain racing the workers' drains
                results.put(("ok", n))
            except Exception as exc:
                worker_db.session.rollback()
                results.put(("error", f"{type(exc).__name__}: {exc}"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", SCALE_OUT)
def test_fifty_conversations_at_once_never_overfill_an_agent(backend, app_config, ctx,
                                                             telegram_channel):
    from app.domain.agents import create_agent
    from app.infra.models import AutomationRule, Channel

    support = db.session.scalar(select(Team).where(Team.name == "Support"))
    support.distribution, support.capacity = "round_robin", CAPACITY
    db.session.get(Channel, telegram_channel.id).teams = [support]
    for n in range(3):
        agent = create_agent(f"a{n}@example.com", f"Agent {n}", "agent-password-1",
                             teams=["Support"])
        distribution.set_availability(db.session, agent, "online")
    db.session.add(AutomationRule(name="Distribute", event="conversation_created",
                                  conditions=[], actions=[{"type": "distribute"}],
                                  enabled=True, position=0, options={}))
    db.session.commit()
    channel_id = telegram_channel.id
    release_db()
    workers = [subprocess.Popen(threadline_cmd("worker"), cwd=ROOT, env=cli_env(app_config),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    try:
        spawn = multiprocessing.get_context("spawn")
        barrier, results = spawn.Barrier(2), spawn.Queue()
        procs = [spawn.Process(target=_ingest, args=(app_config, channel_id, offset, barrier,
                                                     results))
                 for offset in (10_000, 20_000)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=180) for _ in range(2 * PER_PROCESS)]
        for proc in procs:
            proc.join(30)
            assert proc.exitcode == 0
        assert [o for o in outcomes if o[0] == "error"] == []

        def settled():
            db.session.expire_all()
            last = db.session.scalar(select(func.max(Event.id)))
            cursor = db.session.get(AutomationCursor, "rules")
            rows = list(db.session.scalars(select(Conversation)))
            db.session.commit()
            return (len(rows) == 2 * PER_PROCESS and cursor is not None
                    and cursor.position >= last
                    and all(c.assignee_id or c.waiting_since for c in rows))
        wait_until(settled, timeout=120, message="the rules engine caught up")
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
    loads = dict(db.session.execute(
        select(Conversation.assignee_id, func.count()).where(
            Conversation.assignee_id.is_not(None), Conversation.status.in_(["open", "pending"]))
        .group_by(Conversation.assignee_id)).all())
    waiting = db.session.scalar(select(func.count(Conversation.id)).where(
        Conversation.assignee_id.is_(None), Conversation.waiting_since.is_not(None)))
    agents = list(db.session.scalars(select(Agent.id)))
    db.session.commit()
    assert len(loads) == 3 and all(n <= CAPACITY for n in loads.values()), loads
    assert sum(loads.values()) == 3 * CAPACITY
    assert waiting == 2 * PER_PROCESS - 3 * CAPACITY
    assert set(loads) <= set(agents)


def _drain(config, team_id, barrier, results):
    from app import create_app
    from app.infra.state import db as worker_db
    from app.usecases import distribution as worker_distribution

    app = create_app(config)
    with app.app_context():
        try:
            barrier.wait(timeout=60)
            assigned = worker_distribution.drain_team(worker_db.session, team_id)
            worker_db.session.commit()
            results.put(("ok", len(assigned)))
        except Exception as exc:
            worker_db.session.rollback()
            results.put(("error", f"{type(exc).__name__}: {exc}"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", SCALE_OUT)
def test_two_teams_sharing_agents_drained_at_the_same_moment(backend, app_config, ctx,
                                                              telegram_channel):
    """The same three agents in Support and Sales, both queues full: two processes drain one
    team each at the same instant. The agents' row locks make the second wait and count the
    first one's assignments (without them both would fill every agent to capacity)."""
    from app.domain.agents import create_agent
    from app.infra.models import Customer
    from app.infra.models import utcnow

    teams = list(db.session.scalars(select(Team).order_by(Team.id)))
    for team in teams:
        team.distribution, team.capacity = "least_loaded", CAPACITY
    for n in range(3):
        agent = create_agent(f"b{n}@example.com", f"Agent {n}", "agent-password-1",
                             teams=[t.name for t in teams])
        distribution.set_availability(db.session, agent, "online")
    now = utcnow()
    for n in range(40):
        customer = Customer(name=f"Клиент {n}")
        db.session.add(customer)
        db.session.flush()
        db.session.add(Conversation(customer_id=customer.id, channel_id=telegram_channel.id,
                                    status="open", team_id=teams[n % 2].id, waiting_since=now))
    db.session.commit()
    release_db()
    for _round in range(2):
        spawn = multiprocessing.get_context("spawn")
        barrier, results = spawn.Barrier(2), spawn.Queue()
        procs = [spawn.Process(target=_drain, args=(app_config, team.id, barrier, results))
                 for team in teams]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(30)
        assert [o for o in outcomes if o[0] == "error"] == []
    loads = dict(db.session.execute(
        select(Conversation.assignee_id, func.count()).where(Conversation.assignee_id.is_not(None))
        .group_by(Conversation.assignee_id)).all())
    db.session.commit()
    assert sorted(loads.values()) == [CAPACITY] * 3, loads
