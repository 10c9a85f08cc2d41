"""CSV import and export: good rows in, bad rows reported, nothing half-written."""
from __future__ import annotations

import csv
import io
import json
import subprocess

from sqlalchemy import func, select

from app.infra.models import Customer, Identity
from app.infra.state import db
from tests.conftest import ROOT, cli_env, release_db

CSV = """name,company,email,phone,telegram,tags,owner_email,cf.tier
Анна Иванова,ACME,anna@acme.example,+7 916 111-22-33,,vip;b2b,admin@example.com,gold
Bad Phone,,bad-phone@acme.example,12345,,,,
Борис,,boris@example.com;b.alt@example.com,8 916 222 33 44,,,,silver
Bad Email,,not-an-email,,,,,
Bad Tier,,tier@example.com,,,,,platinum
Anna again,,ANNA@acme.example,,5551,new,,
Conflict,,anna@acme.example,+79162223344,,,,
"""


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _run(config, *args):
    release_db()
    return subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "app.cli_customers", *args],
                          cwd=ROOT, env=cli_env(config), capture_output=True, text=True,
                          timeout=60)


def test_import_reports_bad_rows_and_writes_only_good_ones(app, ctx, api, admin, tmp_path):
    assert api.post("/custom-fields", json={"key": "tier", "label": "Tier", "type": "choice",
                                            "choices": ["gold", "silver"]}).status_code == 201
    path = tmp_path / "customers.csv"
    path.write_text(CSV, encoding="utf-8")
    config = app.config["THREADLINE"]

    dry = _run(config, "import", str(path), "--dry-run", "--json")
    assert dry.returncode == 2, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True and (report["created"], report["updated"]) == (2, 1)
    assert {(r["row"], r["field"]) for r in report["rejected"]} == {
        (3, "phone"), (5, "email"), (6, "custom_fields.tier"), (8, "email")}
    db.session.expire_all()
    assert _count(Customer) == 0 and _count(Identity) == 0

    real = _run(config, "import", str(path))
    assert real.returncode == 2 and "2 created, 1 updated, 4 rejected of 7 rows" in real.stdout
    assert "row 3: phone: '12345'" in real.stderr
    db.session.expire_all()
    assert _count(Customer) == 2
    values = set(db.session.scalars(select(Identity.value)))
    assert values == {"anna@acme.example", "+79161112233", "5551", "boris@example.com",
                      "b.alt@example.com", "+79162223344"}
    # the bad rows' good handles were not half-written
    assert "bad-phone@acme.example" not in values and "tier@example.com" not in values
    anna = db.session.scalar(select(Customer).join(Identity).where(Identity.value == "5551"))
    assert anna.name == "Anna again" and anna.company == "ACME"
    assert anna.tags == ["vip", "b2b", "new"] and anna.custom_fields == {"tier": "gold"}
    assert anna.owner_id == admin.id

    exported_path = tmp_path / "out.csv"
    out = _run(config, "export", str(exported_path))
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(exported_path.open(encoding="utf-8")))
    by_email = {r["email"]: r for r in rows}
    assert by_email["anna@acme.example"]["telegram"] == "5551"
    assert by_email["anna@acme.example"]["owner_email"] == "admin@example.com"
    assert by_email["boris@example.com;b.alt@example.com"]["cf.tier"] == "silver"

    # the export imports back as updates only (a round trip changes nothing)
    again = api.post("/customers/import", data=exported_path.read_bytes(),
                     content_type="text/csv")
    assert again.status_code == 200, again.json
    assert (again.json["created"], again.json["updated"], again.json["rejected"]) == (0, 2, [])
    assert _count(Customer) == 2
    exported = api.get("/customers/export")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert exported.data == exported_path.read_bytes()

    bad_header = api.post("/customers/import", data=b"name,fax\nX,1\n",
                          content_type="text/csv")
    assert bad_header.json["rejected"] == [{"row": 1, "field": "fax", "reason": bad_header.json["rejected"][0]["reason"]}]
    assert _count(Customer) == 2


def test_export_defuses_formulas_and_imports_them_back(app, ctx, api):
    """A cell a spreadsheet would run (=, +, -, @) is exported with a leading apostrophe
    (formula injection, issue 14); importing the file gives back the same values."""
    mallory = Customer(name='=HYPERLINK("https://evil.example","Счёт")', company="@SUM(A1:A9)",
                       tags=["-2+3", "обычный"])
    plain = Customer(name="'quoted' Анна", company="ACME")
    db.session.add_all([mallory, plain])
    db.session.flush()
    db.session.add_all([Identity(customer_id=mallory.id, kind="phone", value="+79161112233"),
                        Identity(customer_id=plain.id, kind="email", value="anna@acme.example")])
    db.session.commit()
    exported = api.get("/customers/export")
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(exported.get_data(as_text=True)))}
    bad = rows[str(mallory.id)]
    assert bad["name"] == "'" + mallory.name and bad["company"] == "'@SUM(A1:A9)"
    assert bad["phone"] == "'+79161112233" and bad["tags"] == "'-2+3;обычный"
    assert rows[str(plain.id)]["name"] == "'quoted' Анна"
    for row in rows.values():
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row.values())

    again = api.post("/customers/import", data=exported.data, content_type="text/csv")
    assert (again.json["created"], again.json["updated"], again.json["rejected"]) == (0, 2, [])
    db.session.expire_all()
    back = db.session.get(Customer, mallory.id)
    assert (back.name, back.company, back.tags) == (mallory.name, "@SUM(A1:A9)", ["-2+3", "обычный"])
    assert db.session.get(Customer, plain.id).name == "'quoted' Анна"
    assert api.get("/customers/export").data == exported.data
