"""A local stand-in for the WhatsApp Cloud (Graph) API, speaking its real HTTP protocol.

Point a channel's `api_base_url` at `FakeGraphAPI().base_url`. It answers sends, read
receipts, media upload/lookup/download and the phone-number lookup with Meta's JSON shapes,
checks the bearer token, records every request, and can inject real-shaped errors or hold a
send until released (to kill a worker mid-send).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_TOKEN = "test-access-token"
DEFAULT_PHONE_NUMBER_ID = "1122334455667"
HOLD_TIMEOUT = 30.0   # a held send never blocks a test run forever
MEDIA_PATH = "/whatsapp_business/attachments/"
MESSAGE_TYPES = {"text", "image", "document", "audio", "video", "sticker", "template",
                 "location", "contacts", "interactive", "reaction"}


def sign(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 value Meta would send for these exact bytes."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _trace_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes[:9]).decode()


def graph_error(code: int, message: str, details: str | None = None, *,
                error_type: str = "OAuthException", subcode: int | None = None) -> dict:
    """Meta's error body: {"error": {message, type, code, error_subcode, error_data, fbtrace_id}}."""
    error: dict[str, Any] = {"message": f"(#{code}) {message}", "type": error_type,
                             "code": code, "fbtrace_id": _trace_id()}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    kind: str                         # send | mark_read | upload | media_info | download | phone
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)   # multipart fields (upload)


@dataclass
class _Failure:
    match: str
    http_status: int
    code: int
    title: str
    details: str | None
    subcode: int | None


@dataclass
class _Media:
    data: bytes
    mime_type: str


class FakeGraphAPI:
    def __init__(self, access_token: str = DEFAULT_TOKEN,
                 phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
                 display_phone_number: str = "+48 22 123 45 67",
                 verified_name: str = "Threadline Test"):
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.display_phone_number = display_phone_number
        self.verified_name = verified_name
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._failures: list[_Failure] = []
        self._media: dict[str, _Media] = {}
        self._ids = itertools.count(1)
        self._hold_next = False
        self._released = threading.Event()
        self.held = threading.Event()        # set once a held send has arrived
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakeGraphAPI":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True, name="fake-graph-api")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()      # let a held handler finish so shutdown does not hang
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeGraphAPI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "FakeGraphAPI is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- test controls -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def sent(self) -> list[dict]:
        """JSON bodies of message sends (not read receipts), oldest first."""
        return [r.json for r in self.requests if r.kind == "send"]

    def fail_next(self, match: str, http_status: int = 400, code: int = 131047,
                  title: str = "Re-engagement message", details: str | None = None,
                  subcode: int | None = None) -> None:
        """Answer the next request whose kind or path suffix is `match` with a Graph error.

        `http_status=0` drops the connection without an answer (a network failure).
        """
        with self._lock:
            self._failures.append(_Failure(match, http_status, code, title, details, subcode))

    def add_media(self, media_id: str, data: bytes, mime_type: str) -> None:
        with self._lock:
            self._media[media_id] = _Media(data, mime_type)

    def media(self, media_id: str) -> tuple[bytes, str]:
        with self._lock:
            item = self._media[media_id]
        return item.data, item.mime_type

    def hold(self) -> None:
        """Block the next send until `release()`."""
        with self._lock:
            self._hold_next = True
            self._released.clear()
            self.held.clear()

    def release(self) -> None:
        self._released.set()

    # --- used by the handler -----------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_failure(self, kind: str, path: str) -> _Failure | None:
        with self._lock:
            for i, failure in enumerate(self._failures):
                if failure.match == kind or path.endswith(failure.match):
                    return self._failures.pop(i)
        return None

    def _take_hold(self) -> bool:
        with self._lock:
            hold, self._hold_next = self._hold_next, False
        return hold

    def _new_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _store_media(self, data: bytes, mime_type: str) -> str:
        media_id = str(900000000000000 + self._new_id())
        self.add_media(media_id, data, mime_type)
        return media_id

    def _lookup_media(self, media_id: str) -> _Media | None:
        with self._lock:
            return self._media.get(media_id)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGraphAPI
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; without TCP_NODELAY, Nagle + delayed ACK
    # add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:   # keep pytest output quiet
        pass

    # --- entry points ------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = [p for p in url.path.split("/") if p]
        kind = self._kind(method, url.path, parts, body)
        request = RecordedRequest(method, url.path, parse_qs(url.query),
                                  {k: v for k, v in self.headers.items()}, body, kind)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            try:
                request.json = json.loads(body or b"null")
            except ValueError:
                request.json = None
        self.fake._record(request)
        if not self._authorized():
            # Meta's token errors carry no "(#190)" prefix, unlike the other codes.
            return self._json(401, {"error": {
                "message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException", "code": 190, "fbtrace_id": _trace_id()}})
        failure = self.fake._take_failure(kind, url.path)
        if failure is not None:
            return self._fail(failure)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return self._json(400, graph_error(
                100, "Unsupported get request. Object does not exist, cannot be loaded due to "
                "missing permissions, or does not support this operation",
                error_type="GraphMethodException", subcode=33))
        handler(request, parts)

    def _kind(self, method: str, path: str, parts: list[str], body: bytes) -> str:
        if path.startswith(MEDIA_PATH):
            return "download"
        if method == "POST" and len(parts) == 3 and parts[2] == "messages":
            return "mark_read" if _json_or_none(body, "status") == "read" else "send"
        if method == "POST" and len(parts) == 3 and parts[2] == "media":
            return "upload"
        if method == "GET" and len(parts) == 2:
            return "phone" if parts[1] == self.fake.phone_number_id else "media_info"
        return "unknown"

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given, f"Bearer {self.fake.access_token}")

    # --- routes ------------------------------------------------------------------------------

    def _on_send(self, request: RecordedRequest, parts: list[str]) -> None:
        if not self._known_number(parts[1]):
            return
        problem = _check_send(request.json)
        if problem:
            return self._json(400, graph_error(100, "Invalid parameter", problem))
        if self.fake._take_hold():
            self.fake.held.set()
            self.fake._released.wait(HOLD_TIMEOUT)
        to = request.json.get("to") or request.json.get("recipient")
        contact = {"input": to, "wa_id": to} if request.json.get("to") else \
            {"input": to, "user_id": to}
        wamid = "wamid.HBgM" + base64.b64encode(
            f"{self.fake._new_id()}:{uuid.uuid4().hex}".encode()).decode().rstrip("=")
        self._json(200, {"messaging_product": "whatsapp", "contacts": [contact],
                         "messages": [{"id": wamid}]})

    def _on_mark_read(self, request: RecordedRequest, parts: list[str]) -> None:
        if not self._known_number(parts[1]):
            return
        if not (request.json or {}).get("message_id"):
            return self._json(400, graph_error(100, "Invalid parameter", "message_id required"))
        self._json(200, {"success": True})

    def _on_upload(self, request: RecordedRequest, parts: list[str]) -> None:
        if not self._known_number(parts[1]):
            return
        form = _parse_multipart(self.headers.get("Content-Type", ""), request.body)
        request.form = form
        file = form.get("file")
        if form.get("messaging_product") != "whatsapp" or not isinstance(file, dict):
            return self._json(400, graph_error(100, "Invalid parameter",
                                               "messaging_product and file are required"))
        media_id = self.fake._store_media(file["data"], form.get("type") or file["type"])
        self._json(200, {"id": media_id})

    def _on_media_info(self, request: RecordedRequest, parts: list[str]) -> None:
        media = self.fake._lookup_media(parts[1])
        if media is None:
            return self._json(400, graph_error(
                100, f"Unsupported get request. Object with ID '{parts[1]}' does not exist",
                error_type="GraphMethodException", subcode=33))
        url = (f"{self.fake.base_url}{MEDIA_PATH}?mid={parts[1]}&ext={self.fake._new_id()}"
               f"&hash=ATv{uuid.uuid4().hex[:12]}")
        self._json(200, {"messaging_product": "whatsapp", "url": url,
                         "mime_type": media.mime_type,
                         "sha256": hashlib.sha256(media.data).hexdigest(),
                         "file_size": len(media.data), "id": parts[1]})

    def _on_download(self, request: RecordedRequest, parts: list[str]) -> None:
        media = self.fake._lookup_media((request.query.get("mid") or [""])[0])
        if media is None:
            return self._json(404, {"error": "not found"})
        self.send_response(200)
        self.send_header("Content-Type", media.mime_type)
        self.send_header("Content-Length", str(len(media.data)))
        self.end_headers()
        self.wfile.write(media.data)

    def _on_phone(self, request: RecordedRequest, parts: list[str]) -> None:
        self._json(200, {"display_phone_number": self.fake.display_phone_number,
                         "verified_name": self.fake.verified_name,
                         "quality_rating": "GREEN", "id": self.fake.phone_number_id})

    # --- answers -----------------------------------------------------------------------------

    def _known_number(self, phone_number_id: str) -> bool:
        if phone_number_id == self.fake.phone_number_id:
            return True
        self._json(400, graph_error(
            100, f"Unsupported post request. Object with ID '{phone_number_id}' does not exist",
            error_type="GraphMethodException", subcode=33))
        return False

    def _fail(self, failure: _Failure) -> None:
        if failure.http_status == 0:
            self.close_connection = True
            self.connection.close()     # the client sees a dropped connection
            return
        self._json(failure.http_status, graph_error(failure.code, failure.title,
                                                    failure.details, subcode=failure.subcode))

    def _json(self, status: int, data: Any) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'OAuth "Facebook Platform" "invalid_token"')
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the client (e.g. a killed worker) went away


def _json_or_none(body: bytes, key: str) -> Any:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get(key) if isinstance(data, dict) else None


def _check_send(body: Any) -> str | None:
    """The validation Meta does before accepting a message, enough to catch our mistakes."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return "messaging_product must be 'whatsapp'"
    if not (body.get("to") or body.get("recipient")):
        return "to is required"
    mtype = body.get("type", "text")
    if mtype not in MESSAGE_TYPES or not isinstance(body.get(mtype), dict):
        return f"missing or unknown message type {mtype!r}"
    if mtype == "text" and not 0 < len(body["text"].get("body") or "") <= 4096:
        return "text.body must be 1..4096 characters"
    if mtype == "interactive":
        return _check_interactive(body["interactive"])
    if mtype == "template" and not (body["template"].get("name")
                                    and body["template"].get("language")):
        return "template.name and template.language are required"
    return None


def _check_interactive(inter: dict) -> str | None:
    """Meta's limits on reply buttons and lists (Cloud API reference, interactive object)."""
    body = (inter.get("body") or {}).get("text") or ""
    if not 0 < len(body) <= 1024:
        return "interactive.body.text must be 1..1024 characters"
    action = inter.get("action") or {}
    if inter.get("type") == "button":
        buttons = action.get("buttons") or []
        if not 1 <= len(buttons) <= 3:
            return "interactive buttons: 1 to 3 buttons"
        for button in buttons:
            reply = button.get("reply") or {}
            if button.get("type") != "reply" or not reply.get("id") \
                    or not 0 < len(reply.get("title") or "") <= 20:
                return "a reply button needs an id and a title of 1..20 characters"
        if len({b["reply"]["id"] for b in buttons}) != len(buttons):
            return "reply button ids must be unique"
        return None
    if inter.get("type") == "list":
        rows = [r for s in action.get("sections") or [] for r in s.get("rows") or []]
        if not action.get("button") or not 1 <= len(rows) <= 10:
            return "interactive list: a button label and 1 to 10 rows"
        if any(not r.get("id") or not 0 < len(r.get("title") or "") <= 24 for r in rows):
            return "a list row needs an id and a title of 1..24 characters"
        return None
    return f"unknown interactive type {inter.get('type')!r}"


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Form fields as strings, file parts as {"filename", "type", "data"}."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            form[name] = {"filename": filename, "type": part.get_content_type(), "data": data}
        else:
            form[name] = data.decode()
    return form
