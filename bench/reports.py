"""Reports at scale (issue 20): generate a year of conversations, fold them into the reports'
aggregates (the rollup, timed as messages/s), then time every report for a 30-day period
through the API (Flask's test client: routing, token auth, the queries, JSON/CSV; no socket)
and print p50/p95 per report.

    python -m bench.reports [--backend sqlite|postgres] [--messages 20000] [--runs 20]

SQLite: a fresh file under a temporary folder. PostgreSQL: THREADLINE_BENCH_DATABASE_URL
(default postgresql://postgres@127.0.0.1:5432/threadline_bench), wiped first. Targets (issue
20): p95 <= 300 ms per report at 2,000,000 messages on PostgreSQL and 1,000,000 on SQLite.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPORTS = ("volume", "response-times", "agents", "canned-usage", "sources", "csat", "bot")
PG_URL = os.environ.get("THREADLINE_BENCH_DATABASE_URL",
                        "postgresql://postgres@127.0.0.1:5432/bench_reports")
CHUNK = 10_000


def _config(url: str, data_dir: Path) -> dict:
    from app.infra.config import load_config

    return load_config(path=data_dir / "absent.toml", environ={}, overrides={
        "database_url": url, "redis_url": "", "data_dir": str(data_dir),
        "secret_key": "bench-secret-key-0123456789", "server": {"pollers": False},
        "log": {"level": "WARNING"}})


def _wipe_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


LABELS = ("delivery", "returns", "payment", "wholesale", "vip")
MESSAGE_COPY = ("uuid", "conversation_id", "customer_id", "channel_id", "direction", "author_id",
                "content_type", "text", "status", "attempts", "created_at", "deleted",
                "automated", "history", "meta", "canned_reply_id")


def _bulk_messages(session, rows: list[tuple]) -> None:
    """PostgreSQL: COPY (psycopg's copy protocol); SQLite: one executemany of plain tuples.
    Neither goes through the ORM: 2,000,000 rows in minutes, not hours."""
    connection = session.connection()
    raw = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY messages ({', '.join(MESSAGE_COPY)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    else:
        marks = ", ".join("?" * len(MESSAGE_COPY))
        raw.cursor().executemany(
            f"INSERT INTO messages ({', '.join(MESSAGE_COPY)}) VALUES ({marks})",
            [(*r[:10], r[10].astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"), *r[11:])
             for r in rows])


def generate(messages: int, seed: int = 20) -> dict:
    """Rows for customers (messages/20), conversations (messages/10) and messages over the
    last 365 days: customers write, agents answer after 1-180 minutes, 40% of replies from a
    canned reply, 70% of conversations resolved, a few orders per buyer; 0-2 labels per
    conversation; an SLA policy (first response 60 min, resolution 24 h) on every
    conversation, a breach row where the first answer came late."""
    import uuid

    from sqlalchemy import insert, select

    from app.domain.agents import create_agent
    from app.infra.models import (CannedReply, Channel, Conversation, Customer, Order,
                                  SlaBreach, SlaPolicy, Team)
    from app.infra.state import db

    rng = random.Random(seed)
    s = db.session
    teams = [Team(name="Support"), Team(name="Sales")]
    s.add_all(teams)
    channels = [Channel(kind=k, name=f"{k} {n}", settings={}, teams=[teams[n % 2]])
                for n, k in enumerate(["telegram", "whatsapp", "email", "webchat"])]
    s.add_all(channels)
    s.flush()
    agents = [create_agent(f"agent{n}@bench.local", f"Agent {n}", "bench-password-1",
                           role="admin" if n == 0 else "agent",
                           teams=["Support" if n % 2 else "Sales"]) for n in range(10)]
    canned = [CannedReply(shortcut=f"script{n}", text="…") for n in range(8)]
    s.add_all(canned)
    policy = SlaPolicy(name="Standard", first_response_minutes=60, resolution_minutes=24 * 60)
    s.add(policy)
    s.commit()
    now = datetime.now(timezone.utc)
    customers = max(1, messages // 20)
    sources = [{"channel": "webchat", "utm": {"utm_source": src, "utm_campaign": camp}}
               for src in ("google", "yandex", "vk", "facebook") for camp in ("spring", "brand")]
    s.execute(insert(Customer), [{"name": f"Customer {c}", "source": rng.choice(sources),
                                  "created_at": now - timedelta(days=365)}
                                 for c in range(customers)])
    customer_ids = list(s.scalars(select(Customer.id).order_by(Customer.id)))
    per_conversation = 10
    conversations = max(1, messages // per_conversation)
    made = 0
    open_customers: set[int] = set()
    team_of = {c.id: c.teams[0].id for c in channels}
    step = CHUNK // per_conversation
    for start in range(0, conversations, step):
        batch, plans = [], []
        for _ in range(min(step, conversations - start)):
            created = now - timedelta(days=365 * rng.random())
            customer = rng.choice(customer_ids)
            # at most one open conversation per customer
            resolved = rng.random() < 0.7 or customer in open_customers
            if not resolved:
                open_customers.add(customer)
            times, at = [], created
            for _j in range(per_conversation):
                at += timedelta(minutes=rng.randint(1, 180))
                times.append(at)
            channel = rng.choice(channels).id
            batch.append({"customer_id": customer, "channel_id": channel,
                          "team_id": team_of[channel],
                          "status": "resolved" if resolved else "pending",
                          "assignee_id": rng.choice(agents).id, "created_at": created,
                          "last_activity_at": times[-1],
                          "labels": rng.sample(LABELS, k=rng.choice((0, 0, 1, 1, 2))),
                          "sla_policy_id": policy.id,
                          "first_response_due_at": created + timedelta(minutes=60),
                          "first_response_at": times[1],
                          "resolution_due_at": created + timedelta(hours=24),
                          "resolved_at": times[-1] + timedelta(hours=rng.randint(0, 24))
                          if resolved else None})
            plans.append(times)
        ids = s.execute(insert(Conversation).returning(Conversation.id, Conversation.customer_id,
                                                       Conversation.channel_id,
                                                       Conversation.assignee_id,
                                                       Conversation.team_id), batch).all()
        rows, breaches = [], []
        for (cid, customer, channel, assignee, team), times, plan in zip(ids, plans, batch):
            for j, at in enumerate(times):
                inbound = j % 2 == 0
                agent = rng.choice(agents).id
                rows.append((str(uuid.UUID(int=rng.getrandbits(128))), cid, customer, channel,
                             "in" if inbound else "out", None if inbound else agent, "text",
                             "…", "received" if inbound else "sent", 0, at, False, False, "[]",
                             "{}", rng.choice(canned).id
                             if not inbound and rng.random() < 0.4 else None))
            if plan["first_response_at"] > plan["first_response_due_at"]:
                breaches.append({"conversation_id": cid, "policy_id": policy.id,
                                 "kind": "first_response", "due_at": plan["first_response_due_at"],
                                 "breached_at": plan["first_response_due_at"], "team_id": team,
                                 "assignee_id": assignee})
        _bulk_messages(s, rows)
        if breaches:
            s.execute(insert(SlaBreach), breaches)
        made += len(rows)
        s.commit()
    s.execute(insert(Order), [{"customer_id": rng.choice(customer_ids),
                               "placed_at": now - timedelta(days=365 * rng.random()),
                               "total": rng.choice([49, 129, 3490]), "currency": "RUB"}
                              for _ in range(customers // 2)])
    s.commit()
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text_("ANALYZE"))
        s.commit()
    return {"messages": made, "conversations": conversations, "customers": customers}


BUILD_SQL = [
    "TRUNCATE report_hourly, report_daily_customers, report_customer_first, "
    "report_conversations, report_responses, report_labels, report_label_hourly, "
    "report_label_daily_customers, report_channel_hourly, report_reach, report_agent_daily, "
    "report_time_bins",
    # the status log the rollup's reset writes (the same statement)
    """INSERT INTO report_status_changes (conversation_id, channel_id, agent_id, old_status,
           new_status, at)
       SELECT id, channel_id, assignee_id, NULL, status, resolved_at FROM conversations
       WHERE status = 'resolved' AND resolved_at IS NOT NULL
         AND id NOT IN (SELECT conversation_id FROM report_status_changes)""",
    """CREATE TEMP TABLE bench_m ON COMMIT DROP AS
       SELECT id, conversation_id, customer_id, COALESCE(channel_id, 0) AS channel_id, direction,
              CASE WHEN direction = 'out' THEN COALESCE(author_id, 0) ELSE 0 END AS agent_id,
              COALESCE(canned_reply_id, 0) AS canned_reply_id, automated, created_at,
              date_trunc('hour', created_at AT TIME ZONE :tz) AT TIME ZONE :tz AS bucket,
              (created_at AT TIME ZONE :tz)::date AS day
       FROM messages WHERE direction IN ('in', 'out') AND id <= :wm""",
    """INSERT INTO report_labels (conversation_id, label)
       SELECT DISTINCT id, left(btrim(l), 100) FROM conversations,
              jsonb_array_elements_text(labels) AS l WHERE btrim(l) <> ''""",
    """INSERT INTO report_hourly (bucket, channel_id, agent_id, direction, canned_reply_id,
              messages, automated)
       SELECT bucket, channel_id, agent_id, direction, canned_reply_id,
              count(*), count(*) FILTER (WHERE automated) FROM bench_m
       GROUP BY 1, 2, 3, 4, 5""",
    """INSERT INTO report_daily_customers (day, channel_id, agent_id, customer_id)
       SELECT DISTINCT day, channel_id, agent_id, customer_id FROM bench_m""",
    # first message of each conversation (by id, as the rollup meets them): its start
    """CREATE TEMP TABLE bench_first ON COMMIT DROP AS
       SELECT DISTINCT ON (conversation_id) conversation_id, channel_id, created_at, bucket
       FROM bench_m ORDER BY conversation_id, id""",
    """INSERT INTO report_hourly (bucket, channel_id, agent_id, direction, canned_reply_id,
              messages, automated)
       SELECT bucket, channel_id, 0, 'conv', 0, count(*), 0 FROM bench_first GROUP BY 1, 2""",
    """INSERT INTO report_label_hourly (label, bucket, channel_id, agent_id, direction,
              canned_reply_id, messages, automated)
       SELECT l.label, bucket, channel_id, agent_id, direction,
              canned_reply_id, count(*), count(*) FILTER (WHERE automated)
       FROM bench_m m JOIN report_labels l USING (conversation_id) GROUP BY 1, 2, 3, 4, 5, 6
       UNION ALL
       SELECT l.label, bucket, channel_id, 0, 'conv', 0, count(*), 0
       FROM bench_first f JOIN report_labels l USING (conversation_id) GROUP BY 1, 2, 3""",
    """INSERT INTO report_label_daily_customers (label, day, channel_id, agent_id, customer_id)
       SELECT DISTINCT l.label, day, channel_id,
              agent_id, customer_id FROM bench_m m JOIN report_labels l USING (conversation_id)""",
    """INSERT INTO report_customer_first (customer_id, first_at, channel_id, source_channel,
              utm_source, utm_medium, utm_campaign, referrer, deep_link)
       SELECT DISTINCT ON (m.customer_id) m.customer_id, m.created_at, m.channel_id,
              left(COALESCE(c.source->>'channel', ''), 40),
              left(COALESCE(NULLIF(c.source->'utm'->>'utm_source', ''), c.source->>'utm_source', ''), 200),
              left(COALESCE(NULLIF(c.source->'utm'->>'utm_medium', ''), c.source->>'utm_medium', ''), 200),
              left(COALESCE(NULLIF(c.source->'utm'->>'utm_campaign', ''), c.source->>'utm_campaign', ''), 200),
              left(CASE WHEN position('://' IN COALESCE(c.source->>'referrer', '')) > 0
                        THEN split_part(split_part(c.source->>'referrer', '://', 2), '/', 1)
                        ELSE COALESCE(c.source->>'referrer', '') END, 200),
              left(COALESCE(c.source->>'deep_link', ''), 200)
       FROM bench_m m JOIN customers c ON c.id = m.customer_id
       ORDER BY m.customer_id, m.created_at, m.id""",
    # responses: the generator's conversations alternate customer / agent (never automated),
    # so every reply answers the message before it, the first of them is the first response
    """CREATE TEMP TABLE bench_r ON COMMIT DROP AS
       SELECT * FROM (
         SELECT m.*, lag(direction) OVER w AS before_direction, lag(created_at) OVER w AS before_at
         FROM bench_m m WINDOW w AS (PARTITION BY conversation_id ORDER BY id)) x
       WHERE direction = 'out' AND NOT automated AND before_direction = 'in'""",
    # business_seconds = seconds: the generator's teams have no schedule (always open)
    """INSERT INTO report_responses (conversation_id, channel_id, agent_id, at, seconds, first,
              business_seconds)
       SELECT conversation_id, channel_id, agent_id, created_at,
              GREATEST(0, floor(extract(epoch FROM created_at - before_at)))::int,
              row_number() OVER (PARTITION BY conversation_id ORDER BY id) = 1,
              GREATEST(0, floor(extract(epoch FROM created_at - before_at)))::int FROM bench_r""",
    """INSERT INTO report_conversations (conversation_id, customer_id, channel_id, created_at,
              started_at, first_in_at, awaiting_since, first_response_at,
              first_response_agent_id, resolved_at, resolution_seconds, resolved_agent_id,
              reopened, resolution_business_seconds)
       SELECT c.id, c.customer_id, f.channel_id, c.created_at, f.created_at, i.first_in,
              NULL, r.at, r.agent_id,
              CASE WHEN c.status = 'resolved' THEN c.resolved_at END,
              CASE WHEN c.status = 'resolved' THEN
                   GREATEST(0, floor(extract(epoch FROM c.resolved_at - c.created_at)))::int END,
              CASE WHEN c.status = 'resolved' THEN c.assignee_id END, 0,
              CASE WHEN c.status = 'resolved' THEN
                   GREATEST(0, floor(extract(epoch FROM c.resolved_at - c.created_at)))::int END
       FROM conversations c JOIN bench_first f ON f.conversation_id = c.id
       LEFT JOIN (SELECT conversation_id, min(created_at) AS first_in FROM bench_m
                  WHERE direction = 'in' GROUP BY 1) i ON i.conversation_id = c.id
       LEFT JOIN report_responses r ON r.conversation_id = c.id AND r.first""",
    # the coarse rows (migration 0016): sums and projections of the fine rows above
    """INSERT INTO report_channel_hourly (label, bucket, channel_id, direction, messages, automated)
       SELECT '', bucket, channel_id, direction, sum(messages), sum(automated)
       FROM report_hourly GROUP BY 2, 3, 4
       UNION ALL
       SELECT label, bucket, channel_id, direction, sum(messages), sum(automated)
       FROM report_label_hourly GROUP BY 1, 2, 3, 4""",
    """INSERT INTO report_agent_daily (label, day, agent_id, channel_id, replies, canned_replies)
       SELECT '', (bucket AT TIME ZONE :tz)::date, agent_id, channel_id, sum(messages),
              COALESCE(sum(messages) FILTER (WHERE canned_reply_id <> 0), 0)
       FROM report_hourly WHERE direction = 'out' GROUP BY 2, 3, 4
       UNION ALL
       SELECT label, (bucket AT TIME ZONE :tz)::date, agent_id, channel_id, sum(messages),
              COALESCE(sum(messages) FILTER (WHERE canned_reply_id <> 0), 0)
       FROM report_label_hourly WHERE direction = 'out' GROUP BY 1, 2, 3, 4""",
    """INSERT INTO report_reach (label, day, channel_id, customer_id)
       SELECT DISTINCT '', day, channel_id, customer_id FROM report_daily_customers
       UNION ALL
       SELECT DISTINCT label, day, channel_id, customer_id FROM report_label_daily_customers""",
    """CREATE TEMP TABLE bench_t ON COMMIT DROP AS
       SELECT conversation_id, (at AT TIME ZONE :tz)::date AS day, channel_id,
              CASE WHEN first THEN 'first' ELSE 'next' END AS kind, seconds, business_seconds
       FROM report_responses
       UNION ALL
       SELECT conversation_id, (resolved_at AT TIME ZONE :tz)::date, channel_id, 'resolution',
              resolution_seconds, resolution_business_seconds
       FROM report_conversations WHERE resolved_at IS NOT NULL AND resolution_seconds IS NOT NULL""",
    # reports.bin_of in SQL: exact below 64, else the top 6 bits and the shift
    """INSERT INTO report_time_bins (label, clock, day, channel_id, kind, bin, samples, seconds)
       SELECT label, clock, day, channel_id, kind,
              CASE WHEN v < 64 THEN v
                   ELSE ((32 - position('1' IN v::bit(32)::text) + 1 - 6) << 6)
                        | (v >> (32 - position('1' IN v::bit(32)::text) + 1 - 6)) END,
              count(*), sum(v)
       FROM (SELECT '' AS label, t.* FROM bench_t t
             UNION ALL
             SELECT l.label, t.* FROM bench_t t JOIN report_labels l USING (conversation_id)) x
       CROSS JOIN LATERAL (VALUES ('calendar', x.seconds), ('business', x.business_seconds))
            AS c(clock, v)
       GROUP BY 1, 2, 3, 4, 5, 6""",
    "ANALYZE",
]


def build_aggregates_sql() -> dict:
    """PostgreSQL, bench only: the aggregates the rollup would write, computed set-wise in
    the database (the rollup folds ~3,000 msg/s on an idle core; on this shared machine a
    2,000,000-message fold from scratch takes over an hour). Relies on the generator's shape
    (alternating customer/agent messages, no bots, no notes); `--check` compares every
    report built this way with the product's own rebuild at small scale."""
    from sqlalchemy import func, select, text

    from app.infra.models import CustomerMerge, Message, ReportLabelChange, ReportState, ReportStatusChange
    from app.infra.state import db
    from app.usecases import reports

    s = db.session
    tz = reports.account_zone().key
    wm = s.scalar(select(func.max(Message.id))) or 0
    t0 = time.perf_counter()
    for sql in BUILD_SQL:
        if sql == "ANALYZE":
            continue
        s.execute(text(sql), {"tz": tz, "wm": wm})
    state = reports._fresh_state(tz, s.scalar(select(func.max(CustomerMerge.id))) or 0)
    state["messages"]["wm"] = wm
    state["status"]["wm"] = s.scalar(select(func.max(ReportStatusChange.id))) or 0
    state["labels"]["wm"] = s.scalar(select(func.max(ReportLabelChange.id))) or 0
    row = reports._lock_state(s)
    row.value = state
    s.commit()
    s.execute(text("ANALYZE"))
    s.commit()
    return {"messages": wm, "seconds": round(time.perf_counter() - t0, 1)}


def _all_reports() -> dict:
    from datetime import date

    from app.infra.models import Agent
    from app.infra.state import db
    from app.usecases import reports

    admin = db.session.query(Agent).filter_by(email="agent0@bench.local").one()
    today = datetime.now(timezone.utc).date()
    out = {}
    for days in (30, 200):
        for label in (None, "vip", "returns"):
            for hours in ("calendar", "business"):
                args = {"from": (today - timedelta(days=days - 1)).isoformat(),
                        "to": today.isoformat(), "hours": hours}
                if label:
                    args["label"] = label
                f = reports.parse_filters(args, admin)
                for name in REPORTS:
                    if hours == "business" and name not in ("response-times", "agents"):
                        continue
                    body = reports.run_report(name, f)
                    body.pop("rolled_up_at", None)
                    out[(days, label, hours, name)] = json.loads(json.dumps(body, default=str))
        # the agent filter reads the agent's own samples, not the histograms
        f = reports.parse_filters({"from": (today - timedelta(days=days - 1)).isoformat(),
                                   "to": today.isoformat(), "agent_id": str(admin.id)}, admin)
        for name in ("volume", "response-times"):
            body = reports.run_report(name, f)
            body.pop("rolled_up_at", None)
            out[(days, "agent", "calendar", name)] = json.loads(json.dumps(body, default=str))
    assert date  # noqa
    return out


def check_sql_build() -> None:
    """Every report (30 and 200 days, with and without labels) from the SQL-built
    aggregates equals the same report after the product's rebuild."""
    from app.usecases import reports

    build_aggregates_sql()
    built = _all_reports()
    built_rows = _aggregate_rows()
    reports.rebuild()
    folded = _all_reports()
    folded_rows = _aggregate_rows()
    tables = [t for t in built_rows if built_rows[t] != folded_rows[t]]
    for table in tables:
        extra = sorted(set(built_rows[table]) - set(folded_rows[table]))[:3]
        missing = sorted(set(folded_rows[table]) - set(built_rows[table]))[:3]
        print("TABLE DIFFERS", table, "sql only:", extra, "rebuild only:", missing)
    print(f"check: {len(built_rows)} aggregate tables compared row by row, {len(tables)} differ "
          f"({sum(len(v) for v in built_rows.values()):,} rows)")
    differ = [k for k in built if built[k] != folded[k]]
    for key in differ[:5]:
        print("DIFFERS", key)
        a, b = built[key], folded[key]
        for k in a:
            if a[k] != b.get(k):
                print("  ", k, str(a[k])[:400], "\n   vs", str(b.get(k))[:400])
    print(f"check: {len(built)} reports compared, {len(differ)} differ")
    if differ or tables:
        raise SystemExit(1)


def _aggregate_rows() -> dict[str, list]:
    """Every row of every aggregate table (without surrogate ids), sorted."""
    from sqlalchemy import select

    from app.infra.state import db
    from app.usecases.reports import AGGREGATES

    out = {}
    for model in AGGREGATES:
        name = model.__name__
        columns = [c for c in model.__table__.columns if c.name != "id"]
        out[name] = sorted(tuple(str(v) for v in row) for row in db.session.execute(select(*columns)))
    db.session.commit()
    return out


def text_(sql: str):
    from sqlalchemy import text

    return text(sql)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q * (len(ordered) - 1)))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", help="write the figures to this file too")
    parser.add_argument("--sqlite-file", help="SQLite: the database file (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the data of an earlier run (no wipe, no generation)")
    parser.add_argument("--build", choices=["rollup", "sql"], default="rollup",
                        help="fold the generated rows with the product's rollup (default) or, "
                             "PostgreSQL only, set-wise in SQL (build_aggregates_sql)")
    parser.add_argument("--no-freeze", action="store_true",
                        help="leave the start-up objects to the garbage collector (serve freezes them)")
    parser.add_argument("--check", action="store_true",
                        help="compare every report after --build sql with the product's rebuild")
    args = parser.parse_args()

    from app import create_app
    from app.cli import upgrade_database

    work = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    if args.backend == "postgres":
        if not args.reuse:
            _wipe_postgres(PG_URL)
        url = PG_URL
    else:
        path = Path(args.sqlite_file) if args.sqlite_file else work / "threadline.db"
        if path.exists() and not args.reuse:
            path.unlink()
        url = f"sqlite:///{path}"
    app = create_app(_config(url, work))
    upgrade_database(app)
    if not args.no_freeze:
        # as `threadline serve` does once the app is built (app/server.py)
        import gc

        gc.collect()
        gc.freeze()
    results: dict = {"backend": args.backend, "messages": args.messages}
    with app.app_context():
        from sqlalchemy import func, select

        from app.domain.agents import create_token
        from app.infra.models import Agent, Conversation, Customer, Message
        from app.infra.state import db
        from app.usecases import reports

        if args.check:
            results["generated"] = generate(args.messages)
            check_sql_build()
            return
        if args.reuse:
            results["generated"] = {"messages": db.session.scalar(select(func.count(Message.id))),
                                    "conversations": db.session.scalar(
                                        select(func.count(Conversation.id))),
                                    "customers": db.session.scalar(select(func.count(Customer.id)))}
            if args.build == "sql":
                results["sql_build"] = build_aggregates_sql()
                print(f"sql build {results['sql_build']}", flush=True)
            t0 = time.perf_counter()
            counts = reports.rollup()
            took = time.perf_counter() - t0
            results["rollup_full"] = {"messages": counts["messages"], "seconds": round(took, 2),
                                      "messages_per_s": round(counts["messages"] / max(took, 1e-9))}
            print(f"rollup {results['rollup_full']}", flush=True)
        else:
            t0 = time.perf_counter()
            results["generated"] = generate(args.messages)
            results["generate_s"] = round(time.perf_counter() - t0, 1)
            print(f"generated {results['generated']} in {results['generate_s']} s", flush=True)
            t0 = time.perf_counter()
            counts = reports.rollup()
            took = time.perf_counter() - t0
            results["rollup_full"] = {"messages": counts["messages"], "seconds": round(took, 2),
                                      "messages_per_s": round(counts["messages"] / took)}
            print(f"rollup {results['rollup_full']}", flush=True)
        admin = db.session.query(Agent).filter_by(email="agent0@bench.local").one()
        token = create_token(admin, "bench")
        db.session.commit()
        # incremental: a burst of 1,000 new messages folded in by one rollup
        last = db.session.query(Message).order_by(Message.id.desc()).first()
        now = datetime.now(timezone.utc)
        db.session.add_all([Message(conversation_id=last.conversation_id,
                                    customer_id=last.customer_id, channel_id=last.channel_id,
                                    direction="in" if n % 2 else "out", text="…",
                                    author_id=None if n % 2 else admin.id, created_at=now)
                            for n in range(1000)])
        db.session.commit()
        t0 = time.perf_counter()
        counts = reports.rollup()
        took = time.perf_counter() - t0
        results["rollup_incremental"] = {"messages": counts["messages"], "seconds": round(took, 3),
                                         "messages_per_s": round(counts["messages"] / took)}
        # a larger fold: 20,000 new messages (2,000 recent conversations, 10 each), COPYed in
        # as one commit, folded by the rollup: its throughput against ingest's rate
        import uuid

        recent = db.session.execute(select(Conversation.id, Conversation.customer_id,
                                           Conversation.channel_id)
                                    .order_by(Conversation.id.desc()).limit(2000)).all()
        rows = []
        for cid, customer, channel in recent:
            for j in range(10):
                rows.append((str(uuid.uuid4()), cid, customer, channel,
                             "in" if j % 2 == 0 else "out", None if j % 2 == 0 else admin.id,
                             "text", "…", "received", 0, now + timedelta(seconds=j), False, False,
                             "[]", "{}", None))
        _bulk_messages(db.session, rows)
        db.session.commit()
        t0 = time.perf_counter()
        counts = reports.rollup()
        took = time.perf_counter() - t0
        results["rollup_20k"] = {"messages": counts["messages"], "seconds": round(took, 2),
                                 "messages_per_s": round(counts["messages"] / took)}
        # label changes: 200 conversations of the last 30 days gain "bench-label" (their
        # messages are added to the label's rows), folded in by one rollup
        recent = list(db.session.scalars(select(Conversation).order_by(Conversation.id.desc())
                                         .limit(200)))
        for conversation in recent:
            conversation.labels = [*(conversation.labels or []), "bench-label"]
        db.session.commit()
        t0 = time.perf_counter()
        reports.rollup()
        results["rollup_relabel_200_s"] = round(time.perf_counter() - t0, 3)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    today = datetime.now(timezone.utc).date()
    period = f"from={today - timedelta(days=29)}&to={today}"
    rows = []
    for name in [*REPORTS, *(f"{r}&label=vip" for r in REPORTS if r != "csat")]:
        times = []
        report, _, extra = name.partition("&")
        path = f"/api/v1/reports/{report}?{period}" + (f"&{extra}" if extra else "")
        for run in range(args.runs + 2):
            t0 = time.perf_counter()
            response = client.get(path, headers=headers)
            elapsed = (time.perf_counter() - t0) * 1000
            assert response.status_code == 200, response.get_data(as_text=True)[:300]
            if run >= 2:   # two warm-up calls
                times.append(elapsed)
        rows.append((name, statistics.median(times), pct(times, 0.95)))
    results["reports_ms"] = {name: {"p50": round(p50, 1), "p95": round(p95, 1)}
                             for name, p50, p95 in rows}
    app.extensions["threadline.db"].dispose()

    print(f"\nreports bench: {args.backend}, {results['generated']['messages']:,} messages, "
          f"{results['generated']['conversations']:,} conversations, "
          f"{results['generated']['customers']:,} customers; 30-day period, {args.runs} runs")
    print(f"rollup from scratch: {results['rollup_full']['messages']:,} messages in "
          f"{results['rollup_full']['seconds']} s = {results['rollup_full']['messages_per_s']:,} msg/s")
    print(f"rollup of a 1,000-message burst: {results['rollup_incremental']['seconds']} s = "
          f"{results['rollup_incremental']['messages_per_s']:,} msg/s")
    print(f"rollup of 20,000 new messages: {results['rollup_20k']['seconds']} s = "
          f"{results['rollup_20k']['messages_per_s']:,} msg/s")
    print(f"rollup of 200 conversations gaining a label: {results['rollup_relabel_200_s']} s")
    print(f"\n| report | p50 ms | p95 ms | target p95 | met? |\n|---|---|---|---|---|")
    for name, p50, p95 in rows:
        print(f"| {name} | {p50:.1f} | {p95:.1f} | 300 | {'yes' if p95 <= 300 else 'MISSED'} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
