"""Scenario 5, memory: RSS of the server's worker process with 1,000 idle agent Socket.IO
connections, per connection. In threading mode each websocket holds one gunicorn thread, so
the server runs with server.threads = 1,050 here (the default 64 would queue the rest)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from bench.common import ROOT, BenchEnv, Row, at_most, rss_kb, thread_count

CONNECTIONS = 1000


def run(env: BenchEnv, scale: str) -> tuple[list[Row], dict]:
    n = CONNECTIONS if scale == "full" else 200
    cookies = [env.session_cookie(a) for a in env.seeded.agent_ids]
    cookie_file = env.work_dir / "cookies-idle.json"
    cookie_file.write_text(json.dumps(cookies))
    stack = env.start(workers=0, extra_env={"THREADLINE_SERVER_THREADS": str(n + 50)})
    try:
        pid = stack.server.worker_pid
        # warm: one connection made and dropped, so lazy imports are paid before "before"
        for count in (5, 0):
            proc = subprocess.Popen([sys.executable, "-m", "bench.clients", "--port",
                                     str(stack.server.port), "--cookies", str(cookie_file),
                                     "--n", str(count or n), "--mode", "idle", "--out",
                                     str(env.work_dir / "idle.json"), "--timeout", "300"],
                                    cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if count:
                proc.stdout.readline()
                proc.stdin.write("stop\n")
                proc.stdin.flush()
                proc.wait(30)
                time.sleep(1)
                before, threads_before = rss_kb(pid), thread_count(pid)
                continue
            ready = proc.stdout.readline().split()
            time.sleep(2)
            after, threads_after = rss_kb(pid), thread_count(pid)
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            proc.wait(60)
    finally:
        stack.stop()
    connected = int(ready[1]) if len(ready) > 1 else 0
    per = (after - before) / connected if connected else None
    detail = {"connections": n, "connected": connected, "ready": ready, "rss_before_kb": before,
              "rss_after_kb": after, "threads_before": threads_before,
              "threads_after": threads_after, "per_connection_kb": per}
    return [Row("memory", f"RSS per idle agent connection ({connected} connected)", per, "KB",
                None, "", "≤ 50 KB", at_most(per, 50),
                f"server RSS {before/1024:.0f} → {after/1024:.0f} MB, threads {threads_before} → {threads_after}")], detail
