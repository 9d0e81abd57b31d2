"""`Query.staff`: the vendor's staff and services reading across organizations.

Who gets a `Staff` object, and which of its fields and of the organizations' fields each
staff role or service scope reads, is the access table's (`auth.access`); everyone else gets
null with FORBIDDEN. Organizations and accounts come back as the same types customers see
(nothing there exposes password hashes, tokens or card numbers).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated
from uuid import UUID

import strawberry

from datasources.postgres import reports
from auth.access import who
from resolvers import accounts as resolve_accounts
from resolvers import staff as resolve
from resolvers import staff_reports
from resolvers.staff_reports import MAX_BALANCE_PAGE
from resolvers.permissions import require
from schema import billing
from schema.account import Account
from schema.common import Info, node_uuid
from schema.license import License
from schema.money import Money
from schema.organization import Organization
from schema.pagination import After, Before, Connection, First, Last, slice_of
from schema.product import Product, product

# The balance of each row costs a read at the payment provider, so this report pages small.

Search = Annotated[str | None, strawberry.argument(
    description="Part of an email or name, or an exact customer number such as \"C-100001\"; all when left out.")]


@strawberry.enum(description="A staff member's role at the vendor, apart from any organization role.")
class StaffRole(Enum):
    SUPPORT = strawberry.enum_value("SUPPORT", description="Customer support: accounts, emails, invitations, "
                                                           "entitlements; no billing.")
    BILLING = strawberry.enum_value("BILLING", description="Billing: invoices, cards and balances; credits, license "
                                                           "extensions and quantities; no people.")
    ADMIN_TOOLING = strawberry.enum_value("ADMIN_TOOLING", description="Internal admin tools: everything staff can do.")


async def _organization(info: Info, organization_id: UUID) -> Organization:
    found = await resolve_accounts.organization(info.context, organization_id)
    assert found is not None, "reports name existing organizations"
    return Organization.from_record(found)


@strawberry.type(description="An unexpired license that expires soon, with its organization.")
class ExpiringLicense:
    license: License = strawberry.field(description="The license.")

    @strawberry.field(description="The organization holding it.")
    async def organization(self, info: Info) -> Organization:
        return await _organization(info, self.license.record.organization_id)


@strawberry.type(description="A page of the expiring-licenses report.")
class ExpiringLicenseConnection(Connection[ExpiringLicense]):
    pass


@strawberry.type(description="A provider customer and what its OPEN invoices still owe.")
class OrganizationBalance:
    organization: Organization = strawberry.field(description="The organization.")

    @strawberry.field(description="What OPEN invoices still owe, one amount per currency; empty when nothing. Null "
                                  "with PROVIDER_UNAVAILABLE when the provider does not answer in time. For "
                                  f"{who('OrganizationBalance.outstandingBalance')}.")
    async def outstanding_balance(self, info: Info) -> list[Money] | None:
        await require(info.context, "OrganizationBalance.outstandingBalance", self.organization.record.id)
        return await billing.organization_outstanding_balance(info, self.organization.record)


@strawberry.type(description="A page of organizations with their outstanding balances.")
class OrganizationBalanceConnection(Connection[OrganizationBalance]):
    pass


@strawberry.type(description="Seats sold and taken for one product, over its unexpired NAMED licenses.")
class SeatUtilization:
    licenses: int = strawberry.field(description="Unexpired NAMED licenses of the product, in all organizations.")
    quantity: int = strawberry.field(description="Seats in those licenses.")
    allocated: int = strawberry.field(description="Seats allocated to people.")
    product_id: strawberry.Private[object]

    @strawberry.field(description="The product.")
    async def product(self, info: Info) -> Product:
        return await product(info, self.product_id)  # type: ignore[arg-type]

    @strawberry.field(description="allocated / quantity, from 0 to 1.")
    def utilization(self) -> float:
        return self.allocated / self.quantity if self.quantity else 0.0


@strawberry.type(description="A page of the seat-utilization report.")
class SeatUtilizationConnection(Connection[SeatUtilization]):
    pass


@strawberry.type(description="An organization's cloud-credit usage over a period.")
class OrganizationCloudCreditUsage:
    used: int = strawberry.field(description="Credits used in the period.")
    uses: int = strawberry.field(description="How many uses that was.")
    organization_id: strawberry.Private[object]

    @strawberry.field(description="The organization.")
    async def organization(self, info: Info) -> Organization:
        return await _organization(info, self.organization_id)  # type: ignore[arg-type]


@strawberry.type(description="A page of the credit-usage report, most used first.")
class OrganizationCloudCreditUsageConnection(Connection[OrganizationCloudCreditUsage]):
    pass


@strawberry.type(description="A page of accounts found by staff.")
class StaffAccountConnection(Connection[Account]):
    pass


@strawberry.type(description="A page of organizations found by staff.")
class StaffOrganizationConnection(Connection[Organization]):
    pass


@strawberry.type(description="What the vendor's staff and services read across organizations: search, any "
                             "organization, and reports. Every list is a connection paged in the database.")
class Staff:
    @strawberry.field(description="The viewer's staff role; null for a service token.")
    def role(self, info: Info) -> StaffRole | None:
        role = info.context.viewer.staff_role
        return StaffRole(role) if role else None

    @strawberry.field(description="The service's name, for a service token; null for staff.")
    def service(self, info: Info) -> str | None:
        service = info.context.viewer.service
        return service.name if service else None

    @strawberry.field(description="The service token's scopes, sorted; empty for staff.")
    def scopes(self, info: Info) -> list[str]:
        service = info.context.viewer.service
        return sorted(service.scopes) if service else []

    @strawberry.field(description=f"Accounts by email. For {who('Staff.accounts')}; FORBIDDEN for the others.")
    async def accounts(self, info: Info, search: Search = None, first: First = None, after: After = None,
                       last: Last = None, before: Before = None) -> StaffAccountConnection:
        slice = slice_of(first, after, last, before)
        page = await staff_reports.accounts(info.context, search, slice)
        return StaffAccountConnection.from_page(page, Account.from_record, slice)

    @strawberry.field(description="Organizations by name; the search also matches their members' emails and "
                                  "customer numbers.")
    async def organizations(self, info: Info, search: Search = None, first: First = None, after: After = None,
                            last: Last = None, before: Before = None) -> StaffOrganizationConnection:
        slice = slice_of(first, after, last, before)
        page = await staff_reports.organizations(info.context, search, slice)
        return StaffOrganizationConnection.from_page(page, Organization.from_record, slice)

    @strawberry.field(description="Any organization; null when there is none. Each of its fields is read as the "
                                  "access table lets the viewer's staff role or service scopes (FORBIDDEN at the "
                                  "fields they do not reach).")
    async def organization(self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(
            description="An Organization ID.")]) -> Organization | None:
        found = await staff_reports.organization(info.context, node_uuid(id, "Organization"))
        return Organization.from_record(found) if found else None

    @strawberry.field(description="Unexpired licenses that expire within `withinDays`, soonest first. For "
                                  f"{who('Staff.licensesExpiring')}; FORBIDDEN for the others.")
    async def licenses_expiring(
        self, info: Info,
        within_days: Annotated[int, strawberry.argument(description="1 to 366 days from now.")] = 30,
        first: First = None, after: After = None, last: Last = None, before: Before = None,
    ) -> ExpiringLicenseConnection:
        slice = slice_of(first, after, last, before)
        page = await staff_reports.licenses_expiring(info.context, within_days, slice)
        return ExpiringLicenseConnection.from_page(
            page, lambda lic: ExpiringLicense(license=License.from_record(lic)), slice)

    @strawberry.field(description="Organizations that are customers of the payment provider, by name, each with "
                                  "what its OPEN invoices still owe. The balance lives at the provider, so the "
                                  "list is not filtered by it (an empty balance means nothing is owed) and a page "
                                  f"holds at most {MAX_BALANCE_PAGE}: one provider read per organization. For "
                                  f"{who('Staff.organizationsWithOutstandingBalance')}; FORBIDDEN for the others.")
    async def organizations_with_outstanding_balance(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
    ) -> OrganizationBalanceConnection:
        slice = slice_of(first, after, last, before)
        page = await staff_reports.billed_organizations(info.context, slice)
        return OrganizationBalanceConnection.from_page(
            page, lambda o: OrganizationBalance(organization=Organization.from_record(o)), slice)

    @strawberry.field(description="Per product, over its unexpired NAMED licenses in every organization: seats "
                                  f"sold and allocated, by product name. For {who('Staff.seatUtilization')}; "
                                  "FORBIDDEN for the others.")
    async def seat_utilization(self, info: Info, first: First = None, after: After = None, last: Last = None,
                               before: Before = None) -> SeatUtilizationConnection:
        slice = slice_of(first, after, last, before)
        page = await staff_reports.seat_utilization(info.context, slice)
        return SeatUtilizationConnection.from_page(page, _utilization, slice)

    @strawberry.field(description="Per organization that used cloud credits in [from, to): how many, most first. "
                                  f"For {who('Staff.creditUsage')}; FORBIDDEN for the others.")
    async def credit_usage(
        self, info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from", description="Start of the period (included).")],
        to: Annotated[datetime, strawberry.argument(description="End of the period (excluded).")],
        first: First = None, after: After = None, last: Last = None, before: Before = None,
    ) -> OrganizationCloudCreditUsageConnection:
        slice = slice_of(first, after, last, before)
        page = await staff_reports.credit_usage(info.context, from_, to, slice)
        return OrganizationCloudCreditUsageConnection.from_page(
            page, lambda c: OrganizationCloudCreditUsage(used=c.used, uses=c.uses, organization_id=c.organization_id),
            slice)



def _utilization(row: reports.SeatUtilization) -> SeatUtilization:
    return SeatUtilization(licenses=row.licenses, quantity=row.quantity, allocated=row.allocated,
                           product_id=row.product_id)


async def staff(info: Info) -> Staff | None:
    resolve.require_staff_reader(info.context)
    return Staff()
