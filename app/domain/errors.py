"""The one family of domain errors. A domain operation raises one when a rule refuses the
change; the web layer translates every one of them the same way (app/web/api: one error
handler): HTTP `status`, `message`, and detail {"json": {field: [reason]}} when the error
names its field (the reason is the message unless given). The transaction is rolled back.

    DomainError   422: bad input naming its field (FieldError, ReplyError are these)
    NotFound      404: a row the caller named does not exist
    Conflict      409: the change conflicts with the current state (MergeError)
"""
from __future__ import annotations

from typing import Any


class DomainError(ValueError):
    status = 422

    def __init__(self, field: str | None, message: str, status: int | None = None, *,
                 reason: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.reason = reason or message
        if status is not None:
            self.status = status

    def detail(self, location: str = "json") -> dict[str, Any]:
        """What the API answers as `detail`: the field and why ({} without a field)."""
        return {location: {self.field: [self.reason]}} if self.field else {}


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409
