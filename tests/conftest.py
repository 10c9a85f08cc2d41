"""Shared fixtures.

Every app-level test runs on the embedded default (SQLite, in-process jobs) and, when
THREADLINE_TEST_DATABASE_URL / THREADLINE_TEST_REDIS_URL are set (CI sets them), on
PostgreSQL + Redis with rq. Set but unreachable is an error, never a skip.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("THREADLINE_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("THREADLINE_TEST_REDIS_URL", "")
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])
SCALE_OUT = ["postgres"] if PG_URL else []  # PostgreSQL + Redis + rq worker processes
OUTPUT = Path(os.environ.get("THREADLINE_TEST_OUTPUT", ROOT / "test-output"))


def pytest_configure(config):
    if os.environ.get("CI") and not (PG_URL and REDIS_URL):
        raise pytest.UsageError("CI must set THREADLINE_TEST_DATABASE_URL and THREADLINE_TEST_REDIS_URL")
    if bool(PG_URL) != bool(REDIS_URL):
        raise pytest.UsageError("set both THREADLINE_TEST_DATABASE_URL and THREADLINE_TEST_REDIS_URL, or neither")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")


# --- databases ---------------------------------------------------------------------------

def _migrate(url: str) -> None:
    from app import create_app
    from app.cli import upgrade_database

    app = create_app(_config(url, "", Path("/tmp")))
    upgrade_database(app)
    app.extensions["threadline.db"].dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """Migrate once; each test copies the file (migrations run for real, and fast)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_ready() -> str:
    """A clean public schema migrated to head, once per run."""
    from sqlalchemy import create_engine, text

    url = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    except Exception as exc:
        pytest.fail(f"PostgreSQL at THREADLINE_TEST_DATABASE_URL is unreachable: {exc}")
    engine.dispose()
    _migrate(PG_URL)
    return PG_URL


def _truncate_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    from app.infra.models import Base

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


def _flush_redis(url: str) -> None:
    from redis import Redis

    try:
        Redis.from_url(url).flushdb()
    except Exception as exc:
        pytest.fail(f"Redis at THREADLINE_TEST_REDIS_URL is unreachable: {exc}")


def _config(database_url: str, redis_url: str, data_dir: Path, **jobs: Any) -> dict[str, Any]:
    from app.infra.config import load_config

    config = load_config(path=data_dir / "absent.toml", environ={}, overrides={
        "database_url": database_url, "redis_url": redis_url, "data_dir": str(data_dir),
        "secret_key": "test-secret-key-0123456789",
        "jobs": {"sweep_interval": 0.5, "stale_after": 3.0, "lease": 2.0, "backoff_base": 0.2,
                 "backoff_max": 1.0, "max_attempts": 3, **jobs},
        "server": {"pollers": False},
        "log": {"level": "INFO"},
    })
    return config


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def app_config(backend, tmp_path, request) -> dict[str, Any]:
    """Config for one test: a fresh SQLite copy, or a truncated PostgreSQL + flushed Redis."""
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        db_path = tmp_path / "threadline.db"
        shutil.copy(template, db_path)
        return _config(f"sqlite:///{db_path}", "", tmp_path)
    url = request.getfixturevalue("postgres_ready")
    _truncate_postgres(url)
    _flush_redis(REDIS_URL)
    return _config(url, REDIS_URL, tmp_path)


@pytest.fixture
def app(app_config):
    from app import create_app
    from app.infra.queues import InProcessQueue

    flask_app = create_app(app_config)
    flask_app.config["TESTING"] = True
    queue = flask_app.extensions["threadline.queue"]
    if isinstance(queue, InProcessQueue):
        queue.start()
    with flask_app.app_context():
        from app.domain.agents import ensure_teams

        ensure_teams(["Support", "Sales"])
        from app.infra.state import db

        db.session.commit()
    yield flask_app
    if isinstance(queue, InProcessQueue):
        queue.stop()
    flask_app.extensions["threadline.db"].dispose()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


def run_jobs(app, timeout: float = 30.0) -> None:
    """Run every queued job to the end: the in-process queue drains itself; with Redis a
    real rq worker works the Redis queue in burst mode, as `threadline worker --burst` does
    (the sweep first, then rq's SimpleWorker).

    The worker runs on a thread of this process, not in a new interpreter: a process start
    costs 2–7 s on these machines and the suite calls this a few hundred times. The thread
    has its own database session (sessions are per thread), as a worker process would; the
    `threadline worker` command itself is driven as a process by the tests that kill it
    (test_outbox, test_campaigns_kill, test_routing_concurrency, test_server)."""
    from app.infra.queues import InProcessQueue

    with app.app_context():
        release_db()
    queue = app.extensions["threadline.queue"]
    if isinstance(queue, InProcessQueue):
        queue.join()
        return
    failures: list[BaseException] = []

    def work() -> None:
        try:
            _burst_worker(app, queue)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failures.append(exc)

    thread = threading.Thread(target=work, name="rq-burst", daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the rq worker did not finish its queue within {timeout}s"
    assert not failures, failures


def _burst_worker(app, queue) -> None:
    from rq import SimpleWorker
    from rq.timeouts import TimerDeathPenalty

    from app.infra.queues import run_in_app, set_worker_app

    class ThreadWorker(SimpleWorker):
        # signals can only be handled on the main thread: job timeouts by a timer thread
        # instead of SIGALRM, and no SIGINT/SIGTERM handlers (the test process owns those)
        death_penalty_class = TimerDeathPenalty

        def _install_signal_handlers(self) -> None:
            pass

    set_worker_app(app)
    run_in_app(app, "sweep", ())
    ThreadWorker([queue.queue], connection=queue.redis).work(burst=True, logging_level="WARNING")


def cli_env(config: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env.update({
        "THREADLINE_CONFIG": str(Path(config["data_dir"]) / "config.toml"),
        "THREADLINE_DATABASE_URL": config["database_url"],
        "THREADLINE_REDIS_URL": config["redis_url"],
        "THREADLINE_SECRET_KEY": config["secret_key"],
        "THREADLINE_DATA_DIR": config["data_dir"],
        "THREADLINE_JOBS_SWEEP_INTERVAL": str(config["jobs"]["sweep_interval"]),
        "THREADLINE_JOBS_STALE_AFTER": str(config["jobs"]["stale_after"]),
        "THREADLINE_JOBS_LEASE": str(config["jobs"]["lease"]),
        "THREADLINE_JOBS_BACKOFF_BASE": str(config["jobs"]["backoff_base"]),
        "THREADLINE_JOBS_BACKOFF_MAX": str(config["jobs"]["backoff_max"]),
        "THREADLINE_JOBS_MAX_ATTEMPTS": str(config["jobs"]["max_attempts"]),
        "THREADLINE_SERVER_POLLERS": "false",
        "THREADLINE_SECURITY_ALLOW_PRIVATE_WEBHOOK_URLS":
            str(config["security"]["allow_private_webhook_urls"]).lower(),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def threadline_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def release_db() -> None:
    """End the test thread's transaction, if any: on SQLite an open transaction holds the
    write lock (writers BEGIN IMMEDIATE), which another process or thread then waits for."""
    from flask import has_app_context

    if has_app_context():
        from app.infra.state import db

        db.session.commit()


def run_cli(config: dict[str, Any], *args: str, input: str | None = None,
            timeout: float = 60.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    release_db()
    return subprocess.run(threadline_cmd(*args), cwd=ROOT, env={**cli_env(config), **(env or {})},
                          capture_output=True, text=True, input=input, timeout=timeout)


# --- people and channels -----------------------------------------------------------------

@pytest.fixture
def admin(ctx):
    from app.infra.state import db
    from app.domain.agents import create_agent

    agent = create_agent("admin@example.com", "Админ Тестовый", "correct horse battery",
                         role="admin", teams=["Support", "Sales"])
    db.session.commit()
    return agent


@pytest.fixture
def admin_token(ctx, admin) -> str:
    from app.domain.agents import create_token
    from app.infra.state import db

    value = create_token(admin, "tests")
    db.session.commit()
    return value


@pytest.fixture
def api(app, admin_token):
    """A test client that sends the admin's Bearer token."""
    client = app.test_client()

    class Api:
        def get(self, path, **kw):
            return client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {admin_token}"}, **kw)

        def post(self, path, json=None, **kw):
            return client.post(f"/api/v1{path}", json=json,
                               headers={"Authorization": f"Bearer {admin_token}"}, **kw)

        def patch(self, path, json=None, **kw):
            return client.patch(f"/api/v1{path}", json=json,
                                headers={"Authorization": f"Bearer {admin_token}"}, **kw)

        def delete(self, path, **kw):
            return client.delete(f"/api/v1{path}",
                                 headers={"Authorization": f"Bearer {admin_token}"}, **kw)

    return Api()


@pytest.fixture
def telegram_api():
    from tests.fakes.telegram_api import FakeTelegramAPI

    with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
def telegram_channel(ctx, telegram_api):
    from app.domain.channels import add_channel
    from app.infra.state import db

    channel = add_channel("telegram", "Shop bot", {
        "token": "123456:TEST-token", "mode": "webhook", "secret_token": "s3cret-token-value",
        "api_base_url": telegram_api.base_url, "public_url": "https://inbox.example.com"})
    db.session.commit()
    return channel


def telegram_update(update_id: int, user_id: int, text: str, message_id: int | None = None,
                    first_name: str = "Анна", date: int | None = None) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            # the fake Bot API numbers its own messages from 1; real chats share one sequence
            "message_id": message_id or 100000 + update_id,
            "from": {"id": user_id, "is_bot": False, "first_name": first_name,
                     "language_code": "ru"},
            "chat": {"id": user_id, "first_name": first_name, "type": "private"},
            "date": date or int(time.time()),
            "text": text,
        },
    }


# --- a real server ----------------------------------------------------------------------

class RunningServer:
    """`threadline serve` (or another listening command: `realtime`) in a subprocess on a
    free port."""

    def __init__(self, config: dict[str, Any], log_path: Path, env: dict[str, str] | None = None,
                 command: str = "serve"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            threadline_cmd(command, "--host", "127.0.0.1", "--port", str(self.port)),
            cwd=ROOT, env={**cli_env(config), **(env or {})}, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port(self.port, timeout=30, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"{command} did not start:\n{log_path.read_text()}")

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_server(app_config, tmp_path):
    servers: list[RunningServer] = []

    def start(pollers: bool = False) -> RunningServer:
        env = {"THREADLINE_SERVER_POLLERS": "true"} if pollers else None
        server = RunningServer(app_config, tmp_path / f"server-{len(servers)}.log", env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def login_session(base_url: str, email: str, password: str):
    """A requests session signed in through the real login form (CSRF included)."""
    import re

    import requests

    session = requests.Session()
    page = session.get(f"{base_url}/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = session.post(f"{base_url}/login", data={"email": email, "password": password,
                                                       "csrf_token": token}, timeout=10)
    assert response.status_code == 200 and "/login" not in response.url, response.text[:500]
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', response.text).group(1)
    session.headers["X-CSRFToken"] = csrf
    return session


class AgentSocket:
    """A Socket.IO client on /agents, authenticated by the session cookie."""

    def __init__(self, base_url: str, session):
        import socketio

        self.events: list[tuple[str, dict]] = []
        self.client = socketio.Client(reconnection=False)
        self.client.on("*", self._record, namespace="/agents")
        cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
        self.client.connect(base_url, namespaces=["/agents"], headers={"Cookie": cookie},
                            transports=["websocket"], wait_timeout=10)

    def _record(self, event: str, data: dict) -> None:
        self.events.append((event, data))

    def wait_for(self, event: str, predicate=lambda data: True, timeout: float = 15.0) -> dict:
        return wait_until(lambda: next((d for e, d in self.events if e == event and predicate(d)), None),
                          timeout=timeout, message=f"Socket.IO event {event}")

    def close(self) -> None:
        self.client.disconnect()
