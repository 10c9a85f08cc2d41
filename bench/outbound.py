"""Scenario 4, outbound: 1,000 agents' replies through the API and the outbox to the local
Telegram Bot API and Graph API fakes. Figure: sends/s from the first reply posted to the
last one marked sent; and a check that each reply reached its channel exactly once.
Reference: the same number of bare sendMessage calls straight to a fake, same concurrency.

The clock starts once the stack is warm: the server's app loaded (gunicorn listens before its
worker has imported the app, which took 5-9 s on the shared box and was counted before) and
the workers sending (WARM replies to conversations of their own, sent before the clock)."""
from __future__ import annotations

import json
import time
from collections import Counter

from bench import textgen
from bench.common import (BenchEnv, Request, Row, at_least, closed_loop, cpu_seconds, dumps,
                          seeded_random, summary)

CONCURRENCY = 16
WARM = 16


def seed_conversations(env: BenchEnv, count: int) -> list[tuple[int, str, str]]:
    """`count` customers who wrote once (half Telegram, half WhatsApp), each with an open
    conversation. Returns (conversation_id, channel kind, handle value)."""
    from app.infra.models import Conversation, Customer, Identity, Message, utcnow

    seeded = env.seeded
    out = []
    with env.session() as s:
        for i in range(count):
            kind = "telegram" if i % 2 == 0 else "whatsapp"
            value = str(700_000_000 + i) if kind == "telegram" else str(79_360_000_000 + i)
            channel_id = seeded.telegram_id if kind == "telegram" else seeded.whatsapp_id
            customer = Customer(name=f"Outbound {i}", identities=[Identity(kind=kind, value=value)])
            conversation = Conversation(customer=customer, channel_id=channel_id, status="open",
                                        last_activity_at=utcnow(), last_inbound_at=utcnow())
            s.add(conversation)
            s.flush()
            s.add(Message(conversation_id=conversation.id, customer_id=customer.id,
                          channel_id=channel_id, direction="in", text="Есть вопрос по заказу",
                          external_id=f"seed-{kind}-{i}", status="received",
                          meta={"from": f"{kind}:{value}"}))
            out.append((conversation.id, kind, value))
        s.commit()
    return out


def run(env: BenchEnv, scale: str, fakes=None) -> tuple[list[Row], dict]:
    telegram, graph = fakes
    count = 1000 if scale == "full" else 200
    targets = seed_conversations(env, count + WARM)
    targets, warm_targets = targets[:count], targets[count:]
    rng = seeded_random("outbound")
    run_tag = f"r{time.time_ns() % 10**9}"
    texts = [f"[{run_tag}-{i}] {textgen.sentence(rng, textgen.language(rng))}" for i in range(count)]
    token = env.seeded.admin_token
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    replies = [Request("POST", f"/api/v1/conversations/{conv}/messages", headers,
                       dumps({"text": texts[i]})) for i, (conv, _, _) in enumerate(targets)]

    # reference: bare sendMessage calls to a fresh fake Bot API
    from tests.fakes.telegram_api import FakeTelegramAPI

    with FakeTelegramAPI() as bare:
        bare_url = bare.base_url
        ref_requests = [Request("POST", "/bot123456:REF/sendMessage",
                                {"Content-Type": "application/json"},
                                dumps({"chat_id": 1000 + i, "text": texts[i]})) for i in range(count)]
        ref = closed_loop(bare_url, ref_requests, CONCURRENCY)

    tg_before = len(telegram.calls("sendMessage"))
    stack = env.start()
    try:
        url = stack.server.url
        warm = closed_loop(url, [Request("POST", f"/api/v1/conversations/{conv}/messages",
                                         headers, dumps({"text": f"[warm-{run_tag}] warm up"}))
                                 for conv, _, _ in warm_targets], CONCURRENCY)
        warm_wait = _wait_sent(env, time.monotonic() + 120)
        server_pids, worker_pids = stack.server.worker_pids, [w.proc.pid for w in stack.workers]
        backends0 = _backend_cpu(env)
        cpu0 = (sum(cpu_seconds(p) for p in server_pids), sum(cpu_seconds(p) for p in worker_pids))
        t0 = time.perf_counter()
        posted = closed_loop(url, replies, CONCURRENCY)
        cpu1 = (sum(cpu_seconds(p) for p in server_pids), sum(cpu_seconds(p) for p in worker_pids))
        sent_by_last_post = len([r for r in _statuses(env, run_tag) if r[0] == "sent"])
        _wait_sent(env, time.monotonic() + max(120, count / 5))
        elapsed = time.perf_counter() - t0
        cpu2 = (sum(cpu_seconds(p) for p in server_pids), sum(cpu_seconds(p) for p in worker_pids))
        backends2 = _backend_cpu(env)
        statuses = dict(Counter(r[0] for r in _statuses(env, run_tag)))
        time.sleep(1)  # anything sent twice would show up now
    finally:
        stack.stop()
    tg_calls = [c for c in telegram.calls("sendMessage")[tg_before:]
                if str(c.params.get("text", "")).startswith(f"[{run_tag}-")]
    tg_counts = Counter((str(c.params["chat_id"]), c.params["text"]) for c in tg_calls)
    wa_sent = [b for b in graph.sent() if str((b.get("text") or {}).get("body", "")).startswith(f"[{run_tag}-")]
    wa_counts = Counter((b["to"], b["text"]["body"]) for b in wa_sent)
    expected = Counter()
    for i, (_, kind, value) in enumerate(targets):
        expected[(kind, value, texts[i])] = 1
    got = Counter({("telegram", k[0], k[1]): n for k, n in tg_counts.items()})
    got.update({("whatsapp", k[0], k[1]): n for k, n in wa_counts.items()})
    duplicates = sum(1 for n in got.values() if n > 1)
    missing = sum(1 for k in expected if got.get(k, 0) == 0)
    unexpected = sum(1 for k in got if k not in expected)
    exactly_once = duplicates == 0 and missing == 0 and unexpected == 0
    sent = statuses.get("sent", 0)
    rate = sent / elapsed if sent == count else None
    detail = {"replies": count, "post_statuses": posted.statuses,
              "post_latency_ms": summary(posted.latencies_ms), "elapsed_s": elapsed,
              "posts_per_s": posted.rate, "posts_elapsed_s": posted.elapsed_s,
              "sent_by_last_post": sent_by_last_post,
              # CPU of the web process per reply while the replies were POSTed, and of the
              # web process and the workers per reply over the whole run (first POST to
              # last sent): what the load average cannot blur
              "server_cpu_ms_per_post": (cpu1[0] - cpu0[0]) * 1000 / count,
              "server_cpu_ms_per_reply": (cpu2[0] - cpu0[0]) * 1000 / count,
              "workers_cpu_ms_per_reply": (cpu2[1] - cpu0[1]) * 1000 / count,
              "server_cpu_share_while_posting": (cpu1[0] - cpu0[0]) / posted.elapsed_s,
              "postgres_cpu_ms_per_reply": (sum(backends2.values()) - sum(
                  v for k, v in backends0.items() if k in backends2)) * 1000 / count
              if backends2 else None,
              "warm_statuses": warm.statuses, "warm_wait_s": warm_wait,
              "message_statuses": statuses, "telegram_sends": len(tg_calls),
              "whatsapp_sends": len(wa_sent), "duplicates": duplicates, "missing": missing,
              "unexpected": unexpected, "exactly_once": exactly_once,
              "reference_rate": ref.rate, "reference_latency_ms": summary(ref.latencies_ms)}
    return [
        Row("outbound", f"sends/s ({count} replies, API → outbox → channel)", rate, "send/s",
            ref.rate, "bare sendMessage to the fake", "≥ 200", at_least(rate, 200),
            f"statuses {statuses}; POSTs {posted.rate:.0f}/s, "
            f"p50 {summary(posted.latencies_ms)['p50']:.0f} ms"),
        Row("outbound", "delivered exactly once", 1.0 if exactly_once else 0.0, "",
            None, "", "each once", exactly_once,
            f"{len(tg_calls)} Telegram + {len(wa_sent)} WhatsApp sends; {duplicates} duplicated, "
            f"{missing} missing, {unexpected} unexpected"),
    ], detail


def _backend_cpu(env: BenchEnv) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the bench database (this observer's
    own included), by pid; empty on SQLite or when the server runs elsewhere."""
    if env.backend != "postgres":
        return {}
    pids = [r[0] for r in _rows(env, "SELECT pid FROM pg_stat_activity "
                                     "WHERE datname = current_database()")]
    return {pid: cpu_seconds(pid) for pid in pids}


def _rows(env: BenchEnv, sql: str, **params):
    from sqlalchemy import text

    with env.engine.connect() as connection:
        return connection.execute(text(sql), params).all()


def _wait_sent(env: BenchEnv, deadline: float) -> float:
    """Until no reply is queued or being sent (or the deadline); returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        pending = env.scalar("SELECT count(*) FROM messages WHERE direction = 'out' "
                             "AND status IN ('queued', 'sending')")
        if pending == 0:
            break
        time.sleep(0.05)
    return time.monotonic() - t0


def _statuses(env: BenchEnv, run_tag: str):
    """The statuses of this run's replies (the warm-up's left out)."""
    from sqlalchemy import text

    with env.engine.connect() as connection:
        return connection.execute(text("SELECT status FROM messages WHERE direction = 'out' "
                                       "AND text LIKE :tag"), {"tag": f"[{run_tag}-%"}).all()
