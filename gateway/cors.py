"""Cross-origin calls from browsers (CORS), for the web origins in CORS_ORIGINS only.

Starlette's CORSMiddleware answers the preflight and adds the headers. Clients authenticate
with the `Authorization` header, never cookies, so credentials stay off: a page on an allowed
origin can call the API with a token it holds, and a browser sends no ambient credential that
another site could ride on.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

METHODS = ("GET", "POST")
# What a client sends besides the headers a browser always allows (Accept, Content-Type...).
REQUEST_HEADERS = ("Authorization", "Content-Type", "Accept", "X-Request-Id")
# What a script may read of an answer: the id to quote in a support request, when to retry
# after 429, and an invoice download's file name.
EXPOSED_HEADERS = ("X-Request-Id", "Retry-After", "Content-Disposition")
# How long a browser keeps a preflight's answer: one preflight per endpoint per ten minutes.
PREFLIGHT_MAX_AGE_SECONDS = 600


def cors_middleware(origins: tuple[str, ...]) -> list[Middleware]:
    """The middleware for these origins; none at all (no CORS headers, OPTIONS is 405) without any."""
    if not origins:
        return []
    return [Middleware(CORSMiddleware, allow_origins=origins, allow_methods=METHODS, allow_headers=REQUEST_HEADERS,
                       expose_headers=EXPOSED_HEADERS, allow_credentials=False,
                       max_age=PREFLIGHT_MAX_AGE_SECONDS)]
