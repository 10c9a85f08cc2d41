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


def _drain_worker(config, barrier, results):
    """Runs in its own process: one drain (`process_received`) started with the other's."""
    from app import create_app
    from app.usecases.ingest import process_received

    app = create_app(config)
    with app.app_context():
        barrier.wait(timeout=30)
        try:
            results.put(("ok", process_received()))
        except Exception as exc:  # reported to the test, which fails on it
            results.put(("error", f"{type(exc).__name__}: {exc}"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", SCALE_OUT)
def test_two_drains_racing_for_the_same_new_customers_reapply(backend, app_config, ctx,
                                                              telegram_channel):
    """Issue 15: two workers drain side by side (SKIP LOCKED: each claims its own batch), both
    batches carry the first messages of the same new senders; the batch that loses the race
    for a customer is rolled back and its events re-applied on top of what won."""
    from app.usecases.ingest import receive

    config = {**app_config, "jobs": {**app_config["jobs"], "ingest_batch": ROUNDS}}
    for round_ in range(2):   # batch 1: everyone's first message, batch 2: everyone's second
        for n in range(ROUNDS):
            receive(telegram_channel, f"{round_}-{n}",
                    telegram_update(30_000 + round_ * 100 + n, 7000 + n, f"round {round_}"),
                    process="none")
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    procs = [spawn.Process(target=_drain_worker, args=(config, barrier, results))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    assert [o for o in outcomes if o[0] == "error"] == []
    # a rolled-back batch's events are free again: the other drain may take some of them
    # too (each is applied once: process_event locks the row and skips a processed one)
    assert sum(taken for _, taken in outcomes) >= 2 * ROUNDS
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(InboundEvent)
                             .where(InboundEvent.status != "processed")) == 0
    assert db.session.scalar(select(func.count(Message.id))) == 2 * ROUNDS
    assert db.session.scalar(select(func.count(Customer.id))) == ROUNDS
    assert db.session.scalar(select(func.count(Identity.id))) == ROUNDS
    per_customer = db.session.execute(
        select(Conversation.customer_id, func.count()).group_by(Conversation.customer_id)).all()
    assert len(per_customer) == ROUNDS and all(n == 1 for _, n in per_customer)
