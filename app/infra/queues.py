"""Background jobs: rq on Redis when `redis_url` is set, otherwise worker threads inside
the server process. Both run the same task functions, each in an app context with a
fresh database session."""
from __future__ import annotations

import logging
import queue as queue_module
import os
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Protocol

from flask import Flask

log = logging.getLogger(__name__)

# job name -> function, filled by app/wiring.py (the composition root)
TASKS: dict[str, Callable[..., Any]] = {}


def run_in_app(app: Flask, name: str, args: tuple) -> Any:
    with app.app_context():
        try:
            return TASKS[name](*args)
        finally:
            app.extensions["threadline.db"].session.remove()


class JobQueue(Protocol):
    def enqueue(self, name: str, *args: Any) -> None: ...

    def wake(self, name: str) -> None:
        """Enqueue the argument-less job `name` unless one is already waiting: many
        callers (every webhook) ask for the same drain, a worker runs it once."""

    def awake(self, name: str) -> None:
        """Called by the job `name` as it starts, before it looks for work: a later
        `wake` enqueues it again, so no work committed after this call is missed."""


# A woken job that has not started within this many seconds may be enqueued once more: a
# worker that died holding the flag delays the drain by this much at most.
WAKE_TTL = 2

_gathering = threading.local()


@contextmanager
def wakes_together() -> Iterator[None]:
    """Wakes asked for inside this block (on this thread) go to Redis together when it
    ends: one round trip for their SET NXs instead of one each. Run around the after-commit
    callbacks of a transaction (app/wiring.py), which wake up to three drains per reply
    (the sends, the rules' reader, the reports' rollup). A wake that fails is logged: the
    sweeper wakes every drain whose work waits."""
    if getattr(_gathering, "wakes", None) is not None:  # nested: the outer block sends
        yield
        return
    _gathering.wakes = []
    try:
        yield
    finally:
        wakes, _gathering.wakes = _gathering.wakes, None
        by_queue: dict[int, tuple[Any, list[str]]] = {}
        for target, name in wakes:
            names = by_queue.setdefault(id(target), (target, []))[1]
            if name not in names:
                names.append(name)
        for target, names in by_queue.values():
            try:
                target.wake_all(names)
            except Exception:
                log.exception("could not wake %s", ", ".join(names))


def _gathered(target: Any, name: str) -> bool:
    """True when `wake(name)` was put off to the end of a `wakes_together` block."""
    wakes = getattr(_gathering, "wakes", None)
    if wakes is None:
        return False
    wakes.append((target, name))
    return True


class InProcessQueue:
    """The embedded default: no Redis, jobs run on threads of this process.

    Jobs are lost with the process, which is fine: what they work on is committed, and the
    sweeper of the next start finds it (queued sends, received events) and queues it again.
    """

    def __init__(self, app: Flask, threads: int = 2):
        self.app = app
        self.threads = threads
        self._queue: queue_module.Queue[tuple[str, tuple] | None] = queue_module.Queue()
        self._workers: list[threading.Thread] = []
        self._waking: set[str] = set()
        self._waking_lock = threading.Lock()

    def enqueue(self, name: str, *args: Any) -> None:
        if name not in TASKS:
            raise KeyError(f"unknown task {name!r}")
        self._queue.put((name, args))

    def wake(self, name: str) -> None:
        with self._waking_lock:
            if name in self._waking:
                return
            self._waking.add(name)
        self.enqueue(name)

    def awake(self, name: str) -> None:
        with self._waking_lock:
            self._waking.discard(name)

    def start(self) -> None:
        if self._workers:
            return
        for n in range(self.threads):
            worker = threading.Thread(target=self._loop, name=f"threadline-job-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self, timeout: float = 10) -> None:
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(timeout)
        self._workers = []

    def join(self) -> None:
        """Wait until every queued job has run (tests, `demo`)."""
        self._queue.join()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                name, args = item
                try:
                    run_in_app(self.app, name, args)
                except Exception:
                    log.exception("job %s%r failed", name, args)
            finally:
                self._queue.task_done()


class RQQueue:
    def __init__(self, redis_url: str, name: str):
        from redis import Redis
        from rq import Queue

        self.redis = Redis.from_url(redis_url)
        self.queue = Queue(name, connection=self.redis)

    def enqueue(self, name: str, *args: Any) -> None:
        if name not in TASKS:
            raise KeyError(f"unknown task {name!r}")
        self.queue.enqueue(run_task, name, *args, job_timeout=600, result_ttl=0,
                           failure_ttl=7 * 86400)

    def _wake_key(self, name: str) -> str:
        return f"threadline:{self.queue.name}:waking:{name}"

    def wake(self, name: str) -> None:
        # one SET per webhook instead of an rq job (≈65 Redis commands per job, DESIGN 6)
        if _gathered(self, name):
            return
        if self.redis.set(self._wake_key(name), 1, nx=True, ex=WAKE_TTL):
            self.enqueue(name)

    def wake_all(self, names: list[str]) -> None:
        """`wake` of each name, their SET NXs in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.set(self._wake_key(name), 1, nx=True, ex=WAKE_TTL)
        for name, flagged in zip(names, pipe.execute()):
            if flagged:
                self.enqueue(name)

    def awake(self, name: str) -> None:
        self.redis.delete(self._wake_key(name))


_worker_app: Flask | None = None


def set_worker_app(app: Flask) -> None:
    global _worker_app
    _worker_app = app


def run_task(name: str, *args: Any) -> Any:
    """The function rq runs: the worker process built its app once at start."""
    global _worker_app
    if _worker_app is None:  # a worker started by plain `rq worker`
        from app import create_app

        _worker_app = create_app()
    return run_in_app(_worker_app, name, args)


_LIVE: dict[str, dict] = {}   # table -> {id: live leases on it} in this process
_LIVE_LOCK = threading.Lock()
_LIVE_PID = [os.getpid()]


class Lease:
    """Keeps a worker's claims alive while it works on them.

    A claim is a row moved to "sending" with `locked_at`; the sweeper takes back a claim
    whose `locked_at` is older than `jobs.lease` seconds (its worker died). While the worker
    lives, this thread renews `locked_at` of the claimed rows every lease/3 seconds on a
    connection of its own, so a send that takes longer than the lease (a slow SMTP server)
    keeps its claim, and a SIGKILLed worker's claims lapse within seconds."""

    def __init__(self, engine, model, ids, seconds: float):
        self.engine, self.model, self.ids = engine, model, list(ids)
        self.interval = max(0.05, float(seconds) / 3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="threadline-lease", daemon=True)

    def __enter__(self) -> "Lease":
        if self.ids:
            with _LIVE_LOCK:
                live = _LIVE.setdefault(self.model.__tablename__, {})
                for i in self.ids:
                    live[i] = live.get(i, 0) + 1
            self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self.ids:
            with _LIVE_LOCK:
                live = _LIVE.get(self.model.__tablename__, {})
                for i in self.ids:
                    if live.get(i, 0) <= 1:
                        live.pop(i, None)
                    else:
                        live[i] -= 1

    @staticmethod
    def held(model) -> list:
        """Ids of `model` whose claims a thread of this process is still working on: the
        sweeper of this process never takes them back, even when a renewal came late (a
        starved machine, SQLite's write lock busy for seconds)."""
        if _LIVE_PID[0] != os.getpid():   # a forked child holds none of its parent's
            return []
        with _LIVE_LOCK:
            return list(_LIVE.get(model.__tablename__, ()))

    def renew(self) -> int:
        from sqlalchemy import update

        from app.infra.models import utcnow

        model = self.model
        with self.engine.begin() as connection:
            return connection.execute(
                update(model).where(model.id.in_(self.ids), model.status == "sending")
                .values(locked_at=utcnow())).rowcount

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.renew():
                    return  # every claim is done (or was taken back)
            except Exception:
                log.exception("renewing the lease of %s %s failed", self.model.__name__, self.ids)


class Sweeper(threading.Thread):
    """Every `interval` seconds: revive stale sends, queue due retries and left-over events."""

    def __init__(self, app: Flask, interval: float):
        super().__init__(name="threadline-sweeper", daemon=True)
        self.app = app
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                run_in_app(self.app, "sweep", ())
            except Exception:
                log.exception("sweep failed")

    def stop(self) -> None:
        self._stop_event.set()

