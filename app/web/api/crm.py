"""CRM records (orders, deals, notes upserted by `external_ref`), pipeline stages and custom
field definitions (admins)."""
from __future__ import annotations

from apiflask import Schema, abort
from apiflask.fields import Date, Decimal as DecimalField, String

from app.infra.fields import Integer, MoneyIn
from apiflask.validators import Length, Range, Regexp
from sqlalchemy import select

from app.domain.access import visible_channel_ids
from app.domain.crm import add_field, add_stage, remove_stage, update_field
from app.domain.customers import can_see_customer, update_deal, upsert_deal, upsert_note, upsert_order
from app.infra.db import after_commit
from app.infra.extensions import socketio
from app.infra.events import NAMESPACE
from app.infra.models import Customer, CustomFieldDef, Deal, PipelineStage
from app.infra.state import db
from app.web.api.base import bp, current_agent, require_admin, token_auth
from app.infra.schemas import (
    DealIn,
    DealOut,
    DealResult,
    FieldDefIn,
    FieldDefList,
    FieldDefOut,
    FieldDefPatch,
    NoteResult,
    NoteUpsertIn,
    OrderIn,
    OrderResult,
    StageIn,
    StageList,
    StageOut,
    StagePatch,
)


class DealPatch(Schema):
    """PATCH /deals/<id>: any of these; the sales board and the inbox card edit inline."""
    title = String(validate=Length(1, 300))
    stage = String(validate=Length(1, 60))
    amount = MoneyIn()
    currency = String(allow_none=True, validate=Regexp(r"^[A-Za-z]{3}$", error="ISO 4217 code"))
    owner_id = Integer(allow_none=True)
    expected_close = Date(allow_none=True)


def _upsert(fn, data, **kw):
    """The caller's reach bounds the upsert like a read: a customer (by id or handle) or an
    `external_ref` of another team's record is refused with 422; admin tokens write
    everywhere."""
    row, created = fn(db.session, data, channels=visible_channel_ids(current_agent()), **kw)
    db.session.commit()
    return row, created


def _result(row, created, extra=None):
    data = {column.key: getattr(row, column.key) for column in row.__table__.columns}
    data.update(extra or {})
    data["created"] = created
    return data, 201 if created else 200


@bp.post("/orders")
@bp.auth_required(token_auth)
@bp.input(OrderIn, arg_name="data")
@bp.output(OrderResult, status_code=200)
@bp.doc(summary="Create or update an order by `external_ref` (idempotent); 201 when created",
        description="The customer is `customer_id`, or `customer` handles (email, phone, "
                    "telegram, whatsapp, site_user): found by exact handle, else created. "
                    "An agent's token reaches only customers of their teams' channels (and "
                    "customers with no conversation yet): a handle or `external_ref` of "
                    "another team's customer or record is refused with 422; admin tokens "
                    "write everywhere.")
def upsert_order_view(data):
    return _result(*_upsert(upsert_order, data))


@bp.post("/deals")
@bp.auth_required(token_auth)
@bp.input(DealIn, arg_name="data")
@bp.output(DealResult, status_code=200)
@bp.doc(summary="Create or update a deal by `external_ref` (stage: a pipeline stage key)")
def upsert_deal_view(data):
    return _result(*_upsert(upsert_deal, data))


def broadcast_deal(session, event) -> None:
    """The sales board is every agent's (sales and support both work deals): besides the
    event's usual rooms, `deal.updated` from an edit goes to every connected agent. Clients
    drop the duplicate by event id."""
    def emit() -> None:
        if socketio.server is not None:
            socketio.emit(event.type, {"id": event.id, "type": event.type, "data": event.payload},
                          namespace=NAMESPACE)
    after_commit(session, emit)


@bp.patch("/deals/<int:deal_id>")
@bp.auth_required(token_auth)
@bp.input(DealPatch, arg_name="data")
@bp.output(DealOut)
@bp.doc(summary="Edit a deal inline: stage (a pipeline stage key when stages are defined), "
                "amount, currency, owner_id, expected_close, title; live as `deal.updated`",
        description="Every signed-in agent may edit any deal (the sales board shows them all).")
def patch_deal(deal_id: int, data):
    session = db.session
    deal = session.get(Deal, deal_id)
    if deal is None:
        abort(404, "deal not found")
    event = update_deal(session, deal, data)
    broadcast_deal(session, event)
    session.commit()
    return deal


@bp.post("/notes")
@bp.auth_required(token_auth)
@bp.input(NoteUpsertIn, arg_name="data")
@bp.output(NoteResult, status_code=200)
@bp.doc(summary="Add a note to a customer's card, or update one by `external_ref`")
def upsert_note_view(data):
    row, created = _upsert(upsert_note, data, author=current_agent())
    author = current_agent() if row.author_id == current_agent().id else None
    return _result(row, created, {"author_name": author.name if author else None})


# --- pipeline stages ----------------------------------------------------------------------

@bp.get("/pipeline/stages")
@bp.auth_required(token_auth)
@bp.output(StageList)
@bp.doc(summary="The sales pipeline's stages, in order")
def list_stages():
    return {"items": list(db.session.scalars(select(PipelineStage).order_by(
        PipelineStage.position, PipelineStage.id)))}


@bp.post("/pipeline/stages")
@bp.auth_required(token_auth)
@bp.input(StageIn, arg_name="data")
@bp.output(StageOut, status_code=201)
@bp.doc(summary="Add a stage (admins)")
def create_stage(data):
    require_admin()
    stage = add_stage(db.session, data)
    db.session.commit()
    return stage


def _stage(stage_id: int) -> PipelineStage:
    stage = db.session.get(PipelineStage, stage_id)
    if stage is None:
        abort(404, "stage not found")
    return stage


@bp.patch("/pipeline/stages/<int:stage_id>")
@bp.auth_required(token_auth)
@bp.input(StagePatch, arg_name="data")
@bp.output(StageOut)
@bp.doc(summary="Rename, reorder or set the outcome of a stage (admins)")
def patch_stage(stage_id: int, data):
    require_admin()
    stage = _stage(stage_id)
    for key, value in data.items():
        setattr(stage, key, value)
    db.session.commit()
    return stage


@bp.delete("/pipeline/stages/<int:stage_id>")
@bp.auth_required(token_auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Remove a stage no deal is in (admins); 409 otherwise")
def delete_stage(stage_id: int):
    require_admin()
    remove_stage(db.session, _stage(stage_id))
    db.session.commit()
    return ""


# --- custom field definitions -------------------------------------------------------------

@bp.get("/custom-fields")
@bp.auth_required(token_auth)
@bp.output(FieldDefList)
@bp.doc(summary="Custom fields of the CRM card (text, number, date, choice)")
def list_fields():
    return {"items": list(db.session.scalars(select(CustomFieldDef).order_by(
        CustomFieldDef.position, CustomFieldDef.id)))}


@bp.post("/custom-fields")
@bp.auth_required(token_auth)
@bp.input(FieldDefIn, arg_name="data")
@bp.output(FieldDefOut, status_code=201)
@bp.doc(summary="Define a custom field (admins); a choice field needs `choices`")
def create_field(data):
    require_admin()
    definition = add_field(db.session, data)
    db.session.commit()
    return definition


@bp.patch("/custom-fields/<int:field_id>")
@bp.auth_required(token_auth)
@bp.input(FieldDefPatch, arg_name="data")
@bp.output(FieldDefOut)
@bp.doc(summary="Relabel, reorder or change the choices of a custom field (admins)")
def patch_field(field_id: int, data):
    require_admin()
    definition = db.session.get(CustomFieldDef, field_id)
    if definition is None:
        abort(404, "custom field not found")
    update_field(definition, data)
    db.session.commit()
    return definition
