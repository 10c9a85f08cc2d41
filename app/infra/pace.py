"""Send pacing per channel (and per chat), shared by every sender of this install.

A channel's sends are spaced evenly, 1/rate seconds apart: a worker claims only as many
messages as the channel has slots free within a short horizon (`budget`), takes their slots
(absolute times, `take`) and sends each at its slot, not before; a send that fell behind
its slot by more than one interval takes a fresh slot instead of catching up in a burst.
A message whose turn is further away stays queued for a later round and holds no worker. With Redis (several worker
processes) the clock lives there (one Lua call per slot); without it, in this process.

Every send of a channel takes a slot: campaign messages, agents' replies and bots' answers
share the channel's pace (Telegram ≈30/s per bot, a WhatsApp number's tier, the SMTP
server's limit). A chat may also have its own interval (Telegram: about one message per
second per chat): `chats` grants a message only when its chat is free, and marks it busy.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Sequence

# KEYS[1] the channel's next free time. ARGV: now, interval, ttl ms, n. Returns n slots.
_TAKE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt < now then nxt = now end
local out = {}
for i = 1, tonumber(ARGV[4]) do
  out[i] = tostring(nxt)
  nxt = nxt + interval
end
redis.call('SET', KEYS[1], tostring(nxt), 'PX', tonumber(ARGV[3]))
return out
"""

# KEYS: chat keys. ARGV: now, busy-until, then one flag per key ("1": held back when busy).
# Returns 1 (granted) or 0 per key; a granted chat is busy until ARGV[2].
_CHATS = """
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local busy = tonumber(redis.call('GET', KEYS[i]) or '0')
  if busy > now and ARGV[2 + i] == '1' then
    out[i] = 0
  else
    out[i] = 1
    local until_ = math.max(busy, tonumber(ARGV[2]))
    redis.call('SET', KEYS[i], tostring(until_), 'PX', math.floor((until_ - now) * 1000) + 1000)
  end
end
return out
"""


class Pacer:
    def __init__(self, redis: Any = None, prefix: str = "threadline:pace:",
                 horizon: float = 0.5) -> None:
        self.redis = redis
        self.prefix = prefix
        self.horizon = horizon
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._take = redis.register_script(_TAKE) if redis is not None else None
        self._chats = redis.register_script(_CHATS) if redis is not None else None

    def _next_free(self, key: str) -> float:
        if self.redis is not None:
            value = self.redis.get(self.prefix + key)
            return float(value) if value is not None else 0.0
        with self._lock:
            return self._next.get(key, 0.0)

    def budget(self, key: str, rate: float, now: float | None = None) -> int:
        """How many sends of the channel fit from now to the horizon (at least 0)."""
        now = time.time() if now is None else now
        if rate <= 0:
            return 10**6
        start = max(self._next_free(key), now)
        if start > now + self.horizon:
            return 0
        return int((now + self.horizon - start) * rate + 1e-6) + 1

    def take(self, key: str, rate: float, n: int = 1, now: float | None = None) -> list[float]:
        """The channel's next `n` slots, taken: each message is sent at its slot, not
        before (a claim takes the slots of its round in one call)."""
        now = time.time() if now is None else now
        interval = 1.0 / rate if rate > 0 else 0.0
        if n <= 0:
            return []
        if self._take is not None:
            ttl = int((interval * n + self.horizon + 60) * 1000)
            return [float(v) for v in self._take(keys=[self.prefix + key],
                                                 args=[repr(now), repr(interval), ttl, n])]
        with self._lock:
            slot = max(self._next.get(key, 0.0), now)
            slots = [slot + i * interval for i in range(n)]
            self._next[key] = slot + n * interval
            if len(self._next) > 10_000:   # chats and channels seen long ago
                for k in [k for k, t in self._next.items() if t < now - 60]:
                    del self._next[k]
            return slots

    def chats(self, key: str, chats: Sequence[str], held: Sequence[bool], interval: float,
              now: float | None = None) -> list[bool]:
        """Which messages may go now, one per chat key in order: a chat busy (a message
        granted less than `interval` ago, plus the horizon it may wait for its slot) holds
        back a message whose `held` is true; every granted message makes its chat busy."""
        now = time.time() if now is None else now
        until = now + self.horizon + interval
        keys = [f"{key}:chat:{c}" for c in chats]
        if self._chats is not None:
            raw = self._chats(keys=[self.prefix + k for k in keys],
                              args=[repr(now), repr(until), *("1" if h else "0" for h in held)])
            return [bool(int(v)) for v in raw]
        out = []
        with self._lock:
            for k, hold in zip(keys, held):
                busy = self._next.get(k, 0.0)
                if busy > now and hold:
                    out.append(False)
                else:
                    self._next[k] = max(busy, until)
                    out.append(True)
        return out


def wait_until(slot: float | None) -> None:
    if slot is not None:
        delay = slot - time.time()
        if delay > 0:
            time.sleep(delay)
