"""Attachments on local disk (the embedded default; a path relative to attachments_dir)."""
from __future__ import annotations

import re
import uuid
from pathlib import Path

from app.infra.models import utcnow
from app.infra.state import config

_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


def safe_filename(name: str) -> str:
    name = _UNSAFE.sub("_", Path(name or "file").name).strip("._") or "file"
    return name[:120]


def save_attachment(data: bytes, filename: str) -> str:
    now = utcnow()
    relative = Path(f"{now:%Y/%m}") / f"{uuid.uuid4().hex}-{safe_filename(filename)}"
    target = Path(config["storage"]["attachments_dir"]) / relative
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.write_bytes(data)
    return str(relative)


def attachment_path(relative: str) -> Path:
    root = Path(config["storage"]["attachments_dir"]).resolve()
    path = (root / relative).resolve()
    if root not in path.parents:
        raise ValueError("attachment path escapes the storage folder")
    return path
