"""Every real sample in the shared corpus parses; no message or status id is lost."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.base import Ignored, Inbound, StatusUpdate
from connectors.whatsapp import NumberChange
from tests.corpus import require_shared_corpus, shared_corpus

# shared/ sits beside the repository root (on CI too); None when absent
CORPUS = shared_corpus("whatsapp")
FILES = sorted(CORPUS.glob("*.json")) if CORPUS is not None else []


def _ids(payload: dict) -> set[str]:
    found = set()
    for entry in payload["entry"]:
        for change in entry["changes"]:
            value = change["value"]
            found.update(m["id"] for m in value.get("messages") or [])
            found.update(s["id"] for s in value.get("statuses") or [])
    return found


def _mentions(record, wamid: str) -> bool:
    if isinstance(record, (Inbound, StatusUpdate, NumberChange)):
        return record.external_id == wamid
    return isinstance(record, Ignored) and wamid in record.reason


def test_corpus_is_not_empty():
    """Fails on CI (skips elsewhere) when the shared corpus is missing."""
    assert len(sorted(require_shared_corpus("whatsapp").glob("*.json"))) >= 30
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_corpus_file_parses_and_keeps_every_id(connector, path):
    payload = json.loads(path.read_bytes())
    records = connector.parse({}, payload)
    assert records, "a body must yield at least one record"
    allowed = (Inbound, StatusUpdate, Ignored, NumberChange)
    assert all(isinstance(r, allowed) for r in records)
    for wamid in _ids(payload):
        assert any(_mentions(r, wamid) for r in records), f"{wamid} lost"
    for record in records:
        if isinstance(record, Inbound):
            assert record.sent_at.tzinfo is not None
            assert record.text or record.attachments or record.kind != "message"
