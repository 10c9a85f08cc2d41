"""Scenario 2, live delivery: webhook POST -> `message.created` at 50 connected agents, at a
steady 200 messages/s. References in the same run: a bare Redis publish -> subscribe round
trip, and a bare Socket.IO emit (POST /bench/emit: no database, no job) to the same 50
agents at the same rate.

On PostgreSQL + Redis the agents' sockets are held by `threadline realtime` (the README's
production layout, issue 15) unless `--sockets serve` (bench.run): then by the threading
`serve` as before."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from bench import payloads, textgen
from bench.common import (ROOT, BenchEnv, Request, Row, at_most, dumps, open_loop, seeded_random,
                          summary)

AGENTS = 50
RATE = 200.0


def redis_round_trip(url: str, count: int, rate: float) -> list[float]:
    from redis import Redis

    client = Redis.from_url(url)
    pubsub = client.pubsub()
    pubsub.subscribe("bench-rtt")
    pubsub.get_message(timeout=2)  # the subscribe confirmation
    got: list[float] = []

    def listen() -> None:
        while len(got) < count:
            msg = pubsub.get_message(timeout=2)
            if msg is None:
                if len(got) and not listening:
                    return
                continue
            if msg["type"] == "message":
                got.append((time.time_ns() - int(msg["data"])) / 1e6)

    listening = True
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    for i in range(count):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        client.publish("bench-rtt", str(time.time_ns()))
    listening = False
    thread.join(10)
    pubsub.close()
    return got


def run(env: BenchEnv, scale: str, sockets: str = "realtime") -> tuple[list[Row], dict]:
    seconds = 10 if scale == "full" else 3
    count = int(RATE * seconds)
    seeded = env.seeded
    cookies = [env.session_cookie(a) for a in seeded.agent_ids[:AGENTS]]
    cookie_file = env.work_dir / "cookies.json"
    cookie_file.write_text(json.dumps(cookies))
    out_ping, out_msg = env.work_dir / "live-ping.json", env.work_dir / "live-msg.json"
    via_realtime = sockets == "realtime" and env.scale_out
    stack = env.start(realtime=via_realtime)
    detail: dict = {"agents": AGENTS, "rate": RATE, "messages": count,
                    "sockets": "realtime" if via_realtime else "serve"}
    try:
        url = stack.server.url
        socket_port = stack.realtime.port if via_realtime else stack.server.port
        rng = seeded_random("live")
        senders = 300

        # warm-up: customers exist, conversations open (a steady inbox, not a first contact)
        warm = [payloads.telegram(seeded.telegram_id, 1_000 + i, 600_000_000 + i % senders,
                                  "Warm", "warm up") if i % 2 == 0 else
                payloads.whatsapp(seeded.whatsapp_id, f"wamid.warm{i}", str(79_260_000_000 + i % senders),
                                  "Warm", "warm up") for i in range(senders * 2)]
        open_loop(url, lambda i: warm[i], len(warm), 200)
        time.sleep(3 if env.scale_out else 2)

        def clients(out, expect):
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.clients", "--port", str(socket_port),
                 "--cookies", str(cookie_file), "--n", str(AGENTS), "--mode", "live",
                 "--out", str(out), "--expect", str(expect), "--timeout", "300"],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            ready = proc.stdout.readline().split()
            return proc, ready

        # reference 1: bare Redis round trip (PostgreSQL + Redis stack only)
        if env.redis_url:
            rtt = redis_round_trip(env.redis_url, count, RATE)
            detail["redis_rtt_ms"] = summary(rtt)

        # reference 2: bare Socket.IO emit through the same server to the same agents
        proc, ready = clients(out_ping, 0)
        detail["ready_ping"] = ready

        def ping(i: int) -> Request:
            return Request("POST", "/bench/emit", {"Content-Type": "application/json"},
                           dumps({"seq": i, "t": time.time_ns(), "channel_id": seeded.telegram_id}))

        open_loop(url, ping, count, RATE)
        time.sleep(3)
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        proc.wait(60)
        pings = json.loads(out_ping.read_text())

        # the figure: signed webhooks, processed by the workers, pushed to the agents
        proc, ready = clients(out_msg, count * AGENTS)
        detail["ready_msg"] = ready

        def hook(i: int) -> Request:
            lang = textgen.language(rng)
            text = f"live {i} {time.time_ns()} {textgen.sentence(rng, lang)}"
            if i % 2 == 0:
                return payloads.telegram(seeded.telegram_id, 2_000_000 + i,
                                         600_000_000 + i % senders, textgen.name(rng, lang), text)
            return payloads.whatsapp(seeded.whatsapp_id, f"wamid.live{i}",
                                     str(79_260_000_000 + i % senders), textgen.name(rng, lang), text)

        sent = open_loop(url, hook, count, RATE)
        try:
            proc.wait(max(30, seconds * 4))
        except subprocess.TimeoutExpired:
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            proc.wait(60)
        msgs = json.loads(out_msg.read_text())
    finally:
        stack.stop()
    expected = count * AGENTS
    got = msgs["latencies"]["msg"]
    lost = expected - msgs["distinct"]["msg"]
    # undelivered count as infinitely late: a percentile past the delivered share is missing
    padded = got + [float("inf")] * max(0, lost)
    fig = summary(padded)
    ref = summary(pings["latencies"]["ping"] + [float("inf")] * max(0, count * AGENTS - pings["distinct"]["ping"]))
    detail.update({"webhook_ack_ms": summary(sent.latencies_ms), "webhook_statuses": sent.statuses,
                   "offered_rate": count / sent.elapsed_s, "delivered": msgs["distinct"]["msg"],
                   "expected": expected, "latency_ms": fig, "emit_latency_ms": ref,
                   "clients_connected": msgs["connected"], "closed_early": msgs["closed_early"]})
    fix = lambda v: None if v is None or v == float("inf") else v  # noqa: E731
    rtt = detail.get("redis_rtt_ms")
    note = (f"{msgs['distinct']['msg']:,}/{expected:,} deliveries arrived, sockets on "
            f"{detail['sockets']}")
    rows = [
        Row("live", "webhook → message.created p50", fix(fig["p50"]), "ms", fix(ref["p50"]),
            "bare Socket.IO emit", "≤ 30 ms", at_most(fix(fig["p50"]), 30) if fix(fig["p50"]) else False, note),
        Row("live", "webhook → message.created p99", fix(fig["p99"]), "ms", fix(ref["p99"]),
            "bare Socket.IO emit", "≤ 150 ms", at_most(fix(fig["p99"]), 150) if fix(fig["p99"]) else False),
    ]
    if rtt:
        rows.append(Row("live", "bare Redis pub→sub p50 / p99", rtt["p50"], "ms", rtt["p99"],
                        "its own p99 (reference only)"))
    return rows, detail
