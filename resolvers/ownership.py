"""Handing an organization's ownership over.

The OWNER names an ADMIN of the organization (`transfer_ownership`); the ADMIN confirms with
the token mailed to them, signed in as themselves (`accept_ownership`), within
TRANSFER_DAYS days. Only then do the roles change, in one transaction: the old OWNER becomes an
ADMIN and the new one OWNER, so there is never no OWNER and never two (the roles of the
organization are locked, and memberships_one_owner backs it). A new transfer replaces the one
waiting; the OWNER may also cancel it. When the OWNER has left and cannot hand over, the
vendor's staff do it at once with a reason (`staff_transfer_ownership`).

At acceptance the transfer still has to make sense: the one who started it is still the OWNER
and the one named still an ADMIN; otherwise it is void (canceled) and changes nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from uuid import UUID

import asyncpg

from datasources.errors import Forbidden, NotFound
from datasources.postgres import ownership as data
from datasources.postgres.credit_changes import organization_name
from datasources.postgres.ownership import Transfer
from resolvers.attempts import give_back_attempt, take_attempt
from resolvers.context import Context
from resolvers.people import MAX_TOKEN_LENGTH, hash_token
from resolvers.permissions import require_staff, viewer_membership
from resolvers.staff import staff_reason
from resolvers.user_errors import Problem
from resolvers.user_errors import Refused as _Refused
from resolvers.writes import (NOT_FOUND, OnBehalf, after_write, audit_refusal, audit_success, report,
                              require_change, require_change_in, send_mail)

ACCEPT_PATH = "/accept-ownership"  # the portal's page that reads `token` and calls acceptOwnership
START = "organization.ownership_transfer"
CANCEL = "organization.ownership_transfer_cancel"
ACCEPT = "organization.ownership_accept"
STAFF = "organization.ownership_staff_transfer"
NO_ORGANIZATION = "You are not a member of an organization."


@dataclass(frozen=True)
class TransferResult:
    transfer: Transfer | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class OwnerChange:
    organization_id: UUID | None = None
    problems: list[Problem] = field(default_factory=list)


class _AlreadyOwner(Exception):
    """The member named owns the organization already: roll back, answer success."""


def _field(name: str, message: str, code: str) -> Problem:
    return Problem(("input", name), message, code)


async def transfer_ownership(ctx: Context, account_id: UUID | None) -> TransferResult:
    """The OWNER names the ADMIN who is to take over; they are mailed a link to confirm."""
    await require_change(ctx, "transferOwnership")
    membership = await ctx.loaders.accounts.membership.load(account_id) if account_id else None
    if membership is None:
        raise NotFound(NOT_FOUND)
    organization_id = membership.organization_id
    actor = await require_change_in(ctx, "transferOwnership", organization_id)
    target = f"Account:{membership.account_id}"
    try:
        async with ctx.db.transaction() as conn:
            # The waiting transfer's row first, then the roles: the order acceptOwnership takes them in.
            replaced = await data.cancel_pending(conn, organization_id)
            roles = await data.lock_roles(conn, organization_id, [actor, membership.account_id])
            if roles.get(actor) != "OWNER":
                raise _Refused(_field("accountId", "Only the OWNER can hand the organization over.", "NOT_ALLOWED"))
            if membership.account_id == actor:
                raise _Refused(_field("accountId", "You are the OWNER already: name an ADMIN to hand over to.",
                                      "INVALID"))
            role = roles.get(membership.account_id)
            if role is None:
                raise NotFound(NOT_FOUND)  # left meanwhile
            if role != "ADMIN":
                raise _Refused(_field("accountId", "Ownership goes to an ADMIN: make them an ADMIN first "
                                                   "(changeMemberRole).", "NOT_ALLOWED"))
            token = secrets.token_urlsafe(32)
            transfer = await data.create(conn, organization_id, actor, membership.account_id, hash_token(token))
            [(owner_name, _), (name, email)] = await data.people(conn, [actor, membership.account_id])
            organization = await organization_name(conn, organization_id)
            await send_mail(conn, to=email, subject=f"{_line(owner_name)} asks you to take over {_line(organization)}",
                            body=f"Hello {name},\n\n{owner_name} asks you to become the OWNER of {organization}. "
                                 f"They will stay on as an ADMIN.\n\nSign in as {email} and confirm within "
                                 f"{data.TRANSFER_DAYS} days:\n{ctx.config.portal_url}{ACCEPT_PATH}?token={token}"
                                 "\n\nIf you do not want to, do nothing: the request expires.\n")
            await audit_success(conn, ctx, organization_id=organization_id, action=START, target=target,
                                details={"transferId": transfer.id, "to": membership.account_id,
                                         "replaced": replaced.id if replaced else None})
    except _Refused as refused:
        await audit_refusal(ctx, organization_id=organization_id, action=START, target=target,
                            problems=refused.problems)
        return TransferResult(problems=refused.problems)
    after_write(ctx)
    return TransferResult(transfer)


def _line(text: str) -> str:
    """For a mail subject: names are free text, and a header takes no line breaks."""
    return " ".join(text.split())


async def cancel_ownership_transfer(ctx: Context, organization_id: UUID | None) -> TransferResult:
    """The OWNER takes back the transfer waiting, if any (none waiting: nothing changes)."""
    await require_change(ctx, "cancelOwnershipTransfer")
    if organization_id is None:
        raise NotFound(NOT_FOUND)
    actor = await require_change_in(ctx, "cancelOwnershipTransfer", organization_id)
    target = f"Organization:{organization_id}"
    async with ctx.db.transaction() as conn:
        roles = await data.lock_roles(conn, organization_id, [actor])
        owner = roles.get(actor) == "OWNER"
        canceled = await data.cancel_pending(conn, organization_id) if owner else None
        if canceled is not None:
            await audit_success(conn, ctx, organization_id=organization_id, action=CANCEL, target=target,
                                details={"transferId": canceled.id, "to": canceled.to_account_id})
    if not owner:
        problems = [_field("organizationId", "Only the OWNER can cancel a hand-over.", "NOT_ALLOWED")]
        await audit_refusal(ctx, organization_id=organization_id, action=CANCEL, target=target, problems=problems)
        return TransferResult(problems=problems)
    after_write(ctx)
    return TransferResult(canceled)


def _not_pending() -> Problem:
    return _field("token", "This hand-over was already confirmed, canceled or replaced, has expired, or is not "
                           "for you.", "TRANSFER_NOT_PENDING")


async def accept_ownership(ctx: Context, token: str) -> OwnerChange:
    """The ADMIN named confirms, signed in as themselves; then the roles swap."""
    await require_change(ctx, "acceptOwnership")
    mine = await viewer_membership(ctx)
    if mine is None:
        raise Forbidden(NO_ORGANIZATION)
    organization_id = mine.organization_id
    actor = await require_change_in(ctx, "acceptOwnership", organization_id)
    token = token.strip()
    if not token:
        return OwnerChange(problems=[_field("token", "The token from the mail is missing.", "REQUIRED")])
    await take_attempt(ctx)  # guessing tokens is throttled like guessing passwords
    if len(token) > MAX_TOKEN_LENGTH:
        return OwnerChange(problems=[_not_pending()])
    try:
        async with ctx.db.transaction() as conn:
            transfer = await data.by_token_for_update(conn, hash_token(token))
            # Unknown, used, expired or someone else's: told the same, nothing tells them apart.
            if (transfer is None or transfer.to_account_id != actor or transfer.organization_id != organization_id
                    or transfer.accepted_at or transfer.canceled_at
                    or transfer.expires_at <= datetime.now(timezone.utc)):
                raise _Refused(_not_pending())
            await give_back_attempt(ctx)
            roles = await data.lock_roles(conn, organization_id, [actor])
            owner = next((a for a, r in roles.items() if r == "OWNER"), None)
            if owner != transfer.from_account_id or roles.get(actor) != "ADMIN":
                # Roles changed since it was asked: void, so it cannot be confirmed later either.
                await data.mark_canceled(conn, transfer.id)
                await _audit_void(conn, ctx, transfer)
                return OwnerChange(problems=[_field("token", "Roles changed since the hand-over was asked for; "
                                                             "ask the OWNER to start it again.", "NOT_ALLOWED")])
            await _swap(conn, ctx, organization_id, owner, actor, "ADMIN")
            await data.mark_accepted(conn, transfer.id)
            await audit_success(conn, ctx, organization_id=organization_id, action=ACCEPT,
                                target=f"Account:{actor}", details={"transferId": transfer.id, "from": owner})
            [(old_name, old_email), (new_name, _)] = await data.people(conn, [owner, actor])
            if old_email:
                await send_mail(conn, to=old_email, subject="Your organization has a new OWNER",
                                body=f"Hello {old_name},\n\n{new_name} confirmed and is now the OWNER. You stay on "
                                     "as an ADMIN.\n")
    except _Refused as refused:
        return OwnerChange(problems=refused.problems)
    after_write(ctx)
    return OwnerChange(organization_id)


async def _audit_void(conn: asyncpg.Connection, ctx: Context, transfer: Transfer) -> None:
    await audit_success(conn, ctx, organization_id=transfer.organization_id, action=CANCEL,
                        target=f"Organization:{transfer.organization_id}", outcome="REFUSED",
                        details={"transferId": transfer.id, "void": "roles changed since it was asked"})


async def _swap(conn: asyncpg.Connection, ctx: Context, organization_id: UUID, owner: UUID | None,
                new_owner: UUID, old_role_of_new: str) -> None:
    """The roles change, each reported as MEMBER_ROLE_CHANGED."""
    await data.swap_owner(conn, organization_id, owner, new_owner)
    if owner is not None:
        await report(conn, ctx, "MEMBER_ROLE_CHANGED", organization_id=organization_id,
                     data={"account_id": owner, "old_role": "OWNER", "new_role": "ADMIN"})
    await report(conn, ctx, "MEMBER_ROLE_CHANGED", organization_id=organization_id,
                 data={"account_id": new_owner, "old_role": old_role_of_new, "new_role": "OWNER"})


async def staff_transfer_ownership(ctx: Context, organization_id: UUID | None, account_id: UUID | None,
                                   reason: str) -> OwnerChange:
    """Support hands the organization to one of its members at once (the OWNER has left the
    company, say); the OWNER there was, if any, stays on as an ADMIN. Both are mailed."""
    authority = require_staff(ctx, "staffTransferOwnership")
    organization = await ctx.loaders.accounts.organization.load(organization_id) if organization_id else None
    if organization is None:
        raise NotFound(NOT_FOUND)
    reason, problem = staff_reason(reason)
    on_behalf = OnBehalf(authority.scope, reason)
    target = f"Account:{account_id}"
    try:
        if problem:
            raise _Refused(problem)
        async with ctx.db.transaction() as conn:
            # The waiting transfer's row first, then the roles: the order acceptOwnership takes them in.
            await data.cancel_pending(conn, organization.id)
            roles = await data.lock_roles(conn, organization.id, [account_id] if account_id else [])
            owner = next((a for a, r in roles.items() if r == "OWNER"), None)
            role = roles.get(account_id) if account_id else None
            if role is None:
                raise _Refused(_field("accountId", "Name a member of this organization.", "NOT_IN_ORGANIZATION"))
            if role == "OWNER":
                raise _AlreadyOwner  # nothing to do (a retry): the cancel above is rolled back too
            assert account_id is not None
            await _swap(conn, ctx, organization.id, owner, account_id, role)
            await audit_success(conn, ctx, organization_id=organization.id, action=STAFF, target=target,
                                on_behalf=on_behalf, details={"from": owner, "to": account_id, "fromRole": role})
            people = await data.people(conn, [owner, account_id])
            new_owner = f"{people[1][0]} ({people[1][1]})"
            for name, email in people:
                if email:
                    await send_mail(conn, to=email, subject=f"{_line(organization.name)} has a new OWNER",
                                    body=f"Hello {name},\n\nSupport handed {organization.name} over: its "
                                         f"OWNER is now {new_owner}, and the OWNER before stays on as an "
                                         f"ADMIN.\n\nThe reason given: {reason}\n")
    except _AlreadyOwner:
        return OwnerChange(organization.id)
    except _Refused as refused:
        await audit_refusal(ctx, organization_id=organization.id, action=STAFF, target=target,
                            problems=refused.problems, on_behalf=on_behalf)
        return OwnerChange(problems=refused.problems)
    after_write(ctx)
    return OwnerChange(organization.id)
