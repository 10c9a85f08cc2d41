"""Threadline benchmarks (GitHub issue 9): one command, a table, a JSON file.

    .venv/bin/python -m bench.run [--backend postgres|sqlite|both]
        [--only ingest,live,inbox,outbound,memory] [--scale small|full] [--web-workers N]
        [--json bench/results/<name>.json]

Starts everything itself on 127.0.0.1: the fake Telegram Bot API and Meta Graph API
(tests/fakes), `threadline serve` (bench/server_app.py: the same gunicorn setup plus the
reference routes) and, on PostgreSQL, the README's production layout: `serve` with
`--web-workers` HTTP processes that only publish events (`[realtime] external`),
`threadline realtime` holding the sockets, two `threadline worker` processes. PostgreSQL is
THREADLINE_BENCH_DATABASE_URL (default the `threadline_bench` database), Redis
THREADLINE_BENCH_REDIS_URL (default db 11): both are wiped.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from bench.common import ROOT, BenchEnv, Row, table

# `[server] workers` for 2 cores (bench/README.md, "Issue 15 — several web processes")
WEB_WORKERS = 2
SCENARIOS = ("ingest", "wrk", "live", "outbound", "memory", "inbox")


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"nproc": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1), "cpu": cpu,
            "python": platform.python_version(), "kernel": platform.release()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument("--scale", choices=["small", "full"], default="full")
    parser.add_argument("--messages", type=int, default=None,
                        help="inbox at scale: messages to generate (default 2,000,000 on "
                             "PostgreSQL and 1,000,000 on SQLite at full scale)")
    parser.add_argument("--sockets", choices=["realtime", "serve"], default="realtime",
                        help="live on PostgreSQL + Redis: who holds the agents' sockets, "
                             "`threadline realtime` (default, the production layout) or the "
                             "threading `serve` (as before issue 15)")
    parser.add_argument("--web-workers", type=int, default=WEB_WORKERS,
                        help="PostgreSQL + Redis: `[server] workers` HTTP processes of `serve` "
                             "(sockets on `threadline realtime`, the production layout; default "
                             f"{WEB_WORKERS}, the README's figure for 2 cores)")
    parser.add_argument("--json", default=None, help="where to write the results")
    parser.add_argument("--work-dir", default="/tmp/threadline-bench")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    backends = ["postgres", "sqlite"] if args.backend == "both" else [args.backend]

    from tests.fakes.graph_api import FakeGraphAPI
    from tests.fakes.telegram_api import FakeTelegramAPI

    from bench.common import WA_NUMBER

    started = dt.datetime.now(dt.timezone.utc)
    report: dict = {"machine": machine(), "started": started.isoformat(),
                    "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "scale": args.scale, "web_workers": args.web_workers, "backends": {}}
    telegram, graph = FakeTelegramAPI().start(), FakeGraphAPI(phone_number_id=WA_NUMBER).start()
    exit_code = 0
    try:
        for backend in backends:
            rows: list[Row] = []
            details: dict = {}
            env = BenchEnv(backend, Path(args.work_dir) / backend, telegram.base_url, graph.base_url,
                           web_workers=args.web_workers)
            for name in [s for s in SCENARIOS if s in only]:
                print(f"[{backend}] {name} ...", flush=True)
                t0 = time.perf_counter()
                try:
                    module = __import__(f"bench.{name}", fromlist=["run"])
                    env.reset()
                    env.seed(extra_channels=(name == "inbox"))
                    kwargs = {"fakes": (telegram, graph)} if name == "outbound" else {}
                    if name == "inbox":
                        kwargs["messages"] = args.messages
                    if name == "live":
                        kwargs["sockets"] = args.sockets
                    new_rows, detail = module.run(env, args.scale, **kwargs)
                    rows += new_rows
                    details[name] = detail
                except Exception as exc:  # one broken scenario must not hide the others
                    traceback.print_exc()
                    details[name] = {"error": f"{type(exc).__name__}: {exc}"}
                    rows.append(Row(name, "error", None, "", note=str(exc)[:200], met=False))
                    exit_code = 1
                details.setdefault(name, {})["seconds"] = round(time.perf_counter() - t0, 1)
                print(f"[{backend}] {name} done in {time.perf_counter() - t0:.0f}s", flush=True)
            env.dispose()
            report["backends"][backend] = {"rows": [r.as_dict() for r in rows], "details": details}
            print(table(rows, backend), flush=True)
    finally:
        telegram.stop()
        graph.stop()
    report["finished"] = dt.datetime.now(dt.timezone.utc).isoformat()
    path = Path(args.json) if args.json else ROOT / "bench" / "results" / \
        f"{started:%Y%m%d-%H%M%S}-{args.backend}-{args.scale}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    print(f"results: {path}", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
