"""Customers and their CRM card: get, search, update, handles, merge / unmerge, merge
suggestions, audit, CSV import / export."""
from __future__ import annotations

from apiflask import abort
from flask import Response, request
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import aliased, selectinload

from app.domain.access import visible_channel_ids
from app.domain.customers import (
    add_identity,
    can_see_customer,
    card,
    update_customer,
    visible_customer_filter,
)
from app.domain.handles import normalize_phone
from app.domain.merge import (
    accept_suggestion,
    merge,
    merge_to_undo,
    preview,
    reject_suggestion,
    unmerge,
)
from app.infra.models import AuditLog, Customer, Identity, MergeSuggestion
from app.infra.state import db
from app.web.api.base import bp, current_agent, require_admin, token_auth
from app.web.api.paging import bad_cursor, id_cursor, page
from app.infra.schemas import (
    AuditPage,
    CustomerCardOut,
    CustomerPage,
    CustomerPatch,
    CustomerQuery,
    IdentityCardOut,
    IdentityIn,
    ImportQuery,
    ImportReportOut,
    MergeIn,
    MergeOut,
    MergePreviewIn,
    MergePreviewOut,
    MessageQuery,
    SuggestionDecisionIn,
    SuggestionOut,
    SuggestionPage,
    SuggestionQuery,
    UnmergeIn,
)


def get_visible_customer(customer_id: int, field: str | None = None) -> Customer:
    customer = db.session.get(Customer, customer_id)
    if customer is None or not can_see_customer(db.session, current_agent(), customer):
        if field:  # a customer named in the body: 422 on that field
            abort(422, "customer not found", detail={"json": {field: ["no such customer"]}})
        abort(404, "customer not found")
    return customer


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@bp.get("/customers")
@bp.auth_required(token_auth)
@bp.input(CustomerQuery, location="query", arg_name="query")
@bp.output(CustomerPage)
@bp.doc(summary="Search customers by name, company or any handle (a phone in any format)")
def list_customers(query):
    stmt = select(Customer).options(selectinload(Customer.identities))
    condition = visible_customer_filter(visible_channel_ids(current_agent()))
    if condition is not None:
        stmt = stmt.where(condition)
    if not query["include_merged"]:
        stmt = stmt.where(Customer.merged_into_id.is_(None))
    q = (query["q"] or "").strip()
    if q:
        pattern = _like(q)
        handle_match = exists().where(Identity.customer_id == Customer.id,
                                      Identity.value.ilike(pattern, escape="\\"))
        terms = [Customer.name.ilike(pattern, escape="\\"),
                 Customer.company.ilike(pattern, escape="\\"), handle_match]
        if sum(ch.isdigit() for ch in q) >= 6:
            try:
                phone = normalize_phone(q)
            except ValueError:
                phone = None
            if phone:
                terms.append(exists().where(Identity.customer_id == Customer.id, or_(
                    and_(Identity.kind == "phone", Identity.value == phone),
                    and_(Identity.kind == "whatsapp", Identity.value == phone.lstrip("+")))))
        stmt = stmt.where(or_(*terms))
    if query["cursor"]:
        stmt = stmt.where(Customer.id < id_cursor(query["cursor"]))
    return page(stmt.order_by(Customer.id.desc()), query["limit"])


@bp.get("/customers/<int:customer_id>")
@bp.auth_required(token_auth)
@bp.output(CustomerCardOut)
@bp.doc(summary="The CRM card: handles with their channels, owner, source, tags, custom "
                "fields, notes, orders, deals, conversations, merges")
def get_customer(customer_id: int):
    return card(db.session, get_visible_customer(customer_id),
                visible=visible_channel_ids(current_agent()))


@bp.patch("/customers/<int:customer_id>")
@bp.auth_required(token_auth)
@bp.input(CustomerPatch, arg_name="patch")
@bp.output(CustomerCardOut)
@bp.doc(summary="Update name, company, owner, tags, custom fields (live for other agents)")
def patch_customer(customer_id: int, patch):
    customer = get_visible_customer(customer_id)
    update_customer(db.session, customer, patch)
    db.session.commit()
    return card(db.session, customer, visible=visible_channel_ids(current_agent()))


@bp.post("/customers/<int:customer_id>/identities")
@bp.auth_required(token_auth)
@bp.input(IdentityIn, arg_name="data")
@bp.output(IdentityCardOut, status_code=201)
@bp.doc(summary="Add a handle (normalized: email lowercased, phone E.164); 409 if another "
                "customer has it")
def create_identity(customer_id: int, data):
    customer = get_visible_customer(customer_id)
    identity = add_identity(db.session, customer, data["kind"], data["value"],
                            data["verified"], channels=visible_channel_ids(current_agent()))
    db.session.commit()
    return {"id": identity.id, "kind": identity.kind, "value": identity.value,
            "verified": identity.verified, "reachable": identity.reachable, "channels": []}


# --- merge --------------------------------------------------------------------------------

@bp.post("/customers/<int:customer_id>/merge/preview")
@bp.auth_required(token_auth)
@bp.input(MergePreviewIn, arg_name="data")
@bp.output(MergePreviewOut)
@bp.doc(summary="What merging `other_id` into this customer would do: field conflicts to "
                "choose from and the rows that move")
def merge_preview(customer_id: int, data):
    this = get_visible_customer(customer_id)
    other = get_visible_customer(data["other_id"], field="other_id")
    return preview(db.session, this, other)


@bp.post("/customers/<int:customer_id>/merge")
@bp.auth_required(token_auth)
@bp.input(MergeIn, arg_name="data")
@bp.output(MergeOut, status_code=201)
@bp.doc(summary="Merge `other_id` into this customer; `choose` settles each conflict "
                "(\"this\" by default); audited, reversible")
def merge_customers(customer_id: int, data):
    this = get_visible_customer(customer_id)
    other = get_visible_customer(data["other_id"], field="other_id")
    record = merge(db.session, this, other, current_agent(), data["choose"], data["reason"])
    db.session.commit()
    return record


@bp.post("/customers/<int:customer_id>/unmerge")
@bp.auth_required(token_auth)
@bp.input(UnmergeIn, arg_name="data")
@bp.output(MergeOut)
@bp.doc(summary="Undo a merge into this customer (the latest one unless `merge_id`): every "
                "moved row goes back; audited")
def unmerge_customer(customer_id: int, data):
    customer = get_visible_customer(customer_id)
    record = merge_to_undo(db.session, customer, data["merge_id"])
    unmerge(db.session, record, current_agent(), data["reason"])
    db.session.commit()
    return record


@bp.get("/customers/<int:customer_id>/audit")
@bp.auth_required(token_auth)
@bp.input(MessageQuery, location="query", arg_name="query")
@bp.output(AuditPage)
@bp.doc(summary="Audit log of a customer (merges, unmerges), newest first")
def customer_audit(customer_id: int, query):
    customer = get_visible_customer(customer_id)
    stmt = select(AuditLog).where(AuditLog.target_type == "customer",
                                  or_(AuditLog.target_id == customer.id,
                                      AuditLog.details["source_id"].as_integer() == customer.id))
    if query["cursor"]:
        stmt = stmt.where(AuditLog.id < id_cursor(query["cursor"]))
    return page(stmt.order_by(AuditLog.id.desc()), query["limit"])


# --- suggestions --------------------------------------------------------------------------

@bp.get("/merge-suggestions")
@bp.auth_required(token_auth)
@bp.input(SuggestionQuery, location="query", arg_name="query")
@bp.output(SuggestionPage)
@bp.doc(summary="The merge suggestions queue, best score first (reasons, score)")
def list_suggestions(query):
    one, two = aliased(Customer), aliased(Customer)
    stmt = (select(MergeSuggestion)
            .join(one, one.id == MergeSuggestion.customer_id)
            .join(two, two.id == MergeSuggestion.other_customer_id))
    if query["status"] != "all":
        stmt = stmt.where(MergeSuggestion.status == query["status"])
    if query["status"] == "open":  # one of them merged elsewhere since: no longer a question
        stmt = stmt.where(one.merged_into_id.is_(None), two.merged_into_id.is_(None))
    if query["customer_id"]:
        stmt = stmt.where(or_(MergeSuggestion.customer_id == query["customer_id"],
                              MergeSuggestion.other_customer_id == query["customer_id"]))
    channels = visible_channel_ids(current_agent())
    if channels is not None:
        stmt = stmt.where(one.id.in_(select(Customer.id).where(visible_customer_filter(channels))),
                          two.id.in_(select(Customer.id).where(visible_customer_filter(channels))))
    if query["cursor"]:
        try:
            score, last_id = (int(x) for x in query["cursor"].split(":"))
        except ValueError:
            bad_cursor()
        stmt = stmt.where(or_(MergeSuggestion.score < score,
                              and_(MergeSuggestion.score == score, MergeSuggestion.id < last_id)))
    result = page(stmt.order_by(MergeSuggestion.score.desc(), MergeSuggestion.id.desc()),
                  query["limit"], lambda row: f"{row.score}:{row.id}")
    return {**result, "items": [_suggestion(s) for s in result["items"]]}


def _suggestion(s: MergeSuggestion) -> dict:
    return {"id": s.id, "customer": db.session.get(Customer, s.customer_id),
            "other_customer": db.session.get(Customer, s.other_customer_id),
            "reasons": s.reasons, "score": s.score, "status": s.status,
            "created_at": s.created_at, "decided_at": s.decided_at,
            "decided_by_id": s.decided_by_id}


def _visible_suggestion(suggestion_id: int) -> MergeSuggestion:
    suggestion = db.session.get(MergeSuggestion, suggestion_id)
    if suggestion is None:
        abort(404, "suggestion not found")
    get_visible_customer(suggestion.customer_id)
    get_visible_customer(suggestion.other_customer_id)
    return suggestion


@bp.post("/merge-suggestions/<int:suggestion_id>/accept")
@bp.auth_required(token_auth)
@bp.input(SuggestionDecisionIn, arg_name="data")
@bp.output(MergeOut, status_code=201)
@bp.doc(summary="Accept: merge the two customers (the older one is kept unless `keep`)")
def accept(suggestion_id: int, data):
    suggestion = _visible_suggestion(suggestion_id)
    record = accept_suggestion(db.session, suggestion, current_agent(), data["keep"],
                               data["choose"], data["reason"])
    db.session.commit()
    return record


@bp.post("/merge-suggestions/<int:suggestion_id>/reject")
@bp.auth_required(token_auth)
@bp.input(SuggestionDecisionIn, arg_name="data")
@bp.output(SuggestionOut)
@bp.doc(summary="Reject: the two stay apart (audited)")
def reject(suggestion_id: int, data):
    suggestion = _visible_suggestion(suggestion_id)
    reject_suggestion(db.session, suggestion, current_agent(), data["reason"])
    db.session.commit()
    return _suggestion(suggestion)


# --- CSV ----------------------------------------------------------------------------------

@bp.post("/customers/import")
@bp.auth_required(token_auth)
@bp.input(ImportQuery, location="query", arg_name="query")
@bp.output(ImportReportOut)
@bp.doc(summary="Import customers from CSV (body text/csv or multipart `file`); "
                "`dry_run=true` checks only. Bad rows are reported (row, field, reason) "
                "and nothing of them is written",
        description="Columns: id, name, company, email, phone, telegram, whatsapp, "
                    "site_user, tags, owner_email, cf.<custom field key>. Several handles "
                    "of one kind are separated by `;`, as are tags.")
def import_customers(query):
    from app.usecases.customer_csv import import_csv

    require_admin()
    upload = request.files.get("file")
    raw = upload.read() if upload else request.get_data(cache=False)
    if not raw:
        abort(422, "empty upload", detail={"json": {"file": ["send the CSV as the body or as `file`"]}})
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        abort(422, "not UTF-8", detail={"json": {"file": ["the CSV must be UTF-8"]}})
    report = import_csv(db.session, text, dry_run=query["dry_run"], actor=current_agent())
    return report


@bp.get("/customers/export")
@bp.auth_required(token_auth)
@bp.doc(summary="Export every (not merged) customer with handles, tags, owner and custom "
                "fields as CSV (the import's columns)")
def export_customers():
    from app.usecases.customer_csv import export_csv

    require_admin()
    body = export_csv(db.session)
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=customers.csv"})
