"""Files an agent attaches to a reply. `POST /uploads` stores the bytes and answers a signed
`upload_token` ({path, filename, content_type, size, agent}); the reply carries the tokens and
its Attachment rows are made from them, so an upload needs no table of its own."""
from __future__ import annotations

import mimetypes

from apiflask import Schema, abort
from apiflask.fields import File, List, String

from app.infra.fields import Integer
from apiflask.validators import Length
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from marshmallow import ValidationError, validates_schema

from app.infra.state import config
from app.infra.storage import attachment_path, save_attachment
from app.web.api.base import bp, current_agent, token_auth
from app.infra.schemas import ReplyIn

TOKEN_MAX_AGE = 7 * 24 * 3600      # a draft may wait a while before it is sent
_SALT = "threadline.upload"


class UploadIn(Schema):
    file = File(required=True)


class UploadOut(Schema):
    upload_token = String()
    filename = String()
    content_type = String()
    size = Integer()


class ReplyWithAttachmentsIn(ReplyIn):
    """A reply: text, attachments (upload_token values from POST /uploads), or both."""
    text = String(load_default="", validate=Length(0, 100_000))
    attachments = List(String(validate=Length(1, 4000)), load_default=list,
                       validate=Length(0, 10))

    @validates_schema
    def _text_or_attachments(self, data, **kwargs):
        if not data.get("text") and not data.get("attachments"):
            raise ValidationError("a reply needs text or attachments", field_name="text")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(config["secret_key"], salt=_SALT)


def make_upload_token(path: str, filename: str, content_type: str, size: int,
                      agent_id: int | None) -> str:
    return _serializer().dumps({"p": path, "f": filename, "t": content_type, "s": size,
                                "a": agent_id})


def load_upload_token(token: str, agent_id: int | None) -> dict:
    """{path, filename, content_type, size} of an upload this agent made; ValueError if the
    token is forged, expired, someone else's, or its file is gone."""
    try:
        data = _serializer().loads(token, max_age=TOKEN_MAX_AGE)
    except SignatureExpired:
        raise ValueError("the upload has expired: attach the file again") from None
    except BadSignature:
        raise ValueError("not an upload token we issued") from None
    if not isinstance(data, dict) or data.get("a") != agent_id:
        raise ValueError("not an upload token we issued")
    try:
        if not attachment_path(data["p"]).is_file():
            raise ValueError("the uploaded file is gone: attach it again")
    except (KeyError, TypeError):
        raise ValueError("not an upload token we issued") from None
    return {"path": data["p"], "filename": data["f"], "content_type": data["t"],
            "size": data["s"]}


def _content_type(upload) -> str:
    declared = (upload.mimetype or "").strip().lower()
    if declared and declared != "application/octet-stream" and len(declared) <= 120:
        return declared
    guessed, _ = mimetypes.guess_type(upload.filename or "")
    return guessed or "application/octet-stream"


@bp.post("/uploads")
@bp.auth_required(token_auth)
@bp.input(UploadIn, location="files", arg_name="form")
@bp.output(UploadOut, status_code=201)
@bp.doc(summary="Upload a file to attach to a reply (multipart, field `file`); send the "
                "returned upload_token in the reply's `attachments`")
def upload_file(form):
    upload = form["file"]
    limit = int(config["storage"]["max_attachment_bytes"])
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        size = human_size(limit)
        abort(413, f"the file is larger than {size}",
              detail={"files": {"file": [f"larger than the {size} limit"]}})
    if not data:
        abort(422, "the file is empty", detail={"files": {"file": ["empty file"]}})
    filename = (upload.filename or "file").replace("\\", "/").rsplit("/", 1)[-1][:300] or "file"
    content_type = _content_type(upload)
    path = save_attachment(data, filename)
    agent = current_agent()
    return {"upload_token": make_upload_token(path, filename, content_type, len(data),
                                              agent.id if agent else None),
            "filename": filename, "content_type": content_type, "size": len(data)}


def human_size(limit: int) -> str:
    """26214400 → "25 MB", 1500000 → "1.4 MB", 2048 → "2 KB", 1000 → "1000 bytes"."""
    if limit >= 1024 * 1024:
        return f"{limit / 1024 / 1024:.1f}".removesuffix(".0") + " MB"
    if limit >= 1024:
        return f"{limit / 1024:.0f} KB"
    return f"{limit} bytes"
