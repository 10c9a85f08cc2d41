"""The benchmark stays runnable: its small scale of ingest and outbound on the embedded
default (SQLite, jobs inside `serve`), end to end through real servers and the fake channel
APIs. Figures are not judged here (CI machines differ), only that they exist and that every
reply went out exactly once."""
from __future__ import annotations

import json

import pytest


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_bench_small_ingest_and_outbound_on_sqlite(tmp_path):
    from bench.run import main

    out = tmp_path / "bench.json"
    code = main(["--backend", "sqlite", "--only", "ingest,outbound", "--scale", "small",
                 "--json", str(out), "--work-dir", str(tmp_path / "work")])
    report = json.loads(out.read_text())
    assert code == 0, report
    sqlite = report["backends"]["sqlite"]
    rows = {(r["scenario"], r["metric"]): r for r in sqlite["rows"]}
    ingest = [r for (s, _), r in rows.items() if s == "ingest"]
    assert ingest and all(r["value"] and r["value"] > 0 for r in ingest), ingest
    assert all(r["reference"] and r["reference"] > 0 for r in ingest), ingest
    assert sqlite["details"]["ingest"]["placement"]["ok"], sqlite["details"]["ingest"]
    outbound = sqlite["details"]["outbound"]
    assert outbound["exactly_once"], outbound
    assert outbound["message_statuses"] == {"sent": outbound["replies"]}, outbound
    sends = [r for (s, m), r in rows.items() if s == "outbound" and m.startswith("sends/s")]
    assert sends and sends[0]["value"] > 0 and sends[0]["reference"] > 0
