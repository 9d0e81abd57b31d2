"""Data that sits on the boundaries the two read paths decide by, written with plain SQL into
a test's own copy of the seeded database (the demo data stays as it is around it).

The demo data has its expiries at noon on whole days and no microseconds anywhere, so no
boundary is ever crossed. Here, measured from one instant `now` (the database clock when the
data is built):
- licenses expire 1 µs before `now`, exactly at it and 1 µs after; and 1 µs before, exactly at
  and 1 µs after `now + EXPIRING_WITHIN` (the EXPIRING window); by the time a query runs these
  are all in the past of its clock, so both paths must agree on the side each one is on;
- timestamps carry microseconds of every shape a formatter trips on: 0 (none printed),
  .000001, .120000 (trailing zeros), .999999;
- licenses are empty (0 of n), full (n of n), FLOATING, and perpetual (no expiry);
- nulls wherever the schema allows them: accounts with no country, pending invitations (a
  member with no account), an allocation whose `allocatedBy` is null and ones whose allocator
  or holder the readers cannot see (a removed member, another organization's account), an
  invitation with no inviter, usage with no account, a grant with no expiry.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
from strawberry import relay

from gateway.demo import demo_id
from planning.rights import EXPIRING_WITHIN

US = timedelta(microseconds=1)
NORTHWIND = demo_id("organization", "northwind")
GLOBEX = demo_id("organization", "globex")
# Accounts the boundary data adds that a test signs in as.
EDGE_MEMBER = "edge.a@northwind.example"  # a MEMBER holding boundary seats, with no country
REMOVED = "removed@northwind.example"  # once of Northwind: in no organization now


def gid(type_name: str, raw: object) -> str:
    return relay.to_base64(type_name, str(raw))


def demo_account(email: str) -> UUID:
    return demo_id("account", email)


def at_microseconds(moment: datetime, microseconds: int) -> datetime:
    """`moment` with its fraction of a second replaced."""
    return moment.replace(microsecond=microseconds)


@dataclass
class Builder:
    """Inserts rows and remembers the global id of each object it makes (for `nodes(ids:)`)."""

    conn: asyncpg.Connection
    ids: list[str] = field(default_factory=list)

    async def account(self, email: str, name: str, *, country: str | None = None) -> UUID:
        """An account that signs in with the demo password (copied from a demo account)."""
        account_id = uuid.uuid4()
        await self.conn.execute(
            "INSERT INTO accounts (id, email, name, country, password_hash) SELECT $1, $2, $3, $4, password_hash"
            " FROM accounts WHERE email = 'owner@northwind.example'", account_id, email, name, country)
        self.ids.append(gid("Account", account_id))
        return account_id

    async def member(self, organization: UUID, account: UUID, role: str, joined_at: datetime) -> None:
        await self.conn.execute("INSERT INTO memberships (account_id, organization_id, role, joined_at)"
                                " VALUES ($1, $2, $3, $4)", account, organization, role, joined_at)
        self.ids.append(gid("Member", f"a.{account}"))

    async def license(self, organization: UUID, sku: str, *, kind: str, quantity: int, expires_at: datetime | None,
                      seat_model: str = "NAMED", subscription: UUID | None = None) -> UUID:
        license_id = uuid.uuid4()
        await self.conn.execute(
            "INSERT INTO licenses (id, organization_id, product_id, subscription_id, kind, seat_model, quantity,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", license_id, organization,
            demo_id("product", sku), subscription, kind, seat_model, quantity, expires_at)
        self.ids.append(gid("License", license_id))
        return license_id

    async def allocate(self, license: UUID, account: UUID, *, at: datetime, by: UUID | None) -> None:
        await self.conn.execute("INSERT INTO allocations (license_id, account_id, allocated_at, allocated_by)"
                                " VALUES ($1, $2, $3, $4)", license, account, at, by)
        self.ids.append(gid("LicenseAllocation", f"{license}:{account}"))

    async def subscription(self, organization: UUID, sku: str, *, interval: str, status: str,
                           period_end: datetime, auto_renew: bool = True) -> UUID:
        subscription_id = uuid.uuid4()
        await self.conn.execute(
            "INSERT INTO subscriptions (id, organization_id, product_id, plan_interval, seats, status, auto_renew,"
            " current_period_start, current_period_end, unit_price, currency)"
            " VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, 100, 'USD')", subscription_id, organization,
            demo_id("product", sku), interval, status, auto_renew, period_end - timedelta(days=30), period_end)
        self.ids.append(gid("Subscription", subscription_id))
        return subscription_id

    async def invitation(self, organization: UUID, email: str, *, created_at: datetime, expires_at: datetime,
                         invited_by: UUID | None, role: str = "MEMBER", accepted: bool = False,
                         revoked: bool = False) -> UUID:
        invitation_id = uuid.uuid4()
        await self.conn.execute(
            "INSERT INTO invitations (id, organization_id, email, role, token_hash, invited_by, created_at,"
            " expires_at, accepted_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            invitation_id, organization, email, role, hashlib.sha256(invitation_id.bytes).digest(), invited_by,
            created_at, expires_at, created_at if accepted else None, created_at if revoked else None)
        self.ids += [gid("Invitation", invitation_id), gid("Member", f"i.{invitation_id}")]
        return invitation_id

    async def credit_access(self, organization: UUID, account: UUID, mode: str, quota: int | None = None) -> None:
        await self.conn.execute("INSERT INTO credit_access (account_id, organization_id, mode, quota)"
                                " VALUES ($1, $2, $3, $4)", account, organization, mode, quota)

    async def usage(self, organization: UUID, account: UUID | None, amount: int, used_at: datetime) -> None:
        usage_id = uuid.uuid4()
        await self.conn.execute("INSERT INTO credit_usage (id, organization_id, account_id, amount, description,"
                                " used_at) VALUES ($1, $2, $3, $4, 'boundary job', $5)",
                                usage_id, organization, account, amount, used_at)
        self.ids.append(gid("CloudCreditUsage", usage_id))

    async def grant(self, organization: UUID, amount: int, granted_at: datetime, expires_at: datetime | None) -> None:
        grant_id = uuid.uuid4()
        await self.conn.execute("INSERT INTO credit_grants (id, organization_id, amount, source, granted_at,"
                                " expires_at) VALUES ($1, $2, $3, 'PROMOTION', $4, $5)",
                                grant_id, organization, amount, granted_at, expires_at)
        self.ids.append(gid("CloudCredit", grant_id))

    async def credit_request(self, organization: UUID, account: UUID, amount: int, created_at: datetime) -> None:
        request_id = uuid.uuid4()
        await self.conn.execute("INSERT INTO credit_requests (id, organization_id, account_id, amount, created_at)"
                                " VALUES ($1, $2, $3, $4, $5)", request_id, organization, account, amount, created_at)
        self.ids.append(gid("CloudCreditRequest", request_id))

    async def audit(self, organization: UUID, actor: UUID | None, action: str, created_at: datetime,
                    service: str | None = None) -> None:
        entry = await self.conn.fetchval(
            "INSERT INTO audit_log (organization_id, actor_account_id, actor_service, action, target, created_at)"
            " VALUES ($1, $2, $3, $4, NULL, $5) RETURNING id", organization, actor, service, action, created_at)
        self.ids.append(gid("AuditLogEntry", entry))


@dataclass(frozen=True)
class Boundaries:
    now: datetime  # the instant the boundaries are measured from
    built: tuple[str, ...]  # global ids of what was built
    ids: tuple[str, ...]  # those, then ids next to them: demo objects of both organizations, and none
    timestamps: tuple[datetime, ...]  # the boundary instants, for DateTime arguments
    # The licenses built: global id -> what it stands for and its expiry, for the checks.
    licenses: dict[str, tuple[str, datetime | None]]


async def build(conn: asyncpg.Connection) -> Boundaries:
    """The boundary data in Northwind and Globex, next to the demo data."""
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    day = now - timedelta(days=1)
    b = Builder(conn)
    admin, owner = demo_account("admin@northwind.example"), demo_account("owner@northwind.example")
    member1 = demo_account("member1@northwind.example")
    globex_admin, globex_member = demo_account("admin@globex.example"), demo_account("member1@globex.example")

    async with conn.transaction():
        edge_a = await b.account(EDGE_MEMBER, "Edge A")
        edge_b = await b.account("edge.b@northwind.example", "Edge B")
        edge_c = await b.account("edge.c@northwind.example", "Edge C", country="FR")
        edge_d = await b.account("edge.d@northwind.example", "Edge D")
        # The member who left (`removeMember` drops the membership and the credit access): no
        # organization now, but the seat, the usage and the acts on record remain.
        removed = await b.account(REMOVED, "Once Member")
        await b.member(NORTHWIND, edge_a, "MEMBER", at_microseconds(day, 1))
        await b.member(NORTHWIND, edge_b, "MEMBER", at_microseconds(day, 999_999))
        await b.member(NORTHWIND, edge_c, "ADMIN", at_microseconds(day, 0))
        await b.member(NORTHWIND, edge_d, "MEMBER", at_microseconds(day, 120_000))

        window = now + EXPIRING_WITHIN
        expiries = {
            "expired 1 µs before now": (now - US, "SUBSCRIPTION", 2, [(edge_a, 1, admin), (edge_b, 999_999, None)]),
            "expires exactly now": (now, "TRIAL", 1, []),
            "expires 1 µs after now": (now + US, "BETA", 3, [(edge_c, 0, removed)]),
            "expires 1 µs inside the EXPIRING window": (window - US, "EDUCATIONAL", 2,
                                                        [(owner, 120_000, globex_admin), (edge_d, 10, admin)]),
            "expires at the end of the EXPIRING window": (window, "SUBSCRIPTION", 4, []),
            "expires 1 µs past the EXPIRING window": (window + US, "SUBSCRIPTION", 1, [(edge_a, 500_000, edge_a)]),
        }
        licenses: dict[str, tuple[str, datetime | None]] = {}
        for (what, (expires_at, kind, quantity, seats)), sku in zip(
                expiries.items(), ("LUMEN-RENDER", "SCENE-VIEWER", "VAPOR-FX", "ATLAS-SCATTER", "LUMEN-RENDER",
                                   "ATLAS-SCATTER")):
            subscription = None
            if kind == "SUBSCRIPTION":
                subscription = await b.subscription(NORTHWIND, sku, interval="YEAR", status="ACTIVE",
                                                    period_end=expires_at)
            license_id = await b.license(NORTHWIND, sku, kind=kind, quantity=quantity, expires_at=expires_at,
                                         subscription=subscription)
            licenses[gid("License", license_id)] = (what, expires_at)
            for holder, microseconds, by in seats:
                await b.allocate(license_id, holder, at=at_microseconds(day, microseconds), by=by)
        floating = await b.license(NORTHWIND, "LUMEN-BATCH", kind="SUBSCRIPTION", seat_model="FLOATING", quantity=5,
                                   expires_at=window + US)
        licenses[gid("License", floating)] = ("FLOATING, 1 µs past the EXPIRING window", window + US)
        # Perpetual: no expiry. Three seats taken at the same microsecond (their order falls to
        # the account id), one still held by the member who has since left.
        perpetual = await b.license(NORTHWIND, "VAPOR-FX", kind="PERPETUAL", quantity=3, expires_at=None)
        licenses[gid("License", perpetual)] = ("perpetual, full", None)
        for holder in (member1, edge_b, removed):
            await b.allocate(perpetual, holder, at=at_microseconds(day, 999_999), by=edge_c)
        await b.subscription(NORTHWIND, "ATLAS-SCATTER", interval="MONTH", status="ACTIVE",
                             period_end=now + timedelta(days=14) + US)

        globex_now = await b.license(GLOBEX, "SCENE-VIEWER", kind="TRIAL", quantity=1, expires_at=now)
        licenses[gid("License", globex_now)] = ("Globex: expires exactly now, full", now)
        await b.allocate(globex_now, globex_member, at=at_microseconds(day, 1), by=edge_a)
        globex_window = await b.license(GLOBEX, "LUMEN-RENDER", kind="EDUCATIONAL", quantity=2, expires_at=window)
        licenses[gid("License", globex_window)] = ("Globex: at the end of the EXPIRING window, empty", window)
        globex_edge = await b.account("edge@globex.example", "Edge G")
        await b.member(GLOBEX, globex_edge, "MEMBER", at_microseconds(day, 654_321))

        # Pending invitations are members with no account; the others are only invitations.
        week = timedelta(days=7)
        await b.invitation(NORTHWIND, "pending.a@example.com", created_at=at_microseconds(day, 1),
                           expires_at=now + week, invited_by=admin)
        await b.invitation(NORTHWIND, "pending.b@example.com", created_at=at_microseconds(day, 0),
                           expires_at=now + week - US, invited_by=None, role="ADMIN")
        await b.invitation(NORTHWIND, "pending.c@example.com", created_at=at_microseconds(day, 120_000),
                           expires_at=now + week + US, invited_by=removed)
        await b.invitation(NORTHWIND, "lapsed.now@example.com", created_at=now - week, expires_at=now,
                           invited_by=admin)
        await b.invitation(NORTHWIND, "lapsed.before@example.com", created_at=now - week - US,
                           expires_at=now - US, invited_by=admin)
        await b.invitation(NORTHWIND, "lapsed.after@example.com", created_at=now - week + US,
                           expires_at=now + US, invited_by=globex_admin)
        await b.invitation(NORTHWIND, "revoked@example.com", created_at=at_microseconds(day, 999_999),
                           expires_at=now + week, invited_by=admin, revoked=True)
        await b.invitation(NORTHWIND, EDGE_MEMBER, created_at=at_microseconds(day - timedelta(days=1), 10),
                           expires_at=now + week, invited_by=admin, accepted=True)

        # Credit access of every mode and a quota already used up; usage by nobody and by the
        # member who left; grants lapsing around now and one that never does.
        await b.credit_access(NORTHWIND, edge_a, "QUOTA", 0)
        await b.credit_access(NORTHWIND, edge_b, "DISABLED")
        await b.credit_access(NORTHWIND, edge_c, "QUOTA", 500)
        await b.usage(NORTHWIND, edge_c, 700, now - US)
        await b.usage(NORTHWIND, edge_d, 1, at_microseconds(day, 999_999))
        await b.usage(NORTHWIND, removed, 40, now)
        await b.usage(NORTHWIND, None, 3, at_microseconds(day, 120_000))
        await b.grant(NORTHWIND, 100, at_microseconds(day, 1), now - US)
        await b.grant(NORTHWIND, 200, at_microseconds(day, 0), now)
        await b.grant(NORTHWIND, 300, at_microseconds(day, 999_999), now + US)
        await b.grant(NORTHWIND, 400, at_microseconds(day, 120_000), None)
        await b.credit_request(NORTHWIND, edge_a, 250, now - US)

        await b.audit(NORTHWIND, removed, "boundary.removed-actor", at_microseconds(day, 1))
        await b.audit(NORTHWIND, None, "boundary.service", now - US, service="boundary-tool")
        await b.audit(NORTHWIND, edge_c, "boundary.member-actor", now)

    neighbours = [gid("Organization", NORTHWIND), gid("Organization", GLOBEX),
                  gid("Account", owner), gid("Account", globex_admin), gid("Account", globex_member),
                  gid("Member", f"a.{member1}"), gid("License", demo_id("license", "globex", "ATLAS-SCATTER")),
                  gid("Product", demo_id("product", "LUMEN-RENDER")),
                  gid("Invitation", demo_id("invitation", "globex")),
                  gid("License", uuid.UUID(int=0)), "bm9wZQ==", ""]
    instants = (now - US, now, now + US, window - US, window, window + US)
    return Boundaries(now, tuple(b.ids), tuple(b.ids + neighbours), instants, licenses)
