"""/api/v1/segments: saved filters over customers (app/domain/segments.py), their members
(paginated, or as CSV) and the editor's live count. Every agent sees only the customers of
channels their teams can access."""
from __future__ import annotations

import csv
import io
from typing import Any

from apiflask import abort
from flask import Response, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.domain import segments as seg
from app.domain.access import visible_channel_ids
from app.infra.models import Campaign, Customer, Segment
from app.infra.state import db
from app.web.api.base import bp, current_agent, token_auth
from app.web.api.paging import id_cursor


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(422, "a JSON object is required", detail={"json": {"_schema": ["a JSON object"]}})
    return data


def segment_dict(segment: Segment, with_count: bool = True) -> dict[str, Any]:
    out = {"id": segment.id, "name": segment.name, "filter": segment.filter,
           "created_by_id": segment.created_by_id,
           "created_at": segment.created_at.isoformat(),
           "updated_at": segment.updated_at.isoformat()}
    if with_count:
        out["count"] = seg.count(db.session, segment.filter, visible_channel_ids(current_agent()))
    return out


def get_segment(segment_id: int) -> Segment:
    segment = db.session.get(Segment, segment_id)
    if segment is None:
        abort(404, "segment not found")
    return segment


def _may_change(segment: Segment) -> None:
    agent = current_agent()
    if not agent.is_admin and segment.created_by_id != agent.id:
        abort(403, "only its author or an admin may change a segment")


@bp.get("/segments")
@bp.auth_required(token_auth)
@bp.doc(summary="Saved segments, newest first, each with its member count")
def list_segments():
    rows = db.session.scalars(select(Segment).order_by(Segment.id.desc()).limit(500))
    return {"items": [segment_dict(s) for s in rows], "next_cursor": None}


@bp.post("/segments")
@bp.auth_required(token_auth)
@bp.doc(summary="Save a segment {name, filter} (an empty filter is every customer) → 201")
def create_segment():
    data = body()
    segment = seg.create_segment(db.session, data.get("name"), data.get("filter"),
                                 current_agent().id)
    db.session.commit()
    return segment_dict(segment), 201


@bp.post("/segments/preview")
@bp.auth_required(token_auth)
@bp.doc(summary="The member count of a filter being edited (nothing saved), with a sample")
def preview_segment():
    data = seg.validate_filter(body().get("filter"))
    visible = visible_channel_ids(current_agent())
    sample = list(db.session.scalars(
        select(Customer).where(Customer.id.in_(
            seg.members_query(db.session, data, visible).limit(5).subquery().select()))
        .order_by(Customer.id)))
    return {"count": seg.count(db.session, data, visible),
            "sample": [{"id": c.id, "name": c.name} for c in sample]}


@bp.get("/segments/<int:segment_id>")
@bp.auth_required(token_auth)
def read_segment(segment_id: int):
    return segment_dict(get_segment(segment_id))


@bp.patch("/segments/<int:segment_id>")
@bp.auth_required(token_auth)
@bp.doc(summary="Rename a segment or change its filter")
def patch_segment(segment_id: int):
    segment = get_segment(segment_id)
    _may_change(segment)
    data = body()
    if "name" in data:
        segment.name = seg.validate_name(data["name"])
    if "filter" in data:
        segment.filter = seg.validate_filter(data["filter"])
    db.session.commit()
    return segment_dict(segment)


@bp.delete("/segments/<int:segment_id>")
@bp.auth_required(token_auth)
@bp.doc(summary="Delete a segment (409 while a campaign that is not finished uses it)")
def delete_segment(segment_id: int):
    segment = get_segment(segment_id)
    _may_change(segment)
    busy = db.session.scalar(select(Campaign.id).where(
        Campaign.segment_id == segment.id,
        Campaign.status.in_(("scheduled", "running", "paused"))).limit(1))
    if busy is not None:
        abort(409, f"campaign {busy} uses this segment")
    db.session.delete(segment)
    db.session.commit()
    return "", 204


def _member(customer: Customer) -> dict[str, Any]:
    return {"id": customer.id, "name": customer.name, "company": customer.company,
            "tags": customer.tags or [],
            "identities": [{"kind": i.kind, "value": i.value} for i in customer.identities]}


@bp.get("/segments/<int:segment_id>/members")
@bp.auth_required(token_auth)
@bp.doc(summary="The segment's customers by id ({items, next_cursor}); ?format=csv exports "
                "them all")
def segment_members(segment_id: int):
    segment = get_segment(segment_id)
    ids = seg.members_query(db.session, segment.filter, visible_channel_ids(current_agent()))
    if request.args.get("format") == "csv":
        return _csv(segment, ids)
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 500:
        abort(422, "limit: 1 to 500", detail={"query": {"limit": ["a number from 1 to 500"]}})
    cursor = request.args.get("cursor")
    if cursor:
        ids = ids.where(Customer.id > id_cursor(cursor))
    page_ids = list(db.session.scalars(ids.limit(limit + 1)))
    next_cursor = str(page_ids[limit - 1]) if len(page_ids) > limit else None
    page_ids = page_ids[:limit]
    customers = db.session.scalars(select(Customer).options(selectinload(Customer.identities))
                                   .where(Customer.id.in_(page_ids)).order_by(Customer.id))
    return {"items": [_member(c) for c in customers], "next_cursor": next_cursor}


def _csv(segment: Segment, ids) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "name", "company", "email", "phone", "telegram", "whatsapp", "tags"])
    last = 0
    while True:
        batch = list(db.session.scalars(ids.where(Customer.id > last).limit(1000)))
        if not batch:
            break
        last = batch[-1]
        for c in db.session.scalars(select(Customer).options(selectinload(Customer.identities))
                                    .where(Customer.id.in_(batch)).order_by(Customer.id)):
            handles: dict[str, list[str]] = {}
            for i in c.identities:
                handles.setdefault(i.kind, []).append(i.value)
            writer.writerow([c.id, _cell(c.name), _cell(c.company or "")]
                            + [" ".join(handles.get(k, [])) for k in
                               ("email", "phone", "telegram", "whatsapp")]
                            + [_cell(",".join(str(t) for t in c.tags or []))])
    name = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in segment.name)[:60] or "segment"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _cell(value: str) -> str:
    """No spreadsheet formula injection through a customer's name."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value
