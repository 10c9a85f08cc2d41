"""What every scenario shares: the environment (database, Redis, servers, workers, fake
channel APIs), the load generator, statistics and the result rows."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("THREADLINE_BENCH_DATABASE_URL",
                        "postgresql://postgres@127.0.0.1:5432/threadline_bench")
REDIS_URL = os.environ.get("THREADLINE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
SECRET_KEY = "bench-secret-key-0123456789abcdef"
TG_SECRET = "bench-telegram-secret-token"
TG_TOKEN = "123456:BENCH-token"
WA_SECRET = "bench-wa-app-secret"
WA_NUMBER = "1122334455667"
WA_TOKEN = "test-access-token"
PASSWORD_HASH_SOURCE = "bench-password"


# --- statistics --------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[k]


def summary(values_ms: list[float]) -> dict[str, float | None]:
    return {"n": len(values_ms), "p50": percentile(values_ms, 50),
            "p95": percentile(values_ms, 95), "p99": percentile(values_ms, 99),
            "max": max(values_ms) if values_ms else None}


@dataclass
class Row:
    """One line of the report: a figure beside its reference from the same run."""
    scenario: str
    metric: str
    value: float | None
    unit: str
    reference: float | None = None
    reference_label: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "metric": self.metric, "value": self.value,
                "unit": self.unit, "reference": self.reference,
                "reference_label": self.reference_label, "ratio": self.ratio,
                "target": self.target, "met": self.met, "note": self.note}


def at_least(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def at_most(value: float | None, target: float) -> bool | None:
    return None if value is None else value <= target


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: list[Row], backend: str) -> str:
    head = ["scenario", "metric", "figure", "reference", "ratio", "target", "met?"]
    lines = []
    for r in rows:
        ref = f"{fmt(r.reference)} {r.unit} ({r.reference_label})" if r.reference is not None else "—"
        met = {True: "met", False: "MISSED", None: ""}[r.met]
        lines.append([r.scenario, r.metric, f"{fmt(r.value)} {r.unit}", ref,
                      f"{r.ratio:.2f}×" if r.ratio is not None else "—", r.target or "", met])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    out = [f"## {backend}", "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for line in lines:
        out.append("| " + " | ".join(str(x).ljust(w) for x, w in zip(line, widths)) + " |")
    return "\n".join(out)


# --- processes ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} after {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


class _Listening:
    """A bench process listening on a free port, its output in the work dir's log."""

    def __init__(self, env: "BenchEnv", argv: list[str], name: str,
                 process_env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = env.work_dir / f"{name}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *argv, "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=process_env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            wait_for_port(self.port, 40, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"{name} did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Server(_Listening):
    """`threadline serve` as the README runs it (gunicorn gthread worker processes,
    `[server] workers` of them), with the bench reference routes added by
    bench/server_app.py."""

    def __init__(self, env: "BenchEnv", extra_env: dict[str, str] | None = None, name: str = "server"):
        super().__init__(env, ["bench.server_app"], name,
                         {**env.process_env(), "THREADLINE_BENCH_ROUTES": "1", **(extra_env or {})})

    @property
    def worker_pid(self) -> int:
        """The first HTTP process (the one that holds the sockets when `serve` does: then
        there is only one)."""
        kids = children(self.proc.pid)
        return kids[0] if kids else self.proc.pid

    @property
    def worker_pids(self) -> list[int]:
        """Every HTTP process (gunicorn's workers; not the arbiter, which serves nothing)."""
        return children(self.proc.pid) or [self.proc.pid]


class Realtime(_Listening):
    """`threadline realtime`: the asyncio Socket.IO process (PostgreSQL + Redis only)."""

    def __init__(self, env: "BenchEnv", extra_env: dict[str, str] | None = None):
        super().__init__(env, ["app.cli", "realtime"], "realtime",
                         {**env.process_env(), **(extra_env or {})})

    @property
    def worker_pid(self) -> int:
        return self.proc.pid


class Worker:
    """`threadline worker` (rq SimpleWorker + sweeper)."""

    def __init__(self, env: "BenchEnv", n: int):
        self.log_path = env.work_dir / f"worker-{n}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=ROOT,
                                     env=env.process_env(), stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


# --- the environment ---------------------------------------------------------------------

@dataclass
class Seeded:
    admin_id: int
    admin_token: str
    agent_ids: list[int]
    telegram_id: int
    whatsapp_id: int
    team_ids: dict[str, int]
    extra_channel_ids: list[int] = field(default_factory=list)


class BenchEnv:
    """One backend: `postgres` (PostgreSQL + Redis + rq workers) or `sqlite` (the embedded
    default: SQLite file, jobs on threads inside `serve`)."""

    def __init__(self, backend: str, work_dir: Path, telegram_url: str, graph_url: str,
                 web_workers: int = 1):
        self.backend = backend
        # `[server] workers` of `serve` when `threadline realtime` holds the sockets (the
        # README's production layout, PostgreSQL + Redis)
        self.web_workers = web_workers
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.telegram_url = telegram_url
        self.graph_url = graph_url
        if backend == "postgres":
            self.database_url, self.redis_url = PG_URL, REDIS_URL
        else:
            self.database_url, self.redis_url = f"sqlite:///{work_dir / 'threadline.db'}", ""
        self._engine = None
        self.seeded: Seeded | None = None

    @property
    def scale_out(self) -> bool:
        return self.backend == "postgres"

    def config(self) -> dict[str, Any]:
        from app.infra.config import load_config

        return load_config(path=self.work_dir / "absent.toml", environ={}, overrides={
            "database_url": self.database_url, "redis_url": self.redis_url,
            "data_dir": str(self.work_dir), "secret_key": SECRET_KEY,
            "server": {"pollers": False}, "log": {"level": "WARNING"}})

    def process_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
        env.update({
            "THREADLINE_CONFIG": str(self.work_dir / "config.toml"),
            "THREADLINE_DATABASE_URL": self.database_url,
            "THREADLINE_REDIS_URL": self.redis_url,
            "THREADLINE_SECRET_KEY": SECRET_KEY,
            "THREADLINE_DATA_DIR": str(self.work_dir),
            "THREADLINE_SERVER_POLLERS": "false",
            # the production default (BENCH_LOG_LEVEL overrides it)
            "THREADLINE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
            "PYTHONUNBUFFERED": "1",
        })
        return env

    @property
    def engine(self):
        if self._engine is None:
            if self.backend == "sqlite":
                # not app.db.make_engine: its BEGIN IMMEDIATE would make every read of this
                # observer take the write lock the server needs
                from sqlalchemy import create_engine

                self._engine = create_engine(self.database_url, connect_args={"timeout": 60})
            else:
                from app.infra.db import make_engine

                self._engine = make_engine(self.database_url)
        return self._engine

    def scalar(self, sql: str, **params: Any) -> Any:
        """One read in a connection of its own (no transaction left open)."""
        from sqlalchemy import text

        with self.engine.connect() as connection:
            value = connection.execute(text(sql), params).scalar()
            connection.rollback()
            return value

    def session(self):
        from sqlalchemy.orm import Session

        return Session(self.engine, expire_on_commit=False)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- reset, migrate, seed -------------------------------------------------------------

    def reset(self) -> None:
        """An empty database at the newest migration, and an empty Redis db."""
        from sqlalchemy import create_engine, text

        self.dispose()
        if self.backend == "postgres":
            engine = create_engine(self.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
            with engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
            engine.dispose()
            from redis import Redis

            Redis.from_url(self.redis_url).flushdb()
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.work_dir / "threadline.db") + suffix).unlink(missing_ok=True)
        from app import create_app
        from app.cli import upgrade_database

        config = self.config()
        config["redis_url"] = ""  # migrating needs no Redis (and no Socket.IO subscriber here)
        app = create_app(config)
        upgrade_database(app)
        app.extensions["threadline.db"].dispose()
        self.create_reference_table()

    def create_reference_table(self) -> None:
        from bench.server_app import reference_table

        reference_table().metadata.create_all(self.engine)

    def seed(self, agents: int = 60, extra_channels: bool = False) -> Seeded:
        """Teams, an admin with an API token, agents (Support team), a Telegram and a WhatsApp
        channel pointing at the local fake channel APIs."""
        from argon2 import PasswordHasher
        from sqlalchemy import select

        from app.domain.agents import _token_hash
        from app.infra.models import Agent, ApiToken, Channel, Team
        from connectors import get_connector

        token = "tl_bench_" + hashlib.sha256(os.urandom(16)).hexdigest()[:32]
        pw = PasswordHasher().hash(PASSWORD_HASH_SOURCE)
        with self.session() as s:
            support, sales = Team(name="Support"), Team(name="Sales")
            s.add_all([support, sales])
            admin = Agent(email="admin@bench.local", name="Админ", password_hash=pw, role="admin",
                          teams=[support, sales])
            s.add(admin)
            people = []
            for n in range(agents):
                people.append(Agent(email=f"agent{n}@bench.local", name=f"Agent {n}",
                                    password_hash=pw, role="agent",
                                    teams=[support] if n % 3 else [support, sales]))
            s.add_all(people)
            tg_settings = get_connector("telegram").validate_settings({
                **get_connector("telegram").default_settings(), "token": TG_TOKEN,
                "mode": "webhook", "secret_token": TG_SECRET, "api_base_url": self.telegram_url,
                "public_url": "https://inbox.bench.local"})
            wa_settings = get_connector("whatsapp").validate_settings({
                **get_connector("whatsapp").default_settings(), "phone_number_id": WA_NUMBER,
                "access_token": WA_TOKEN, "app_secret": WA_SECRET, "verify_token": "bench-verify",
                "api_base_url": self.graph_url})
            tg = Channel(kind="telegram", name="Telegram shop bot", settings=tg_settings,
                         teams=[support, sales])
            wa = Channel(kind="whatsapp", name="WhatsApp PL", settings=wa_settings, teams=[support])
            s.add_all([tg, wa])
            extra = []
            if extra_channels:  # list-only channels for the inbox at scale (never polled)
                extra = [Channel(kind="email", name="support@ mailbox", settings={},
                                 teams=[support], active=False),
                         Channel(kind="webchat", name="Site chat", settings={},
                                 teams=[support, sales], active=False)]
                s.add_all(extra)
            s.flush()
            s.add(ApiToken(agent_id=admin.id, name="bench", token_hash=_token_hash(token)))
            s.commit()
            self.seeded = Seeded(admin.id, token, [a.id for a in people], tg.id, wa.id,
                                 {"Support": support.id, "Sales": sales.id},
                                 [c.id for c in extra])
            _ = select  # noqa
        return self.seeded

    def token_for(self, agent_id: int) -> str:
        from app.domain.agents import _token_hash
        from app.infra.models import ApiToken

        token = f"tl_bench_agent_{agent_id}_" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
        with self.session() as s:
            s.add(ApiToken(agent_id=agent_id, name="bench", token_hash=_token_hash(token)))
            s.commit()
        return token

    def session_cookie(self, agent_id: int) -> str:
        """A signed Flask-Login session, as /login would set it (the login form is rate
        limited to 10 per minute, which is right for people and wrong for 1,000 sockets)."""
        from flask import Flask

        flask_app = Flask("bench-cookie")
        flask_app.secret_key = SECRET_KEY
        serializer = flask_app.session_interface.get_signing_serializer(flask_app)
        # Flask-Login's id is "<agent id>:<session generation>" (Agent.get_id, issue 14)
        generation = self.scalar("SELECT session_generation FROM agents WHERE id = :id",
                                 id=agent_id) or 0
        value = serializer.dumps({"_user_id": f"{agent_id}:{generation}", "_fresh": True})
        return f"session={value}"

    # -- servers and workers --------------------------------------------------------------

    def start(self, workers: int = 2, extra_env: dict[str, str] | None = None,
              realtime: bool | None = None) -> "Stack":
        """realtime: also `threadline realtime` (the sockets' process; PostgreSQL + Redis),
        by default on PostgreSQL + Redis: the README's production layout, `serve` with
        `web_workers` HTTP processes that only publish events (`[realtime] external`).
        realtime=False: `serve` holds the sockets itself, in one process."""
        if realtime is None:
            realtime = self.scale_out
        server_env = dict(extra_env or {})
        if realtime:
            server_env.setdefault("THREADLINE_SERVER_WORKERS", str(self.web_workers))
            server_env.setdefault("THREADLINE_REALTIME_EXTERNAL", "true")
        stack = Stack()
        try:
            stack.server = Server(self, server_env)
            if realtime:
                stack.realtime = Realtime(self, extra_env)
            if self.scale_out:
                stack.workers = [Worker(self, n) for n in range(workers)]
        except Exception:
            stack.stop()
            raise
        return stack


@dataclass
class Stack:
    server: Server | None = None
    workers: list[Worker] = field(default_factory=list)
    realtime: Realtime | None = None

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.realtime is not None:
            self.realtime.stop()
        if self.server is not None:
            self.server.stop()

    def pids(self) -> list[int]:
        pids = [w.proc.pid for w in self.workers]
        if self.server is not None:
            pids += self.server.worker_pids
        if self.realtime is not None:
            pids.append(self.realtime.worker_pid)
        return pids


# --- a small HTTP/1.1 load generator -----------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    def encode(self, host: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}",
                 f"Content-Length: {len(self.body)}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


class _Conn:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length, close = None, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        body = await self.reader.readexactly(length) if length is not None else await self.reader.read()
        if close or length is None:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class LoadResult:
    latencies_ms: list[float]
    statuses: dict[int, int]
    elapsed_s: float
    started_at: float
    bodies: list[bytes] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0


def closed_loop(url: str, requests: list[Request], concurrency: int,
                keep_bodies: bool = False) -> LoadResult:
    """`concurrency` clients, each with a keep-alive connection, send the requests as fast as
    the server answers them."""
    host_port = url.split("://", 1)[1]
    host, port = host_port.split(":")
    raws = [r.encode(host_port) for r in requests]

    async def main() -> LoadResult:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        bodies: list[bytes] = []
        it = iter(range(len(raws)))

        async def client() -> None:
            conn = _Conn(host, int(port))
            try:
                for i in it:
                    t = time.perf_counter()
                    try:
                        status, body = await conn.request(raws[i])
                    except Exception:
                        status, body = 599, b""
                        conn.close()
                    latencies.append((time.perf_counter() - t) * 1000)
                    statuses[status] = statuses.get(status, 0) + 1
                    if keep_bodies:
                        bodies.append(body)
            finally:
                conn.close()

        wall = time.time()
        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return LoadResult(latencies, statuses, time.perf_counter() - t0, wall, bodies)

    return asyncio.run(main())


def open_loop(url: str, make: Callable[[int], Request], count: int, rate: float,
              max_connections: int = 64) -> LoadResult:
    """Requests started at a steady `rate` per second, whatever the answers take (a slow
    server does not slow the arrivals down)."""
    host_port = url.split("://", 1)[1]
    host, port = host_port.split(":")

    async def main() -> LoadResult:
        pool: asyncio.Queue[_Conn] = asyncio.Queue()
        for _ in range(max_connections):
            pool.put_nowait(_Conn(host, int(port)))
        latencies: list[float] = []
        statuses: dict[int, int] = {}

        async def one(i: int) -> None:
            conn = await pool.get()
            try:
                raw = make(i).encode(host_port)
                t = time.perf_counter()
                try:
                    status, _ = await conn.request(raw)
                except Exception:
                    status = 599
                    conn.close()
                latencies.append((time.perf_counter() - t) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
            finally:
                pool.put_nowait(conn)

        wall = time.time()
        t0 = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        while not pool.empty():
            pool.get_nowait().close()
        return LoadResult(latencies, statuses, elapsed, wall)

    return asyncio.run(main())


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def seeded_random(name: str) -> random.Random:
    return random.Random(hashlib.sha256(name.encode()).digest())


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()
