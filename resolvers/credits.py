"""Cloud credits: the pool balance, what each member may still spend, and who may see what."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol, TypeVar
from uuid import UUID

from datasources.paging import Page, Slice
from datasources.postgres import credits as data
from datasources.postgres.accounts import Account
from resolvers.accounts import visible_accounts
from resolvers.context import Context
from resolvers.permissions import may

DEFAULT_MODE = "UNLIMITED"  # what an account without a credit_access row has
_NEVER = datetime.max.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class GrantBalance:
    grant: data.Grant
    remaining: int  # not consumed by usage; for an expired grant, what lapsed unused
    expired: bool


@dataclass(frozen=True)
class PoolBalance:
    grants: list[GrantBalance]  # in the order usage consumes them
    granted: int  # every grant, expired ones included
    used: int  # all usage ever
    balance: int  # what can still be spent: the remaining of grants live now


@dataclass(frozen=True)
class AccessSummary:
    mode: str
    limit: int | None  # the quota, for QUOTA only
    used: int  # this member's usage in the organization
    remaining: int  # what this member can spend now


NO_ACCESS = AccessSummary("DISABLED", None, 0, 0)  # an account outside any organization


def _expiry_order(grant: data.Grant) -> tuple[datetime, datetime, UUID]:
    return (grant.expires_at or _NEVER, grant.granted_at, grant.id)


def _live(grant: data.Grant, moment: datetime) -> bool:
    return grant.granted_at <= moment and (grant.expires_at is None or moment < grant.expires_at)


def settle(grants: Sequence[data.Grant], periods: Sequence[data.UsagePeriod], now: datetime) -> PoolBalance:
    """What is left of each of one organization's grants after all its usage.

    The rule: each use draws on the grants live when it happened (granted, not yet expired),
    the one expiring soonest first and never-expiring ones last, so credits about to lapse are
    spent before credits that keep. A grant that had already expired is never drawn on, so a
    grant lapsing unused cannot absorb later usage and inflate the balance. Usage no live grant
    could cover (an overdraft) is owed, and the next grants to go live pay it first. The pool
    balance is what remains of the grants live now; an expired grant keeps its `remaining` (what
    lapsed unused) but counts for nothing.

    Usage arrives summed per period between grant boundaries (see UsagePeriod): within a
    period the live grants do not change, so drawing the period's total at once comes out the
    same as drawing each use in turn.
    """
    order = sorted(grants, key=_expiry_order)
    left = {g.id: g.amount for g in order}
    drawn = {p.since: p.amount for p in periods}
    owed = drawn.pop(None, 0)
    boundaries = {g.granted_at for g in order} | {g.expires_at for g in order if g.expires_at is not None}
    for moment in sorted({b for b in boundaries if b <= now} | set(drawn)):
        owed += drawn.get(moment, 0)
        for grant in order:
            if owed == 0:
                break
            if _live(grant, moment):
                take = min(left[grant.id], owed)
                left[grant.id] -= take
                owed -= take
    return PoolBalance(
        grants=[GrantBalance(g, left[g.id], g.expires_at is not None and g.expires_at <= now) for g in order],
        granted=sum(g.amount for g in order), used=sum(p.amount for p in periods),
        balance=sum(left[g.id] for g in order if _live(g, now)))


def spendable(access: data.Access | None, used: int, balance: int) -> AccessSummary:
    """A quota is a ceiling, not a reservation: it never lets a member spend what the pool lacks."""
    mode = access.mode if access else DEFAULT_MODE
    quota = access.quota if access and mode == "QUOTA" else None
    if mode == "DISABLED":
        remaining = 0
    elif quota is not None:
        remaining = min(quota - used, balance)
    else:
        remaining = balance
    return AccessSummary(mode, quota, used, max(0, remaining))


async def pool_balance(ctx: Context, organization_id: UUID) -> PoolBalance:
    # Both loads are queued before the first await, so they go out in the same round (so in
    # member_access), without the tasks that asyncio.gather would make of coroutines.
    credits = ctx.loaders.credits
    grants, periods = credits.grants.load(organization_id), credits.usage_periods.load(organization_id)
    return settle(await grants, await periods, datetime.now(timezone.utc))


async def member_access(ctx: Context, account_id: UUID, organization_id: UUID) -> AccessSummary:
    [summary] = await members_access(ctx, [(account_id, organization_id)])
    return summary


async def members_access(ctx: Context, members: Sequence[tuple[UUID, UUID]]) -> list[AccessSummary]:
    """`member_access` for each (account, organization), each pool settled once."""
    credits = ctx.loaders.credits
    accounts = [account_id for account_id, _ in members]
    organizations = list(dict.fromkeys(organization_id for _, organization_id in members))
    # Every load is queued before the first await: they go out in one round.
    accesses, usages = credits.access.load_all(accounts), credits.usage_of_account.load_all(accounts)
    grants, periods = credits.grants.load_all(organizations), credits.usage_periods.load_all(organizations)
    now = datetime.now(timezone.utc)
    balances = {organization_id: settle(g, p, now).balance
                for organization_id, g, p in zip(organizations, await grants, await periods)}
    out = []
    for (account_id, organization_id), access, usage in zip(members, await accesses, await usages):
        if access is not None and access.organization_id != organization_id:
            access = None  # left over from an organization the account has since left
        used = sum(u.amount for u in usage if u.organization_id == organization_id)
        out.append(spendable(access, used, balances[organization_id]))
    return out


async def credit_accesses(ctx: Context, account_ids: Sequence[UUID]) -> list[AccessSummary]:
    """Each account's access in its organization, in order; the caller has checked that the
    viewer may see the accounts."""
    found = await ctx.loaders.accounts.membership.load_all(account_ids)
    members = [(a, m.organization_id) for a, m in zip(account_ids, found) if m is not None]
    summaries = iter(await members_access(ctx, members))
    return [NO_ACCESS if m is None else next(summaries) for m in found]


async def members(ctx: Context, organization_id: UUID) -> list[Account]:
    found = await ctx.loaders.credits.members.load(organization_id)
    return [a for a in await visible_accounts(ctx, [m.account_id for m in found]) if a is not None]


async def usage_page(ctx: Context, organization_id: UUID, slice: Slice) -> Page[data.Usage]:
    return await ctx.loaders.credits.usage_page.load((organization_id, slice))


async def pending_requests(ctx: Context, organization_id: UUID) -> list[data.CreditRequest]:
    return await ctx.loaders.credits.pending_requests.load(organization_id)


class _Owned(Protocol):
    @property
    def organization_id(self) -> UUID: ...


O = TypeVar("O", bound=_Owned)


async def _if_visible(ctx: Context, type_name: str, found: O | None) -> O | None:
    """Credit records by id are for whoever the table lets see them in the owning organization;
    anyone else gets None, exactly as for an id that does not exist."""
    return found if found is not None and await may(ctx, type_name, found.organization_id) else None


async def visible_grant(ctx: Context, grant_id: UUID) -> GrantBalance | None:
    grant = await _if_visible(ctx, "CloudCredit", await ctx.loaders.credits.grant.load(grant_id))
    if grant is None:
        return None
    pool = await pool_balance(ctx, grant.organization_id)
    return next((g for g in pool.grants if g.grant.id == grant_id), None)


async def visible_usage(ctx: Context, usage_id: UUID) -> data.Usage | None:
    return await _if_visible(ctx, "CloudCreditUsage", await ctx.loaders.credits.usage.load(usage_id))


async def visible_request(ctx: Context, request_id: UUID) -> data.CreditRequest | None:
    return await _if_visible(ctx, "CloudCreditRequest", await ctx.loaders.credits.request.load(request_id))
