"""Real servers the tests talk to: Dovecot (IMAP) and aiosmtpd (SMTP), on loopback ports."""
from .dovecot import Dovecot, DovecotMissing
from .smtp import RecordingSMTP, ReceivedMail

__all__ = ["Dovecot", "DovecotMissing", "RecordingSMTP", "ReceivedMail"]
