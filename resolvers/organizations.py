"""An organization's people, invitations and audit log, by id: whoever the table lets see people."""

from __future__ import annotations

from uuid import UUID

from datasources.postgres import organizations as data
from datasources.values import bigint
from planning.ids import INVITED_PREFIX, MEMBER_PREFIX
from resolvers.context import Context
from datasources.paging import Page, Slice
from planning import sources
from planning.declare import checked
from resolvers.permissions import may, require


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


async def members_page(ctx: Context, query: data.MemberQuery, slice: Slice) -> Page[data.MemberRow]:
    """FORBIDDEN unless the viewer may read the organization's people."""
    await require(ctx, checked(sources.MEMBERS), query.organization_id)
    return await ctx.loaders.organizations.members.load((query, slice))


async def invitations_page(ctx: Context, organization_id: UUID, pending_only: bool,
                           slice: Slice) -> Page[data.Invitation]:
    await require(ctx, "Organization.invitations", organization_id)
    return await ctx.loaders.organizations.invitations.load((organization_id, pending_only, slice))


async def audit_log_page(ctx: Context, query: data.AuditQuery, slice: Slice) -> Page[data.AuditEntry]:
    await require(ctx, "Organization.auditLog", query.organization_id)
    return await ctx.loaders.organizations.audit_log.load((query, slice))
