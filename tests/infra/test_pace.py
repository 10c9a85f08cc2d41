"""The send pacer (app/infra/pace.py), in memory and in Redis: slots 1/rate apart from the
channel's next free time, a round's budget within the horizon, and chats held back only
for the messages that must wait for them. Times are given, not measured."""
from __future__ import annotations

import uuid

import pytest

from app.infra.pace import Pacer
from tests.conftest import REDIS_URL


@pytest.fixture(params=["memory"] + (["redis"] if REDIS_URL else []))
def pacer(request):
    if request.param == "memory":
        yield Pacer()
        return
    from redis import Redis

    redis = Redis.from_url(REDIS_URL)
    prefix = f"test-pace-{uuid.uuid4().hex}:"
    yield Pacer(redis, prefix=prefix)
    for key in redis.scan_iter(prefix + "*"):
        redis.delete(key)


def test_slots_are_spaced_by_the_rate_and_shared_by_every_taker(pacer):
    now = 1_000_000.0
    assert pacer.take("channel:1", 10, 3, now=now) == pytest.approx([now, now + 0.1, now + 0.2])
    # a second sender (another drain, a retry) continues after them, never alongside
    assert pacer.take("channel:1", 10, 1, now=now + 0.05) == pytest.approx([now + 0.3])
    # another channel has its own clock
    assert pacer.take("channel:2", 10, 1, now=now) == pytest.approx([now])
    # a channel idle for a while starts at now, not in the past
    assert pacer.take("channel:1", 10, 1, now=now + 5) == pytest.approx([now + 5])


def test_the_budget_is_what_fits_within_the_horizon(pacer):
    now = 2_000_000.0
    assert pacer.budget("channel:3", 30, now=now) == 16          # 0.5 s at 30/s, from now
    pacer.take("channel:3", 30, 16, now=now)
    assert pacer.budget("channel:3", 30, now=now) == 0           # all taken up to the horizon
    assert pacer.budget("channel:3", 30, now=now + 0.5) == 15


def test_a_busy_chat_holds_back_only_the_messages_that_wait_for_it(pacer):
    now = 3_000_000.0
    assert pacer.chats("channel:4", ["a", "b"], [True, True], 1.0, now=now) == [True, True]
    # a campaign message to a chat written to just now waits; a reply does not
    assert pacer.chats("channel:4", ["a", "c"], [True, True], 1.0, now=now + 0.2) == [False, True]
    assert pacer.chats("channel:4", ["a"], [False], 1.0, now=now + 0.2) == [True]
    # once the interval (and the horizon the granted message may wait) has passed: free
    assert pacer.chats("channel:4", ["b"], [True], 1.0, now=now + 1.6) == [True]
