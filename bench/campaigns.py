"""Campaign sends/s (issue 21): N customers with one, two or three handles on Telegram
bots, a WhatsApp number and a mailbox (the local fake Bot API, fake Graph API and aiosmtpd),
one campaign to all of them, timed from start to `done`; then every fake is checked: each
customer got the message exactly once, on one channel, and no bot went over its pace.

    python -m bench.campaigns [--backend sqlite|postgres] [--customers 10000] [--bots 8]
        [--telegram-rate 30] [--whatsapp-rate 200] [--email-rate 200]
        [--fakes process|inline] [--workers N] [--threads 2] [--send-parallel 8] [--json FILE]

The paces' ceiling by default: 8 bots x 30/s + 200/s + 200/s = 640/s (608/s for this mix
of recipients). The fakes run in a process of their own (`--fakes inline`: in this one, as
the first runs did; they then share its CPU). Without --workers the embedded default runs
the jobs: the in-process queue's threads (the campaign's runner, which keeps each
channel's next two seconds queued and drains the outbox itself, and one more drain). With
`--backend postgres --workers N`, N `threadline worker` processes (rq, Redis at
THREADLINE_BENCH_REDIS_URL, flushed) do, as the README's production layout. Also reported:
statements and commits per send (every connection of this process from start to done;
with workers, commits of every process from pg_stat_database and no statement count) and
the best sends/s this mix of recipients allows at these paces, the CPU seconds of the
sending processes per 1,000 sends (this one from start to done, the workers' whole lives),
the count at each fake and any recipient that received twice. PostgreSQL:
THREADLINE_BENCH_DATABASE_URL (default database threadline_bench), wiped first.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("THREADLINE_BENCH_DATABASE_URL",
                        "postgresql://postgres@127.0.0.1:5432/threadline_bench")
REDIS_URL = os.environ.get("THREADLINE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
BOTS = 4


def _config(url: str, data_dir: Path, rates: dict[str, float], threads: int = 2,
            parallel: int = 8, redis_url: str = "") -> dict:
    from app.infra.config import load_config

    return load_config(path=data_dir / "absent.toml", environ={}, overrides={
        "database_url": url, "redis_url": redis_url, "data_dir": str(data_dir),
        "secret_key": "bench-secret-key-0123456789", "server": {"pollers": False},
        "log": {"level": "WARNING"},
        "campaigns": {f"{k}_rate": v for k, v in rates.items()},
        "jobs": {"inprocess_threads": threads, "send_parallel": parallel}})


def generate(customers: int, telegram_url: str, graph_url: str, smtp_settings: dict,
             seed: int = 21, bots: int = BOTS) -> dict:
    """Customers: a third on Telegram alone; a third Telegram + email (last wrote by email);
    a third Telegram + WhatsApp + email (last wrote on WhatsApp, inside the window); 2% opted
    out of their channel. Rows inserted in bulk."""
    from sqlalchemy import insert, select

    from app.domain.channels import add_channel
    from app.infra.models import Conversation, Customer, Identity, Message, OptOut
    from app.infra.state import db

    rng = random.Random(seed)
    s = db.session
    n_bots = bots
    bots = [add_channel("telegram", f"Bot {n}", {"token": f"{n + 1}00000:bench-{n}",
                                                 "mode": "webhook", "secret_token": f"s{n}",
                                                 "api_base_url": telegram_url,
                                                 "public_url": "https://bench.local"})
            for n in range(n_bots)]
    whatsapp = add_channel("whatsapp", "WhatsApp", {
        "phone_number_id": "106540352242922", "access_token": "bench-token",
        "app_secret": "bench-secret", "verify_token": "v", "api_base_url": graph_url})
    email = add_channel("email", "Mailbox", {"imap_host": "127.0.0.1", "imap_user": "u",
                                             "imap_password": "p", "imap_security": "none",
                                             **smtp_settings,
                                             "from_address": "shop@bench.local"})
    s.commit()
    now = datetime.now(timezone.utc)
    s.execute(insert(Customer), [{"name": f"Klient {c}", "created_at": now, "updated_at": now,
                                  "tags": [], "custom_fields": {}} for c in range(customers)])
    ids = list(s.scalars(select(Customer.id).order_by(Customer.id)))
    identities, conversations, messages, opt_outs, expected = [], [], [], [], {}
    for n, cid in enumerate(ids):
        shape = n % 3
        bot = bots[n % n_bots]
        tg_id = str(10_000_000 + n)
        identities.append({"customer_id": cid, "kind": "telegram", "value": tg_id})
        written = [(bot, f"telegram:{tg_id}")]
        if shape >= 1:
            identities.append({"customer_id": cid, "kind": "email", "value": f"k{n}@bench.local"})
        if shape == 2:
            identities.append({"customer_id": cid, "kind": "whatsapp", "value": f"48{600000000 + n}"})
            written.append((whatsapp, f"whatsapp:48{600000000 + n}"))
        elif shape == 1:
            written.append((email, f"email:k{n}@bench.local"))
        last = written[-1][0]
        conversations.append({"customer_id": cid, "channel_id": last.id, "status": "resolved",
                              "created_at": now, "last_activity_at": now, "labels": [],
                              "priority": "normal", "unread_count": 0, "last_message_preview": ""})
        if rng.random() < 0.02:
            opt_outs.append({"customer_id": cid, "channel_id": last.id, "source": "keyword",
                             "detail": "STOP", "created_at": now})
            expected[cid] = None if shape == 0 else "telegram"
            # a customer opted out of their last channel (email or WhatsApp) gets the
            # campaign on the channel they wrote from before it: the Telegram bot
        else:
            expected[cid] = {0: "telegram", 1: "email", 2: "whatsapp"}[shape]
        for k, (channel, sender) in enumerate(written):
            messages.append((cid, channel.id, sender, now - timedelta(hours=2, minutes=-k)))
    s.execute(insert(Identity), identities)
    s.execute(insert(Conversation), conversations)
    conv = dict(s.execute(select(Conversation.customer_id, Conversation.id)).all())
    s.execute(insert(Message), [{"uuid": f"bench-{i}", "conversation_id": conv[cid],
                                 "customer_id": cid, "channel_id": ch, "direction": "in",
                                 "text": "Dzień dobry", "status": "received", "created_at": at,
                                 "meta": {"from": sender}, "history": [], "attempts": 0,
                                 "content_type": "text", "deleted": False, "automated": False,
                                 "external_id": f"bench-{i}"}
                                for i, (cid, ch, sender, at) in enumerate(messages)])
    if opt_outs:
        s.execute(insert(OptOut), opt_outs)
    s.commit()
    return {"expected": expected, "bots": {b.settings["token"]: b.id for b in bots},
            "whatsapp": whatsapp.id, "email": email.id}


def _busiest_second(times: list[float]) -> int:
    """The most requests within any one second (sliding window over arrival times)."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] > 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def _fakes_main(conn) -> None:
    """The three fakes in a process of their own (--fakes process): the sending process
    keeps its CPU for sending. Sends back their addresses, then on "report" what each
    received (per customer) and the busiest second per bot, counted at the fake."""
    from tests.fakes.graph_api import FakeGraphAPI
    from tests.fakes.telegram_api import FakeTelegramAPI
    from tests.servers.smtp import RecordingSMTP

    with FakeTelegramAPI() as telegram, FakeGraphAPI(phone_number_id="106540352242922",
                                                     access_token="bench-token") as graph, \
            RecordingSMTP() as smtp:
        conn.send({"telegram": telegram.base_url, "graph": graph.base_url,
                   "smtp": smtp.settings()})
        while conn.recv() == "report":
            conn.send(_received(telegram, graph, smtp))


def _received(telegram, graph, smtp) -> dict:
    calls = telegram.calls("sendMessage")
    per_bot: dict[str, list[float]] = {}
    for r in calls:
        per_bot.setdefault(r.token, []).append(r.at)
    return {"tg_chats": Counter((r.token, str(r.params["chat_id"])) for r in calls),
            "wa_to": Counter(m["to"] for m in graph.sent()),
            "mail_to": Counter(r for m in smtp.received for r in m.rcpt_tos),
            "busiest": {token: _busiest_second(ts) for token, ts in per_bot.items()}}


class _Fakes:
    """The fakes, in this process (`inline`, as before) or in a child process (`process`)."""

    def __init__(self, where: str):
        self.where = where

    def __enter__(self) -> "_Fakes":
        if self.where == "process":
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            self.conn, child = ctx.Pipe()
            self.proc = ctx.Process(target=_fakes_main, args=(child,), daemon=True)
            self.proc.start()
            self.urls = self.conn.recv()
        else:
            from tests.fakes.graph_api import FakeGraphAPI
            from tests.fakes.telegram_api import FakeTelegramAPI
            from tests.servers.smtp import RecordingSMTP

            self._objs = (FakeTelegramAPI().start(),
                          FakeGraphAPI(phone_number_id="106540352242922",
                                       access_token="bench-token").start(),
                          RecordingSMTP().start())
            self.urls = {"telegram": self._objs[0].base_url, "graph": self._objs[1].base_url,
                         "smtp": self._objs[2].settings()}
        return self

    def report(self) -> dict:
        if self.where == "process":
            self.conn.send("report")
            return self.conn.recv()
        return _received(*self._objs)

    def __exit__(self, *exc) -> None:
        if self.where == "process":
            self.conn.send("stop")
            self.proc.join(10)
        else:
            for obj in self._objs:
                obj.stop()


def _pg_commits(url: str) -> int:
    """Transactions committed in the bench database so far (every process's connections)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as c:
        n = c.execute(text("SELECT xact_commit FROM pg_stat_database "
                           "WHERE datname = current_database()")).scalar()
    engine.dispose()
    return int(n)


def _start_workers(n: int, url: str, redis_url: str, work: Path, rates: dict, args) -> list:
    """`threadline worker` processes (rq SimpleWorker + sweeper), the production layout."""
    import subprocess

    (work / "config.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env.update({"THREADLINE_CONFIG": str(work / "config.toml"),
                "THREADLINE_DATABASE_URL": url, "THREADLINE_REDIS_URL": redis_url,
                "THREADLINE_SECRET_KEY": "bench-secret-key-0123456789",
                "THREADLINE_DATA_DIR": str(work), "THREADLINE_SERVER_POLLERS": "false",
                "THREADLINE_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
                "THREADLINE_JOBS_SEND_PARALLEL": str(args.send_parallel),
                **{f"THREADLINE_CAMPAIGNS_{k.upper()}_RATE": str(v) for k, v in rates.items()}})
    procs = []
    for i in range(n):
        log = open(work / f"worker-{i}.log", "wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=ROOT,
                                      env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
    return procs


def run(args) -> dict:

    rates = {"telegram": args.telegram_rate, "whatsapp": args.whatsapp_rate,
             "email": args.email_rate}
    work = Path(tempfile.mkdtemp(prefix="bench-campaigns-"))
    if args.backend == "postgres":
        from bench.reports import _wipe_postgres

        _wipe_postgres(PG_URL)
        url = PG_URL
    else:
        url = f"sqlite:///{work / 'bench.db'}"
    redis_url = REDIS_URL if args.workers else ""
    if redis_url:
        from redis import Redis

        Redis.from_url(redis_url).flushdb()
    with _Fakes(args.fakes) as fakes:
        from app import create_app
        from app.cli import upgrade_database
        from app.infra.queues import InProcessQueue

        config = _config(url, work, rates, args.threads, args.send_parallel, redis_url)
        if redis_url:
            upgrade_database(create_app({**config, "redis_url": ""}))
        app = create_app(config)
        if not redis_url:
            upgrade_database(app)
        with app.app_context():
            from app.domain.agents import create_agent, create_token
            from app.infra.models import Campaign, Message
            from app.infra.state import db

            admin = create_agent("admin@bench.local", "Admin", "bench-password-1", role="admin")
            token = create_token(admin, "bench")
            db.session.commit()
            t0 = time.monotonic()
            world = generate(args.customers, fakes.urls["telegram"], fakes.urls["graph"],
                             fakes.urls["smtp"], bots=args.bots)
            generated = time.monotonic() - t0
        queue = app.extensions["threadline.queue"]
        assert isinstance(queue, InProcessQueue) != bool(redis_url)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        segment = client.post("/api/v1/segments", json={"name": "All", "filter": {}},
                              headers=headers).json
        campaign = client.post("/api/v1/campaigns", headers=headers, json={
            "name": "Bench", "segment_id": segment["id"], "text": "Cześć {first_name}!",
            "variants": {"email": {"subject": "Nowa kolekcja"}}}).json
        # statements and commits on every connection of the app, from start to done
        from sqlalchemy import event as sa_event

        engine = app.extensions["threadline.db"].engine
        tally = Counter()
        tally_lock = threading.Lock()

        def on_statement(*_a, **_k) -> None:
            with tally_lock:
                tally["statements"] += 1

        def on_commit(*_a, **_k) -> None:
            with tally_lock:
                tally["commits"] += 1

        sa_event.listen(engine, "before_cursor_execute", on_statement)
        sa_event.listen(engine, "commit", on_commit)
        workers = []
        if redis_url:
            workers = _start_workers(args.workers, url, redis_url, work, rates, args)
            from redis import Redis
            from rq import Worker

            ready_by = time.monotonic() + 60   # every worker registered before the start
            while (Worker.count(connection=Redis.from_url(redis_url)) < args.workers
                   and time.monotonic() < ready_by):
                time.sleep(0.2)
            commits_before = _pg_commits(url)
        else:
            queue.start()
        load_before = os.getloadavg()
        cpu_before = _cpu_self()
        started = time.monotonic()
        assert client.post(f"/api/v1/campaigns/{campaign['id']}/start",
                           headers=headers).status_code == 200
        from sqlalchemy.exc import OperationalError

        while True:
            try:
                with app.app_context():
                    status = db.session.get(Campaign, campaign["id"]).status
                    db.session.commit()
            except OperationalError:   # SQLite busy for longer than its timeout: ask again
                status = "running"
            if status != "running":
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        cpu_s = _cpu_self() - cpu_before
        counted = dict(tally)
        load_after = os.getloadavg()
        if redis_url:
            counted["commits"] = _pg_commits(url) - commits_before   # every process's
            counted.pop("statements", None)   # the workers' statements are not counted here
            for proc in workers:
                proc.terminate()
            for proc in workers:   # their CPU time (start-up included), from the kernel
                cpu_s += _reap_cpu(proc)
        else:
            queue.join()
            queue.stop()
        body = client.get(f"/api/v1/campaigns/{campaign['id']}", headers=headers).json
        with app.app_context():
            from sqlalchemy import func, select

            out_per_customer = Counter(db.session.scalars(
                select(Message.customer_id).where(Message.direction == "out")))
            db.session.commit()
        app.extensions["threadline.db"].dispose()
        # what each fake received, per customer
        got = fakes.report()
        tg_chats, wa_to, mail_to = got["tg_chats"], got["wa_to"], got["mail_to"]
        delivered = sum(tg_chats.values()) + sum(wa_to.values()) + sum(mail_to.values())
        expected = world["expected"]
        reachable = sum(1 for v in expected.values() if v)
        busiest = got["busiest"]
        result = {
            "backend": args.backend, "customers": args.customers, "generated_s": round(generated, 1),
            "status": body["status"], "elapsed_s": round(elapsed, 2),
            "sends": body["totals"]["sent"], "failed": body["totals"]["failed"],
            "sends_per_s": round(body["totals"]["sent"] / elapsed, 1),
            "per_channel": {c["channel_name"]: c["sent"] for c in body["channels"]},
            "skipped": body["skipped"], "rates": rates, "bots": args.bots,
            "fakes": args.fakes, "workers": args.workers or "in-process queue",
            "send_parallel": args.send_parallel,
            "load_average_start_end": [round(load_before[0], 2), round(load_after[0], 2)],
            "ceiling_per_s": args.bots * rates["telegram"] + rates["whatsapp"] + rates["email"],
            # the best this mix of recipients allows: the busiest channel at its pace
            "ceiling_for_this_mix_per_s": _mix_ceiling(body, rates),
            "busiest_second_per_bot": max(busiest.values() or [0]),
            # every statement and commit of the app while the campaign ran (runner, outbox,
            # progress, this loop's status polls), per message sent
            "statements_per_send": (round(counted["statements"] / max(1, body["totals"]["sent"]), 1)
                                    if "statements" in counted else None),
            "commits_per_send": round(counted.get("commits", 0)
                                      / max(1, body["totals"]["sent"]), 2),
            # CPU seconds the sending processes used per 1,000 sends (this process from
            # start to done, plus the workers' whole lives; not the fakes, PostgreSQL or
            # Redis): a figure the machine's other load moves far less than sends/s
            "cpu_s_per_1000_sends": round(cpu_s * 1000 / max(1, body["totals"]["sent"]), 2),
            "delivered_at_fakes": delivered, "reachable": reachable,
            "at_fakes": {"telegram": sum(tg_chats.values()), "whatsapp": sum(wa_to.values()),
                         "email": sum(mail_to.values())},
            "received_twice": [k for c in (tg_chats, wa_to, mail_to)
                               for k, n in c.items() if n > 1][:10],
            # as many at each kind of channel as the channel policy should pick
            "right_channels": Counter(v for v in expected.values() if v) == Counter(
                {"telegram": sum(tg_chats.values()), "whatsapp": sum(wa_to.values()),
                 "email": sum(mail_to.values())}),
            "exactly_once": (delivered == reachable and max(tg_chats.values() or [1]) == 1
                             and max(wa_to.values() or [1]) == 1
                             and max(mail_to.values() or [1]) == 1
                             and set(out_per_customer.values()) <= {1}),
        }
        return result


def _cpu_self() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reap_cpu(proc) -> float:
    """Wait for a terminated child; the user + system CPU seconds it used."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pid, _status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = 0
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.1)
    proc.kill()
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = -9
    return usage.ru_utime + usage.ru_stime


def _mix_ceiling(body: dict, rates: dict[str, float]) -> float:
    """Sends / the longest any channel needs for its share at its pace."""
    longest = max((c["sent"] / rates[c["channel_kind"]] for c in body["channels"]
                   if c["channel_kind"] in rates), default=0.0)
    return round(body["totals"]["sent"] / longest, 1) if longest else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--telegram-rate", type=float, default=30.0, help="per bot")
    parser.add_argument("--whatsapp-rate", type=float, default=200.0)
    parser.add_argument("--email-rate", type=float, default=200.0)
    parser.add_argument("--bots", type=int, default=8, help="Telegram bots")
    parser.add_argument("--fakes", choices=["process", "inline"], default="process",
                        help="the fakes in a process of their own, or in the sending one")
    parser.add_argument("--workers", type=int, default=0,
                        help="PostgreSQL + Redis: N `threadline worker` processes send "
                             "(0: the in-process queue)")
    parser.add_argument("--threads", type=int, default=2,
                        help="the in-process queue's worker threads (jobs.inprocess_threads)")
    parser.add_argument("--send-parallel", type=int, default=8, help="jobs.send_parallel")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    if args.workers and args.backend != "postgres":
        parser.error("--workers needs --backend postgres (rq workers need Redis)")
    result = run(args)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["exactly_once"] and result["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
