"""Real-shaped, signed webhook requests: Telegram updates (secret-token header) and WhatsApp
Cloud API notifications (X-Hub-Signature-256 over the exact body), built from the shapes of
the fixtures in tests/fixtures."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

from bench.common import TG_SECRET, WA_NUMBER, WA_SECRET, Request

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
_WA_TEMPLATE = json.loads((FIXTURES / "whatsapp" / "pywa_message__text.json").read_text())


def telegram(channel_id: int, update_id: int, user_id: int, first_name: str, text: str,
             path_prefix: str = "/webhooks/telegram/") -> Request:
    update = {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {"id": user_id, "is_bot": False, "first_name": first_name,
                     "language_code": "ru"},
            "chat": {"id": user_id, "first_name": first_name, "type": "private"},
            "date": int(time.time()),
            "text": text,
        },
    }
    body = json.dumps(update, ensure_ascii=False).encode()
    return Request("POST", f"{path_prefix}{channel_id}",
                   {"Content-Type": "application/json",
                    "X-Telegram-Bot-Api-Secret-Token": TG_SECRET}, body)


def whatsapp(channel_id: int, wamid: str, wa_id: str, name: str, text: str,
             path_prefix: str = "/webhooks/whatsapp/") -> Request:
    payload = json.loads(json.dumps(_WA_TEMPLATE))
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = WA_NUMBER
    value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
    value["messages"] = [{"from": wa_id, "id": wamid, "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": text}}]
    body = json.dumps(payload, ensure_ascii=False).encode()
    signature = "sha256=" + hmac.new(WA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return Request("POST", f"{path_prefix}{channel_id}",
                   {"Content-Type": "application/json", "X-Hub-Signature-256": signature}, body)
