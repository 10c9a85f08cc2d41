"""Webhook authenticity: the GET handshake and X-Hub-Signature-256 over the exact raw bytes."""
from __future__ import annotations

import hashlib
import json

import pytest

from connectors.base import VerificationError
from connectors.whatsapp import verify_subscription
from tests.fakes.graph_api import sign

APP_SECRET = "verify-test-app-secret"
VERIFY_TOKEN = "verify-test-token"
SETTINGS = {"verify_token": VERIFY_TOKEN, "app_secret": APP_SECRET}


def test_subscription_echoes_challenge_for_the_right_token():
    assert verify_subscription(SETTINGS, "subscribe", VERIFY_TOKEN, "1158201444") == "1158201444"


@pytest.mark.parametrize("mode, token", [
    ("subscribe", "wrong-token"),
    ("subscribe", None),
    ("unsubscribe", VERIFY_TOKEN),
    (None, VERIFY_TOKEN),
])
def test_subscription_refuses_wrong_token_or_mode(mode, token):
    with pytest.raises(VerificationError) as err:
        verify_subscription(SETTINGS, mode, token, "1158201444")
    assert err.value.status == 403


def test_subscription_refuses_when_no_token_is_configured():
    with pytest.raises(VerificationError):
        verify_subscription({"verify_token": ""}, "subscribe", "", "x")


def test_signature_over_exact_pretty_printed_bytes(connector, load):
    body, _ = load("threadline_batch_multi_entry.json")
    assert "Здравствуйте".encode() in body       # UTF-8, not \u escapes: bytes matter
    connector.verify_webhook(SETTINGS, {"X-Hub-Signature-256": sign(body, APP_SECRET)}, body)


def test_signature_header_lookup_is_case_insensitive(connector, load):
    body, _ = load("pywa_message__text.json")
    connector.verify_webhook(SETTINGS, {"x-hub-signature-256": sign(body, APP_SECRET)}, body)


def test_missing_signature_is_401(connector, load):
    body, _ = load("pywa_message__text.json")
    with pytest.raises(VerificationError) as err:
        connector.verify_webhook(SETTINGS, {"Content-Type": "application/json"}, body)
    assert err.value.status == 401


def test_signature_of_reserialized_json_does_not_verify(connector, load):
    """Meta signs the bytes it sent; re-dumping the parsed JSON must not pass."""
    body, payload = load("pywa_message__text.json")
    compact = json.dumps(payload, separators=(",", ":")).encode()
    assert compact != body
    with pytest.raises(VerificationError) as err:
        connector.verify_webhook(SETTINGS, {"X-Hub-Signature-256": sign(compact, APP_SECRET)},
                                 body)
    assert err.value.status == 403


@pytest.mark.parametrize("header", [
    "sha256=" + "0" * 64,
    "sha1=" + "0" * 40,
    "garbage",
])
def test_wrong_signature_is_403(connector, load, header):
    body, _ = load("pywa_message__text.json")
    with pytest.raises(VerificationError) as err:
        connector.verify_webhook(SETTINGS, {"X-Hub-Signature-256": header}, body)
    assert err.value.status == 403


def test_signature_with_another_secret_is_403(connector, load):
    body, _ = load("pywa_message__text.json")
    with pytest.raises(VerificationError) as err:
        connector.verify_webhook(SETTINGS, {"X-Hub-Signature-256": sign(body, "other")}, body)
    assert err.value.status == 403


def test_tampered_body_is_403(connector, load):
    body, _ = load("pywa_message__text.json")
    header = sign(body, APP_SECRET)
    tampered = body.replace(b"Body Text", b"Body Test")
    with pytest.raises(VerificationError):
        connector.verify_webhook(SETTINGS, {"X-Hub-Signature-256": header}, tampered)


def test_unconfigured_app_secret_refuses_everything(connector, load):
    body, _ = load("pywa_message__text.json")
    with pytest.raises(VerificationError):
        connector.verify_webhook({"app_secret": ""}, {"X-Hub-Signature-256": sign(body, "")},
                                 body)


def test_event_key_is_sha256_of_raw_body(connector, load):
    body, payload = load("threadline_batch_multi_entry.json")
    assert connector.event_key(payload, body) == hashlib.sha256(body).hexdigest()
    assert connector.event_key(payload, body + b"\n") != connector.event_key(payload, body)
