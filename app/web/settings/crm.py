"""`/settings/crm`: the sales pipeline's stages (ordered, renamed, won/lost) and the custom
fields of the CRM card. The same rules as `/api/v1/pipeline/stages` and `/custom-fields`."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy import select

from app.domain.audit import audit
from app.infra.models import CustomFieldDef, Deal, PipelineStage
from app.infra.schemas import FieldDefIn, FieldDefPatch, StageIn, StagePatch
from app.infra.state import db
from app.web.settings import admin_required, bp, end_read


def N_(text: str) -> str:
    """Marks a string for extraction; translated when shown."""
    return text


# shown through _() in the template: the field types and stage outcomes by name
SHOWN = (N_("text"), N_("number"), N_("date"), N_("choice"), N_("open"), N_("won"), N_("lost"))
SAID = {"key": N_("Lowercase letters, digits and _, starting with a letter (at most 60)."),
        "name": N_("Required, at most 100 characters."),
        "label": N_("Required, at most 100 characters."),
        "position": N_("A whole number."),
        "outcome": N_("open, won or lost."),
        "type": N_("text, number, date or choice."),
        "choices": N_("A choice field needs choices (one per line).")}


def _said(fields) -> dict[str, str]:
    return {f: _(SAID[f]) if f in SAID else _("Invalid.") for f in fields}


def _page(status: int = 200, stage: dict | None = None, field: dict | None = None,
          errors: dict | None = None):
    stages = list(db.session.scalars(select(PipelineStage).order_by(PipelineStage.position,
                                                                    PipelineStage.id)))
    fields = list(db.session.scalars(select(CustomFieldDef).order_by(CustomFieldDef.position,
                                                                    CustomFieldDef.id)))
    end_read()
    return render_template("settings/crm.html", stages=stages, fields=fields,
                           stage=stage or {"outcome": "open", "position": len(stages)},
                           field=field or {"type": "text", "position": len(fields)},
                           errors=errors or {}, section="crm"), status


@bp.get("/crm")
@admin_required
def crm():
    return _page()


def _form(*keys) -> dict:
    return {k: request.form.get(k, "").strip() for k in keys if k in request.form}


@bp.post("/crm/stages")
@admin_required
def stage_create():
    typed = _form("key", "name", "position", "outcome")
    try:
        data = StageIn().load(typed)
    except ValidationError as exc:
        return _page(422, stage=typed, errors={f"stage.{k}": v for k, v in _said(exc.messages).items()})
    if db.session.scalar(select(PipelineStage.id).where(PipelineStage.key == data["key"])):
        return _page(422, stage=typed, errors={"stage.key": _("A stage with this key exists already.")})
    stage = PipelineStage(**data)
    db.session.add(stage)
    db.session.flush()
    audit(current_user._get_current_object(), "stage.create", "pipeline_stage", stage.id, after=data)
    db.session.commit()
    flash(_("Stage %(name)s added.", name=stage.name), "ok")
    return redirect(url_for("settings.crm"))


@bp.post("/crm/stages/<int:stage_id>")
@admin_required
def stage_update(stage_id: int):
    stage = db.session.get(PipelineStage, stage_id) or abort(404)
    if request.form.get("action") == "delete":
        if db.session.scalar(select(Deal.id).where(Deal.stage == stage.key).limit(1)):
            flash(_("Deals are in stage %(name)s: move them first.", name=stage.name), "error")
            return redirect(url_for("settings.crm"))
        audit(current_user._get_current_object(), "stage.delete", "pipeline_stage", stage.id,
              before={"key": stage.key, "name": stage.name})
        db.session.delete(stage)
        db.session.commit()
        flash(_("Stage %(name)s deleted.", name=stage.name), "ok")
        return redirect(url_for("settings.crm"))
    typed = _form("name", "position", "outcome")
    try:
        data = StagePatch().load(typed)
    except ValidationError as exc:
        return _page(422, errors={f"{stage_id}.{k}": v for k, v in _said(exc.messages).items()})
    before = {k: getattr(stage, k) for k in data}
    for key, value in data.items():
        setattr(stage, key, value)
    audit(current_user._get_current_object(), "stage.update", "pipeline_stage", stage.id,
          before=before, after=data)
    db.session.commit()
    flash(_("Stage %(name)s saved.", name=stage.name), "ok")
    return redirect(url_for("settings.crm"))


def _choices() -> list[str]:
    return [c.strip() for c in request.form.get("choices", "").splitlines() if c.strip()]


@bp.post("/crm/fields")
@admin_required
def field_create():
    typed = {**_form("key", "label", "type", "position"), "choices": _choices()}
    try:
        data = FieldDefIn().load(typed)
        if data["type"] == "choice" and not data["choices"]:
            raise ValidationError({"choices": ["required"]})
    except ValidationError as exc:
        return _page(422, field={**typed, "choices": "\n".join(typed["choices"])},
                     errors={f"field.{k}": v for k, v in _said(exc.messages).items()})
    if db.session.scalar(select(CustomFieldDef.id).where(CustomFieldDef.key == data["key"])):
        return _page(422, field={**typed, "choices": "\n".join(typed["choices"])},
                     errors={"field.key": _("A field with this key exists already.")})
    definition = CustomFieldDef(**data)
    db.session.add(definition)
    db.session.flush()
    audit(current_user._get_current_object(), "field.create", "custom_field", definition.id,
          after=data)
    db.session.commit()
    flash(_("Field %(label)s added.", label=definition.label), "ok")
    return redirect(url_for("settings.crm"))


@bp.post("/crm/fields/<int:field_id>")
@admin_required
def field_update(field_id: int):
    definition = db.session.get(CustomFieldDef, field_id) or abort(404)
    typed = _form("label", "position")
    if definition.type == "choice":
        typed["choices"] = _choices()
    try:
        data = FieldDefPatch().load(typed)
        if definition.type == "choice" and not data.get("choices"):
            raise ValidationError({"choices": ["required"]})
    except ValidationError as exc:
        return _page(422, errors={f"{field_id}.{k}": v for k, v in _said(exc.messages).items()})
    before = {k: getattr(definition, k) for k in data}
    for key, value in data.items():
        setattr(definition, key, value)
    audit(current_user._get_current_object(), "field.update", "custom_field", definition.id,
          before=before, after=data)
    db.session.commit()
    flash(_("Field %(label)s saved.", label=definition.label), "ok")
    return redirect(url_for("settings.crm"))
