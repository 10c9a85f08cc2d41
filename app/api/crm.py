"""CRM records (orders, deals, notes upserted by `external_ref`), pipeline stages and custom
field definitions (admins)."""
from __future__ import annotations

from apiflask import abort
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..customers import FieldError, can_see_customer, upsert_deal, upsert_note, upsert_order
from ..models import Customer, CustomFieldDef, Deal, Note, Order, PipelineStage
from ..state import db
from . import bp, current_agent, token_auth
from .customers import field_abort, require_admin
from .schemas import (
    DealIn,
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


def _check_customer_access(data) -> None:
    if data.get("customer_id") is not None:
        customer = db.session.get(Customer, data["customer_id"])
        if customer is None or not can_see_customer(db.session, current_agent(), customer):
            abort(422, "customer not found",
                  detail={"json": {"customer_id": ["no such customer"]}})


def _upsert(fn, data, **kw):
    _check_customer_access(data)
    try:
        row, created = fn(db.session, data, **kw)
    except FieldError as exc:
        field_abort(exc)
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
                    "telegram, whatsapp, site_user): found by exact handle, else created.")
def upsert_order_view(data):
    return _result(*_upsert(upsert_order, data))


@bp.post("/deals")
@bp.auth_required(token_auth)
@bp.input(DealIn, arg_name="data")
@bp.output(DealResult, status_code=200)
@bp.doc(summary="Create or update a deal by `external_ref` (stage: a pipeline stage key)")
def upsert_deal_view(data):
    return _result(*_upsert(upsert_deal, data))


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
    stage = PipelineStage(**data)
    try:
        with db.session.begin_nested():
            db.session.add(stage)
            db.session.flush()
    except IntegrityError:
        db.session.rollback()
        abort(422, "key taken", detail={"json": {"key": ["a stage with this key exists"]}})
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
    stage = _stage(stage_id)
    used = db.session.scalar(select(Deal.id).where(Deal.stage == stage.key).limit(1))
    if used is not None:
        abort(409, f"deals are in stage {stage.key}; move them first")
    db.session.delete(stage)
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
    if data["type"] == "choice" and not data["choices"]:
        abort(422, "choices required", detail={"json": {"choices": ["a choice field needs choices"]}})
    definition = CustomFieldDef(**data)
    try:
        with db.session.begin_nested():
            db.session.add(definition)
            db.session.flush()
    except IntegrityError:
        db.session.rollback()
        abort(422, "key taken", detail={"json": {"key": ["a field with this key exists"]}})
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
    if definition.type == "choice" and "choices" in data and not data["choices"]:
        abort(422, "choices required", detail={"json": {"choices": ["a choice field needs choices"]}})
    for key, value in data.items():
        setattr(definition, key, value)
    db.session.commit()
    return definition
