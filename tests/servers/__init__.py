"""Real servers the tests talk to: Dovecot (IMAP) and aiosmtpd (SMTP), on loopback ports."""
from tests.servers.dovecot import Dovecot, DovecotMissing
from tests.servers.smtp import RecordingSMTP, ReceivedMail

__all__ = ["Dovecot", "DovecotMissing", "RecordingSMTP", "ReceivedMail"]
