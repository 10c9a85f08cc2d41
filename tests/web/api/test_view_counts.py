"""GET /inbox/views against a recount from scratch: after a random sequence of the changes
that move conversations between views (new inbound messages, read, replies, assignment,
team, status, snooze, labels, a bot taking over, a customer writing from another channel,
merges, a channel's team access changing, rows inserted and deleted by hand, the sweep folding
the tallies in between), the unread counts and totals of every view equal
a count in Python over every conversation, for the admin (every channel) and for an agent
who sees only their teams' channels."""
from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import func, select

from app.domain.view_counts import compact, rebuild
from app.infra.models import (Agent, Channel, Conversation, Customer, Message, Team,
                              ViewTally, utcnow)
from app.infra.state import db
from tests import inbox_helpers as h


def recount(agent_id: int, channels: set[int] | None) -> tuple[dict, dict]:
    """The views' definitions, applied to every conversation row one by one."""
    db.session.expire_all()
    counts: dict[str, int] = {}
    totals: dict[str, int] = {}
    for c in db.session.scalars(select(Conversation)):
        if c.status == "resolved" or (channels is not None and c.channel_id not in channels):
            continue
        keys = []
        if c.status == "snoozed":
            keys.append("snoozed")
        elif c.status == "open":
            keys.append("open")
            if c.assignee_id == agent_id:
                keys.append("mine")
            if c.handled_by is not None:
                keys.append("bot")
            elif c.assignee_id is None:
                keys.append("unassigned")
            keys.append(f"channel:{c.channel_id}")
            if c.team_id is not None:
                keys.append(f"team:{c.team_id}")
            keys += [f"label:{label}" for label in c.labels or []]
        for key in keys:
            totals[key] = totals.get(key, 0) + 1
            if c.unread_count > 0:
                counts[key] = counts.get(key, 0) + 1
    db.session.commit()
    return counts, totals


def nonzero(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if v}


def test_view_counts_equal_a_recount_after_random_changes(app, api, admin, telegram_api):
    support, sales = h.channels(telegram_api)
    worker = h.agent("worker@example.com", "Работник", ["Support"])
    worker_token, worker_id = h.token(worker), worker.id
    admin_id = admin.id
    client = app.test_client()
    teams = {t.name: t.id for t in db.session.scalars(select(Team))}
    support_id, sales_id = support.id, sales.id
    db.session.commit()
    rng = random.Random(15)
    users = list(range(9100, 9112))
    labels = ["vip", "опт", "hurt"]
    done: dict[str, int] = {}
    seen_bot: list[int] = []

    def conversation_ids() -> list[int]:
        ids = list(db.session.scalars(select(Conversation.id).order_by(Conversation.id)))
        db.session.commit()
        return ids

    def check(step: int) -> None:
        db.session.expire_all()
        worker_channels = set(db.session.scalars(
            select(Channel.id).join(Channel.teams).where(Team.id.in_(
                select(Team.id).join(Team.agents).where(Agent.id == worker_id)))))
        db.session.commit()
        for agent_id, headers, channels in (
                (admin_id, None, None),
                (worker_id, {"Authorization": f"Bearer {worker_token}"}, worker_channels)):
            if headers is None:
                got = api.get("/inbox/views").json
            else:
                got = client.get("/api/v1/inbox/views", headers=headers).json
            counts, totals = recount(agent_id, channels)
            assert nonzero(got["counts"]) == counts, (step, agent_id, "counts")
            if agent_id == admin_id and totals.get("bot"):
                seen_bot.append(step)
            assert nonzero(got["totals"]) == totals, (step, agent_id, "totals")
            if channels is not None:
                assert not [k for k in got["totals"] if k.startswith("channel:")
                            and int(k.split(":")[1]) not in channels], step

    for step in range(90):
        ids = conversation_ids()
        op = rng.choice(["inbound"] * 4 + ["read", "assign", "team", "status", "labels", "bot",
                                           "move", "merge", "access", "reply", "bare",
                                           "delete", "compact"])
        if not ids or op == "inbound":
            h.inbound(rng.choice([support, sales]), rng.choice(users), f"сообщение {step}")
        elif op == "read":
            assert api.post(f"/conversations/{rng.choice(ids)}/read").status_code == 200
        elif op == "assign":
            who = rng.choice([admin_id, worker_id, None])
            assert api.patch(f"/conversations/{rng.choice(ids)}",
                             json={"assignee_id": who}).status_code == 200
        elif op == "team":
            assert api.patch(f"/conversations/{rng.choice(ids)}",
                             json={"team_id": rng.choice([*teams.values(), None])}).status_code == 200
        elif op == "status":
            status = rng.choice(["open", "pending", "snoozed", "resolved"])
            body = {"status": status}
            if status == "snoozed":
                body["snoozed_until"] = (utcnow() + timedelta(hours=2)).isoformat()
            answer = api.patch(f"/conversations/{rng.choice(ids)}", json=body)
            # reopening when the customer has another open conversation is refused: fine
            assert answer.status_code in (200, 409, 422), answer.json
        elif op == "labels":
            chosen = rng.sample(labels, rng.randint(0, 2))
            assert api.patch(f"/conversations/{rng.choice(ids)}",
                             json={"labels": chosen}).status_code == 200
        elif op == "bot":        # mostly an open one, so that the Bot view is exercised
            open_ids = list(db.session.scalars(select(Conversation.id).where(
                Conversation.status == "open").order_by(Conversation.id)))
            conversation = db.session.get(Conversation, rng.choice(
                open_ids if open_ids and rng.random() < 0.8 else ids))
            conversation.handled_by = None if conversation.handled_by else "answer_bot"
            db.session.commit()
        elif op == "move":       # the customer's latest message came through the other channel
            conversation = db.session.get(Conversation, rng.choice(ids))
            conversation.channel_id = sales_id if conversation.channel_id == support_id else support_id
            db.session.commit()
        elif op == "merge":
            customers = list(db.session.scalars(select(Customer.id).where(
                Customer.merged_into_id.is_(None)).order_by(Customer.id)))
            db.session.commit()
            if len(customers) >= 2:
                this, other = rng.sample(customers, 2)
                answer = api.post(f"/customers/{this}/merge", json={"other_id": other})
                assert answer.status_code in (201, 409, 422), answer.json
        elif op == "access":      # the Sales bot's channel given to Support, or taken back
            channel = db.session.get(Channel, sales_id)
            support_team = db.session.get(Team, teams["Support"])
            if support_team in channel.teams:
                channel.teams.remove(support_team)
            else:
                channel.teams.append(support_team)
            db.session.commit()
        elif op == "reply":
            answer = api.post(f"/conversations/{rng.choice(ids)}/messages",
                              json={"text": f"ответ {step}"})
            assert answer.status_code in (201, 409, 422), answer.json
        elif op == "bare":       # a row written by hand (no message): the triggers see it too
            customer = Customer(name=f"Без сообщений {step}")
            db.session.add(customer)
            db.session.flush()
            db.session.add(Conversation(customer_id=customer.id, channel_id=support_id,
                                        status=rng.choice(["open", "pending"]),
                                        unread_count=rng.choice([0, 2]), assignee_id=worker_id))
            db.session.commit()
        elif op == "delete":
            bare = db.session.scalars(select(Conversation).join(Customer).where(
                Customer.name.startswith("Без сообщений"), ~select(Message.id).where(
                    Message.conversation_id == Conversation.id).exists())).first()
            if bare is not None:
                db.session.delete(bare)
                done["deleted"] = done.get("deleted", 0) + 1
            db.session.commit()
        elif op == "compact":
            before = db.session.scalar(select(func.count()).select_from(ViewTally))
            db.session.commit()
            assert compact() == before
            assert db.session.scalar(select(func.count()).select_from(ViewTally)) <= before
            db.session.commit()
        done[op] = done.get(op, 0) + 1
        check(step)
    # the sequence did exercise the views: unread and read ones, several kinds of change
    counts, totals = recount(admin_id, None)
    assert totals.get("open", 0) > counts.get("open", 0) > 0 or totals.get("open", 0) > 0
    assert len(done) >= 12 and done.get("deleted"), done
    assert seen_bot, "no step had an open conversation held by a bot"
    # folded: one row per key, and the same figures
    got = api.get("/inbox/views").json
    compact()
    keys = db.session.execute(select(ViewTally.status, ViewTally.channel_id, ViewTally.team_id,
                                     ViewTally.assignee_id, ViewTally.by_bot,
                                     ViewTally.unread)).all()
    db.session.commit()
    assert len(keys) == len(set(keys)) > 0
    assert api.get("/inbox/views").json == got
    # the periodic sweep is what folds them in production
    from app.wiring import sweep

    h.inbound(support, users[0], "после свёртки")
    assert sweep()["view_tallies"] >= 2
    assert nonzero(api.get("/inbox/views").json["counts"]) == recount(admin_id, None)[0]
    got = api.get("/inbox/views").json
    # counted again from scratch (after a bulk load that bypassed the triggers): the same
    rebuild()
    assert api.get("/inbox/views").json == got
