"""Scenario 1, ingest: signed Telegram and WhatsApp webhooks from 64 concurrent clients.

Figures: acknowledged messages/s, p50/p99 acknowledgement latency, then fully processed
messages/s (every event processed, every message in its sender's one conversation) with the
workers running alongside, as in production, and messages/s until the readers of the event
log (rules with the answer bot, outside bots, campaign reactions) read every event logged. Reference: /bench/ref in the same server,
which inserts the same body as one row of the same width, at the same concurrency.
"""
from __future__ import annotations

import time

from sqlalchemy import select

from bench import payloads, textgen
from bench.common import (BenchEnv, Row, at_least, at_most, closed_loop, seeded_random, summary,
                          wait_until)

CONCURRENCY = 64


def build_requests(env: BenchEnv, count: int, senders: int, tag: str, prefix: tuple[str, str] | None = None):
    """Half Telegram, half WhatsApp; `senders` distinct customers per channel."""
    rng = seeded_random(f"ingest-{tag}")
    seeded = env.seeded
    out, expected = [], {}
    for i in range(count):
        lang = textgen.language(rng)
        body = textgen.sentence(rng, lang)
        who = rng.randrange(senders)
        if i % 2 == 0:
            user_id = 500_000_000 + who
            update_id = 10_000_000 + i + (0 if tag == "webhooks" else 50_000_000)
            kw = {"path_prefix": prefix[0]} if prefix else {}
            out.append(payloads.telegram(seeded.telegram_id, update_id, user_id,
                                         textgen.name(rng, lang), body, **kw))
            expected[f"{user_id}:{update_id}"] = f"telegram:{user_id}"
        else:
            wa_id = str(79_160_000_000 + who)
            wamid = f"wamid.bench{tag}{i:08d}"
            kw = {"path_prefix": prefix[1]} if prefix else {}
            out.append(payloads.whatsapp(seeded.whatsapp_id, wamid, wa_id,
                                         textgen.name(rng, lang), body, **kw))
            expected[wamid] = f"whatsapp:{wa_id}"
    return out, expected


def check_placement(env: BenchEnv, expected: dict[str, str]) -> dict:
    """Each expected message stored once, and every sender's messages in one conversation
    that belongs to the customer holding the sender's identity."""
    from app.infra.models import Conversation, Identity, Message

    with env.session() as s:
        identities = {f"{k}:{v}": c for k, v, c in s.execute(
            select(Identity.kind, Identity.value, Identity.customer_id))}
        rows = s.execute(select(Message.external_id, Message.meta, Message.conversation_id,
                                Conversation.customer_id)
                         .join(Conversation, Conversation.id == Message.conversation_id)
                         .where(Message.direction == "in")).all()
    by_sender: dict[str, set[int]] = {}
    found = wrong = 0
    for external_id, meta, conversation_id, customer_id in rows:
        sender = expected.get(external_id)
        if sender is None:
            continue
        found += 1
        # the stored sender handle (WhatsApp stores the phone, "phone:+7…") must belong to
        # the conversation's customer
        if identities.get(meta.get("from")) != customer_id:
            wrong += 1
        by_sender.setdefault(sender, set()).add(conversation_id)
    split = sum(1 for convs in by_sender.values() if len(convs) != 1)
    return {"expected": len(expected), "stored": found, "wrong_customer": wrong,
            "senders_split_over_conversations": split,
            "ok": found == len(expected) and wrong == 0 and split == 0}


def run(env: BenchEnv, scale: str) -> tuple[list[Row], dict]:
    count = 10_000 if scale == "full" else 1_000
    senders = 1_000 if scale == "full" else 200
    stack = env.start()
    try:
        url = stack.server.url
        # warm-up: connections, the ORM's compiled statements, customers' first messages
        warm, _ = build_requests(env, 200, senders, "warm")
        closed_loop(url, warm, 16)
        wait_until(lambda: env.scalar("SELECT count(*) FROM inbound_events "
                                      "WHERE status = 'received'") == 0, 60)
        ref_requests, _ = build_requests(env, count, senders, "ref",
                                         prefix=("/bench/ref?channel=", "/bench/ref?channel="))
        ref = closed_loop(url, ref_requests, CONCURRENCY)
        hooks, expected = build_requests(env, count, senders, "webhooks")
        before = env.scalar("SELECT count(*) FROM inbound_events WHERE status <> 'received'")
        t0 = time.perf_counter()
        res = closed_loop(url, hooks, CONCURRENCY)
        acked_s = time.perf_counter() - t0

        def processed() -> int:
            return env.scalar("SELECT count(*) FROM inbound_events "
                              "WHERE status <> 'received'") - before

        deadline = time.monotonic() + max(120, count / 20)
        done = processed()
        while done < count and time.monotonic() < deadline:
            time.sleep(0.05)
            done = processed()
        processed_s = time.perf_counter() - t0
        # after the drain, the same workers read the committed events (rules with the answer
        # bot, outside bots, campaign reactions): until each reader's cursor passed the
        # newest event logged so far
        newest = env.scalar("SELECT coalesce(max(id), 0) FROM events")
        read_cursors = ("rules", "bots", "campaigns")

        def slowest_reader() -> int:
            return env.scalar("SELECT coalesce(min(position), 0) FROM automation_cursor "
                              "WHERE name IN ('rules', 'bots', 'campaigns')"
                              ) if env.scalar("SELECT count(*) FROM automation_cursor WHERE "
                                              "name IN ('rules', 'bots', 'campaigns')"
                                              ) == len(read_cursors) else 0

        while slowest_reader() < newest and time.monotonic() < deadline + 60:
            time.sleep(0.05)
        read_s = time.perf_counter() - t0
        read_all = slowest_reader() >= newest
        failed = env.scalar("SELECT count(*) FROM inbound_events WHERE status = 'failed'")
        placement = check_placement(env, expected)
    finally:
        stack.stop()
    ack = summary(res.latencies_ms)
    ref_lat = summary(ref.latencies_ms)
    processed_rate = done / processed_s if done >= count else None
    read_rate = done / read_s if done >= count and read_all else None
    detail = {"requests": count, "concurrency": CONCURRENCY, "statuses": res.statuses,
              "reference_statuses": ref.statuses, "ack_latency_ms": ack,
              "reference_latency_ms": ref_lat, "ack_rate": res.rate, "reference_rate": ref.rate,
              "ack_elapsed_s": acked_s, "processed": done, "processed_elapsed_s": processed_s,
              "events_read_elapsed_s": read_s, "events_read_all": read_all,
              "failed_events": failed, "placement": placement}
    note = "" if placement["ok"] and not failed else f"placement {placement}, failed {failed}"
    rows = [
        Row("ingest", "acknowledged msgs/s", res.rate, "msg/s", ref.rate, "one-row insert",
            "≥ 1,000", at_least(res.rate, 1000)),
        Row("ingest", "ack latency p50", ack["p50"], "ms", ref_lat["p50"], "one-row insert"),
        Row("ingest", "ack latency p99", ack["p99"], "ms", ref_lat["p99"], "one-row insert",
            "≤ 50 ms", at_most(ack["p99"], 50)),
        Row("ingest", "fully processed msgs/s", processed_rate, "msg/s", ref.rate,
            "one-row insert", "≥ 500",
            at_least(processed_rate, 500) if placement["ok"] else False, note),
        Row("ingest", "msgs/s through the event readers (rules, bots, campaigns)", read_rate,
            "msg/s", ref.rate, "one-row insert"),
    ]
    return rows, detail
