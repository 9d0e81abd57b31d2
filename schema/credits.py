"""Cloud credits: an organization's pool (grants minus usage) and each member's access to it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import Enum
from uuid import UUID

import strawberry
from strawberry import relay

from datasources.postgres import credits as records
from datasources.postgres.accounts import Account as AccountRecord
from planning.declare import column, from_record
from resolvers import credits as resolve
from schema.common import Info, by_uuid, resolve_visible
from datasources.paging import Slice
from schema.pagination import After, Before, Connection, First, Last, slice_of
from planning.levels import level_resolver
from schema.references import AccountRef, account_node, accounts_at, visible_account_node



@strawberry.enum(description="How a member may spend the organization's credits.")
class CloudCreditAccessMode(Enum):
    DISABLED = strawberry.enum_value("DISABLED", description="May not spend credits.")
    UNLIMITED = strawberry.enum_value(
        "UNLIMITED", description="May spend whatever the pool holds; the default.")
    QUOTA = strawberry.enum_value(
        "QUOTA", description="May spend up to a limit in total, while the pool holds enough; the "
                             "limit is a ceiling, not credits set aside.")


@strawberry.type(description="What one member may spend of the organization's credits.")
class CloudCreditAccess:
    mode: CloudCreditAccessMode = column("mode", description="How the member may spend credits.")
    limit: int | None = column("quota", description="The member's total ceiling; null unless mode is QUOTA.")
    used: int = column("used", description="Credits this member has used in the organization, in total.")
    remaining: int = strawberry.field(
        description="Credits this member can spend now: 0 when DISABLED; the pool balance when UNLIMITED; "
                    "for QUOTA the smaller of limit minus used and the pool balance. Never below 0.")

    @classmethod
    def from_summary(cls, summary: resolve.AccessSummary) -> "CloudCreditAccess":
        return from_record(cls, summary, remaining=summary.remaining)


@strawberry.type(description="Credits given to an organization: bought, promotional or granted by the vendor.")
class CloudCredit(relay.Node):
    id: relay.NodeID[str]
    amount: int = strawberry.field(description="Credits granted.")
    source: str = strawberry.field(description="Where the credits came from, e.g. \"PURCHASE\" or \"PROMOTION\".")
    granted_at: datetime = strawberry.field(description="When the credits were granted.")
    expires_at: datetime | None = strawberry.field(description="When unused credits lapse; null: never.")
    remaining: int = strawberry.field(
        description="Credits of this grant not yet used (usage draws on the grant expiring soonest first); "
                    "for an expired grant, what lapsed unused.")
    expired: bool = strawberry.field(description="Whether the grant has expired; its credits no longer count.")

    @classmethod
    def from_balance(cls, found: resolve.GrantBalance) -> "CloudCredit":
        grant = found.grant
        return cls(id=str(grant.id), amount=grant.amount, source=grant.source, granted_at=grant.granted_at,
                   expires_at=grant.expires_at, remaining=found.remaining, expired=found.expired)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_grant), cls.from_balance, info, node_ids)


@strawberry.type(description="Credits spent by a member, e.g. on a cloud render job.")
class CloudCreditUsage(relay.Node):
    id: relay.NodeID[str]
    amount: int = strawberry.field(description="Credits used.")
    description: str = strawberry.field(description="What they were used for.")
    used_at: datetime = strawberry.field(description="When they were used.")
    account_id: strawberry.Private[UUID | None]

    @classmethod
    def from_record(cls, usage: records.Usage) -> "CloudCreditUsage":
        return cls(id=str(usage.id), amount=usage.amount, description=usage.description, used_at=usage.used_at,
                   account_id=usage.account_id)

    @strawberry.field(description="Who used them; null when that account has been deleted.")
    @level_resolver(accounts_at("account_id"))
    async def account(self, info: Info) -> AccountRef | None:
        return await visible_account_node(info, self.account_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_usage), cls.from_record, info, node_ids)


@strawberry.enum(description="Where a credit request stands.")
class CloudCreditRequestStatus(Enum):
    PENDING = strawberry.enum_value("PENDING", description="Waiting for the organization's OWNER or an ADMIN.")
    APPROVED = strawberry.enum_value(
        "APPROVED", description="Approved: the requester's credit access was set as the answer said.")
    DECLINED = strawberry.enum_value("DECLINED", description="Declined; `answerNote` may say why.")


@strawberry.type(description="A member's request for more credits, for the organization's admins to answer. Seen "
                             "by those who see the organization's credit pool, and by the member who asked.")
class CloudCreditRequest(relay.Node):
    id: relay.NodeID[str]
    amount: int = strawberry.field(description="Credits asked for.")
    note: str = strawberry.field(description="The member's reason; may be empty.")
    requested_at: datetime = strawberry.field(description="When the request was made.")
    resolved_at: datetime | None = strawberry.field(description="When it was answered; null while pending.")
    status: CloudCreditRequestStatus = strawberry.field(
        description="PENDING until answered once by `approveCreditRequest` or `declineCreditRequest`.")
    answer_note: str = strawberry.field(description="The answer's note for the requester; empty while pending or "
                                                    "when none was given.")
    account_id: strawberry.Private[UUID]

    @classmethod
    def from_record(cls, request: records.CreditRequest) -> "CloudCreditRequest":
        return cls(id=str(request.id), amount=request.amount, note=request.note,
                   requested_at=request.requested_at, resolved_at=request.resolved_at,
                   status=CloudCreditRequestStatus(request.outcome or "PENDING"), answer_note=request.answer_note,
                   account_id=request.account_id)

    @strawberry.field(description="Who asked; null when that account has been deleted.")
    @level_resolver(accounts_at("account_id"))
    async def account(self, info: Info) -> AccountRef | None:
        return await visible_account_node(info, self.account_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_request), cls.from_record, info, node_ids)


@strawberry.type(description="A page of an organization's credit usage.")
class CloudCreditUsageConnection(Connection[CloudCreditUsage]):
    pass


@strawberry.type(description="A page of a member's credit requests.")
class CloudCreditRequestConnection(Connection[CloudCreditRequest]):
    pass


async def credit_requests(info: Info, account_id: UUID, slice: Slice) -> CloudCreditRequestConnection:
    """For `Account.creditRequests`; the caller has checked that the viewer may see the account."""
    page = await resolve.requests_of(info.context, account_id, slice)
    return CloudCreditRequestConnection.from_page(page, CloudCreditRequest.from_record, slice)


class _ListedTogether:
    """The members of one `CloudCreditPool.members` list: the first `access` asked works out
    every member's in one call, which the others then share. Asked member by member, the pool's
    30 members cost 30 times the rights checks and pool settlements of one call, and half the
    dashboard's time."""

    def __init__(self, account_ids: list[UUID]) -> None:
        self.account_ids = account_ids
        self._found: asyncio.Future[list[CloudCreditAccess]] | None = None

    async def access(self, info: Info, account_id: UUID) -> CloudCreditAccess:
        if self._found is None:
            self._found = asyncio.ensure_future(credit_accesses(info, self.account_ids))
        return (await self._found)[self.account_ids.index(account_id)]


@strawberry.type(description="One member of the organization with their credit access and usage.")
class CloudCreditMember:
    account: AccountRef = strawberry.field(description="The member.")
    organization_id: strawberry.Private[UUID]
    listed: strawberry.Private[_ListedTogether]

    @strawberry.field(description="The member's access: mode, limit, usage and what they can still spend.")
    async def access(self, info: Info) -> CloudCreditAccess:
        return await self.listed.access(info, UUID(self.account.id))

    @staticmethod
    def list_of(accounts: Sequence[AccountRecord], organization_id: UUID) -> list["CloudCreditMember"]:
        listed = _ListedTogether([a.id for a in accounts])
        return [CloudCreditMember(account=account_node(a), organization_id=organization_id, listed=listed)
                for a in accounts]


@strawberry.type(description="An organization's credits: grants minus usage, shared by its members.")
class CloudCreditPool:
    organization_id: strawberry.Private[UUID]

    async def _balance(self, info: Info) -> resolve.PoolBalance:
        return await resolve.pool_balance(info.context, self.organization_id)

    @strawberry.field(description="Credits that can still be spent: what remains of the grants not yet "
                                  "expired, after usage drew on the grants expiring soonest first.")
    async def balance(self, info: Info) -> int:
        return (await self._balance(info)).balance

    @strawberry.field(description="Credits granted in total, expired grants included.")
    async def granted(self, info: Info) -> int:
        return (await self._balance(info)).granted

    @strawberry.field(description="Credits used in total, by all members.")
    async def used(self, info: Info) -> int:
        return (await self._balance(info)).used

    @strawberry.field(description="The balance at or under which the organization's OWNER and ADMINs are warned "
                                  "(a CREDIT_POOL_LOW event, and mail for those who want it), once each time the "
                                  "balance falls to it; null: no alert. Set by `setCreditPoolAlert`.")
    async def low_balance_threshold(self, info: Info) -> int | None:
        return await resolve.low_balance_threshold(info.context, self.organization_id)

    @strawberry.field(description="Every grant, expired ones included, soonest expiry first (never-expiring last).")
    async def grants(self, info: Info) -> list[CloudCredit]:
        return [CloudCredit.from_balance(g) for g in (await self._balance(info)).grants]

    @strawberry.field(description="What the credits were used for, newest first.")
    async def usage(self, info: Info, first: First = None, after: After = None, last: Last = None,
                    before: Before = None) -> CloudCreditUsageConnection:
        slice = slice_of(first, after, last, before)
        page = await resolve.usage_page(info.context, self.organization_id, slice)
        return CloudCreditUsageConnection.from_page(page, CloudCreditUsage.from_record, slice)

    @strawberry.field(description="Every member of the organization with their credit access; owner, "
                                  "admins, then members, each by email.")
    async def members(self, info: Info) -> list[CloudCreditMember]:
        return CloudCreditMember.list_of(await resolve.members(info.context, self.organization_id),
                                         self.organization_id)

    @strawberry.field(description="Requests for more credits not yet answered, oldest first.")
    async def pending_requests(self, info: Info) -> list[CloudCreditRequest]:
        found = await resolve.pending_requests(info.context, self.organization_id)
        return [CloudCreditRequest.from_record(r) for r in found]


async def credit_access(info: Info, account_id: UUID) -> CloudCreditAccess:
    """For `Account.creditAccess`; the caller has checked that the viewer may see the account."""
    [access] = await credit_accesses(info, [account_id])
    return access


async def credit_accesses(info: Info, account_ids: Sequence[UUID]) -> list[CloudCreditAccess]:
    """For `Account.creditAccess`; the caller has checked that the viewer may see the accounts."""
    return [CloudCreditAccess.from_summary(s) for s in await resolve.credit_accesses(info.context, account_ids)]


async def credit_pool(info: Info, organization_id: UUID) -> CloudCreditPool:
    """For `Organization.creditPool`; the caller has checked the access table.
    Each field loads only what it needs."""
    return CloudCreditPool(organization_id=organization_id)


# For `node(id:)` and `nodes(ids:)`: each resolves only for whoever the access table lets see it.
NODE_TYPES = (CloudCredit, CloudCreditUsage, CloudCreditRequest)
