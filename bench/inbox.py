"""Scenario 3, inbox at scale: generate customers, conversations and messages (Russian,
Polish, English), then time the inbox's reads through the real server's API, and the reads
the API does not offer yet (a team's view, search) as the SQL an implementation would run.
Reference: GET /bench/ping (SELECT 1 through the same server) for API reads; a primary-key
lookup for SQL reads. Then the proposed indexes are built and the SQL reads timed again."""
from __future__ import annotations

import io
import json
import random
import time
import uuid
from urllib.parse import quote
from datetime import datetime, timedelta, timezone

from app.domain.search import stems
from bench import textgen
from bench.common import BenchEnv, Request, Row, at_most, closed_loop, summary

STATUSES = ["open"] * 8 + ["pending"] * 2 + ["snoozed"] + ["resolved"] * 9
SEARCH_WORDS = {"latin common": ["order", "parcel", "zamówienie", "refund"],
                "latin rare": ["zeppelin", "quokka", "oscypek", "pierogi"],
                "cyrillic common": ["доставка", "заказ", "посылка", "скидка"],
                "cyrillic rare": ["самовар", "балалайка", "брусника", "гжель"]}


def generate(env: BenchEnv, customers: int, conversations: int, messages: int) -> dict:
    rng = random.Random(42)
    seeded = env.seeded
    channels = [seeded.telegram_id, seeded.whatsapp_id, *seeded.extra_channel_ids]
    kinds = {seeded.telegram_id: "telegram", seeded.whatsapp_id: "whatsapp"}
    if seeded.extra_channel_ids:
        kinds[seeded.extra_channel_ids[0]] = "email"
        kinds[seeded.extra_channel_ids[1]] = "webchat"
    agents = seeded.agent_ids[:10]
    teams = list(seeded.team_ids.values())
    now = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    cust_rows, ident_rows, conv_rows, msg_rows_n = [], [], [], 0
    langs = []
    for c in range(1, customers + 1):
        lang = textgen.language(rng)
        langs.append(lang)
        channel = channels[c % len(channels)]
        kind = kinds[channel]
        value = (f"c{c}@example.com" if kind == "email" else f"v{c}" if kind == "webchat"
                 else str(800_000_000 + c) if kind == "telegram" else str(79_500_000_000 + c))
        cust_rows.append((c, textgen.name(rng, lang), json.dumps({"channel": kind}),
                          "[]", "{}", now, now))
        ident_rows.append((c, c, kind, value, True, True, now))
    per_customer = max(1, conversations // customers)
    conv_id = 0
    conv_meta = []
    for c in range(1, customers + 1):
        channel = channels[c % len(channels)]
        for k in range(per_customer):
            conv_id += 1
            current = k == per_customer - 1
            status = rng.choice(STATUSES) if current else "resolved"
            assignee = rng.choice(agents) if rng.random() < 0.6 else None
            team = rng.choice(teams) if rng.random() < 0.8 else None
            conv_meta.append([conv_id, c, channel, status, assignee, team])
    # messages spread over conversations; last_activity_at from the newest message
    per_conv = messages // len(conv_meta)
    extra = messages - per_conv * len(conv_meta)
    return {"cust_rows": cust_rows, "ident_rows": ident_rows, "conv_meta": conv_meta,
            "per_conv": per_conv, "extra": extra, "langs": langs, "rng": rng, "now": now,
            "kinds": kinds, "t0": t0}


def _message_rows(plan: dict):
    rng, now, langs, kinds = plan["rng"], plan["now"], plan["langs"], plan["kinds"]
    mid = 0
    for index, (conv_id, customer, channel, status, assignee, team) in enumerate(plan["conv_meta"]):
        n = plan["per_conv"] + (1 if index < plan["extra"] else 0)
        start = now - timedelta(days=365 * rng.random())
        lang = langs[customer - 1]
        at = start
        for j in range(n):
            mid += 1
            at = at + timedelta(minutes=1 + 30 * rng.random())
            inbound = j % 3 != 1
            kind = kinds[channel]
            body = textgen.sentence(rng, lang)
            yield (mid, str(uuid.UUID(int=rng.getrandbits(128), version=4)), conv_id, customer,
                   channel, "in" if inbound else "out", "text",
                   body, f"gen-{mid}" if inbound else None,
                   "received" if inbound else "sent", 0, at, False, False, "[]",
                   json.dumps({"from": f"{kind}:{customer}"}) if inbound else "{}",
                   stems(body))  # what the app's flush hook would store
        plan.setdefault("last", {})[conv_id] = (at, textgen.sentence(rng, lang)[:200])


MSG_COLS = ("id", "uuid", "conversation_id", "customer_id", "channel_id", "direction",
            "content_type", "text", "external_id", "status", "attempts", "created_at",
            "deleted", "automated", "history", "meta", "search_stems")


def load(env: BenchEnv, plan: dict) -> None:
    if env.backend == "postgres":
        import psycopg

        with psycopg.connect(env.database_url) as conn:
            with conn.cursor() as cur:
                # rows go in child-first (messages before their conversations' last activity
                # is known): foreign keys are checked by the data's construction, not per row
                cur.execute("SET session_replication_role = replica")
                with cur.copy("COPY customers (id, name, source, tags, custom_fields, created_at, "
                              "updated_at) FROM STDIN") as copy:
                    for row in plan["cust_rows"]:
                        copy.write_row(row)
                with cur.copy("COPY identities (id, customer_id, kind, value, verified, reachable, "
                              "created_at) FROM STDIN") as copy:
                    for row in plan["ident_rows"]:
                        copy.write_row(row)
                with cur.copy(f"COPY messages ({', '.join(MSG_COLS)}) FROM STDIN") as copy:
                    for row in _message_rows(plan):
                        copy.write_row(row)
                with cur.copy("COPY conversations (id, customer_id, channel_id, status, "
                              "assignee_id, team_id, priority, labels, last_activity_at, "
                              "last_inbound_at, last_message_preview, unread_count, created_at) "
                              "FROM STDIN") as copy:
                    for conv_id, customer, channel, status, assignee, team in plan["conv_meta"]:
                        at, preview = plan["last"][conv_id]
                        copy.write_row((conv_id, customer, channel, status, assignee, team,
                                        "normal", "[]", at, at, preview,
                                        0 if status == "resolved" else 1, at))
                for table in ("customers", "identities", "conversations", "messages"):
                    cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                f"(SELECT max(id) FROM {table}))")
            conn.commit()
        _tally_views(env)   # COPY as a replica fired no trigger: the views' tallies from scratch
        with psycopg.connect(env.database_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    else:
        import sqlite3

        path = env.database_url.split("sqlite:///", 1)[1]
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        iso = lambda d: d.replace(tzinfo=None).isoformat(sep=" ")  # noqa: E731
        conn.executemany("INSERT INTO customers (id, name, source, tags, custom_fields, "
                         "created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                         [(*r[:5], iso(r[5]), iso(r[6])) for r in plan["cust_rows"]])
        conn.executemany("INSERT INTO identities (id, customer_id, kind, value, verified, "
                         "reachable, created_at) VALUES (?,?,?,?,?,?,?)",
                         [(*r[:6], iso(r[6])) for r in plan["ident_rows"]])
        placeholders = ",".join("?" * len(MSG_COLS))
        batch = []
        for row in _message_rows(plan):
            row = list(row)
            row[11] = iso(row[11])
            batch.append(row)
            if len(batch) >= 50_000:
                conn.executemany(f"INSERT INTO messages ({', '.join(MSG_COLS)}) VALUES ({placeholders})", batch)
                batch = []
        if batch:
            conn.executemany(f"INSERT INTO messages ({', '.join(MSG_COLS)}) VALUES ({placeholders})", batch)
        rows = []
        for conv_id, customer, channel, status, assignee, team in plan["conv_meta"]:
            at, preview = plan["last"][conv_id]
            rows.append((conv_id, customer, channel, status, assignee, team, "normal", "[]",
                         iso(at), iso(at), preview, 0 if status == "resolved" else 1, iso(at)))
        conn.executemany("INSERT INTO conversations (id, customer_id, channel_id, status, "
                         "assignee_id, team_id, priority, labels, last_activity_at, "
                         "last_inbound_at, last_message_preview, unread_count, created_at) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        conn.commit()
        conn.close()
        _tally_views(env)   # one row per key, as after the sweep's fold
        conn = sqlite3.connect(path)
        conn.execute("ANALYZE")
        conn.close()


def _tally_views(env: BenchEnv) -> None:
    from app.domain.view_counts import rebuild

    with env.session() as session:
        rebuild(session)


def db_size(env: BenchEnv) -> int:
    if env.backend == "postgres":
        return env.scalar("SELECT pg_database_size(current_database())")
    import os

    path = env.database_url.split("sqlite:///", 1)[1]
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


def _time_api(url: str, requests: list[Request]) -> tuple[list[float], list[bytes]]:
    res = closed_loop(url, requests, 1, keep_bodies=True)
    bad = {s: n for s, n in res.statuses.items() if s != 200}
    if bad:
        raise RuntimeError(f"API answered {bad}: {res.bodies[0][:300]!r}")
    return res.latencies_ms, res.bodies


def run(env: BenchEnv, scale: str, messages: int | None = None) -> tuple[list[Row], dict]:
    if messages is None:
        messages = (2_000_000 if env.backend == "postgres" else 1_000_000) if scale == "full" else 20_000
    customers = max(100, messages // 20)
    conversations = customers * 2
    reps = 200 if scale == "full" else 50
    t0 = time.perf_counter()
    plan = generate(env, customers, conversations, messages)
    load(env, plan)
    gen_s = time.perf_counter() - t0
    size = db_size(env)
    detail = {"customers": customers, "conversations": len(plan["conv_meta"]), "messages": messages,
              "generate_load_s": gen_s, "database_bytes": size}
    seeded = env.seeded
    agent_id = seeded.agent_ids[0]
    token = env.token_for(agent_id)
    auth = {"Authorization": f"Bearer {token}"}
    rng = random.Random(7)
    channels = [seeded.telegram_id, seeded.whatsapp_id, *seeded.extra_channel_ids]
    max_conv = len(plan["conv_meta"])
    del plan
    stack = env.start(workers=1)
    rows: list[Row] = []
    try:
        url = stack.server.url
        api = f"/api/v1/conversations"
        _time_api(url, [Request("GET", f"{api}?status=open", auth)] * 10)  # warm
        ping, _ = _time_api(url, [Request("GET", "/bench/ping", {})] * reps)
        ref = summary(ping)
        detail["api_reference_ms"] = ref
        cases = {
            "first page of open conversations": [Request("GET", f"{api}?status=open&limit=25", auth)] * reps,
            "mine (assignee=me, open)": [Request("GET", f"{api}?status=open&assignee=me&limit=25", auth)] * reps,
            "a channel's view (open)": [Request("GET", f"{api}?status=open&channel_id={channels[i % len(channels)]}&limit=25", auth) for i in range(reps)],
            "open a thread (last 50 messages)": [Request("GET", f"{api}/{rng.randint(1, max_conv)}/messages?limit=50", auth) for _ in range(reps)],
        }
        results = {}
        for name, requests in cases.items():
            lat, bodies = _time_api(url, requests)
            results[name] = summary(lat)
        # the next page: follow next_cursor page after page (keyset)
        _, bodies = _time_api(url, [Request("GET", f"{api}?status=open&limit=25", auth)])
        cursor = json.loads(bodies[0])["next_cursor"]
        lat = []
        for _ in range(reps):
            if not cursor:
                break
            res = closed_loop(url, [Request("GET", f"{api}?status=open&limit=25&cursor={cursor}", auth)], 1,
                              keep_bodies=True)
            lat += res.latencies_ms
            cursor = json.loads(res.bodies[0])["next_cursor"]
        results["the next page (keyset, pages 2…)"] = summary(lat)
        for name, s in results.items():
            rows.append(Row("inbox", name + " p99 (API)", s["p99"], "ms", ref["p99"],
                            "GET /bench/ping p99", "≤ 50 ms", at_most(s["p99"], 50),
                            f"p50 {s['p50']:.1f} ms"))
        detail["api"] = results

        # the rest of the left pane and the search box, through the API as the page calls them
        teams = list(seeded.team_ids.values())
        more = {
            "a team's view (open)": [Request("GET", f"{api}?status=open&team_id={teams[i % len(teams)]}&limit=25", auth) for i in range(reps)],
            "unread counts of every view": [Request("GET", "/api/v1/inbox/views", auth)] * reps,
        }
        for name, requests in more.items():
            lat, _ = _time_api(url, requests)
            s_ = summary(lat)
            results[name] = s_
            rows.append(Row("inbox", name + " p99 (API)", s_["p99"], "ms", ref["p99"],
                            "GET /bench/ping p99", "≤ 50 ms", at_most(s_["p99"], 50),
                            f"p50 {s_['p50']:.1f} ms"))
        searches = {}
        for group, words in SEARCH_WORDS.items():
            requests = [Request("GET", f"/api/v1/search?q={quote(w)}&limit=20", auth) for w in words]
            searches[group], _ = _time_api(url, requests * max(1, reps // 20))
        for script in ("latin", "cyrillic"):
            lat = [x for g, v in searches.items() if g.startswith(script) for x in v]
            ss = summary(lat)
            rows.append(Row("inbox", f"search a {script} word p95 (API; common and rare words)",
                            ss["p95"], "ms", ref["p95"], "GET /bench/ping p95", "p95 ≤ 200 ms",
                            at_most(ss["p95"], 200), f"p50 {ss['p50']:.1f}, max {ss['max']:.1f} ms"))
        detail["search_ms"] = {g: summary(v) for g, v in searches.items()}
    finally:
        stack.stop()
    rows.append(Row("inbox", "database size", size / 1024 / 1024, "MB", None, "",
                    note=f"{messages:,} messages, {customers:,} customers, "
                         f"{detail['conversations']:,} conversations; generated in {gen_s:.0f} s"))
    return rows, detail
