"""Where corporate sign-in starts, which organization an email's domain signs in with, and
when a password is no longer enough.

Domains are compared in their ASCII form (IDNA 2008 with UTS 46 mapping, the `idna` package):
an address may reach the gateway as `ida@bücher.example` from a form and as
`ida@xn--bcher-kva.example` from a provider, and both are the one domain a claim names.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import idna

from datasources.postgres import sign_in as data
from datasources.postgres.database import Executor
from datasources.postgres.sign_in import SignInConfig
from resolvers.context import Context
from resolvers.user_errors import Problem

START_PATH = "/sso/start"
# RFC 1035 labels (letters, digits, inner hyphens, at most 63), at least two, a TLD that is not all digits.
_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?!\d+$)[a-z0-9-]{2,63}")


def ascii_domain(raw: str) -> str | None:
    """The domain in its ASCII form, lower case; None when it is not a domain name."""
    text = raw.strip().rstrip(".").lower()
    if not text or len(text) > 300:
        return None
    try:
        ascii_form = idna.encode(text, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return ascii_form if _DOMAIN.fullmatch(ascii_form) else None


def email_forms(email: str) -> list[str]:
    """The ways one address may be stored: as given, with its domain in ASCII and in Unicode."""
    local, _, domain = email.rpartition("@")
    forms = [email]
    ascii_form = ascii_domain(domain)
    if ascii_form:
        forms.append(f"{local}@{ascii_form}")
        try:
            forms.append(f"{local}@{idna.decode(ascii_form)}")
        except (idna.IDNAError, UnicodeError, ValueError):
            pass
    return list(dict.fromkeys(forms))


async def config_for_email(db: Executor, email: str) -> SignInConfig | None:
    """The sign-in settings of the organization whose confirmed domain the address is of."""
    domain = ascii_domain(email.rpartition("@")[2]) if "@" in email else None
    return await data.config_for_domain(db, domain) if domain else None


def start_url(public_url: str, email: str) -> str:
    return public_url.rstrip("/") + START_PATH + "?" + urlencode({"email": email})


async def password_refusal(ctx: Context, email: str, account_id: object) -> Problem | None:
    """Why a correct password does not sign this account in: its email's domain is confirmed for
    an organization that enforces corporate sign-in, and the account is that organization's or in
    none (an account of another organization, or of the vendor's staff, is not the domain
    owner's to govern). None otherwise."""
    config = await config_for_email(ctx.db, email)
    if config is None or not config.enforce:
        return None
    if not await data.governed_by(ctx.db, account_id, config.organization_id):
        return None
    where = start_url(ctx.config.public_url, email) if ctx.config.public_url else START_PATH + "?email=…"
    return Problem((), f"Your organization signs you in through its identity provider: start at {where}.",
                   "SIGN_IN_WITH_PROVIDER")
