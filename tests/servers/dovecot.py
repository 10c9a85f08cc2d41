"""A throwaway Dovecot IMAP server for tests.

Each instance lives in its own temp dir (config, Maildir, base_dir, state_dir, log) and
listens on its own free loopback port, so several can run at once and nothing touches a
system-wide Dovecot. Install the packages with scripts/install-test-packages.sh.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_TIMEOUT_S = 15.0


class DovecotMissing(RuntimeError):
    """The dovecot binaries are not installed."""


def find_binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None)
    if not found:
        raise DovecotMissing(
            f"`{name}` not found: the email tests need a real Dovecot. "
            "Install it with `sudo scripts/install-test-packages.sh` (Debian: dovecot-imapd).")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dovecot_version(binary: str) -> tuple[int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.match(r"(\d+)\.(\d+)", out.strip())
    if not m:
        raise RuntimeError(f"cannot read dovecot version from {out!r}")
    return int(m.group(1)), int(m.group(2))


class Dovecot:
    host = "127.0.0.1"

    def __init__(self, user: str = "agent@example.test", password: str = "secret-pw"):
        self.dovecot = find_binary("dovecot")
        self.doveadm = find_binary("doveadm")
        self.version = dovecot_version(self.dovecot)
        self.user = user
        self.password = password
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="threadline-dovecot-"))
        self.dir.chmod(0o755)  # login processes run as an unprivileged user
        self.conf = self.dir / "dovecot.conf"
        self.log = self.dir / "dovecot.log"
        self.proc: subprocess.Popen | None = None
        self._write_config()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> "Dovecot":
        # Own process group: cleanup() can end master and children together.
        self.proc = subprocess.Popen([self.dovecot, "-F", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self._wait_ready()
        return self

    def stop(self, graceful: bool = True) -> None:
        """SIGTERM and wait (Dovecot's own shutdown takes ~1 s); graceful=False kills the
        instance's process group at once, for throwaway teardown."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the master leads its own group
        if graceful:
            self.proc.send_signal(signal.SIGTERM)
        else:
            _killpg(pgid)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        # Dovecot 2.3's master leaves running imap sessions (and log/stats) behind when it
        # exits; a restart must drop clients like a real server restart does.
        _killpg(pgid)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        self._wait_port_closed()

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop(graceful=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Dovecot":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # --- mailbox operations ------------------------------------------------------------------

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        """Store a message as if the MTA had delivered it (new, unseen)."""
        self._doveadm(["save", "-u", self.user, "-m", folder], stdin=raw)

    def deliver_many(self, raws: list[bytes], folder: str = "INBOX") -> None:
        """Store many messages (new, unseen) over one IMAP connection: APPEND each, which
        Dovecot stores as delivery does, without a doveadm process per message."""
        import imaplib

        with imaplib.IMAP4(self.host, self.port) as imap:
            imap.login(self.user, self.password)
            for raw in raws:
                status, detail = imap.append(folder, "", None, raw)
                if status != "OK":
                    raise RuntimeError(f"APPEND to {folder} failed: {detail}")

    def create_folder(self, folder: str) -> None:
        self._doveadm(["mailbox", "create", "-u", self.user, folder])

    def reset_uidvalidity(self, folder: str = "INBOX") -> int:
        """Give folder a new UIDVALIDITY, as a server migration or mailbox rebuild does."""
        new = int(time.time()) + int.from_bytes(os.urandom(2), "big")
        self._doveadm(["mailbox", "update", "-u", self.user, "--uid-validity", str(new), folder])
        return new

    def flags(self, folder: str = "INBOX") -> dict[int, str]:
        """UID -> flags as Dovecot stores them (independent of the client under test)."""
        out = self._doveadm(["fetch", "-u", self.user, "uid flags", "mailbox", folder]).decode()
        found = re.findall(r"uid: (\d+)\nflags:([^\n]*)", out)
        return {int(uid): flags.strip() for uid, flags in found}

    def settings(self, **extra: object) -> dict[str, object]:
        """Email connector settings pointing at this server."""
        return {"imap_host": self.host, "imap_port": self.port, "imap_security": "none",
                "imap_user": self.user, "imap_password": self.password, **extra}

    # --- internals --------------------------------------------------------------------------

    def _doveadm(self, args: list[str], stdin: bytes | None = None) -> bytes:
        result = subprocess.run([self.doveadm, "-c", str(self.conf), *args], input=stdin,
                                capture_output=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed ({result.returncode}): "
                               f"{result.stderr.decode(errors='replace')}")
        return result.stdout

    def _write_config(self) -> None:
        uid, gid = _mail_owner()
        (self.dir / "run").mkdir()
        (self.dir / "state").mkdir()
        (self.dir / "mail").mkdir()
        os.chown(self.dir / "mail", uid, gid)
        passwd = self.dir / "passwd"
        passwd.write_text(f"{self.user}:{{PLAIN}}{self.password}:{uid}:{gid}::"
                          f"{self.dir}/mail/home::\n")
        # 2.3 spells "allow cleartext" as disable_plaintext_auth=no; 2.4 renamed it.
        cleartext = ("auth_allow_cleartext = yes" if self.version >= (2, 4)
                     else "disable_plaintext_auth = no")
        login_user = _existing_user("dovenull", "nobody")
        internal_user = _existing_user("dovecot", "nobody")
        self.conf.write_text(f"""\
# Generated by tests/servers/dovecot.py: a throwaway test instance.
protocols = imap
listen = {self.host}
base_dir = {self.dir}/run
state_dir = {self.dir}/state
instance_name = threadline-test-{self.port}
log_path = {self.log}
ssl = no
{cleartext}
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {min(uid, 500)}
first_valid_gid = {min(gid, 500)}
last_valid_uid = 0
last_valid_gid = 0
mail_location = maildir:{self.dir}/mail/%u/Maildir
mail_privileged_group =
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
imap_idle_notify_interval = 1 secs
# Tests log in with wrong passwords on purpose; no need to wait the default 2 s for each.
auth_failure_delay = 0
""")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"dovecot exited with {self.proc.returncode}: {err}\n"
                                   f"{self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not answer on {self.host}:{self.port} within "
                           f"{START_TIMEOUT_S}s\n{self._log_tail()}")

    def _wait_port_closed(self) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
            except OSError:
                return
            time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return "dovecot log:\n" + self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no dovecot log)"


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _mail_owner() -> tuple[int, int]:
    """uid/gid that owns the Maildir. Dovecot refuses to access mail as root (uid 0), so
    as root the mail belongs to an unprivileged system user instead."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    entry = pwd.getpwnam(_existing_user("nobody", "dovenull"))
    return entry.pw_uid, entry.pw_gid


def _existing_user(*names: str) -> str:
    for name in names:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return pwd.getpwuid(os.getuid()).pw_name
