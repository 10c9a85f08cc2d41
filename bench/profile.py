"""Statements and CPU milliseconds per message, in one process (issue 15): figures that do
not move with the machine's load, unlike the rates of `bench.run`.

    .venv/bin/python -m bench.profile [--backend postgres|sqlite] [--messages 500]

Five steps on a fresh database (THREADLINE_BENCH_DATABASE_URL / _REDIS_URL as bench.run,
wiped): the webhook acknowledgement (Flask's test client: routing, verification, the insert,
the wake; half Telegram half WhatsApp), the drain applying what was acknowledged
(`process_received`); the readers of the committed event log that the workers run after
the drain (rules with the answer bot, outside bots, campaign reactions) and the reports'
rollup ("readers", per message); agents' replies POSTed to
`/api/v1/conversations/<id>/messages` (`reply`: token auth, access check, channel choice,
the queued message and its events, the commit and its wakes; test client included), and the
outbox sending those replies to the local fakes (`send_queued`). Each step counts the SQL
statements the engine ran and the process's CPU
time (time.process_time: the fakes' threads included for sends), divided by messages.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sqlalchemy import event, select

from bench import payloads
from bench.common import BenchEnv


class Counter:
    def __init__(self, engine):
        self.statements = 0
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *_args, **_kwargs) -> None:
        self.statements += 1

    def measure(self, n: int, action) -> dict:
        before = self.statements
        cpu0, wall0 = time.process_time(), time.perf_counter()
        action()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        return {"messages": n, "statements_per_message": round((self.statements - before) / n, 2),
                "cpu_ms_per_message": round(cpu * 1000 / n, 3),
                "wall_ms_per_message": round(wall * 1000 / n, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--work-dir", default="/tmp/threadline-bench-profile")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    n = args.messages

    from tests.fakes.graph_api import FakeGraphAPI
    from tests.fakes.telegram_api import FakeTelegramAPI

    from bench.common import WA_NUMBER
    from bench.outbound import seed_conversations

    telegram, graph = FakeTelegramAPI().start(), FakeGraphAPI(phone_number_id=WA_NUMBER).start()
    results: dict = {}
    try:
        env = BenchEnv(args.backend, Path(args.work_dir) / args.backend, telegram.base_url,
                       graph.base_url)
        env.reset()
        seeded = env.seed()
        from app import create_app
        from app.infra.state import db

        config = env.config()
        config["log"]["level"] = "WARNING"
        app = create_app(config)
        client = app.test_client()
        engine = app.extensions["threadline.db"].engine
        counter = Counter(engine)

        def requests(tag: int, count: int):
            out = []
            for i in range(count):
                if i % 2 == 0:
                    out.append(payloads.telegram(seeded.telegram_id, tag + i, 500_000_000 + i % 200,
                                                 "Анна", f"Здравствуйте, вопрос {i}"))
                else:
                    out.append(payloads.whatsapp(seeded.whatsapp_id, f"wamid.p{tag + i}",
                                                 str(79_160_000_000 + i % 200), "Jan",
                                                 f"Dzień dobry, pytanie {i}"))
            return out

        def post_all(reqs):
            for r in reqs:
                response = client.open(r.path, method=r.method, headers=r.headers, data=r.body)
                assert response.status_code == 200, response.data

        from app.usecases.ingest import process_received
        from app.usecases.outbox import send_queued

        def drain():
            with app.app_context():
                while process_received():
                    pass
                db.session.remove()

        from app.usecases import automation, bots, campaigns, reports

        reader_jobs = {"rules": automation.run_automation, "bots": bots.run_bots,
                       "campaigns": campaigns.react, "reports": reports.rollup_job}

        def readers(split: dict | None = None):
            """What the workers run after the drain commits: the event log's readers (rules
            and the answer bot, outside bots, campaign reactions) and the reports' rollup."""
            with app.app_context():
                for name, job in reader_jobs.items():
                    if split is None:
                        job()
                    else:
                        split[name] = counter.measure(n, job)
                db.session.remove()

        def events_logged() -> int:
            with app.app_context():
                from sqlalchemy import func

                from app.infra.models import Event
                count = db.session.scalar(select(func.count(Event.id)))
                db.session.remove()
                return count

        # warm-up: compiled statements, first customers
        post_all(requests(1_000_000, 40))
        drain()
        readers()
        events0 = events_logged()
        reqs = requests(2_000_000, n)
        results["ack"] = counter.measure(n, lambda: post_all(reqs))
        results["apply"] = counter.measure(n, drain)
        split: dict = {}
        results["readers"] = counter.measure(n, lambda: readers(split))
        results["readers"]["by_reader"] = split
        results["readers"]["events_read"] = events_logged() - events0

        targets = seed_conversations(env, n + 20)
        from app.infra.models import Conversation
        from app.usecases.outbox import enqueue_reply

        def queue_replies(batch):
            with app.app_context():
                for conversation_id, _, _ in batch:
                    conversation = db.session.get(Conversation, conversation_id)
                    enqueue_reply(db.session, conversation, None, f"Ответ {conversation_id}")
                db.session.commit()
                db.session.remove()

        def send_all():
            with app.app_context():
                while send_queued():
                    pass
                db.session.remove()

        auth = {"Authorization": f"Bearer {seeded.admin_token}"}

        def post_replies(batch):
            for conversation_id, _, _ in batch:
                response = client.post(f"/api/v1/conversations/{conversation_id}/messages",
                                       headers=auth, json={"text": f"Ответ {conversation_id}"})
                assert response.status_code == 201, response.data

        queue_replies(targets[:20])
        post_replies(targets[:20])   # warm-up of the API's reply path
        send_all()
        results["reply"] = counter.measure(n, lambda: post_replies(targets[20:]))
        results["send"] = counter.measure(n, send_all)
        with env.session() as s:
            from app.infra.models import Message
            statuses = {}
            for (status,) in s.execute(select(Message.status).where(Message.direction == "out")):
                statuses[status] = statuses.get(status, 0) + 1
        results["send"]["statuses"] = statuses
        app.extensions["threadline.db"].dispose()
        env.dispose()
    finally:
        telegram.stop()
        graph.stop()
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
