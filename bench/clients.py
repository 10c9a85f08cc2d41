"""A process holding many agent Socket.IO connections (bench/sio.py).

    python -m bench.clients --port P --cookies FILE --mode live|idle --out FILE

Prints `READY <connected> <refused> <failed>` once every connection is up. In live mode it
times `message.created` events whose text is `live <seq> <sent_ns>` and `bench.ping` events
`{"seq", "t"}` against the wall clock; it stops on `stop` on stdin (or once it has
--expect events) and writes the latencies as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from bench.sio import SioClient


def raise_open_files() -> int:
    """One file descriptor per socket: 10,000 need more than the usual 1,024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def main(args) -> None:
    raise_open_files()
    cookies = json.loads(open(args.cookies).read())
    latencies: dict[str, list[float]] = {"msg": [], "ping": []}
    seen: dict[str, set] = {"msg": set(), "ping": set()}
    done = asyncio.Event()

    def make_handler(index: int):
        def on_event(prefix: str, body: str) -> None:
            now = time.time_ns()
            if prefix.startswith('["message.created"'):
                data = json.loads(body)[1]["data"]
                text = data.get("text") or ""
                if not text.startswith("live "):
                    return
                _, seq, sent = text.split()[:3]
                kind = "msg"
            elif prefix.startswith('["bench.ping"'):
                data = json.loads(body)[1]
                seq, sent, kind = data["seq"], data["t"], "ping"
            else:
                return
            latencies[kind].append((now - int(sent)) / 1e6)
            seen[kind].add((index, int(seq)))
            if args.expect and len(seen["msg"]) >= args.expect:
                done.set()
        return on_event

    clients = [SioClient("127.0.0.1", args.port, cookies[i % len(cookies)],
                         make_handler(i) if args.mode == "live" else None)
               for i in range(args.n)]
    connected = refused = failed = 0
    sem = asyncio.Semaphore(20)

    async def connect(client: SioClient) -> None:
        nonlocal connected, refused, failed
        async with sem:
            try:
                if await client.connect(timeout=60):
                    connected += 1
                else:
                    refused += 1
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failed += 1
                print(f"connect failed: {type(exc).__name__}: {exc}", file=sys.stderr)

    await asyncio.gather(*(connect(c) for c in clients))
    print(f"READY {connected} {refused} {failed}", flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: (sys.stdin.readline(), stop.set()))
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(done.wait())]
    await asyncio.wait(waiters, timeout=args.timeout, return_when=asyncio.FIRST_COMPLETED)
    dropped = sum(1 for c in clients if c.closed)
    with open(args.out, "w") as fh:
        json.dump({"connected": connected, "refused": refused, "failed": failed,
                   "closed_early": dropped, "latencies": latencies,
                   "distinct": {k: len(v) for k, v in seen.items()}}, fh)
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cookies", required=True)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--mode", choices=["live", "idle"], default="live")
    parser.add_argument("--out", required=True)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600)
    asyncio.run(main(parser.parse_args()))
