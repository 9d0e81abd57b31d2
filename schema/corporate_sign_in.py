"""Corporate sign-in: the organization's OpenID provider and email domains, and its mutations."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import strawberry

from datasources.postgres.sign_in import EmailDomain as DomainRecord
from datasources.postgres.sign_in import SignInConfig
from resolvers import accounts as resolve_accounts
from resolvers import corporate_sign_in as resolve
from resolvers import people as resolve_people
from resolvers import sign_in_settings as settings
from resolvers.corporate_sign_in import redirect_uri
from resolvers.sign_in_policy import START_PATH
from resolvers.sign_in_settings import DomainResult
from schema.account import Account
from schema.common import Info, UserError, node_uuid, user_errors
from schema.sessions import EXPIRES_AT, REFRESH_TOKEN_EXPIRES_AT, signed_in

if TYPE_CHECKING:
    from schema.organization import Organization

OrganizationRef = Annotated["Organization", strawberry.lazy("schema.organization")]


@strawberry.enum(description="Where an organization's claim on an email domain stands.")
class EmailDomainStatus(Enum):
    PENDING = strawberry.enum_value("PENDING", description="Waiting for the vendor's staff to confirm it.")
    CONFIRMED = strawberry.enum_value(
        "CONFIRMED", description="Confirmed by staff: its people sign in through the organization's provider.")
    REJECTED = strawberry.enum_value("REJECTED", description="Refused by staff (see `reason`): it does nothing.")


@strawberry.type(description="An email domain the organization claims for corporate sign-in.")
class EmailDomain:
    domain: str = strawberry.field(description="The domain, lower case, international names in their ASCII "
                                               "(xn--) form.")
    status: EmailDomainStatus = strawberry.field(description="Whether staff confirmed it.")
    requested_at: datetime = strawberry.field(description="When the organization first claimed it.")
    decided_at: datetime | None = strawberry.field(description="When staff confirmed or rejected it; null while "
                                                               "pending.")
    reason: str | None = strawberry.field(description="The reason staff gave with their decision.")

    @classmethod
    def from_record(cls, record: DomainRecord) -> "EmailDomain":
        return cls(domain=record.domain, status=EmailDomainStatus(record.status), requested_at=record.requested_at,
                   decided_at=record.decided_at, reason=record.reason)


@strawberry.type(description="How the organization's people sign in through its own OpenID provider. The client "
                             "secret is never shown.")
class CorporateSignIn:
    issuer: str = strawberry.field(description="The provider's issuer URL.")
    client_id: str = strawberry.field(description="The gateway's client ID at the provider.")
    enforce: bool = strawberry.field(description="Whether passwords are refused for emails of the confirmed "
                                                 "domains (they sign in through the provider only).")
    updated_at: datetime = strawberry.field(description="When the settings last changed.")
    domains: list[EmailDomain] = strawberry.field(description="The email domains claimed, by name.")
    redirect_uri: str | None = strawberry.field(
        description="The redirect URI to register at the provider for this client (`<PUBLIC_URL>/sso/callback`); "
                    "null while the gateway's PUBLIC_URL is not set.")
    start_path: str = strawberry.field(description="Where a person's sign-in starts at the gateway, with their "
                                                   "email: `GET /sso/start?email=…`.")

    @classmethod
    def from_record(cls, record: SignInConfig, public_url: str | None) -> "CorporateSignIn":
        return cls(issuer=record.issuer, client_id=record.client_id, enforce=record.enforce,
                   updated_at=record.updated_at, domains=[EmailDomain.from_record(d) for d in record.domains],
                   redirect_uri=redirect_uri(public_url) if public_url else None, start_path=START_PATH)


async def corporate_sign_in(info: Info, organization_id: UUID) -> CorporateSignIn | None:
    """For `Organization.corporateSignIn`; the caller has checked the access table."""
    found = await info.context.loaders.organizations.sign_in.load(organization_id)
    return CorporateSignIn.from_record(found, info.context.config.public_url) if found else None


async def _organization(info: Info, organization_id: UUID | None) -> "Organization | None":
    from schema.organization import Organization

    found = await resolve_accounts.organization(info.context, organization_id) if organization_id else None
    return Organization.from_record(found) if found else None


@strawberry.input(description="The organization's OpenID provider and the email domains whose people use it.")
class ConfigureSignInInput:
    issuer: str = strawberry.field(description="The provider's issuer URL exactly as it writes it (its discovery "
                                               "document is read at `<issuer>/.well-known/openid-configuration`).")
    client_id: str = strawberry.field(description="The client ID the provider gave the gateway.")
    client_secret: str | None = strawberry.field(
        default=None, description="The client's secret; left out, the one stored before is kept (required the "
                                  "first time).")
    domains: list[str] = strawberry.field(
        description="Every email domain to claim (1 to 20); domains claimed before and left out are released. "
                    "New ones wait for the vendor's staff to confirm them.")
    enforce: bool = strawberry.field(
        default=False, description="Refuse passwords for emails of the confirmed domains: their people sign in "
                                   "through the provider only.")
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="An Organization ID; by default the viewer's own.")


@strawberry.type(description="The result of `configureSignIn`.")
class ConfigureSignInPayload:
    organization: OrganizationRef | None = strawberry.field(
        description="The organization with its `corporateSignIn`; null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="NOT_ALLOWED (only the OWNER), INVALID (a malformed issuer, client ID, secret or domain, at "
                    "its index in `domains`), REQUIRED (the secret, the first time), PROVIDER_UNREACHABLE (the "
                    "issuer's discovery document could not be read or does not name that issuer), DOMAIN_TAKEN "
                    "(confirmed for another organization). Nothing changes on any of them.")


async def configure_sign_in(info: Info, input: Annotated[ConfigureSignInInput, strawberry.argument(
        description="Provider, client, domains.")]) -> ConfigureSignInPayload:
    organization_id = (node_uuid(input.organization_id, "Organization") if input.organization_id is not None
                       else await resolve_people.viewer_organization_id(info.context))
    result = await settings.configure_sign_in(info.context, organization_id, settings.SignInInput(
        issuer=input.issuer, client_id=input.client_id, client_secret=input.client_secret,
        domains=list(input.domains), enforce=input.enforce))
    return ConfigureSignInPayload(organization=await _organization(info, result.organization_id),
                                  user_errors=user_errors(result.problems))


@strawberry.input(description="An organization's claim on an email domain, and why it is decided so.")
class _DomainDecision:
    organization_id: strawberry.ID = strawberry.field(description="An Organization ID.")
    domain: str = strawberry.field(description="The domain it claimed.")
    reason: str = strawberry.field(
        description="Why: required, at most 1,000 characters (e.g. how ownership of the domain was checked). The "
                    "customer sees it in their audit log.")


@strawberry.input(description="The claim to confirm, and why.")
class ConfirmEmailDomainInput(_DomainDecision):
    pass


@strawberry.input(description="The claim to reject, and why.")
class RejectEmailDomainInput(_DomainDecision):
    pass


@strawberry.type(description="The result of deciding on a claim.")
class _Decided:
    domain: EmailDomain | None = strawberry.field(description="The claim as decided; null when refused.")
    user_errors: list[UserError] = strawberry.field(
        description="REQUIRED or INVALID reason; INVALID domain; NOT_CLAIMED (the organization has not claimed "
                    "it); DOMAIN_TAKEN (confirmed for another organization: reject that claim first).")


@strawberry.type(description="The result of `confirmEmailDomain`.")
class ConfirmEmailDomainPayload(_Decided):
    pass


@strawberry.type(description="The result of `rejectEmailDomain`.")
class RejectEmailDomainPayload(_Decided):
    pass


async def _decide(info: Info, mutation: str, input: _DomainDecision) -> DomainResult:
    return await settings.decide_email_domain(info.context, mutation,
                                              node_uuid(input.organization_id, "Organization"), input.domain,
                                              input.reason)


def _domain(result: DomainResult) -> dict:
    return {"domain": EmailDomain.from_record(result.domain) if result.domain else None,
            "user_errors": user_errors(result.problems)}


async def confirm_email_domain(info: Info, input: Annotated[ConfirmEmailDomainInput, strawberry.argument(
        description="Organization, domain, reason.")]) -> ConfirmEmailDomainPayload:
    return ConfirmEmailDomainPayload(**_domain(await _decide(info, "confirmEmailDomain", input)))


async def reject_email_domain(info: Info, input: Annotated[RejectEmailDomainInput, strawberry.argument(
        description="Organization, domain, reason.")]) -> RejectEmailDomainPayload:
    return RejectEmailDomainPayload(**_domain(await _decide(info, "rejectEmailDomain", input)))


@strawberry.input(description="The one-time code the gateway handed the portal at the end of a corporate sign-in.")
class CompleteSignInInput:
    code: str = strawberry.field(description="The `code` of the portal's `/sso/complete?code=…` address.")


@strawberry.type(description="The result of `completeSignIn`: the same tokens `login` gives.")
class CompleteSignInPayload:
    token: str | None = strawberry.field(description="Bearer token for the `Authorization: Bearer …` header.")
    refresh_token: str | None = strawberry.field(description="Trade it with `refreshToken` for a new `token`; "
                                                             "works once.")
    account: Account | None = strawberry.field(description="The account signed in.")
    user_errors: list[UserError] = strawberry.field(
        description="INVALID_SIGN_IN_CODE (used already, older than two minutes, or not a code: the same answer "
                    "for each), REQUIRED.")
    expires_at: datetime | None = strawberry.field(description=EXPIRES_AT)
    refresh_token_expires_at: datetime | None = strawberry.field(description=REFRESH_TOKEN_EXPIRES_AT)


async def complete_sign_in(info: Info, input: Annotated[CompleteSignInInput, strawberry.argument(
        description="The one-time code.")]) -> CompleteSignInPayload:
    result = await resolve.complete_sign_in(info.context, input.code)
    return CompleteSignInPayload(**signed_in(result.tokens),
                                 account=Account.from_record(result.account) if result.account else None,
                                 user_errors=user_errors(result.problems))


@strawberry.type
class CorporateSignInMutations:
    configure_sign_in: ConfigureSignInPayload = strawberry.mutation(
        resolver=configure_sign_in,
        description="Sets up (or changes) corporate sign-in: the organization's OpenID provider and the email "
                    "domains it claims. The provider's discovery document must answer. Only the OWNER.")
    complete_sign_in: CompleteSignInPayload = strawberry.mutation(
        resolver=complete_sign_in,
        description="Finishes a corporate sign-in: trades the one-time code from `/sso/complete?code=…` for a "
                    "bearer token and a refresh token. Needs no `Authorization` header.")
    confirm_email_domain: ConfirmEmailDomainPayload = strawberry.mutation(
        resolver=confirm_email_domain,
        description="Confirms an organization's claim on an email domain once its ownership is checked: its "
                    "people then sign in through the organization's provider.")
    reject_email_domain: RejectEmailDomainPayload = strawberry.mutation(
        resolver=reject_email_domain,
        description="Rejects (or withdraws) an organization's claim on an email domain: its people sign in with "
                    "passwords again.")


MUTATIONS = CorporateSignInMutations
