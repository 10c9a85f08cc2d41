"""Every sample payload goes through the connector: a record, an Ignored with a reason, or
(for API error bodies and bare envelopes) recognized as not an update. Nothing crashes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.base import Ignored, Inbound, MalformedPayload, StatusUpdate
from connectors.telegram import Connector, ReachabilityChange
from tests.corpus import require_shared_corpus, shared_corpus

SHARED = shared_corpus("telegram")         # beside the repository root; None when absent
LOCAL = Path(__file__).resolve().parents[2] / "fixtures" / "telegram"


def _files(folder: Path | None) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder is not None and folder.is_dir() else []


def _updates(data: dict) -> list[dict]:
    """What in this file is an update. API answers unwrap; bare Messages get wrapped."""
    if data.get("ok") is False:
        return []                                      # an error body, not an update
    if data.get("ok") is True:
        return list(data["result"])                    # a getUpdates answer
    if "update_id" not in data and "message_id" in data and "chat" in data:
        return [{"update_id": 1, "message": data}]     # a Message object sample
    return [data]


def _check(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("ok") is False:
        assert "description" in data, f"{path.name}: error body without description"
        assert Connector().event_key({"update_id": 1}, b"") == "1"
        with pytest.raises(MalformedPayload):
            Connector().parse({}, data)                # never mistaken for an update
        return
    for update in _updates(data):
        if "update_id" not in update:
            with pytest.raises(MalformedPayload):
                Connector().parse({}, update)
            continue
        records = Connector().parse({}, update)
        assert records, path.name
        for rec in records:
            assert isinstance(rec, (Inbound, StatusUpdate, Ignored, ReachabilityChange))
            if isinstance(rec, Ignored):
                assert rec.reason.strip(), path.name
            if isinstance(rec, Inbound):
                assert rec.sent_at.tzinfo is not None
                assert rec.external_id.count(":") == 1
                assert rec.text or rec.attachments, path.name


@pytest.mark.parametrize("path", _files(SHARED), ids=lambda p: p.name)
def test_shared_corpus(path: Path) -> None:
    _check(path)


@pytest.mark.parametrize("path", _files(LOCAL), ids=lambda p: p.name)
def test_local_corpus(path: Path) -> None:
    _check(path)


def test_corpus_is_not_empty() -> None:
    assert len(_files(LOCAL)) >= 40


def test_shared_corpus_is_present_and_not_empty() -> None:
    """Fails on CI (skips elsewhere) when the shared corpus is missing."""
    assert len(_files(require_shared_corpus("telegram"))) >= 40
