"""Scenario 5, memory: RSS per idle agent Socket.IO connection, of the process that holds the
sockets.

- before (issue 15): the threading `serve` (one gunicorn gthread worker), 1,000 connections:
  each websocket holds one thread, so the server runs with server.threads = n + 50;
- after, PostgreSQL + Redis: `threadline realtime` (python-socketio's asyncio server on
  aiohttp) at 1,000 and 10,000 connections (200 and 1,000 at small scale).

Each measure: the holding process's RSS after one warm-up batch of 5 connections made and
dropped (lazy imports paid), then with n idle connections (bench.clients, its `ulimit -n`
raised to the hard limit), per connection. The sockets use the seeded agents' session
cookies, so every connect runs the real handler (session, rooms, connection count)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from bench.common import ROOT, BenchEnv, Row, at_most, rss_kb, thread_count

CONNECTIONS = 1000
REALTIME_CONNECTIONS = (1000, 10000)


def _hold(env: BenchEnv, port: int, pid_of, n: int) -> dict:
    """RSS and threads of the process `pid_of()` before and with n idle connections to
    `port` (asked after the warm-up: gunicorn's worker boots after its master listens)."""
    cookie_file = env.work_dir / "cookies-idle.json"
    cookie_file.write_text(json.dumps([env.session_cookie(a) for a in env.seeded.agent_ids]))
    ready: list[str] = []
    for count in (5, 0):
        proc = subprocess.Popen([sys.executable, "-m", "bench.clients", "--port", str(port),
                                 "--cookies", str(cookie_file), "--n", str(count or n),
                                 "--mode", "idle", "--out", str(env.work_dir / "idle.json"),
                                 "--timeout", "900"],
                                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if count:
            proc.stdout.readline()
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            proc.wait(30)
            time.sleep(1)
            pid = pid_of()
            before, threads_before = rss_kb(pid), thread_count(pid)
            continue
        t0 = time.perf_counter()
        ready = proc.stdout.readline().split()
        connect_s = time.perf_counter() - t0
        time.sleep(3)
        after, threads_after = rss_kb(pid), thread_count(pid)
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        proc.wait(120)
    connected = int(ready[1]) if len(ready) > 1 else 0
    with open("/proc/loadavg") as fh:
        load = " ".join(fh.read().split()[:3])
    return {"connections": n, "connected": connected, "ready": ready, "rss_before_kb": before,
            "rss_after_kb": after, "threads_before": threads_before,
            "threads_after": threads_after, "connect_seconds": round(connect_s, 1),
            "per_connection_kb": (after - before) / connected if connected else None,
            "load": load}


def _row(label: str, d: dict) -> Row:
    per = d["per_connection_kb"]
    return Row("memory", f"RSS per idle agent connection, {label} ({d['connected']} connected)",
               per, "KB", None, "", "≤ 50 KB", at_most(per, 50),
               f"RSS {d['rss_before_kb']/1024:.0f} → {d['rss_after_kb']/1024:.0f} MB, threads "
               f"{d['threads_before']} → {d['threads_after']}, connected in "
               f"{d['connect_seconds']} s, load {d['load']}")


def run(env: BenchEnv, scale: str) -> tuple[list[Row], dict]:
    rows: list[Row] = []
    detail: dict = {}
    n = CONNECTIONS if scale == "full" else 200
    stack = env.start(workers=0, extra_env={"THREADLINE_SERVER_THREADS": str(n + 50)},
                      realtime=False)  # the threading `serve` holding the sockets
    try:
        detail["serve"] = _hold(env, stack.server.port, lambda: stack.server.worker_pid, n)
    finally:
        stack.stop()
    rows.append(_row("threading serve", detail["serve"]))
    if not env.scale_out:  # the realtime process needs Redis
        return rows, detail
    for n in (REALTIME_CONNECTIONS if scale == "full" else (200, 1000)):
        stack = env.start(workers=0, realtime=True)
        try:
            detail[f"realtime_{n}"] = d = _hold(env, stack.realtime.port,
                                                lambda: stack.realtime.worker_pid, n)
        finally:
            stack.stop()
        rows.append(_row("realtime", d))
    return rows, detail
