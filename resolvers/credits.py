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
from planning import reads, sources
from resolvers.accounts import membership, visible_accounts
from resolvers.context import Context
from resolvers.permissions import may

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
    """A row of `planning.sources.CREDIT_ACCESS`, with what it leaves to spend."""

    mode: str
    quota: int | None  # for QUOTA only
    used: int  # this member's usage in the organization
    remaining: int  # what this member can spend now


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


def remaining(mode: str, quota: int | None, used: int, balance: int) -> int:
    """What a member can spend now. A quota is a ceiling, not a reservation: it never lets a
    member spend what the pool lacks."""
    if mode == "DISABLED":
        return 0
    return max(0, min(quota - used, balance) if quota is not None else balance)


async def pool_balance(ctx: Context, organization_id: UUID) -> PoolBalance:
    # Both loads are queued before the first await, so they go out in the same round (so in
    # credit_accesses), without the tasks that asyncio.gather would make of coroutines.
    credits = ctx.loaders.credits
    grants, periods = credits.grants.load(organization_id), credits.usage_periods.load(organization_id)
    return settle(await grants, await periods, datetime.now(timezone.utc))


async def credit_accesses(ctx: Context, account_ids: Sequence[UUID]) -> list[AccessSummary]:
    """Each account's access in its current organization, in order: mode, quota and usage as the
    compiled statements read them (`planning.sources.CREDIT_ACCESS`), and what that leaves to
    spend of the pool. The caller has checked that the viewer may see the accounts."""
    rows = await reads.relation_rows(ctx, sources.CREDIT_ACCESS, "CloudCreditAccess",
                                     ("mode", "quota", "used", "organization_id"), account_ids)
    organizations = list(dict.fromkeys(r["organization_id"] for r in rows if r and r["organization_id"]))
    credits = ctx.loaders.credits
    # Both loads are queued before the first await: they go out in one round.
    keys = [UUID(o) for o in organizations]
    grants, periods = credits.grants.load_all(keys), credits.usage_periods.load_all(keys)
    now = datetime.now(timezone.utc)
    balances = {o: settle(g, p, now).balance for o, g, p in zip(organizations, await grants, await periods)}
    out = []
    for row in rows:
        assert row is not None, "the statement answers every account, with the defaults when it has no row"
        balance = balances.get(row["organization_id"], 0)
        out.append(AccessSummary(row["mode"], row["quota"], row["used"],
                                 remaining(row["mode"], row["quota"], row["used"], balance)))
    return out


async def low_balance_threshold(ctx: Context, organization_id: UUID) -> int | None:
    found = await ctx.loaders.credits.pool_alert.load(organization_id)
    return found.threshold if found else None


async def members(ctx: Context, organization_id: UUID) -> list[Account]:
    found = await ctx.loaders.credits.members.load(organization_id)
    return [a for a in await visible_accounts(ctx, [m.account_id for m in found]) if a is not None]


async def usage_page(ctx: Context, organization_id: UUID, slice: Slice) -> Page[data.Usage]:
    return await ctx.loaders.credits.usage_page.load((organization_id, slice))


async def pending_requests(ctx: Context, organization_id: UUID) -> list[data.CreditRequest]:
    return await ctx.loaders.credits.pending_requests.load(organization_id)


async def requests_of(ctx: Context, account_id: UUID, slice: Slice) -> Page[data.CreditRequest]:
    """An account's requests in the organization it belongs to now (none outside one). Whoever
    sees the account sees these: the account itself, and those the table lets read the
    organization's people, who also reach its credit requests."""
    found = await membership(ctx, account_id)
    if found is None:
        return Page(rows=[], has_more=False, total=0)
    return await ctx.loaders.credits.requests_page.load((account_id, found.organization_id, slice))


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
    """Also for the member who asked: their own requests and their outcome are theirs to see."""
    found = await ctx.loaders.credits.request.load(request_id)
    if found is not None and ctx.viewer.account_id == found.account_id:
        return found
    return await _if_visible(ctx, "CloudCreditRequest", found)
