"""Files a site-chat visitor uploaded for their next message: one folder per visitor (named
by a hash of the visitor id, so the per-visitor cap can count them), expired after
`storage.widget_upload_ttl` when no message took them (a sent upload moves into attachment
storage at once; its token dies at the same age)."""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)
EXPIRY_EVERY = 60.0  # seconds between the upload route's own expiry passes
last_expiry = 0.0


def uploads_dir() -> Path:
    from app.infra.state import config

    path = Path(config["data_dir"]) / "widget-uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def visitor_uploads_dir(visitor_id: str) -> Path:
    return uploads_dir() / hashlib.sha256(str(visitor_id).encode()).hexdigest()[:32]


def expire_uploads() -> int:
    """Delete uploads older than the TTL that no message took. Run by the sweep job, and by
    the upload route at most once a minute (the web process that stores the files may run no
    sweeper). Returns how many files it deleted."""
    from app.web.widget.tokens import upload_ttl

    global last_expiry
    last_expiry = time.time()
    root = uploads_dir()
    cutoff = time.time() - upload_ttl()
    removed = 0
    for path in list(root.rglob("*")):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # taken by its message meanwhile
            continue
    for folder in root.iterdir():
        try:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        except OSError:
            continue
    if removed:
        log.info("deleted %s site-chat uploads never sent", removed)
    return removed


def waiting_uploads(folder: Path) -> tuple[int, int]:
    """(files, bytes) a visitor has waiting."""
    count = size = 0
    if folder.is_dir():
        for path in folder.iterdir():
            try:
                size += path.stat().st_size
                count += 1
            except OSError:
                continue
    return count, size
