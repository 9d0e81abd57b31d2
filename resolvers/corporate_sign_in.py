"""Signing in through the organization's OpenID provider (authorization code flow with PKCE).

1. `start`: a person enters their email; its domain, confirmed for an organization that set up
   sign-in, sends the browser to that provider with a fresh `state`, `nonce` and PKCE challenge
   (kept, hashed where they are secrets, as the attempt).
2. `finish`: the provider sends the browser back with a code and the `state`. The attempt is
   used up (a replayed answer finds nothing), the code traded for tokens, the ID token verified
   (datasources/identity/oidc.py). The person is the account linked to the provider's subject,
   or the account with that email, or a new account (just in time) — a MEMBER of the
   organization either way, unless they belong to another one. The browser goes on to the
   portal with a one-time code.
3. `complete_sign_in`: the portal trades that code (once, within two minutes) for the usual
   token pair, as `login` gives.

With `enforce`, a password is no longer enough (resolvers/sign_in_policy.py).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode
from uuid import UUID

import asyncpg

from datasources.identity.oidc import IdentityProviders, Identity, Pkce, ProviderUnreachable, TokenRefused
from datasources.postgres import people
from datasources.postgres import sign_in as data
from datasources.postgres.database import Database
from resolvers.attempts import give_back_attempt, take_attempt
from resolvers.context import Config, Context
from resolvers.events import publish
from resolvers.people import name_problem, normalize_email
from resolvers.sign_in_policy import config_for_email, email_forms
from resolvers.sessions import LoginResult, start_session
from resolvers.user_errors import Problem
from resolvers.writes import after_write, require_change
from datasources.postgres import audit

CALLBACK_PATH = "/sso/callback"
COMPLETE_PATH = "/sso/complete"  # the portal's page that reads `code` and calls completeSignIn
MAX_CODE_LENGTH = 200
JOIN = "member.join_sign_in"
INVALID_CODE = Problem(("input", "code"), "This sign-in code was used already, has expired or is not one: sign in "
                                          "again.", "INVALID_SIGN_IN_CODE")


class SignInError(Exception):
    """A sign-in that cannot go on: the person is told `message` (and starts again)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Finished:
    portal_url: str  # where the browser goes next, with the one-time code
    account_id: UUID


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def redirect_uri(public_url: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PATH


@dataclass(frozen=True)
class Started:
    provider_url: str  # where the browser goes
    state: str  # kept by the browser (a cookie) too: the answer must come back to the browser that asked


async def start(db: Database, providers: IdentityProviders, public_url: str, raw_email: str) -> Started:
    """The provider's authorization URL for the person with this email."""
    email = normalize_email(raw_email) if len(raw_email) <= 320 else None
    if email is None:
        raise SignInError("Enter a valid email address.")
    config = await config_for_email(db, email)
    if config is None:
        raise SignInError(f"No organization signs in {email.rsplit('@', 1)[1]} through its own provider: sign in "
                          "with your password.", status=404)
    try:
        metadata = await providers.metadata(config.issuer)
    except ProviderUnreachable as exc:
        raise SignInError(f"Your organization's identity provider cannot be reached: {exc.message}", 502) from None
    state, nonce, pkce = secrets.token_urlsafe(32), secrets.token_urlsafe(32), Pkce.new()
    await data.create_attempt(db, _hash(state), config.organization_id, nonce=nonce, code_verifier=pkce.verifier,
                              email=email)
    return Started(providers.authorization_url(metadata, client_id=config.client_id,
                                               redirect_uri=redirect_uri(public_url), state=state, nonce=nonce,
                                               pkce=pkce, login_hint=email), state)


async def finish(db: Database, providers: IdentityProviders, config: Config, public_url: str, *,
                 state: str | None, code: str | None, error: str | None, issuer: str | None,
                 browser_state: str | None) -> Finished:
    """The provider's answer checked, the person signed up or found: where the browser goes next.

    `browser_state` is what the browser kept from `start`: an answer brought by another browser
    (an attacker's own sign-in, finished in a victim's browser to sign them in as the attacker)
    is refused."""
    if not state or len(state) > MAX_CODE_LENGTH:
        raise SignInError("This sign-in was not started here: start again.")
    if not browser_state or not secrets.compare_digest(state.encode(), browser_state.encode()):
        raise SignInError("This sign-in was not started in this browser: start again.")
    attempt = await data.take_attempt(db, _hash(state))
    if attempt is None:
        raise SignInError("This sign-in was finished already or has expired: start again.")
    if error:
        raise SignInError(f"Your identity provider did not sign you in ({error[:100]}).")
    if not code or len(code) > 4096:
        raise SignInError("The identity provider sent no code: start again.")
    [settings] = await data.configs_of_organizations(db, [attempt.organization_id])
    if settings is None:
        raise SignInError("Your organization no longer signs in through a provider: sign in with your password.")
    if issuer is not None and issuer != settings.issuer:
        # RFC 9207: the answer names who sent it; another provider's answer is a mix-up attack.
        raise SignInError("The answer came from another identity provider: start again.")
    try:
        identity = await providers.sign_in(settings.issuer, client_id=settings.client_id,
                                           client_secret=settings.client_secret, code=code,
                                           code_verifier=attempt.code_verifier, redirect_uri=redirect_uri(public_url),
                                           nonce=attempt.nonce)
    except TokenRefused as exc:
        raise SignInError(exc.message) from None
    except ProviderUnreachable as exc:
        raise SignInError(f"Your organization's identity provider cannot be reached: {exc.message}", 502) from None
    email = _checked_email(identity)
    owner = await config_for_email(db, email)
    if owner is None or owner.organization_id != attempt.organization_id:
        raise SignInError(f"{email} is not of a domain your organization signs in: sign in with your password.", 403)
    async with db.transaction() as conn:
        account_id = await _member(conn, settings.issuer, identity, email, attempt.organization_id)
        one_time = secrets.token_urlsafe(32)
        await data.create_code(conn, _hash(one_time), account_id)
    return Finished(f"{config.portal_url}{COMPLETE_PATH}?{urlencode({'code': one_time})}", account_id)


def _checked_email(identity: Identity) -> str:
    email = normalize_email(identity.email) if identity.email and len(identity.email) <= 320 else None
    if email is None:
        raise SignInError("Your identity provider did not tell the gateway your email address (the `email` claim).")
    # Absent (Entra ID sends none) is taken as the provider's word for its own domain; false is not.
    if identity.email_verified is False:
        raise SignInError("Your identity provider has not verified your email address.", 403)
    return email


async def _member(conn: asyncpg.Connection, issuer: str, identity: Identity, email: str, organization_id: UUID) -> UUID:
    """The account signing in, a MEMBER of the organization from now on if it was in none."""
    linked = await data.identity_account(conn, issuer, identity.subject)
    forms = email_forms(email)
    found = await people.account_for_join_by_id(conn, linked) if linked is not None else None
    for form in forms if found is None else ():
        found = found or await people.account_for_join(conn, form)
    created = False
    if found is None:
        name = identity.name.strip() if identity.name else ""
        if not name or name_problem(("name",), name) is not None:
            name = email.split("@", 1)[0][:200]
        account_id = await people.create_account(conn, email=email, name=name, password_hash=None)
        if account_id is None:  # created meanwhile by a sign-in of the same person
            found = await people.account_for_join(conn, email)
            assert found is not None
        created = account_id is not None
    if found is not None:
        account_id = found.id
        if found.organization_id not in (None, organization_id):
            raise SignInError(f"{found.email} belongs to another organization; an account can belong to only one.",
                              403)
    assert account_id is not None
    if not await data.governed_by(conn, account_id, organization_id):
        # Staff never sign in through a customer's provider: it would hand the vendor's rights to
        # whoever runs that provider.
        raise SignInError("This account signs in with its password, not through an organization's provider.", 403)
    if found is None or found.organization_id is None:
        if await data.deprovisioned(conn, organization_id, forms):
            # SCIM took them out: signing in must not bring them back behind the provisioning's back.
            raise SignInError("Your organization's provisioning has deactivated you here: ask its administrator.",
                              403)
        # Invited before: the invitation is taken, with its role; otherwise a MEMBER.
        role = await data.claim_invitation(conn, organization_id, forms) or "MEMBER"
        await people.add_membership(conn, account_id=account_id, organization_id=organization_id, role=role)
        await audit.record(conn, organization_id=organization_id, actor_account_id=account_id, action=JOIN,
                           target=email, details={"issuer": issuer, "accountCreated": created, "role": role})
        await publish(conn, "MEMBER_JOINED", organization_id=organization_id, actor_account_id=account_id,
                      data={"account_id": account_id, "role": role})
    await data.link_identity(conn, issuer, identity.subject, account_id, organization_id)
    return account_id


async def complete_sign_in(ctx: Context, code: str) -> LoginResult:
    """The one-time code from the callback traded for a session's token pair."""
    await require_change(ctx, "completeSignIn")
    code = code.strip()
    if not code:
        return LoginResult(problems=[Problem(("input", "code"), "Send the code from the sign-in.", "REQUIRED")])
    await take_attempt(ctx)  # guessing codes is throttled like guessing passwords
    if len(code) > MAX_CODE_LENGTH:
        return LoginResult(problems=[INVALID_CODE])
    async with ctx.db.transaction() as conn:
        account_id = await data.take_code(conn, _hash(code))
        issued = await start_session(ctx, conn, account_id) if account_id else None
    if account_id is None or issued is None:
        return LoginResult(problems=[INVALID_CODE])
    await give_back_attempt(ctx)
    after_write(ctx)
    return LoginResult(tokens=issued, account=await ctx.loaders.accounts.account.load(account_id))
