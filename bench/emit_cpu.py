"""CPU of the process holding the agents' sockets per delivered frame (issue 15): bare emits
(POST /bench/emit, no database) to 50 agents at RATE/s for 10 s, the sockets held by the
threading `serve` or by `threadline realtime`; CPU seconds from /proc/<pid>/stat, which the
machine's load does not change. PostgreSQL + Redis (THREADLINE_BENCH_* as bench.run).

    python -m bench.emit_cpu serve|realtime [RATE] [--work-dir DIR]
"""
import json, os, subprocess, sys, time
from pathlib import Path
from bench.common import BenchEnv, Request, dumps, open_loop, summary, ROOT
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.graph_api import FakeGraphAPI

def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

via = sys.argv[1]; rate = float(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2][0].isdigit() else 200
work = Path(sys.argv[sys.argv.index("--work-dir") + 1]) if "--work-dir" in sys.argv else Path("/tmp/threadline-bench/emit-cpu")
tg, gr = FakeTelegramAPI().start(), FakeGraphAPI(phone_number_id="1122334455667").start()
env = BenchEnv("postgres", work, tg.base_url, gr.base_url)
env.reset(); seeded = env.seed()
cookies = [env.session_cookie(a) for a in seeded.agent_ids[:50]]
(env.work_dir / "c.json").write_text(json.dumps(cookies))
stack = env.start(workers=0, realtime=(via == "realtime"))
try:
    port = stack.realtime.port if via == "realtime" else stack.server.port
    proc = subprocess.Popen([sys.executable, "-m", "bench.clients", "--port", str(port), "--cookies",
                             str(env.work_dir / "c.json"), "--n", "50", "--mode", "live", "--out",
                             str(env.work_dir / "o.json"), "--timeout", "300"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    print(proc.stdout.readline().strip())
    pid = stack.realtime.worker_pid if via == "realtime" else stack.server.worker_pid
    count = int(rate * 10)
    c0, t0 = cpu(pid), time.time()
    open_loop(stack.server.url, lambda i: Request("POST", "/bench/emit", {"Content-Type": "application/json"},
              dumps({"seq": i, "t": time.time_ns(), "channel_id": seeded.telegram_id})), count, rate)
    time.sleep(5)
    c1 = cpu(pid)
    proc.stdin.write("stop\n"); proc.stdin.flush(); proc.wait(60)
    out = json.loads((env.work_dir / "o.json").read_text())
    lat = summary(out["latencies"]["ping"])
    print(via, "rate", rate, "frames", out["distinct"]["ping"], "cpu_s", round(c1 - c0, 2),
          "cpu_ms_per_1000_frames", round((c1 - c0) * 1e6 / max(1, out["distinct"]["ping"]), 1),
          "p50", round(lat["p50"], 1), "p99", round(lat["p99"], 1), "load", open("/proc/loadavg").read().split()[:3])
finally:
    stack.stop(); tg.stop(); gr.stop(); env.dispose()
