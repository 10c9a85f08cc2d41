#!/bin/sh
# Install the Debian packages the test suite drives for real (DESIGN.md section 5):
#   - Dovecot (IMAP + LMTP) for the email connector tests,
#   - Chromium for the browser tests,
#   - Node.js to check that every static script parses (tests/test_static_js.py).
# Idempotent: each package is installed only when a command/dpkg check says it is missing,
# and `apt-get update` runs only when there is something to install. Must run as root.
set -eu

if [ "$(id -u)" != "0" ]; then
    echo "install-test-packages: must run as root (apt-get install)" >&2
    exit 1
fi

missing=""

# pkg_missing <package> [<command>]: true when neither dpkg nor PATH knows it.
pkg_missing() {
    if [ -n "${2:-}" ] && command -v "$2" >/dev/null 2>&1; then
        return 1
    fi
    if dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; then
        return 1
    fi
    return 0
}

pkg_missing dovecot-imapd dovecot && missing="$missing dovecot-imapd"
pkg_missing dovecot-lmtpd && missing="$missing dovecot-lmtpd"
if ! command -v chromium >/dev/null 2>&1 && pkg_missing chromium; then
    missing="$missing chromium"
fi

pkg_missing nodejs node && missing="$missing nodejs"

if [ -z "$missing" ]; then
    echo "install-test-packages: nothing to do (dovecot-imapd, dovecot-lmtpd, chromium, node present)"
    exit 0
fi

echo "install-test-packages: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086  # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing
# The Debian package starts a system-wide Dovecot where an init system exists; the tests
# start their own instances on free loopback ports with throwaway configs, so it is not needed.
echo "install-test-packages: installed:$missing"
dovecot --version 2>/dev/null | sed 's/^/install-test-packages: dovecot /' || true
