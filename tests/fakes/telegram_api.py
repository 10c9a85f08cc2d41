"""A local stand-in for the Telegram Bot API, spoken to over real HTTP.

Point python-telegram-bot (or the connector's `api_base_url` setting) at `fake.base_url`.
It implements the parts of the protocol Threadline uses, with the real shapes: requests to
`/bot<token>/<method>` as query string, JSON, urlencoded form or multipart (PTB uploads files
as multipart); answers `{"ok": true, "result": ...}` or `{"ok": false, "error_code": ...,
"description": ..., "parameters": ...}`; files at `/file/bot<token>/<file_path>`.

Test controls: `push_update`, `add_file`, `fail_next`, `hold`/`release`, and what was asked in
`requests` (thread-safe) and delivered in `delivery_count`.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

CLOUD_DOWNLOAD_LIMIT = 20 * 1024 * 1024
TEXT_LIMIT = 4096
CONFLICT_OTHER_POLLER = ("Conflict: terminated by other getUpdates request; "
                         "make sure that only one bot instance is running")
CONFLICT_WEBHOOK = ("Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first")


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    params: dict[str, Any]
    token: str
    http_method: str = "POST"
    files: dict[str, Upload] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)   # when the fake received it


class ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


@dataclass
class _StoredFile:
    data: bytes
    file_path: str
    file_size: int
    file_unique_id: str


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _decode_value(value: str) -> Any:
    # Form fields carry JSON-serialized objects/arrays (reply_parameters, allowed_updates).
    if value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FakeTelegramAPI:
    """Thread-backed fake Bot API. Use as a context manager or start()/stop()."""

    def __init__(self, bot_id: int = 7000000001, username: str = "threadline_test_bot",
                 first_name: str = "Threadline Test", token: str | None = None,
                 download_limit: int | None = CLOUD_DOWNLOAD_LIMIT,
                 hold_timeout: float = 30.0) -> None:
        self.bot_user = {"id": bot_id, "is_bot": True, "first_name": first_name,
                         "username": username, "can_join_groups": True,
                         "can_read_all_group_messages": False, "supports_inline_queries": False,
                         "can_connect_to_business": False, "has_main_web_app": False}
        self.token = token                  # when set, any other token gets 401
        self.download_limit = download_limit  # None = local Bot API server (no 20 MB cap)
        self.hold_timeout = hold_timeout
        self.requests: list[RecordedRequest] = []
        self.webhook: dict[str, Any] = {"url": ""}
        self._lock = threading.RLock()
        self._updates_changed = threading.Condition(self._lock)
        self._updates: deque[dict[str, Any]] = deque()
        self._next_update_id = itertools.count(100000001)
        self._failures: dict[str, deque[ApiError]] = defaultdict(deque)
        self._holds: dict[str, threading.Event] = {}
        self._files: dict[str, _StoredFile] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._message_ids: dict[int, itertools.count] = defaultdict(lambda: itertools.count(1))
        self._poll_generation = 0
        self._delivered: Counter[tuple[str, str]] = Counter()
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeTelegramAPI":
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._updates_changed.notify_all()
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeTelegramAPI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- test controls ---------------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates; assigns update_id when missing. Returns the id."""
        with self._lock:
            update = dict(update)
            update.setdefault("update_id", next(self._next_update_id))
            self._updates.append(update)
            self._updates_changed.notify_all()
            return int(update["update_id"])

    def add_file(self, file_id: str, data: bytes, file_path: str,
                 file_size: int | None = None) -> None:
        """Register a downloadable file. `file_size` may claim more than `data` holds."""
        with self._lock:
            self._files[file_id] = _StoredFile(data, file_path,
                                               len(data) if file_size is None else file_size,
                                               f"uniq-{file_id[-12:]}")

    def fail_next(self, method: str, status: int, description: str,
                  parameters: dict[str, Any] | None = None) -> None:
        """The next call of `method` answers this error (queued: call again for more)."""
        with self._lock:
            self._failures[method].append(ApiError(status, description, parameters))

    def hold(self, method: str) -> None:
        """Calls of `method` are recorded, then block until release()."""
        with self._lock:
            self._holds[method] = threading.Event()

    def release(self, method: str | None = None) -> None:
        with self._lock:
            names = [method] if method else list(self._holds)
            for name in names:
                event = self._holds.pop(name, None)
                if event is not None:
                    event.set()

    def calls(self, method: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.calls(method)
            if len(found) >= count:
                return found
            time.sleep(0.01)
        raise AssertionError(f"{method} was called {len(self.calls(method))} times, "
                             f"expected {count} within {timeout} s")

    def delivery_count(self, chat_id: int | str, text: str) -> int:
        """How many sendMessage calls actually delivered `text` to `chat_id`."""
        with self._lock:
            return self._delivered[(str(chat_id), text)]

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._updates)

    # ---- request handling (called from server threads) -------------------------------------

    def handle(self, req: RecordedRequest) -> Any:
        with self._lock:
            self.requests.append(req)
            if self.token is not None and req.token != self.token:
                raise ApiError(401, "Unauthorized")
            held = self._holds.get(req.method)
        if held is not None:
            held.wait(self.hold_timeout)
        with self._lock:
            if self._failures.get(req.method):
                raise self._failures[req.method].popleft()
        method = self._methods().get(req.method.lower())
        if method is None:
            raise ApiError(404, "Not Found: method not found")
        return method(req.params, req.files)

    def _methods(self) -> dict[str, Callable[[dict[str, Any], dict[str, Upload]], Any]]:
        return {
            "getme": lambda p, f: self.bot_user,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "getfile": self._get_file,
            "answercallbackquery": self._answer_callback_query,
        }

    def _get_updates(self, params: dict[str, Any], files: dict[str, Upload]) -> list[dict]:
        offset = int(params.get("offset", 0) or 0)
        limit = max(1, min(100, int(params.get("limit", 100) or 100)))
        timeout = max(0.0, float(params.get("timeout", 0) or 0))
        deadline = time.monotonic() + timeout
        with self._lock:
            if self.webhook["url"]:
                raise ApiError(409, CONFLICT_WEBHOOK)
            self._poll_generation += 1
            generation = self._poll_generation
            self._updates_changed.notify_all()    # a newer poll ends an older one with 409
            # An offset confirms every update before it: Telegram forgets them.
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
            while True:
                if generation != self._poll_generation:
                    raise ApiError(409, CONFLICT_OTHER_POLLER)
                if self._updates or self._stopping:
                    return list(self._updates)[:limit]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._updates_changed.wait(remaining)

    def _set_webhook(self, params: dict[str, Any], files: dict[str, Upload]) -> bool:
        url = params.get("url", "")
        if url and not str(url).startswith(("https://", "http://")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided "
                                "for webhook")
        with self._lock:
            self.webhook = {"url": url, "secret_token": params.get("secret_token"),
                            "allowed_updates": params.get("allowed_updates")}
            if _truthy(params.get("drop_pending_updates")):
                self._updates.clear()
        return True

    def _delete_webhook(self, params: dict[str, Any], files: dict[str, Upload]) -> bool:
        with self._lock:
            self.webhook = {"url": ""}
            if _truthy(params.get("drop_pending_updates")):
                self._updates.clear()
        return True

    def _get_webhook_info(self, params: dict[str, Any], files: dict[str, Upload]) -> dict:
        with self._lock:
            info: dict[str, Any] = {"url": self.webhook["url"], "has_custom_certificate": False,
                                    "pending_update_count": len(self._updates)}
            if self.webhook["url"]:
                info["max_connections"] = 40
                if self.webhook.get("allowed_updates"):
                    info["allowed_updates"] = self.webhook["allowed_updates"]
            return info

    def _new_message(self, params: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        chat_id = _chat_id(params)
        with self._lock:
            reply = self._reply_target(chat_id, params)
            message_id = next(self._message_ids[chat_id])
            message = {"message_id": message_id, "from": self.bot_user,
                       "chat": {"id": chat_id, "first_name": "Customer", "type": "private"},
                       "date": int(time.time()), **content}
            if reply is not None:
                message["reply_to_message"] = reply
            self._messages[(chat_id, message_id)] = message
            return message

    def _reply_target(self, chat_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
        reply = params.get("reply_parameters")
        if not reply:
            return None
        if not isinstance(reply, dict) or "message_id" not in reply:
            raise ApiError(400, "Bad Request: can't parse reply parameters JSON object")
        target_chat = int(reply.get("chat_id") or chat_id)
        found = self._messages.get((target_chat, int(reply["message_id"])))
        if found is None and not reply.get("allow_sending_without_reply"):
            raise ApiError(400, "Bad Request: message to be replied not found")
        return found

    def _send_message(self, params: dict[str, Any], files: dict[str, Upload]) -> dict:
        text = str(params.get("text") or "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if _utf16_len(text) > TEXT_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        content: dict[str, Any] = {"text": text}
        markup = params.get("reply_markup")
        if markup:
            if not isinstance(markup, dict) or not isinstance(markup.get("inline_keyboard"), list):
                raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
            for row in markup["inline_keyboard"]:
                for button in row:
                    if len(str(button.get("callback_data", "")).encode()) > 64:
                        raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            content["reply_markup"] = markup
        message = self._new_message(params, content)
        with self._lock:
            self._delivered[(str(message["chat"]["id"]), text)] += 1
        return message

    def _answer_callback_query(self, params: dict[str, Any], files: dict[str, Upload]) -> bool:
        if not params.get("callback_query_id"):
            raise ApiError(400, "Bad Request: query is too old and response timeout expired "
                                "or query ID is invalid")
        return True

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """A message the bot sent, as Telegram keeps it (with its reply_markup)."""
        with self._lock:
            return self._messages.get((int(chat_id), int(message_id)))

    def _upload(self, params: dict[str, Any], files: dict[str, Upload], field_name: str) -> Upload:
        upload = files.get(field_name)
        if upload is None:
            raise ApiError(400, f"Bad Request: there is no {field_name} in the request")
        return upload

    def _store_upload(self, upload: Upload, folder: str) -> tuple[str, str]:
        with self._lock:
            n = len(self._files) + 1
        file_id = f"{folder[:2].upper()}ACAgIAAxkBAAI{n:06d}"
        path = f"{folder}/file_{n}.{upload.filename.rsplit('.', 1)[-1] or 'bin'}"
        self.add_file(file_id, upload.data, path)
        return file_id, path

    def _send_photo(self, params: dict[str, Any], files: dict[str, Upload]) -> dict:
        upload = self._upload(params, files, "photo")
        file_id, _ = self._store_upload(upload, "photos")
        sizes = [{"file_id": f"{file_id}{suffix}", "file_unique_id": f"AQAD{n}{file_id[-6:]}",
                  "file_size": max(1, len(upload.data) // div), "width": w, "height": h}
                 for n, (suffix, div, w, h) in enumerate((("_s", 8, 90, 67), ("_m", 2, 320, 240),
                                                          ("", 1, 800, 600)))]
        content: dict[str, Any] = {"photo": sizes}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._new_message(params, content)

    def _send_document(self, params: dict[str, Any], files: dict[str, Upload]) -> dict:
        upload = self._upload(params, files, "document")
        file_id, _ = self._store_upload(upload, "documents")
        content: dict[str, Any] = {"document": {
            "file_name": upload.filename, "mime_type": upload.content_type,
            "file_id": file_id, "file_unique_id": f"AgAD{file_id[-8:]}",
            "file_size": len(upload.data)}}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._new_message(params, content)

    def _get_file(self, params: dict[str, Any], files: dict[str, Upload]) -> dict:
        file_id = str(params.get("file_id") or "")
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if self.download_limit is not None and stored.file_size > self.download_limit:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": stored.file_unique_id,
                "file_size": stored.file_size, "file_path": stored.file_path}

    def file_bytes(self, file_path: str) -> bytes | None:
        with self._lock:
            for stored in self._files.values():
                if stored.file_path == file_path:
                    return stored.data
        return None


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true") if not isinstance(value, bool) else value


def _chat_id(params: dict[str, Any]) -> int:
    try:
        return int(params["chat_id"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, "Bad Request: chat not found") from None


# ---- HTTP layer -------------------------------------------------------------------------------

def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, Any], dict[str, Upload]]:
    ctype = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return {}, {}
    if ctype == "application/json":
        data = json.loads(body)
        return (data if isinstance(data, dict) else {}), {}
    if ctype == "application/x-www-form-urlencoded":
        pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        return {k: _decode_value(v[-1]) for k, v in pairs.items()}, {}
    if ctype == "multipart/form-data":
        return _parse_multipart(content_type, body)
    return {}, {}


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], dict[str, Upload]]:
    # The stdlib email parser reads multipart/form-data once given the Content-Type header.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    params: dict[str, Any] = {}
    files: dict[str, Upload] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[str(name)] = Upload(filename, part.get_content_type(), data)
        else:
            charset = part.get_content_charset() or "utf-8"
            params[str(name)] = _decode_value(data.decode(charset))
    return params, files


def _make_handler(fake: FakeTelegramAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out as two writes: without TCP_NODELAY the client's delayed
        # ACK holds every answer for ~40 ms (the outbound benchmark measured the fake, not us)
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, http_method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = url.path.lstrip("/").split("/")
            if len(parts) >= 3 and parts[0] == "file" and parts[1].startswith("bot"):
                return self._download(parts[1][3:], "/".join(parts[2:]))
            if len(parts) != 2 or not parts[0].startswith("bot"):
                return self._json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            params = {k: _decode_value(v[-1]) for k, v in parse_qs(url.query).items()}
            try:
                body_params, files = _parse_body(self.headers.get("Content-Type", ""), body)
            except (ValueError, UnicodeDecodeError):
                return self._json(400, {"ok": False, "error_code": 400,
                                        "description": "Bad Request: can't parse request"})
            params.update(body_params)
            request = RecordedRequest(parts[1], params, parts[0][3:], http_method, files)
            try:
                result = fake.handle(request)
            except ApiError as exc:
                answer: dict[str, Any] = {"ok": False, "error_code": exc.status,
                                          "description": exc.description}
                if exc.parameters:
                    answer["parameters"] = exc.parameters
                return self._json(exc.status, answer)
            self._json(200, {"ok": True, "result": result})

        def _download(self, token: str, file_path: str) -> None:
            with fake._lock:
                fake.requests.append(RecordedRequest("download", {"file_path": file_path},
                                                     token, "GET"))
            data = fake.file_bytes(file_path)
            if data is None:
                return self._json(404, {"ok": False, "error_code": 404,
                                        "description": "Not Found"})
            self._send(200, data, "application/octet-stream")

        def _json(self, status: int, answer: dict[str, Any]) -> None:
            self._send(status, json.dumps(answer, ensure_ascii=False).encode(),
                       "application/json")

        def _send(self, status: int, payload: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (a killed worker): nothing to answer

    return Handler
