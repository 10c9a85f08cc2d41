"""Two processes ingesting at the same moment on PostgreSQL: no duplicate, no error."""
from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import func, select

from app.infra.models import Conversation, Customer, Identity, InboundEvent, Message
from app.infra.state import db
from tests.conftest import SCALE_OUT, telegram_update

ROUNDS = 15


def _ingest_worker(config, channel_id, plan, barrier, results):
    """Runs in its own process: for each round, wait for the other process, then ingest."""
    from app import create_app
    from app.usecases.ingest import receive
    from app.infra.models import Channel
    from app.infra.state import db as worker_db

    app = create_app(config)
    with app.app_context():
        channel = worker_db.session.get(Channel, channel_id)
        for external_id, payload in plan:
            barrier.wait(timeout=30)
            try:
                result = receive(channel, external_id, payload, process="inline")
                results.put(("ok", result.duplicate))
            except Exception as exc:  # reported to the test, which fails on it
                results.put(("error", f"{type(exc).__name__}: {exc}"))
                worker_db.session.rollback()


def _run_pair(app_config, channel_id, plan_a, plan_b):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_ingest_worker, args=(app_config, channel_id, plan, barrier, results))
             for plan in (plan_a, plan_b)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in range(len(plan_a) + len(plan_b))]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("backend", SCALE_OUT)
def test_same_event_at_the_same_moment_is_one_message(backend, app_config, ctx, telegram_channel):
    plan = [(str(n), telegram_update(n, 1000 + n, f"сообщение {n}")) for n in range(ROUNDS)]
    outcomes = _run_pair(app_config, telegram_channel.id, plan, plan)
    assert [o for o in outcomes if o[0] == "error"] == []
    # each round: exactly one process stored it, the other saw a duplicate
    assert sorted(dup for _, dup in outcomes).count(True) == ROUNDS
    assert db.session.scalar(select(func.count(InboundEvent.id))) == ROUNDS
    assert db.session.scalar(select(func.count(Message.id))) == ROUNDS
    assert db.session.scalar(select(func.count(Customer.id))) == ROUNDS


@pytest.mark.slow
@pytest.mark.parametrize("backend", SCALE_OUT)
def test_one_new_customer_writing_twice_at_once_gets_one_conversation(backend, app_config, ctx,
                                                                      telegram_channel):
    # two different messages of the same new customer, ingested at the same moment
    plan_a = [(f"a{n}", telegram_update(10_000 + n, 5000 + n, "first")) for n in range(ROUNDS)]
    plan_b = [(f"b{n}", telegram_update(20_000 + n, 5000 + n, "second")) for n in range(ROUNDS)]
    outcomes = _run_pair(app_config, telegram_channel.id, plan_a, plan_b)
    assert [o for o in outcomes if o[0] == "error"] == []
    assert db.session.scalar(select(func.count(Message.id))) == 2 * ROUNDS
    assert db.session.scalar(select(func.count(Customer.id))) == ROUNDS
    assert db.session.scalar(select(func.count(Identity.id))) == ROUNDS
    per_customer = db.session.execute(
        select(Conversation.customer_id, func.count()).group_by(Conversation.customer_id)).all()
    assert len(per_customer) == ROUNDS and all(n == 1 for _, n in per_customer)
    failed = db.session.scalar(select(func.count()).select_from(InboundEvent)
                               .where(InboundEvent.status != "processed"))
    assert failed == 0
