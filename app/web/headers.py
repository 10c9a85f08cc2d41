"""Security headers on every answer: HSTS behind https; for the inbox's own pages a CSP that
allows only this site's scripts and no framing (X-Frame-Options and frame-ancestors). The
site chat's frame sets its own CSP (framed only by the channel's `allowed_origins`) and the
API's documentation page loads its viewer from a CDN: neither gets the pages' policy."""
from __future__ import annotations

from flask import Flask, Response, request

PAGE_CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    # the inbox sets a few style attributes from its scripts
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "font-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HSTS = "max-age=31536000"


def install(app: Flask) -> None:
    https = app.config["THREADLINE"]["server"]["public_url"].lower().startswith("https://")

    @app.after_request
    def _security_headers(response: Response) -> Response:
        if https:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        page = response.mimetype == "text/html" and request.blueprint != "widget" \
            and not request.path.startswith("/api/")
        if page and "Content-Security-Policy" not in response.headers:
            response.headers["Content-Security-Policy"] = PAGE_CSP
            response.headers["X-Frame-Options"] = "DENY"
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
