"""SCIM 2.0 provisioning (RFC 7643/7644): what an organization's identity provider may do to
its people through /scim/v2/ (gateway/scim.py speaks the HTTP).

The protocol's messages are scim2-models' own (User, Group, ListResponse, PatchOp, Error,
ScimFilter...): they parse, validate, patch and serialize; nothing of the protocol is written by
hand here. What is ours is the mapping onto the organization:

- A User is a person the provider provisioned (`scim_users`), linked by email to their
  account and membership, or to the invitation sent while their account is in no organization.
  `active` is the provider's wish: false takes the person out exactly as `removeMember` does
  (every seat of theirs revoked: the provider is authoritative) or revokes the invitation, and
  keeps the resource; true brings them back. DELETE is a deactivation whose resource goes too.
- A Group is a role: "Admins" (ADMIN) and "Members" (MEMBER) take members; "Owners" (OWNER) is
  read-only. Their ids are derived from the organization and the role. Groups cannot be created
  or deleted.
- The OWNER is never deactivated, deleted or moved between groups here.

Every change runs in one transaction that starts by locking the organization's row, so all
SCIM changes of an organization (and its invitations) run one after the other: a burst of the
same POST creates one User and the others find it (409). Each change is audited with the SCIM
token as the actor, and reports the same events and sends the same mail as its GraphQL twin.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ValidationError
from scim2_models import (AuthenticationScheme, Bulk, ChangePassword, Context, Error, ETag,
                          Filter, ForbiddenException, Group, InvalidFilterException, InvalidSyntaxException,
                          InvalidValueException,
                          ListResponse, Meta, MutabilityException, NotFoundException, Patch, PatchOp, ResourceType,
                          Required, ResponseParameters, SCIMException, Schema, ScimFilter, SearchRequest, ServiceProviderConfig,
                          Sort, UniquenessException, User)
from scim2_models.path import AttrPath, Comparison, CompareOperator, LogicalExpr, LogicalOperator

from datasources.postgres import audit
from datasources.postgres import people as people_data
from datasources.postgres import scim as data
from datasources.postgres.scim import ScimUser, ScimUserQuery
from resolvers.context import Context as RequestContext
from resolvers.people import (MAX_NAME_LENGTH, name_problem, normalize_email, report_sent, send_invitation,
                              set_role_of, take_out)
from resolvers.scim_tokens import hash_secret, is_scim_secret
from resolvers.writes import report

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
MAX_COUNT = 100  # a list page holds at most this many resources
MAX_FILTER_LENGTH = 1000
MAX_TEXT_LENGTH = 1000
MAX_USER_NAME_LENGTH = 320
# Each group is a role; the OWNER's is listed, read-only.
GROUPS = (("ADMIN", "Admins"), ("MEMBER", "Members"), ("OWNER", "Owners"))
ASSIGNABLE = ("ADMIN", "MEMBER")
# What the published schemas declare, and so what an identity provider (and the compliance
# checker) sends; anything else a provider sends is accepted and not kept.
USER_ATTRIBUTES = {"userName": None, "name": {"formatted", "familyName", "givenName"}, "displayName": None,
                   "active": None, "emails": {"value", "type", "primary"}, "groups": {"value", "$ref", "display"}}
GROUP_ATTRIBUTES = {"displayName": None, "members": {"value", "$ref", "display"}}
KEPT = ("name", "displayName", "emails")  # the User attributes `scim_users.attributes` keeps
SUPPORTED_USER_FILTERS = ("userName eq", "externalId eq", "emails.value eq", "id eq", "active eq")
SUPPORTED_GROUP_FILTERS = ("displayName eq", "id eq")
OWNER_PROTECTED = ("The organization's OWNER cannot be deactivated, deleted or moved between groups through SCIM; "
                   "the OWNER hands the organization over first (transferOwnership).")
NO_GROUP_CHANGES = ("Groups are the organization's roles (Admins, Members, Owners): they cannot be created or "
                    "deleted. Add users to Admins or Members instead.")
NOT_FOUND = "No such resource."
_INTEGER = re.compile(r"^[+-]?[0-9]+$")


@dataclass(frozen=True)
class ScimPrincipal:
    """Who is asking: the organization's SCIM token."""

    token_id: UUID
    organization_id: UUID
    name: str


async def authenticate(db: Any, authorization: str | None) -> ScimPrincipal | None:
    """The live SCIM token `Authorization: Bearer <token>` presents; None for anything else."""
    scheme, _, secret = (authorization or "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not is_scim_secret(secret):
        return None
    found = await data.live_token(db, hash_secret(secret))
    return ScimPrincipal(found.id, found.organization_id, found.name) if found else None


def group_id(organization_id: UUID, role: str) -> UUID:
    """A group's id: the same for the organization's role every time, and no one else's."""
    return uuid.uuid5(organization_id, f"scim-group:{role}")


# --- discovery -----------------------------------------------------------------------------------

def _meta(resource_type: str, location: str, row: ScimUser | None = None) -> Meta:
    if row is None:
        return Meta(resource_type=resource_type, location=location)
    return Meta(resource_type=resource_type, location=location, created=row.created_at,
                last_modified=row.updated_at, version=f'W/"{row.version}"')


def service_provider_config(base_url: str) -> dict[str, Any]:
    config = ServiceProviderConfig(
        documentation_uri=None, patch=Patch(supported=True), bulk=Bulk(supported=False, max_operations=0,
                                                                        max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_COUNT), change_password=ChangePassword(supported=False),
        sort=Sort(supported=False), etag=ETag(supported=False),
        authentication_schemes=[AuthenticationScheme(
            type="oauthbearertoken", name="OAuth Bearer Token", primary=True,
            description="A SCIM token the organization's OWNER creates (createScimToken), sent as "
                        "'Authorization: Bearer scim_…'.")],
        meta=_meta("ServiceProviderConfig", f"{base_url}/ServiceProviderConfig"))
    return config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def _restricted(schema: Schema, attributes: Mapping[str, set[str] | None], base_url: str) -> Schema:
    """The standard schema with only the attributes the gateway keeps (and their sub-attributes)."""
    kept = []
    for attribute in schema.attributes or []:
        if attribute.name not in attributes:
            continue
        subs = attributes[attribute.name]
        if subs is not None and attribute.sub_attributes:
            attribute = attribute.model_copy(update={"sub_attributes": [
                s for s in attribute.sub_attributes if s.name in subs]})
        kept.append(attribute)
    return schema.model_copy(update={"attributes": kept,
                                     "meta": _meta("Schema", f"{base_url}/Schemas/{schema.id}")})


def _schemas(base_url: str) -> list[Schema]:
    user = _restricted(User.to_schema(), USER_ATTRIBUTES, base_url)
    # An email address is how a person is found and reached: required here (RFC 7643 §7 lets a
    # service provider say so), as userName or the primary email.
    user = user.model_copy(update={"attributes": [_required(a) if a.name == "emails" else a
                                                  for a in user.attributes or []]})
    return [user, _restricted(Group.to_schema(), GROUP_ATTRIBUTES, base_url)]


def _required(attribute: Any) -> Any:
    """`emails` and its `value` required."""
    subs = [s.model_copy(update={"required": Required.true}) if s.name == "value" else s
            for s in attribute.sub_attributes or []]
    return attribute.model_copy(update={"required": Required.true, "sub_attributes": subs})


def _resource_types(base_url: str) -> list[ResourceType]:
    found = []
    for model, name, description in ((User, "User", "The organization's people"),
                                      (Group, "Group", "The organization's roles")):
        resource_type = ResourceType.from_resource(model)
        found.append(resource_type.model_copy(update={
            "description": description, "meta": _meta("ResourceType", f"{base_url}/ResourceTypes/{name}")}))
    return found


def _listed(model: Any, resources: list[Any], total: int | None = None, start: int = 1,
            parameters: ResponseParameters | None = None) -> dict[str, Any]:
    answer = ListResponse[model](total_results=len(resources) if total is None else total, start_index=start,
                               items_per_page=len(resources), resources=resources)
    return answer.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=parameters)


def schemas(base_url: str, schema_id: str | None = None) -> dict[str, Any]:
    return _one_or_all(Schema, _schemas(base_url), schema_id,
                       f"the gateway serves {USER_SCHEMA} and {GROUP_SCHEMA}")


def resource_types(base_url: str, type_id: str | None = None) -> dict[str, Any]:
    return _one_or_all(ResourceType, _resource_types(base_url), type_id, "the gateway serves User and Group")


def _one_or_all(model: Any, found: list[Any], wanted: str | None, served: str) -> dict[str, Any]:
    """A discovery endpoint: the list, or the one with the id asked for (404 naming what is served)."""
    if wanted is None:
        return _listed(model, found)
    for resource in found:
        if resource.id == wanted:
            return resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    raise NotFoundException(detail=f"No {model.__name__} {wanted[:200]!r}: {served}.")


# --- reading what the provider sends --------------------------------------------------------

def _refuse_unstorable(value: Any) -> None:
    """NUL and lone surrogates cannot be stored (PostgreSQL text is UTF-8 without NUL)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                raise InvalidValueException(detail="A value holds NUL or an unpaired surrogate.")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _validated(model: Any, body: Any, scim_ctx: Context) -> Any:
    if not isinstance(body, dict):
        raise _syntax("The body must be a JSON object.")
    _refuse_unstorable(body)
    try:
        return model.model_validate(body, scim_ctx=scim_ctx)
    except ValidationError as exc:
        raise _from_validation(exc) from None
    except SCIMException:
        raise
    except (ValueError, TypeError) as exc:  # a value the model's own checks refuse outright
        raise InvalidValueException(detail=str(exc)[:300]) from None


def _from_validation(exc: ValidationError) -> SCIMException:
    errors = Error.from_validation_errors(exc)
    return SCIMException.from_error(errors[0]) if errors else InvalidValueException()


def _syntax(detail: str) -> SCIMException:
    return InvalidSyntaxException(detail=detail)


@dataclass(frozen=True)
class Wanted:
    """The state of a User the provider asks for, checked."""

    user_name: str
    external_id: str | None
    active: bool
    email: str  # the person's address: userName when it is one, else the primary email
    name: str  # the account's name
    attributes: dict[str, Any]


def _one_line(value: str, what: str, limit: int = MAX_TEXT_LENGTH) -> str:
    if len(value) > limit or any(unicodedata.category(c)[0] == "C" for c in value):
        raise InvalidValueException(detail=f"{what} has at most {limit} characters, on one line.")
    return value


def _name_of(user: User) -> str:
    if user.display_name and user.display_name.strip():
        return user.display_name.strip()
    if user.name is not None:
        if user.name.formatted and user.name.formatted.strip():
            return user.name.formatted.strip()
        return " ".join(p.strip() for p in (user.name.given_name, user.name.family_name) if p and p.strip())
    return ""


def _wanted(user: User) -> Wanted:
    user_name = _one_line((user.user_name or "").strip(), "userName", MAX_USER_NAME_LENGTH)
    if not user_name:
        raise InvalidValueException(detail="userName is required.")
    external_id = _one_line(user.external_id, "externalId") if user.external_id is not None else None
    kept = {k: v for k, v in user.model_dump(scim_ctx=Context.DEFAULT).items() if k in KEPT}
    for key, value in kept.items():
        for text in _strings(value):
            _one_line(text, key)
    addresses = []
    for entry in user.emails or []:
        address = normalize_email(str(entry.value)) if entry.value is not None else None
        if address is None:
            raise InvalidValueException(detail=f"emails: {str(entry.value)[:100]!r} is not an email address.")
        addresses.append((bool(entry.primary), address))
    primary = next((a for p, a in addresses if p), addresses[0][1] if addresses else None)
    email = normalize_email(user_name) or primary
    if email is None:
        raise InvalidValueException(detail="userName or the primary email must be an email address.")
    name = _name_of(user)
    if name_problem(("name",), name):
        raise InvalidValueException(detail=f"A name has at most {MAX_NAME_LENGTH} characters, on one line.")
    return Wanted(user_name, external_id, user.active is not False, email, name, kept)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# --- Users ----------------------------------------------------------------------------------

def _user_resource(row: ScimUser, base_url: str) -> User:
    payload: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": str(row.id), "userName": row.user_name,
                               "active": row.active, **row.attributes}
    if row.external_id is not None:
        payload["externalId"] = row.external_id
    if row.role is not None:
        payload["groups"] = [_group_ref(row.organization_id, row.role, base_url)]
    user = User.model_validate(payload)
    user.meta = _meta("User", f"{base_url}/Users/{row.id}", row)
    return user


def _group_ref(organization_id: UUID, role: str, base_url: str) -> dict[str, Any]:
    group = group_id(organization_id, role)
    return {"value": str(group), "$ref": f"{base_url}/Groups/{group}", "display": dict(GROUPS)[role]}


def _dump(resource: Any, parameters: ResponseParameters | None = None) -> dict[str, Any]:
    return resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=parameters)


def _uuid(raw: str) -> UUID | None:
    try:
        return UUID(raw)
    except ValueError:
        return None


async def _found(db: Any, principal: ScimPrincipal, user_id: str, *, for_update: bool = False) -> ScimUser:
    parsed = _uuid(user_id)
    row = await data.user(db, principal.organization_id, parsed, for_update=for_update) if parsed else None
    if row is None:
        raise NotFoundException(detail=NOT_FOUND)
    return row


async def get_user(ctx: RequestContext, principal: ScimPrincipal, user_id: str, base_url: str,
                   parameters: ResponseParameters | None = None) -> dict[str, Any]:
    return _dump(_user_resource(await _found(ctx.db, principal, user_id), base_url), parameters)


def paging(start_index: str | None, count: str | None) -> tuple[int, int]:
    """(startIndex, count) as RFC 7644 §3.4.2.4 reads them: below 1 is 1, a negative count is 0;
    and no more than MAX_COUNT. Anything but an integer is refused (400 invalidValue)."""
    return max(_integer(start_index, "startIndex", 1), 1), min(max(_integer(count, "count", MAX_COUNT), 0), MAX_COUNT)


def _integer(raw: Any, what: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, str)) or (isinstance(raw, str) and not _INTEGER.match(
            raw.strip())):
        raise InvalidValueException(detail=f"{what} must be an integer.")
    text = str(raw).strip()
    digits = text.lstrip("+-")
    if len(digits) > 12:  # past any real page: clamped like any other large number
        return -10 ** 12 if text.startswith("-") else 10 ** 12
    return int(text)


def _terms(scim_filter: ScimFilter[Any], supported: tuple[str, ...]) -> list[Comparison]:
    node = scim_filter.ast
    terms = node.terms if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_ else (node,)
    if not all(isinstance(t, Comparison) and t.op == CompareOperator.eq for t in terms):
        raise _unsupported(supported)
    return list(terms)  # type: ignore[arg-type]


def _unsupported(supported: tuple[str, ...]) -> SCIMException:
    return InvalidFilterException(detail=f"Supported filters: {', '.join(supported)}, joined with 'and'.")


def _parsed_filter(model: Any, text: str, supported: tuple[str, ...]) -> list[Comparison]:
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilterException(detail=f"A filter has at most {MAX_FILTER_LENGTH} characters.")
    try:
        _refuse_unstorable(text)
    except SCIMException as exc:
        raise InvalidFilterException(detail=exc.detail) from None
    try:
        scim_filter = ScimFilter[model](text)
    except SCIMException as exc:
        raise InvalidFilterException(detail=f"{exc.detail} {_unsupported(supported).detail}") from None
    except Exception:  # noqa: BLE001 - the parser's own errors: the filter is not one
        raise InvalidFilterException(detail=f"Not a SCIM filter. {_unsupported(supported).detail}") from None
    return _terms(scim_filter, supported)


def _attribute(path: AttrPath, schema: str) -> str:
    if path.uri is not None and path.uri != schema:
        return ""
    return f"{path.attr.lower()}.{(path.sub_attr or '').lower()}".rstrip(".")


def user_query(organization_id: UUID, text: str | None) -> ScimUserQuery:
    """The filter as equality conditions; anything but SUPPORTED_USER_FILTERS is invalidFilter."""
    fields: dict[str, list[Any]] = {"user_names": [], "external_ids": [], "emails": [], "ids": [], "active": []}
    for term in _parsed_filter(User, text or "", SUPPORTED_USER_FILTERS) if text else []:
        attribute, value = _attribute(term.attr_path, USER_SCHEMA), term.value
        if attribute == "username" and isinstance(value, str):
            fields["user_names"].append(value)
        elif attribute == "externalid" and isinstance(value, str):
            fields["external_ids"].append(value)
        elif attribute in ("emails.value", "emails") and isinstance(value, str):
            fields["emails"].append(value)
        elif attribute == "id" and isinstance(value, str):
            fields["ids"].append(_uuid(value))
        elif attribute == "active" and isinstance(value, bool):
            fields["active"].append(value)
        else:
            raise _unsupported(SUPPORTED_USER_FILTERS)
    return ScimUserQuery(organization_id, **{k: tuple(v) for k, v in fields.items()})


async def list_users(ctx: RequestContext, principal: ScimPrincipal, base_url: str, filter_text: str | None,
                     start_index: Any, count: Any, parameters: ResponseParameters | None = None) -> dict[str, Any]:
    start, limit = paging(start_index, count)
    query = user_query(principal.organization_id, filter_text)
    total, rows = await data.users_page(ctx.db, query, start - 1, limit)
    return _listed(User, [_user_resource(r, base_url) for r in rows], total, start, parameters)


def search_request(body: Any) -> SearchRequest:
    """`POST /Users/.search`: the same query as GET's, in a body."""
    return _validated(SearchRequest, body, Context.SEARCH_REQUEST)


def response_parameters(attributes: str | None, excluded: str | None) -> ResponseParameters | None:
    if not attributes and not excluded:
        return None
    try:
        return ResponseParameters.model_validate(
            {k: v for k, v in (("attributes", attributes), ("excludedAttributes", excluded)) if v})
    except ValidationError as exc:
        raise _from_validation(exc) from None


async def _audit(conn: asyncpg.Connection, principal: ScimPrincipal, action: str, target: str | None,
                 details: dict[str, Any]) -> None:
    """Every SCIM change in the organization's audit log, with the token as the actor."""
    await audit.record(conn, organization_id=principal.organization_id, actor_account_id=None,
                       actor_service=f"SCIM token {principal.name}", action=action, target=target,
                       details={**details, "scimTokenId": principal.token_id}, scope="scim",
                       reason="Provisioned by the organization's identity provider (SCIM).")


async def _lock(conn: asyncpg.Connection, principal: ScimPrincipal) -> people_data.LockedOrganization:
    organization = await people_data.lock_organization(conn, principal.organization_id)
    if organization is None:  # deleted meanwhile: its tokens went with it
        raise NotFoundException(detail=NOT_FOUND)
    return organization


async def create_user(ctx: RequestContext, principal: ScimPrincipal, body: Any, base_url: str) -> dict[str, Any]:
    wanted = _wanted(_validated(User, body, Context.RESOURCE_CREATION_REQUEST))
    try:
        async with ctx.db.transaction() as conn:
            organization = await _lock(conn, principal)
            clash = await data.taken(conn, organization.id, wanted.user_name, wanted.email)
            if clash is not None:
                raise UniquenessException(detail=f"A user with this {clash} is already provisioned in the "
                                                 "organization.")
            invitation_id = await _bring_in(conn, ctx, principal, organization, wanted, rejoin=False) \
                if wanted.active else None
            user_id = await data.insert_user(conn, organization_id=organization.id, user_name=wanted.user_name,
                                             external_id=wanted.external_id, email=wanted.email,
                                             invitation_id=invitation_id, active=wanted.active,
                                             attributes=wanted.attributes)
            if not wanted.active:  # provisioned as inactive: the person is not in the organization
                row = await data.user(conn, organization.id, user_id, for_update=True)
                assert row is not None
                await _take_out(conn, ctx, principal, row)
            await _audit(conn, principal, "scim.user_create", wanted.email,
                         {"scimUserId": user_id, "userName": wanted.user_name, "active": wanted.active})
    except asyncpg.UniqueViolationError:  # never expected (the organization is locked); still a 409
        raise UniquenessException(detail="A user with this userName or email is already provisioned.") from None
    ctx.loaders.clear_all()
    return _dump(_user_resource(await _found(ctx.db, principal, str(user_id)), base_url))


async def _bring_in(conn: asyncpg.Connection, ctx: RequestContext, principal: ScimPrincipal,
                    organization: people_data.LockedOrganization, wanted: Wanted, *, rejoin: bool) -> UUID | None:
    """Makes the person a MEMBER, or invites them; returns the invitation they wait on, if any.

    An unknown email gets an account without a password (they sign in with corporate sign-in)
    and a membership. An account in no organization is invited, as inviteMembers does (mailed),
    or, reactivated (`rejoin`), gets its membership back. A member here stays as they are; an
    account of another organization is a uniqueness conflict (an account has one organization).
    """
    pending = await data.pending_invitation(conn, organization.id, wanted.email)  # lock order: invitation first
    account = await people_data.account_for_join(conn, wanted.email)
    if account is None:
        created = await data.create_account_without_password(conn, email=wanted.email, name=wanted.name)
        if created is not None:
            await _join(conn, ctx, principal, organization.id, created, wanted.email, created_now=True)
            return None
        account = await people_data.account_for_join(conn, wanted.email)
        assert account is not None
    if account.organization_id == organization.id:
        return None
    if account.organization_id is not None:
        raise UniquenessException(detail=f"{wanted.email} already belongs to another organization; an account can "
                                         "belong to only one.")
    if rejoin:
        await _join(conn, ctx, principal, organization.id, account.id, wanted.email, created_now=False)
        return None
    if pending is not None:
        return pending
    invitation = await send_invitation(conn, ctx, organization, None, wanted.email, "MEMBER", wanted.name)
    await _audit(conn, principal, "member.invite", wanted.email, {"invitationId": invitation.id, "role": "MEMBER"})
    await report_sent(conn, ctx, invitation, resent=False)
    return invitation.id


async def _join(conn: asyncpg.Connection, ctx: RequestContext, principal: ScimPrincipal, organization_id: UUID,
                account_id: UUID, email: str, *, created_now: bool) -> None:
    await people_data.add_membership(conn, account_id=account_id, organization_id=organization_id, role="MEMBER")
    await _audit(conn, principal, "member.join", email, {"accountId": account_id, "role": "MEMBER",
                                                         "accountCreated": created_now})
    await report(conn, ctx, "MEMBER_JOINED", organization_id=organization_id,
                 data={"account_id": account_id, "role": "MEMBER"})


async def _take_out(conn: asyncpg.Connection, ctx: RequestContext, principal: ScimPrincipal, row: ScimUser) -> None:
    """The person leaves as removeMember takes them out, every seat revoked (the provider is
    authoritative), or their pending invitation is revoked. Never the OWNER."""
    if row.invitation_pending and row.invitation_id is not None:
        invitation = await people_data.invitation_for_update(conn, row.invitation_id)
        if invitation is not None and invitation.accepted_at is None and invitation.revoked_at is None:
            await people_data.revoke_invitation(conn, invitation.id)
            await _audit(conn, principal, "invitation.revoke", row.email, {"invitationId": invitation.id})
    if row.account_id is None:
        return
    membership = (await people_data.memberships_for_update(conn, [row.account_id])).get(row.account_id)
    if membership is None or membership.organization_id != row.organization_id:
        return
    if membership.role == "OWNER":
        raise MutabilityException(detail=OWNER_PROTECTED)
    seats = await people_data.seats_held(conn, row.account_id, row.organization_id)

    async def audited(details: dict[str, Any]) -> None:
        await _audit(conn, principal, "member.remove", row.email, details)

    await take_out(conn, ctx, row.organization_id, row.account_id, row.email, membership.role, seats, audited)


async def _change(ctx: RequestContext, principal: ScimPrincipal, user_id: str, base_url: str, change: Any,
                  action: str) -> dict[str, Any]:
    """Runs `change(row) -> Wanted` on the locked row and makes the organization follow."""
    async with ctx.db.transaction() as conn:
        organization = await _lock(conn, principal)
        row = await _found(conn, principal, user_id, for_update=True)
        wanted: Wanted = change(row)
        clash = await data.taken(conn, organization.id, wanted.user_name, row.email, but=row.id)
        if clash is not None:
            raise UniquenessException(detail=f"Another provisioned user has this {clash}.")
        if row.role == "OWNER" and not wanted.active:
            raise MutabilityException(detail=OWNER_PROTECTED)
        invitation_id = row.invitation_id
        if row.active and not wanted.active:
            await _take_out(conn, ctx, principal, row)
        elif wanted.active and not row.active:
            # The address stays the one provisioned: the person's sign-in email changes only through support.
            invitation_id = await _bring_in(conn, ctx, principal, organization, _keeping_email(wanted, row),
                                            rejoin=True) or invitation_id
        if wanted.active and wanted.name and row.role is not None and row.account_id is not None \
                and wanted.name != row.account_name:
            await data.set_account_name(conn, row.account_id, wanted.name)
        await data.update_user(conn, row.id, user_name=wanted.user_name, external_id=wanted.external_id,
                               invitation_id=invitation_id, active=wanted.active, attributes=wanted.attributes)
        await _audit(conn, principal, action, row.email, {"scimUserId": row.id, "userName": wanted.user_name,
                                                         "active": wanted.active, "wasActive": row.active})
    ctx.loaders.clear_all()
    return _dump(_user_resource(await _found(ctx.db, principal, user_id), base_url))


def _keeping_email(wanted: Wanted, row: ScimUser) -> Wanted:
    return Wanted(wanted.user_name, wanted.external_id, wanted.active, row.email, wanted.name, wanted.attributes)


async def replace_user(ctx: RequestContext, principal: ScimPrincipal, user_id: str, body: Any,
                       base_url: str) -> dict[str, Any]:
    wanted = _wanted(_validated(User, body, Context.RESOURCE_REPLACEMENT_REQUEST))
    return await _change(ctx, principal, user_id, base_url, lambda row: wanted, "scim.user_replace")


async def patch_user(ctx: RequestContext, principal: ScimPrincipal, user_id: str, body: Any,
                     base_url: str) -> dict[str, Any]:
    patch = _validated(PatchOp[User], body, Context.RESOURCE_PATCH_REQUEST)

    def patched(row: ScimUser) -> Wanted:
        resource = _user_resource(row, base_url)
        try:
            patch.patch(resource)
        except ValidationError as exc:
            raise _from_validation(exc) from None
        return _wanted(resource)

    return await _change(ctx, principal, user_id, base_url, patched, "scim.user_patch")


async def delete_user(ctx: RequestContext, principal: ScimPrincipal, user_id: str) -> None:
    async with ctx.db.transaction() as conn:
        await _lock(conn, principal)
        row = await _found(conn, principal, user_id, for_update=True)
        if row.role == "OWNER":
            raise MutabilityException(detail=OWNER_PROTECTED)
        if row.active:
            await _take_out(conn, ctx, principal, row)
        await data.delete_user(conn, row.id)
        await _audit(conn, principal, "scim.user_delete", row.email, {"scimUserId": row.id,
                                                                      "userName": row.user_name})
    ctx.loaders.clear_all()


# --- Groups ---------------------------------------------------------------------------------

async def _groups(ctx: RequestContext, principal: ScimPrincipal, base_url: str) -> list[Group]:
    members = await data.members_by_role(ctx.db, principal.organization_id)
    return [_group_resource(principal.organization_id, role, members, base_url) for role, _ in GROUPS]


def _group_resource(organization_id: UUID, role: str, members: list[tuple[UUID, str, str]], base_url: str) -> Group:
    group = group_id(organization_id, role)
    found = Group.model_validate({
        "schemas": [GROUP_SCHEMA], "id": str(group), "displayName": dict(GROUPS)[role],
        "members": [{"value": str(m), "$ref": f"{base_url}/Users/{m}", "display": name}
                    for m, name, r in members if r == role]})
    found.meta = Meta(resource_type="Group", location=f"{base_url}/Groups/{group}")
    return found


def _group_role(principal: ScimPrincipal, raw_id: str) -> str:
    parsed = _uuid(raw_id)
    for role, _ in GROUPS:
        if parsed == group_id(principal.organization_id, role):
            return role
    raise NotFoundException(detail=NOT_FOUND)


async def get_group(ctx: RequestContext, principal: ScimPrincipal, raw_id: str, base_url: str,
                    parameters: ResponseParameters | None = None) -> dict[str, Any]:
    role = _group_role(principal, raw_id)
    members = await data.members_by_role(ctx.db, principal.organization_id)
    return _dump(_group_resource(principal.organization_id, role, members, base_url), parameters)


async def list_groups(ctx: RequestContext, principal: ScimPrincipal, base_url: str, filter_text: str | None,
                      start_index: Any, count: Any, parameters: ResponseParameters | None = None) -> dict[str, Any]:
    start, limit = paging(start_index, count)
    groups = await _groups(ctx, principal, base_url)
    for term in _parsed_filter(Group, filter_text, SUPPORTED_GROUP_FILTERS) if filter_text else []:
        attribute, value = _attribute(term.attr_path, GROUP_SCHEMA), term.value
        if attribute == "displayname" and isinstance(value, str):
            groups = [g for g in groups if (g.display_name or "").lower() == value.lower()]
        elif attribute == "id" and isinstance(value, str):
            groups = [g for g in groups if g.id == value.lower()]
        else:
            raise _unsupported(SUPPORTED_GROUP_FILTERS)
    return _listed(Group, groups[start - 1:start - 1 + limit], len(groups), start, parameters)


def refuse_group_change() -> SCIMException:
    return ForbiddenException(detail=NO_GROUP_CHANGES)


def refuse_group_delete(principal: ScimPrincipal, raw_id: str) -> SCIMException:
    """404 for an id that is no group of the organization, else the refusal."""
    _group_role(principal, raw_id)
    return refuse_group_change()


async def _regroup(ctx: RequestContext, principal: ScimPrincipal, role: str, base_url: str,
                   wanted_members: Any) -> dict[str, Any]:
    """Makes the group's members the ones `wanted_members(current group)` returns (SCIM ids):
    added to Admins is ADMIN, taken out of Admins or added to Members is MEMBER."""
    async with ctx.db.transaction() as conn:
        organization = await _lock(conn, principal)
        members = await data.members_by_role(conn, organization.id)
        current = _group_resource(organization.id, role, members, base_url)
        before = _member_ids(current)
        wanted = wanted_members(current)
        added, removed = wanted - before, before - wanted
        if role == "OWNER" and (added or removed):
            raise MutabilityException(detail="Owners is read-only: " + OWNER_PROTECTED)
        if role == "MEMBER" and removed:
            raise MutabilityException(detail="A member leaves Members by joining Admins, or by being deactivated "
                                              "(active: false); Members cannot lose one otherwise.")
        changes = [(user_id, role) for user_id in sorted(added)]
        changes += [(user_id, "MEMBER") for user_id in sorted(removed)]
        for user_id, new_role in changes:
            await _set_role(conn, ctx, principal, user_id, new_role)
    ctx.loaders.clear_all()
    members = await data.members_by_role(ctx.db, principal.organization_id)
    return _dump(_group_resource(principal.organization_id, role, members, base_url))


async def _set_role(conn: asyncpg.Connection, ctx: RequestContext, principal: ScimPrincipal, raw_id: str,
                    role: str) -> None:
    parsed = _uuid(raw_id)
    row = await data.user(conn, principal.organization_id, parsed, for_update=True) if parsed else None
    if row is None:
        raise InvalidValueException(detail=f"members: {raw_id[:100]!r} is not a user of this organization.")
    if row.role == "OWNER":
        raise MutabilityException(detail=OWNER_PROTECTED)
    if row.role is None:
        if row.invitation_pending and row.invitation_id is not None:  # they join with the role asked for
            await data.set_invitation_role(conn, row.invitation_id, role)
            await _audit(conn, principal, "invitation.role_change", row.email,
                         {"invitationId": row.invitation_id, "to": role})
            return
        raise InvalidValueException(detail=f"members: {row.user_name[:100]!r} is not a member of the organization "
                                           "(inactive).")
    if row.role == role:
        return
    assert row.account_id is not None
    membership = (await people_data.memberships_for_update(conn, [row.account_id])).get(row.account_id)
    if membership is None or membership.organization_id != row.organization_id:
        raise InvalidValueException(detail=f"members: {row.user_name[:100]!r} is not a member of the organization.")

    async def audited(details: dict[str, Any]) -> None:
        await _audit(conn, principal, "member.role_change", row.email, details)

    await set_role_of(conn, ctx, row.organization_id, row.account_id, membership.role, role, audited)


def _member_ids(group: Group) -> set[str]:
    return {str(m.value).lower() for m in group.members or [] if m.value is not None}


async def patch_group(ctx: RequestContext, principal: ScimPrincipal, raw_id: str, body: Any,
                      base_url: str) -> dict[str, Any]:
    role = _group_role(principal, raw_id)
    patch = _validated(PatchOp[Group], body, Context.RESOURCE_PATCH_REQUEST)

    def wanted(current: Group) -> set[str]:
        name = current.display_name
        try:
            patch.patch(current)
        except ValidationError as exc:
            raise _from_validation(exc) from None
        if current.display_name != name:
            raise MutabilityException(detail="A group's displayName is its role's name and cannot change.")
        return _member_ids(current)

    return await _regroup(ctx, principal, role, base_url, wanted)


async def replace_group(ctx: RequestContext, principal: ScimPrincipal, raw_id: str, body: Any,
                        base_url: str) -> dict[str, Any]:
    role = _group_role(principal, raw_id)
    group = _validated(Group, body, Context.RESOURCE_REPLACEMENT_REQUEST)
    if group.display_name is not None and group.display_name != dict(GROUPS)[role]:
        raise MutabilityException(detail="A group's displayName is its role's name and cannot change.")
    return await _regroup(ctx, principal, role, base_url, lambda current: _member_ids(group))

