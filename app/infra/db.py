"""Engine and sessions. One `Database` per app; web requests, jobs and the CLI share it."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
import json
import os
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, scoped_session, sessionmaker


def _sqlite_no_autobegin(dbapi_connection, _record) -> None:
    # pysqlite's own deferred BEGIN is turned off: see _sqlite_begin_immediate
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection) -> None:
    """Take the write lock when a transaction starts. With deferred transactions a reader
    that later writes fails at once with "database is locked" when another thread wrote in
    between (busy_timeout does not apply to that upgrade); IMMEDIATE makes writers queue
    politely instead. WAL keeps plain readers unblocked."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the web threads read while the in-process worker writes; busy_timeout makes
    # concurrent writers wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    dbapi_connection.create_function("tl_item_texts", 1, _item_texts, deterministic=True)


def _item_texts(items_json) -> str:
    """SQLite: every text value in a JSON document, lower-cased by Python (SQLite's lower()
    knows ASCII only), one per line: order items matched whatever the letter case."""
    if items_json is None:
        return ""
    try:
        data = json.loads(items_json)
    except (TypeError, ValueError):
        return ""
    out: list[str] = []

    def walk(value) -> None:
        if isinstance(value, str):
            out.append(value.lower())
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
    walk(data)
    return "\n".join(out)


def create_private_file(path: Path) -> None:
    """The SQLite file (and its folder, the data_dir) are created readable by the owner only
    (600 / 700): they hold every customer's messages. SQLite gives the -wal and -shm files
    the database file's mode. Existing files and folders are left as the operator set them."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)  # whatever the umask
    if not path.exists():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return
        os.chmod(path, 0o600)


def make_engine(url: str, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            create_private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_no_autobegin)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # the psycopg 3 driver is the one we install
        url = parsed.set(drivername="postgresql+psycopg")
    # No pool_pre_ping: its SELECT 1 on every checkout was 27% of a request's time in the
    # ingest benchmark. After a database restart the first statement on a dead connection
    # fails, SQLAlchemy then invalidates the whole pool, and the next request reconnects.
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_recycle=1800)


class Database:
    def __init__(self, url: str, pool_size: int = 10, max_overflow: int = 20):
        self.url = url
        self.engine = make_engine(url, pool_size, max_overflow)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        # one session per thread (web request thread, job thread); removed at teardown
        self.session = scoped_session(self.session_factory)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def new_session(self) -> Iterator[Session]:
        """A session of its own, for work that must not share the thread's session."""
        session = self.session_factory()
        try:
            yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.session.remove()
        self.engine.dispose()


def after_commit(session: Session, callback) -> None:
    """Run `callback()` once the session's transaction commits; drop it on rollback.

    Events and job enqueues go through here, so nothing is published or queued that was
    not first committed.
    """
    session.info.setdefault("after_commit", []).append(callback)


# context managers (factories) the after-commit callbacks of one transaction run inside,
# set by app/wiring.py (the job queue's wakes go to Redis together)
AFTER_COMMIT_AROUND: list = []


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop("after_commit", [])
    if not callbacks:
        return
    with ExitStack() as around:
        for factory in AFTER_COMMIT_AROUND:
            around.enter_context(factory())
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a failed publish must not undo a commit that happened
                import logging

                logging.getLogger(__name__).exception("after-commit callback failed")


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    # A rollback of a savepoint fires after_soft_rollback only; after_rollback means the
    # whole transaction is gone, and with it whatever it meant to publish.
    session.info.pop("after_commit", None)
