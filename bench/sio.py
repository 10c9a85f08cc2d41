"""A minimal asyncio Socket.IO client (Engine.IO 4 over a plain websocket), so one process
can hold 1,000 agent connections and time 10,000 deliveries a second without one thread per
socket. It speaks exactly what a browser does: websocket upgrade with the session cookie,
`40/agents,` to join the namespace, pong to every ping."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from typing import Callable

NAMESPACE = "/agents"


class SioClient:
    def __init__(self, host: str, port: int, cookie: str,
                 on_event: Callable[[str, str], None] | None = None):
        self.host, self.port, self.cookie = host, port, cookie
        self.on_event = on_event
        self.reader = self.writer = None
        self.connected = asyncio.Event()
        self.refused = False
        self.closed = False
        self._task = None

    async def connect(self, timeout: float = 30) -> bool:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write((
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Cookie: {self.cookie}\r\n\r\n").encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        self._task = asyncio.create_task(self._read_loop())
        await asyncio.wait_for(self.connected.wait(), timeout)
        return not self.refused

    def _send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    def _send_control(self, opcode: int, payload: bytes = b"") -> None:
        mask = os.urandom(4)
        self.writer.write(struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask
                          + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    async def _read_frame(self) -> tuple[int, bytes]:
        b1, b2 = await self.reader.readexactly(2)
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        mask = await self.reader.readexactly(4) if b2 & 0x80 else None
        data = await self.reader.readexactly(n)
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return b1, data

    async def _read_loop(self) -> None:
        buffer = b""
        try:
            while True:
                b1, data = await self._read_frame()
                opcode, fin = b1 & 0x0F, b1 & 0x80
                if opcode == 9:
                    self._send_control(0xA, data)
                    continue
                if opcode == 8:
                    break
                if opcode in (1, 2, 0):
                    buffer += data
                    if not fin:
                        continue
                    text, buffer = buffer.decode(), b""
                    self._on_packet(text)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            self.connected.set()

    def _on_packet(self, text: str) -> None:
        kind = text[:1]
        if kind == "0":          # engine.io open: join the namespace
            self._send_text(f"40{NAMESPACE},")
        elif kind == "2":        # ping
            self._send_text("3")
        elif text.startswith("40"):
            self.connected.set()
        elif text.startswith("44"):
            self.refused = True
            self.connected.set()
        elif text.startswith("42") and self.on_event is not None:
            body = text[text.index("["):]
            self.on_event(body[:40], body)

    async def close(self) -> None:
        if self.writer is not None and not self.closed:
            try:
                self._send_text(f"41{NAMESPACE},")
                self._send_control(8, struct.pack("!H", 1000))
                await self.writer.drain()
            except Exception:
                pass
            self.writer.close()
        if self._task is not None:
            self._task.cancel()


def event_of(body: str) -> tuple[str, dict]:
    name, data = json.loads(body)[:2]
    return name, data
