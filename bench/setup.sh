#!/bin/sh
# Debian packages the benchmarks drive (bench/README.md): wrk, the load generator of the
# `wrk` scenario. Idempotent; must run as root (apt-get install).
set -eu
if command -v wrk >/dev/null 2>&1; then
    echo "bench/setup: nothing to do (wrk present)"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "bench/setup: must run as root (apt-get install wrk)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq wrk
