"""Where outgoing webhooks may go: not to this host, its network or a cloud's metadata
service (loopback, link-local, private, reserved addresses), unless an admin allows it in
the configuration (`security.allow_private_webhook_urls`, for a CRM on the same network)."""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from app.infra.state import config


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # not globally reachable: loopback, private, link-local (cloud metadata), shared
    # (100.64/10), reserved, unspecified; and multicast
    return not ip.is_global or ip.is_multicast or ip.is_loopback or ip.is_link_local


def private_target(url: str, resolve: bool = True) -> str | None:
    """Why the URL may not be called (None: it may). A host name is resolved (`resolve`):
    every address it has must be public; a name that does not resolve is left to the
    delivery, which checks again."""
    if config["security"]["allow_private_webhook_urls"]:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return "not a URL"
    if not host:
        return "no host"
    try:
        return f"{host} is a private address" if _private(host) else None
    except ValueError:
        pass  # a name
    if host.rstrip(".").lower() == "localhost" or host.rstrip(".").lower().endswith(".localhost"):
        return f"{host} is this host"
    if not resolve:
        return None
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        if _private(info[4][0]):
            return f"{host} resolves to a private address"
    return None
