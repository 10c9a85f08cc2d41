"""Email channel: IMAP in, SMTP out. See connectors/email/README (docstrings below)."""
from .connector import EmailConnector
from .imap import FetchedMail, FolderState, Mailbox
from .parse import parse_message
from .quotes import html_to_text, normalize_subject, split_quoted
from .send import build_message, send_message

Connector = EmailConnector

__all__ = ["Connector", "EmailConnector", "Mailbox", "FolderState", "FetchedMail",
           "parse_message", "split_quoted", "normalize_subject", "html_to_text",
           "build_message", "send_message"]
