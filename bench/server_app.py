"""`threadline serve`, exactly as app/server.py runs it (`server.workers` gunicorn gthread
worker processes, `server.threads` threads each; with `realtime.external` they only publish
events), plus reference routes when THREADLINE_BENCH_ROUTES=1:

- POST /bench/ref    inserts the posted JSON as one row of the same width as inbound_events
                     into `bench_reference` and answers like the webhook (the ingest reference)
- POST /bench/emit   a bare Socket.IO emit to the agents' rooms (the live-delivery reference)
- GET  /bench/ping   SELECT 1 and a small JSON answer (the floor of an API request)

Run: python -m bench.server_app --host 127.0.0.1 --port 8000 (config from THREADLINE_*).
"""
from __future__ import annotations

import argparse
import json
import os

from app.server import _Gunicorn

_table = None


def reference_table():
    """A table as wide as inbound_events (same columns and types), with only a primary key."""
    global _table
    if _table is None:
        from sqlalchemy import Column, Integer, MetaData, String, Table, Text

        from app.infra.models import BigId, JSONType, UTCDateTime

        _table = Table(
            "bench_reference", MetaData(),
            Column("id", BigId, primary_key=True),
            Column("channel_id", Integer, nullable=False),
            Column("external_id", String(500), nullable=False),
            Column("payload", JSONType, nullable=False),
            Column("status", String(12), nullable=False),
            Column("error", Text),
            Column("attempts", Integer, nullable=False),
            Column("created_at", UTCDateTime, nullable=False),
            Column("enqueued_at", UTCDateTime),
            Column("processed_at", UTCDateTime),
        )
    return _table


def add_bench_routes(app) -> None:
    from flask import Blueprint, jsonify, request
    from sqlalchemy import text

    from app.infra.extensions import csrf, socketio
    from app.infra.models import utcnow
    from app.infra.events import ADMINS_ROOM, NAMESPACE, channel_room
    from app.infra.state import db

    bp = Blueprint("bench", __name__, url_prefix="/bench")
    table = reference_table()

    @bp.post("/ref")
    def ref():
        body = request.get_data(cache=False)
        payload = json.loads(body)
        db.session.execute(table.insert().values(
            channel_id=int(request.args.get("channel", 0)),
            external_id=str(payload.get("update_id") or payload.get("entry", [{}])[0].get("id")),
            payload=payload, status="received", attempts=0, created_at=utcnow(),
            enqueued_at=utcnow()))
        db.session.commit()
        return jsonify(ok=True, duplicate=False), 200

    @bp.post("/emit")
    def emit():
        data = request.get_json()
        rooms = [ADMINS_ROOM, channel_room(int(data.get("channel_id", 0)))]
        socketio.emit("bench.ping", data, namespace=NAMESPACE, to=rooms)
        return jsonify(ok=True), 200

    @bp.get("/ping")
    def ping():
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return jsonify(ok=True), 200

    csrf.exempt(bp)
    app.register_blueprint(bp)


class BenchGunicorn(_Gunicorn):
    """`serve`'s own load (background work, the start-up objects frozen out of the
    collector's sight), with the reference routes added to the app first."""

    def create(self):
        app = super().create()
        if os.environ.get("THREADLINE_BENCH_ROUTES") == "1":
            add_bench_routes(app)
        return app


def main() -> None:
    from app.infra.config import load_config

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    overrides: dict = {"server": {}}
    if args.host:
        overrides["server"]["host"] = args.host
    if args.port:
        overrides["server"]["port"] = args.port
    config = load_config(overrides=overrides)
    print(f"bench server on {config['server']['host']}:{config['server']['port']}", flush=True)
    BenchGunicorn(config).run()


if __name__ == "__main__":
    main()
