"""An organization's people (members and pending invitations), invitations and audit log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from datasources.paging import Page, Slice
from datasources.postgres.database import Executor, in_key_order
from datasources.postgres.paging import fetch_page, opaque_limit


@dataclass(frozen=True)
class MemberRow:
    """A member, or a pending invitation shown in the member list as INVITED."""

    organization_id: UUID
    status: str  # ACTIVE or INVITED
    account_id: UUID | None
    invitation_id: UUID | None
    email: str
    role: str
    joined_at: datetime | None  # a member's
    invited_at: datetime | None  # an invitee's

    @property
    def key_id(self) -> UUID:
        return self.account_id or self.invitation_id  # type: ignore[return-value]


@dataclass(frozen=True)
class MemberQuery:
    """Search and filters of the member list (hashable: a loader key)."""

    organization_id: UUID
    search: str | None = None
    role: str | None = None
    product_id: UUID | None = None


@dataclass(frozen=True)
class Invitation:
    id: UUID
    organization_id: UUID
    email: str
    role: str
    invited_by: UUID | None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    name: str = ""  # as the inviter gave it; empty when they gave none


@dataclass(frozen=True)
class AuditEntry:
    id: int
    organization_id: UUID
    actor_account_id: UUID | None
    actor_service: str | None
    action: str
    target: str | None
    details: str
    reason: str | None
    outcome: str
    created_at: datetime
    scope: str | None  # the staff role or service scope the vendor acted under


_PENDING = "i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()"


def member_count(organization: str) -> str:
    """How many rows `member_rows` has without a filter: the members as kept by migration
    0019's triggers (a handful of rows, however large the organization), and the pending
    invitations counted, since they lapse with time."""
    return (f"SELECT (SELECT coalesce(sum(delta), 0) FROM member_count_deltas WHERE organization_id = {organization})"
            f" + (SELECT count(*) FROM invitations i WHERE i.organization_id = {organization} AND {_PENDING}) AS total")


def member_rows(organization: str, product: str, first: int | str | None = None, where: str = "true",
                order: str = "email, key_id", names: bool = True) -> str:
    """The member list of the organization `organization` (SQL: a parameter or a column),
    narrowed to holders of `product` (a uuid parameter, or NULL for everyone). With `first`,
    only the first rows by `order` (email, key_id, either way) of each part that pass `where`
    (a keyset condition on those columns): each part is read from an index in that order
    (migration 0008), however large the organization. The name is a subquery, not a join,
    so that under a LIMIT PostgreSQL reads it for the rows kept, not for every member it sorts.
    Without `names` the name is NULL: a statement that builds the page as JSON has no use for it
    (the Member type has no name; its account has), and a page of members read each one's
    account twice."""
    name = "(SELECT a.name FROM accounts a WHERE a.id = m.account_id)" if names else "NULL::text"
    members = f"""
    SELECT m.organization_id, 'ACTIVE' AS status, m.account_id, NULL::uuid AS invitation_id,
           m.email, {name} AS name, m.role::text AS role,
           m.joined_at, NULL::timestamptz AS invited_at, m.account_id AS key_id
    FROM memberships m
    WHERE m.organization_id = {organization}
      AND ({product}::uuid IS NULL OR EXISTS (
            SELECT 1 FROM allocations al JOIN licenses l ON l.id = al.license_id
            WHERE al.account_id = m.account_id AND l.organization_id = {organization} AND l.product_id = {product}))"""
    invited = f"""
    SELECT i.organization_id, 'INVITED' AS status, NULL::uuid AS account_id, i.id AS invitation_id, i.email AS email,
           '' AS name, i.role::text AS role, NULL::timestamptz AS joined_at, i.created_at AS invited_at,
           i.id AS key_id
    FROM invitations i
    WHERE i.organization_id = {organization} AND {_PENDING} AND {product}::uuid IS NULL"""
    if first is not None:
        limit = first if isinstance(first, str) else opaque_limit(first)  # a placeholder, or a number
        members, invited = (f"(SELECT * FROM ({part}) AS part WHERE {where} ORDER BY {order} LIMIT {limit})"
                            for part in (members, invited))
    return f"{members}\n    UNION ALL{invited}"


_MEMBERS = member_rows("$1", "$4")


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def member_key(row: MemberRow) -> tuple[object, ...]:
    return (row.email, row.key_id)


async def members_page(db: Executor, query: MemberQuery, slice: Slice) -> Page[MemberRow]:
    """Members and pending invitees, by email; search matches email, name or role."""
    matching = f"""
        SELECT * FROM ({_MEMBERS}) AS people
        WHERE ($2::text IS NULL OR email ILIKE $2 OR name ILIKE $2 OR role = upper($3))
          AND ($5::text IS NULL OR role = $5)"""
    search = query.search.strip() if query.search else None
    # The whole list: read in key order from the indexes, counted from them.
    everyone = not search and query.product_id is None and query.role is None
    return await fetch_page(
        db, matching=matching,
        candidates=(lambda where, order, limit: member_rows("$1", "NULL", limit, where, order)) if everyone else None,
        count=member_count("$1") if everyone else None,
        args=[query.organization_id, _like(search) if search else None, search or "", query.product_id, query.role],
        key_columns=["email", "key_id"], key_types=["text", "uuid"], descending=False, slice=slice,
        row=lambda r: MemberRow(r["organization_id"], r["status"], r["account_id"], r["invitation_id"],
                                r["email"], r["role"], r["joined_at"], r["invited_at"]),
        sort_key=member_key)


_INVITATION = ("SELECT i.id, i.organization_id, i.email, i.role::text AS role, i.invited_by, i.created_at,"
               " i.expires_at, i.accepted_at, i.revoked_at, i.name FROM invitations i")


async def invitations_by_ids(db: Executor, ids: Sequence[UUID]) -> list[Invitation | None]:
    rows = await db.fetch(f"{_INVITATION} WHERE i.id = ANY($1::uuid[])", list(ids))
    return in_key_order(ids, {r["id"]: Invitation(**r) for r in rows})


def invitation_key(invitation: Invitation) -> tuple[object, ...]:
    return (invitation.created_at, invitation.id)


async def invitations_page(db: Executor, organization_id: UUID, pending_only: bool, slice: Slice) -> Page[Invitation]:
    """Newest first."""
    return await fetch_page(
        db, matching=f"{_INVITATION} WHERE i.organization_id = $1 AND (NOT $2 OR ({_PENDING}))",
        args=[organization_id, pending_only], key_columns=["created_at", "id"],
        key_types=["timestamptz", "uuid"], descending=True, slice=slice,
        row=lambda r: Invitation(**{k: r[k] for k in Invitation.__dataclass_fields__}), sort_key=invitation_key)


_AUDIT = ("SELECT id, organization_id, actor_account_id, actor_service, action, target, details::text AS details,"
          " reason, outcome, created_at, scope FROM audit_log")


def audit_key(entry: AuditEntry) -> tuple[object, ...]:
    return (entry.id,)


@dataclass(frozen=True)
class AuditQuery:
    """Which entries of an organization's audit log (hashable: a loader key)."""

    organization_id: UUID
    action: str | None = None
    actor_account_id: UUID | None = None


async def audit_page(db: Executor, query: AuditQuery, slice: Slice) -> Page[AuditEntry]:
    """Newest first."""
    return await fetch_page(
        db, matching=f"""{_AUDIT} WHERE organization_id = $1 AND ($2::text IS NULL OR action = $2)
                          AND ($3::uuid IS NULL OR actor_account_id = $3)""",
        args=[query.organization_id, query.action, query.actor_account_id], key_columns=["id"],
        key_types=["bigint"], descending=True, slice=slice,
        row=lambda r: AuditEntry(**{k: r[k] for k in AuditEntry.__dataclass_fields__}), sort_key=audit_key)


async def audit_entries_by_ids(db: Executor, ids: Sequence[int]) -> list[AuditEntry | None]:
    rows = await db.fetch(f"{_AUDIT} WHERE id = ANY($1::bigint[])", list(ids))
    return in_key_order(ids, {r["id"]: AuditEntry(**r) for r in rows})
