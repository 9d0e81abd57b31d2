"""An organization's people, invitations and audit log, by id: whoever the table lets see people."""

from __future__ import annotations

from uuid import UUID

from datasources.postgres import organizations as data
from datasources.values import bigint
from planning.ids import INVITED_PREFIX, MEMBER_PREFIX
from resolvers.context import Context
from resolvers.permissions import may


async def visible_member(ctx: Context, raw_id: str) -> data.MemberRow | None:
    """A member (by account) or invitee (by invitation), for whoever may see their organization's people."""
    prefix, rest = raw_id[:2], raw_id[2:]
    try:
        key = UUID(rest)
    except ValueError:
        return None
    if prefix == MEMBER_PREFIX:
        membership = await ctx.loaders.accounts.membership.load(key)
        account = await ctx.loaders.accounts.account.load(key)
        if membership is None or account is None or not await may(ctx, "Member", membership.organization_id):
            return None
        return data.MemberRow(membership.organization_id, "ACTIVE", key, None, account.email, membership.role,
                              membership.joined_at, None)
    if prefix == INVITED_PREFIX:
        invitation = await visible_invitation(ctx, key)
        if invitation is None or invitation.accepted_at or invitation.revoked_at:
            return None
        return data.MemberRow(invitation.organization_id, "INVITED", None, key, invitation.email,
                              invitation.role, None, invitation.created_at)
    return None


async def visible_invitation(ctx: Context, invitation_id: UUID) -> data.Invitation | None:
    found = await ctx.loaders.organizations.invitation.load(invitation_id)
    return found if found and await may(ctx, "Invitation", found.organization_id) else None


async def visible_audit_entry(ctx: Context, raw_id: str) -> data.AuditEntry | None:
    entry_id = bigint(raw_id)
    if entry_id is None:
        return None
    found = await ctx.loaders.organizations.audit_entry.load(entry_id)
    return found if found and await may(ctx, "AuditLogEntry", found.organization_id) else None
