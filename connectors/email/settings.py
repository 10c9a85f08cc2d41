"""Email channel settings: keys, defaults and validation."""
from __future__ import annotations

from typing import Any, Mapping

SETTING_KEYS: tuple[str, ...] = (
    "imap_host", "imap_port", "imap_security", "imap_user", "imap_password", "imap_folders",
    "smtp_host", "smtp_port", "smtp_security", "smtp_user", "smtp_password",
    "from_address", "from_name", "reply_domain", "sent_folder",
    "subject_match_days", "max_attachment_bytes",
)
SECRET_KEYS = frozenset({"imap_password", "smtp_password"})
REQUIRED_KEYS: tuple[str, ...] = ("imap_host", "imap_user", "imap_password", "smtp_host",
                                  "from_address")
SECURITY_VALUES = ("tls", "starttls", "none")
DEFAULTS: dict[str, Any] = {
    "imap_port": 993,
    "imap_security": "tls",
    "smtp_port": 587,
    "smtp_security": "starttls",
    "imap_folders": "INBOX",
    "subject_match_days": 14,
    "max_attachment_bytes": 25 * 1024 * 1024,
}
_INT_KEYS = ("imap_port", "smtp_port", "subject_match_days", "max_attachment_bytes")


def normalize_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Fill defaults and coerce types; raise ValueError naming the bad key.

    Accepts partial settings (parse() needs only a few keys), so required keys are checked
    by Connector.validate_settings, not here.
    """
    out = {k: v for k, v in DEFAULTS.items()}
    out.update({k: v for k, v in settings.items() if v is not None and v != ""})
    for key in _INT_KEYS:
        out[key] = _as_int(key, out[key])
    for key in ("imap_port", "smtp_port"):
        if not 0 < out[key] < 65536:
            raise ValueError(f"{key}: port must be between 1 and 65535, got {out[key]}")
    for key in ("imap_security", "smtp_security"):
        value = str(out[key]).strip().lower()
        if value not in SECURITY_VALUES:
            raise ValueError(f"{key}: must be one of {', '.join(SECURITY_VALUES)}, got {out[key]!r}")
        out[key] = value
    if out.get("from_address"):
        address = str(out["from_address"]).strip()
        if address.count("@") != 1 or address.startswith("@") or address.endswith("@"):
            raise ValueError(f"from_address: not an email address: {address!r}")
        out["from_address"] = address
        out.setdefault("reply_domain", address.rsplit("@", 1)[1].lower())
    if out.get("reply_domain"):
        out["reply_domain"] = str(out["reply_domain"]).strip().lower().lstrip("@")
    return out


def folders(settings: Mapping[str, Any]) -> list[str]:
    """imap_folders is a comma-separated list ("INBOX, Support")."""
    raw = settings.get("imap_folders") or "INBOX"
    if isinstance(raw, (list, tuple)):
        return [str(f).strip() for f in raw if str(f).strip()]
    return [f.strip() for f in str(raw).split(",") if f.strip()]


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{key}: must be an integer, got {value!r}")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{key}: must be an integer, got {value!r}") from None
