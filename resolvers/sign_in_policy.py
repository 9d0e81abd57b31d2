"""Where corporate sign-in starts, and when a password is no longer enough."""

from __future__ import annotations

from urllib.parse import urlencode

from datasources.postgres import sign_in as data
from resolvers.context import Context
from resolvers.user_errors import Problem

START_PATH = "/sso/start"


def start_url(public_url: str, email: str) -> str:
    return public_url.rstrip("/") + START_PATH + "?" + urlencode({"email": email})


async def password_refusal(ctx: Context, email: str) -> Problem | None:
    """Why a correct password does not sign this email in: its domain is confirmed for an
    organization that enforces corporate sign-in. None otherwise."""
    config = await data.config_for_domain(ctx.db, email.rsplit("@", 1)[1]) if "@" in email else None
    if config is None or not config.enforce:
        return None
    where = start_url(ctx.config.public_url, email) if ctx.config.public_url else START_PATH + "?email=…"
    return Problem((), f"Your organization signs you in through its identity provider: start at {where}.",
                   "SIGN_IN_WITH_PROVIDER")
