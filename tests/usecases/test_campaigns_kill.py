"""A campaign survives its worker being SIGKILLed twice mid-send: restarted, it changes
nothing: one message per customer in the inbox; at the Telegram fake, every chat got it
once (only a send in flight at a kill may have gone out twice: Telegram cannot tell a
repeat), and the bot's pace (campaigns.telegram_rate) held in every second."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from connectors.base import Handle, Inbound

from app.infra.models import Campaign, CampaignRecipient, Message
from app.infra.state import db
from app.usecases.ingest import apply_inbound
from tests.conftest import ROOT, SCALE_OUT, cli_env, threadline_cmd, wait_until

N = 150
RATE = 25


def _sending_ids() -> set[int]:
    db.session.expire_all()
    ids = set(db.session.scalars(select(Message.customer_id).where(Message.status == "sending")))
    db.session.commit()
    return ids


def _sent() -> int:
    db.session.expire_all()
    n = db.session.scalar(select(func.count()).select_from(Message)
                          .where(Message.direction == "out", Message.status == "sent"))
    db.session.commit()
    return n


@pytest.mark.slow
@pytest.mark.parametrize("backend", SCALE_OUT)   # worker processes need Redis
def test_a_campaign_survives_two_sigkills_of_its_worker(app, api, backend, telegram_channel,
                                                        telegram_api):
    config = app.config["THREADLINE"]
    customers = {}
    for n in range(N):
        message = apply_inbound(db.session, telegram_channel, Inbound(
            external_id=f"k-{n}", sender=Handle("telegram", str(70000 + n)),
            sender_name=f"Klient {n}", sent_at=datetime.now(timezone.utc), text="Dzień dobry"))
        db.session.commit()
        customers[message.customer_id] = 70000 + n
    segment = api.post("/segments", json={"name": "All", "filter": {}}).json
    campaign = api.post("/campaigns", json={"name": "Kill me", "segment_id": segment["id"],
                                            "text": "Promocja dla {first_name}"}).json
    assert api.post(f"/campaigns/{campaign['id']}/start").status_code == 200
    env = {**cli_env(config), "THREADLINE_CAMPAIGNS_TELEGRAM_RATE": str(RATE),
           "THREADLINE_CAMPAIGNS_BATCH": "40", "THREADLINE_CAMPAIGNS_RUN_SECONDS": "3"}
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), len(telegram_api.calls("sendMessage"))))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    in_flight: set[int] = set()
    try:
        for kill, after in enumerate((30, 90)):
            worker = subprocess.Popen(threadline_cmd("worker"), cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True)
            try:
                wait_until(lambda: len(telegram_api.calls("sendMessage")) >= after, timeout=60,
                           message=f"{after} sends before kill {kill + 1}")
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)
            finally:
                if worker.poll() is None:
                    os.killpg(worker.pid, signal.SIGKILL)
            in_flight |= _sending_ids()
            assert len(telegram_api.calls("sendMessage")) < N   # killed mid-campaign
        # the runner's lease lapses within seconds; the restarted worker's sweep revives it
        time.sleep(float(config["jobs"]["lease"]) + 0.5)
        finished = subprocess.run(threadline_cmd("worker", "--burst"), cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0, finished.stderr[-2000:]
        wait_until(lambda: _sent() == N, timeout=30, message="every message sent")
    finally:
        stop.set()
        sampler.join(5)
    db.session.expire_all()
    assert db.session.get(Campaign, campaign["id"]).status == "done"
    per_customer = Counter(db.session.scalars(select(Message.customer_id)
                                              .where(Message.direction == "out")))
    assert set(per_customer) == set(customers) and set(per_customer.values()) == {1}
    assert db.session.scalar(select(func.count()).select_from(CampaignRecipient)) == N
    chats = Counter(int(c.params["chat_id"]) for c in telegram_api.calls("sendMessage"))
    assert set(chats) == set(customers.values())
    twice = {chat for chat, n in chats.items() if n > 1}
    assert twice <= {customers[c] for c in in_flight}, (twice, in_flight)
    assert max(chats.values()) <= 2
    # the pace, counted at the fake: never more than the rate in any second (a restart may
    # send what was in flight once more)
    busiest = max(n2 - n1 for t1, n1 in samples for t2, n2 in samples if 0 <= t2 - t1 <= 1.0)
    assert busiest <= RATE + len(in_flight) + 2, busiest
    db.session.commit()
