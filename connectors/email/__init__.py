"""Email channel: IMAP in, SMTP out.

- `Mailbox` (imap.py): the IMAP client the app's sync loop drives (the app stores the cursor).
- `parse_message` (parse.py): raw bytes -> `Inbound`; charsets in charset.py, quote folding
  and subject normalization in quotes.py, auto-reply / bounce detection in autodetect.py.
- `build_message` / `send_message` (send.py): `Outbound` -> SMTP.
- `Connector` (connector.py): the `connectors.Connector` subclass tying them together.

The app's sync loop, per folder in `configured_folders(settings)`, with a stored cursor
(uidvalidity, last_uid):

    with Mailbox(settings) as box:
        state = box.folder_state(folder)
        if state.uidvalidity != cursor.uidvalidity:      # mailbox rebuilt: UIDs renumbered
            known = box.message_ids(folder)              # Message-ID -> new UID, to dedupe
            cursor = (state.uidvalidity, <highest UID whose Message-ID is already stored>)
        for batch in box.fetch_since(folder, cursor.last_uid):
            for mail in batch:
                payload = {"raw": b64encode(mail.raw).decode(), "folder": folder, "uid": mail.uid}
                ingest(connector.parse(settings, payload))
            cursor.last_uid = batch[-1].uid              # commit with the batch
        if not box.idle_wait(folder, 540, since_uidnext=state.uidnext):  # False w/o IDLE: poll
            ...

TransientError from Mailbox means "reconnect and retry"; PermanentError (login refused)
means the channel needs an admin.
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
