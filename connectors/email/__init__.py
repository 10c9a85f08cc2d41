"""Email channel: IMAP in, SMTP out.

- `Mailbox` (imap.py): the IMAP client the app's sync loop drives (the app stores the cursor).
- `parse_message` (parse.py): raw bytes -> `Inbound`; charsets in charset.py, quote folding
  and subject normalization in quotes.py, auto-reply / bounce detection in autodetect.py.
- `build_message` / `send_message` (send.py): `Outbound` -> SMTP.
- `Connector` (connector.py): the `connectors.Connector` subclass tying them together.
"""
from .connector import EmailConnector
from .imap import FetchedMail, FolderState, Mailbox
from .parse import parse_message
from .quotes import html_to_text, normalize_subject, split_quoted
from .send import build_message, send_message, smtp_check
from .settings import folders as configured_folders

Connector = EmailConnector

__all__ = ["Connector", "EmailConnector", "Mailbox", "FolderState", "FetchedMail",
           "parse_message", "split_quoted", "normalize_subject", "html_to_text",
           "build_message", "send_message", "smtp_check", "configured_folders"]
