"""Scenario `wrk`: the ingest acknowledgement driven by Debian's `wrk` (issue 15), so that the
load generator is not the bottleneck (the asyncio one of `ingest` is Python on the same two
cores).

Pre-signed Telegram updates and WhatsApp notifications (half each, distinct update ids and
wamids) are written to a file; bench/wrk_cycle.lua hands them out, each wrk connection
taking its own share, so no delivery repeats while the file lasts. First the reference
(`POST /bench/ref`: the same bodies, one row of the same width inserted), then the webhooks,
each for the same duration and connections, with the workers running as in production.
Figures: acknowledged webhooks/s, p50/p99 (wrk --latency), the reference's, and the fully
processed rate (first request → last event applied). Install wrk with `bench/setup.sh`.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from bench.common import BenchEnv, Row, at_least, at_most
from bench.ingest import build_requests, check_placement

CONNECTIONS = 64
LUA = Path(__file__).resolve().parent / "wrk_cycle.lua"


def write_requests(path: Path, requests) -> None:
    """One request a line: path, header name, header value, body, separated by tabs (JSON
    escapes tabs and newlines inside strings, so a body has none)."""
    with open(path, "w", encoding="utf-8") as out:
        for r in requests:
            name, value = next((k, v) for k, v in r.headers.items() if k != "Content-Type")
            body = r.body.decode()
            assert "\t" not in body and "\n" not in body
            out.write(f"{r.path}\t{name}\t{value}\t{body}\n")


def run_wrk(url: str, requests_file: Path, seconds: int, connections: int = CONNECTIONS,
            threads: int = 2) -> dict:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: run bench/setup.sh (as root)")
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
               "-s", str(LUA), url, "--", str(requests_file), str(threads)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr or out.stdout}")
    return parse_wrk(out.stdout)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(output: str) -> dict:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    percentiles = {f"p{p}": _ms(v) for p, v in
                   re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE)}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {"rate": rate, "requests": total, **percentiles,
            "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1) if errors else "", "raw": output}


def run(env: BenchEnv, scale: str) -> tuple[list[Row], dict]:
    seconds = 30 if scale == "full" else 10
    drain_seconds = 300 if scale == "full" else 30
    senders = 1_000 if scale == "full" else 200
    count = 60_000 if scale == "full" else 20_000   # more than wrk sends in `seconds`
    files = env.work_dir
    hooks, expected = build_requests(env, count, senders, "wrk")
    refs, _ = build_requests(env, count, senders, "wrkref",
                             prefix=("/bench/ref?channel=", "/bench/ref?channel="))
    write_requests(files / "wrk-webhooks.tsv", hooks)
    write_requests(files / "wrk-ref.tsv", refs)
    stack = env.start()
    try:
        url = stack.server.url
        run_wrk(url, files / "wrk-ref.tsv", 2, connections=8)   # warm-up: connections, pool
        ref = run_wrk(url, files / "wrk-ref.tsv", seconds)
        before = env.scalar("SELECT count(*) FROM inbound_events")
        processed_before = env.scalar("SELECT count(*) FROM inbound_events "
                                      "WHERE status <> 'received'")
        t0 = time.perf_counter()
        acked = run_wrk(url, files / "wrk-webhooks.tsv", seconds)
        stored = env.scalar("SELECT count(*) FROM inbound_events") - before

        def left() -> int:
            return env.scalar("SELECT count(*) FROM inbound_events WHERE status = 'received'")

        # the drain's rate: first request -> last event applied, or what was applied
        # within `drain_seconds` when the workers are still behind (the bench's time box)
        deadline = time.monotonic() + drain_seconds
        while left() and time.monotonic() < deadline:
            time.sleep(0.1)
        processed_s = time.perf_counter() - t0
        remaining = left()
        processed = env.scalar("SELECT count(*) FROM inbound_events WHERE status <> 'received'") \
            - processed_before
        failed = env.scalar("SELECT count(*) FROM inbound_events WHERE status = 'failed'")
    finally:
        stack.stop()
    processed_rate = processed / processed_s
    # wrk stops after `seconds`: the messages expected are those of the events applied,
    # each stored once, in its sender's one conversation
    delivered = _stored_keys(env, expected)
    placement = check_placement(env, {k: v for k, v in expected.items() if k in delivered})
    placement["one_message_per_event"] = len(delivered) == processed - failed
    placement["ok"] = placement["ok"] and placement["one_message_per_event"]
    detail = {"seconds": seconds, "connections": CONNECTIONS, "webhooks": _no_raw(acked),
              "reference": _no_raw(ref), "stored": stored, "processed": processed, "left_unprocessed": remaining,
              "failed_events": failed, "processed_elapsed_s": processed_s,
              "placement": placement, "wrk_output": acked["raw"]}
    note = f"{acked['non_2xx']} non-2xx" if acked["non_2xx"] else ""
    rows = [
        Row("wrk", "acknowledged webhooks/s (wrk, 64 connections)", acked["rate"], "msg/s",
            ref["rate"], "one-row insert", "≥ 1,000 and ≥ 0.8× ref",
            bool(at_least(acked["rate"], 1000)) and acked["rate"] >= 0.8 * ref["rate"], note),
        Row("wrk", "ack latency p50", acked.get("p50"), "ms", ref.get("p50"), "one-row insert"),
        Row("wrk", "ack latency p99", acked.get("p99"), "ms", ref.get("p99"), "one-row insert",
            "≤ 50 ms", at_most(acked.get("p99"), 50)),
        Row("wrk", "processed msgs/s (first request → last applied" +
            (f"; {remaining} left after {processed_s:.0f} s)" if remaining else ")"), processed_rate,
            "msg/s", ref["rate"], "one-row insert", "≥ 500",
            at_least(processed_rate, 500) if placement["ok"] else False,
            "" if placement["ok"] and not failed else f"placement {placement}, failed {failed}"),
    ]
    return rows, detail


def _no_raw(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "raw"}


def _stored_keys(env: BenchEnv, expected: dict[str, str]) -> set[str]:
    """Which of the prepared messages wrk actually sent (it stops after `seconds`)."""
    from sqlalchemy import text

    with env.engine.connect() as connection:
        return {row[0] for row in connection.execute(text(
            "SELECT external_id FROM messages WHERE direction = 'in'"))} & set(expected)
