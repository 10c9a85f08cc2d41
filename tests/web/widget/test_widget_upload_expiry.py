"""Site-chat uploads never sent do not stay on disk forever (issue 14, Medium 7): the sweep
deletes them after `storage.widget_upload_ttl`, and a visitor may keep only so many waiting
(`widget_upload_max_files`, `widget_upload_max_bytes`)."""
from __future__ import annotations

import io
import os
import time
from pathlib import Path

from tests.web.widget.test_widget import (  # noqa: F401  (fixtures)
    IN_PROCESS_SOCKETS,
    Visitor,
    _fresh_state,
    frame_token_for,
    webchat,
)


def waiting_files(app) -> list[Path]:
    root = Path(app.config["THREADLINE"]["data_dir"]) / "widget-uploads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def upload(app, frame, visitor, name="zdjęcie.png", data=b"\x89PNG\r\n\x1a\n" + b"0" * 100):
    headers = {"X-Threadline-Frame": frame, "X-Threadline-Visitor": visitor.session["visitor"]}
    return app.test_client().post("/widget/upload", headers=headers,
                                  data={"file": (io.BytesIO(data), name, "image/png")})


@IN_PROCESS_SOCKETS
def test_uploads_never_sent_are_deleted_by_the_sweep(backend, app, webchat):
    from app.infra.extensions import limiter
    from app.wiring import sweep

    limiter.reset()
    frame = frame_token_for(app, webchat)
    visitor = Visitor(app, frame)
    old = upload(app, frame, visitor, "старый.png")
    fresh = upload(app, frame, visitor, "nowy.png")
    assert old.status_code == fresh.status_code == 200
    files = waiting_files(app)
    assert len(files) == 2
    # the first one was left two hours ago (ttl one hour)
    by_age = sorted(files, key=lambda p: p.stat().st_mtime)
    two_hours_ago = time.time() - 7200
    os.utime(by_age[0], (two_hours_ago, two_hours_ago))
    assert sweep()["widget_uploads"] == 1
    assert waiting_files(app) == [by_age[1]]
    # the fresh one is still sendable; the sweep leaves it alone
    ack = visitor.send("моё фото", upload=fresh.json["upload"])
    assert ack["ok"], ack
    assert waiting_files(app) == []  # sending moved it into attachment storage
    assert sweep()["widget_uploads"] == 0


@IN_PROCESS_SOCKETS
def test_a_visitor_may_keep_only_so_many_uploads_waiting(backend, app, webchat):
    from app.infra.extensions import limiter

    limiter.reset()
    storage = app.config["THREADLINE"]["storage"]
    storage["widget_upload_max_files"], storage["widget_upload_max_bytes"] = 2, 250
    frame = frame_token_for(app, webchat)
    anna, boris = Visitor(app, frame), Visitor(app, frame)
    first = upload(app, frame, anna)
    assert first.status_code == 200
    assert upload(app, frame, anna).status_code == 200
    refused = upload(app, frame, anna)
    assert refused.status_code == 429
    assert refused.json["error"] == "too_many_uploads" and refused.json["files"] == 2
    # another visitor has a cap of their own
    assert upload(app, frame, boris).status_code == 200
    # sending one frees a place
    assert anna.send("", upload=first.json["upload"])["ok"]
    assert upload(app, frame, anna).status_code == 200
    # the byte cap: 2 × 108 bytes waiting, 108 more would pass 250
    storage["widget_upload_max_files"] = 10
    too_big = upload(app, frame, anna)
    assert too_big.status_code == 429 and too_big.json["bytes"] == 250
