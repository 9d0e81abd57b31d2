"""Corporate sign-in set up: the OWNER names the organization's OpenID provider and the email
domains it claims; the vendor's staff confirm (or reject) each claim, with a reason.

A domain is confirmed for one organization at a time (email_domains_one_owner): only a
confirmed domain sends its people to the provider, creates their accounts on first sign-in,
and, with `enforce`, refuses their passwords. Rejecting a claim is also support's way back
in for an organization locked out by a broken provider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from uuid import UUID

from datasources.errors import NotFound
from datasources.identity.oidc import IdentityProviders, ProviderUnreachable
from datasources.postgres import ownership
from datasources.postgres import sign_in as data
from datasources.postgres.sign_in import EmailDomain
from resolvers.context import Context
from resolvers.permissions import require_staff
from resolvers.sign_in_policy import ascii_domain
from resolvers.staff import staff_reason
from resolvers.user_errors import Problem, Refused
from resolvers.writes import (NOT_FOUND, OnBehalf, after_write, audit_refusal, audit_success, require_change,
                              require_change_in)

CONFIGURE = "organization.sign_in_configure"
DECIDE = "organization.email_domain_decision"
MAX_DOMAINS = 20
MAX_ISSUER_LENGTH = 2000
MAX_CLIENT_ID_LENGTH = 255
MAX_CLIENT_SECRET_LENGTH = 1024
_NOT_OWNER = Problem(("input", "issuer"), "Only the OWNER sets up corporate sign-in.", "NOT_ALLOWED")
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: what client ids and secrets are made of


@dataclass(frozen=True)
class SignInInput:
    issuer: str
    client_id: str
    client_secret: str | None
    domains: list[str]
    enforce: bool


@dataclass(frozen=True)
class ConfigureResult:
    organization_id: UUID | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class DomainResult:
    domain: EmailDomain | None = None
    problems: list[Problem] = field(default_factory=list)


def _at(name: str, message: str, code: str = "INVALID", *more: str) -> Problem:
    return Problem(("input", name, *more), message, code)


def _input_problems(providers: IdentityProviders, given: SignInInput, has_secret: bool) -> tuple[list[str], list[Problem]]:
    problems = []
    why = ("is too long" if len(given.issuer) > MAX_ISSUER_LENGTH else providers.url_problem(given.issuer)
           or ("must have no query" if "?" in given.issuer else None))
    if why:
        problems.append(_at("issuer", f"The issuer {why}: enter the provider's issuer URL, e.g. "
                                      "https://login.example.com/oauth2."))
    if not _TOKEN_CHARS.fullmatch(given.client_id) or len(given.client_id) > MAX_CLIENT_ID_LENGTH:
        problems.append(_at("clientId", "Enter the client ID the provider gave the gateway (printable characters, "
                                        f"no spaces, at most {MAX_CLIENT_ID_LENGTH})."))
    if given.client_secret is None:
        if not has_secret:
            problems.append(_at("clientSecret", "Enter the client secret the provider gave the gateway.", "REQUIRED"))
    elif not _TOKEN_CHARS.fullmatch(given.client_secret) or len(given.client_secret) > MAX_CLIENT_SECRET_LENGTH:
        problems.append(_at("clientSecret", "A client secret is printable characters without spaces, at most "
                                            f"{MAX_CLIENT_SECRET_LENGTH}."))
    domains: list[str] = []
    if not given.domains or len(given.domains) > MAX_DOMAINS:
        problems.append(_at("domains", f"Name between 1 and {MAX_DOMAINS} email domains.", "INVALID"))
    for index, raw in enumerate(given.domains[:MAX_DOMAINS]):
        domain = ascii_domain(raw)
        if domain is None:
            problems.append(_at("domains", "This is not a domain name, such as example.com.", "INVALID", str(index)))
        elif domain in domains:
            problems.append(_at("domains", f"{domain} is named twice.", "INVALID", str(index)))
        else:
            domains.append(domain)
    return domains, problems


async def configure_sign_in(ctx: Context, organization_id: UUID | None, given: SignInInput) -> ConfigureResult:
    """The OWNER sets the provider and the domains; the provider's discovery document must answer."""
    await require_change(ctx, "configureSignIn")
    if organization_id is None:
        raise NotFound(NOT_FOUND)
    actor = await require_change_in(ctx, "configureSignIn", organization_id)
    providers = ctx.identity
    assert providers is not None, "the GraphQL context carries the identity providers' client"
    target = f"Organization:{organization_id}"
    try:
        stored = await ctx.loaders.organizations.sign_in.load(organization_id)
        domains, problems = _input_problems(providers, given, has_secret=stored is not None)
        if problems:
            raise Refused(*problems)
        membership = await ctx.loaders.accounts.membership.load(actor)
        if membership is None or membership.role != "OWNER":
            raise Refused(_NOT_OWNER)
        try:  # before the transaction: a slow provider holds no lock
            await providers.metadata(given.issuer, fresh=True)
        except ProviderUnreachable as exc:
            raise Refused(_at("issuer", f"The provider could not be used: {exc.message}", "PROVIDER_UNREACHABLE"))
        async with ctx.db.transaction() as conn:
            current = await data.lock_config(conn, organization_id)
            if (await ownership.lock_roles(conn, organization_id, [actor])).get(actor) != "OWNER":
                raise Refused(_NOT_OWNER)  # handed over meanwhile
            taken = await data.confirmed_elsewhere(conn, organization_id, domains)
            if taken:
                raise Refused(*[_at("domains", f"{d} belongs to another organization.", "DOMAIN_TAKEN",
                                    str(domains.index(d))) for d in taken])
            secret = given.client_secret if given.client_secret is not None else current.client_secret if current \
                else None
            if secret is None:  # removed meanwhile (the organization's settings went): ask again
                raise Refused(_at("clientSecret", "Enter the client secret the provider gave the gateway.", "REQUIRED"))
            # Another provider signs the domains' people in from now on: staff confirm them again.
            reset = await data.reset_confirmations(conn, organization_id) if current and \
                current.issuer != given.issuer else 0
            await data.save_config(conn, organization_id, issuer=given.issuer, client_id=given.client_id,
                                   client_secret=secret, enforce=given.enforce, actor=actor)
            await data.replace_domains(conn, organization_id, domains)
            await audit_success(conn, ctx, organization_id=organization_id, action=CONFIGURE, target=target,
                                details={"issuer": given.issuer, "clientId": given.client_id, "domains": domains,
                                         "enforce": given.enforce,
                                         "secretChanged": given.client_secret is not None,
                                         "confirmationsReset": reset})
    except Refused as refused:
        await audit_refusal(ctx, organization_id=organization_id, action=CONFIGURE, target=target,
                            problems=refused.problems)
        return ConfigureResult(problems=refused.problems)
    after_write(ctx)
    return ConfigureResult(organization_id)


async def decide_email_domain(ctx: Context, mutation: str, organization_id: UUID | None, raw_domain: str,
                              reason: str) -> DomainResult:
    """Staff confirm an organization's claim (`confirmEmailDomain`) or reject it (`rejectEmailDomain`)."""
    authority = require_staff(ctx, mutation)
    confirm = mutation == "confirmEmailDomain"
    reason, problem = staff_reason(reason)
    on_behalf = OnBehalf(authority.scope, reason)
    domain = ascii_domain(raw_domain)
    target = f"EmailDomain:{domain or raw_domain[:300]}"
    organization = await ctx.loaders.accounts.organization.load(organization_id) if organization_id else None
    if organization is None:
        raise NotFound(NOT_FOUND)
    try:
        if problem:
            raise Refused(problem)
        if domain is None:
            raise Refused(_at("domain", "This is not a domain name, such as example.com."))
        async with ctx.db.transaction() as conn:
            await data.lock_domain(conn, domain)
            if confirm and await data.confirmed_elsewhere(conn, organization.id, [domain]):
                raise Refused(_at("domain", f"{domain} is confirmed for another organization: reject that claim "
                                            "first.", "DOMAIN_TAKEN"))
            decided = await data.decide_domain(conn, organization.id, domain, "CONFIRMED" if confirm else "REJECTED",
                                               ctx.viewer.account_id, reason)
            if decided is None:
                raise Refused(_at("domain", f"{organization.name} has not claimed {domain}.", "NOT_CLAIMED"))
            await audit_success(conn, ctx, organization_id=organization.id, action=DECIDE, target=target,
                                on_behalf=on_behalf, details={"domain": domain, "status": decided.status})
    except Refused as refused:
        await audit_refusal(ctx, organization_id=organization.id, action=DECIDE, target=target,
                            problems=refused.problems, on_behalf=on_behalf)
        return DomainResult(problems=refused.problems)
    after_write(ctx)
    return DomainResult(decided)
