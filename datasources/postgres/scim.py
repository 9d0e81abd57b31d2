"""SCIM provisioning: the organizations' SCIM tokens and the people their identity provider
provisioned (`scim_users`).

A provisioned person is linked to the organization's people by email: the account with that
email (and its membership here, if any), or the invitation sent to it while the person has no
account in the organization yet. Writes take the caller's connection; the caller locks the
organization row first (people.lock_organization), so that every SCIM change of one
organization, and every invitation into it, runs one after the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from datasources.postgres import service_tokens
from datasources.postgres.database import Executor

@dataclass(frozen=True)
class ScimToken:
    id: UUID
    organization_id: UUID
    name: str
    created_by: UUID | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_TOKEN_COLUMNS = "id, organization_id, name, created_by, created_at, last_used_at, revoked_at"


def _token(row: asyncpg.Record) -> ScimToken:
    return ScimToken(**dict(row))


async def create_token(conn: asyncpg.Connection, *, organization_id: UUID, name: str, token_hash: bytes,
                       created_by: UUID) -> ScimToken:
    row = await conn.fetchrow(
        f"INSERT INTO scim_tokens (id, organization_id, name, token_hash, created_by) VALUES ($1, $2, $3, $4, $5)"
        f" RETURNING {_TOKEN_COLUMNS}", uuid4(), organization_id, name, token_hash, created_by)
    return _token(row)


async def tokens_of(db: Executor, organization_id: UUID) -> list[ScimToken]:
    """Live tokens first, then revoked ones; each group oldest first."""
    rows = await db.fetch(f"SELECT {_TOKEN_COLUMNS} FROM scim_tokens WHERE organization_id = $1"
                          " ORDER BY revoked_at IS NOT NULL, created_at, id", organization_id)
    return [_token(r) for r in rows]


async def token_for_update(conn: asyncpg.Connection, token_id: UUID) -> ScimToken | None:
    row = await conn.fetchrow(f"SELECT {_TOKEN_COLUMNS} FROM scim_tokens WHERE id = $1 FOR UPDATE", token_id)
    return _token(row) if row else None


async def revoke_token(conn: asyncpg.Connection, token_id: UUID) -> ScimToken:
    row = await conn.fetchrow(f"UPDATE scim_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1"
                              f" RETURNING {_TOKEN_COLUMNS}", token_id)
    return _token(row)


async def live_token(db: Executor, token_hash: bytes) -> ScimToken | None:
    """The unrevoked token with this hash, noting its use (at most once a minute), in one statement."""
    row = await service_tokens.live_row(db, "scim_tokens", _TOKEN_COLUMNS, token_hash)
    return _token(row) if row else None


@dataclass(frozen=True)
class ScimUser:
    """A provisioned person, with where they stand in the organization now."""

    id: UUID
    organization_id: UUID
    user_name: str
    external_id: str | None
    email: str
    invitation_id: UUID | None
    active: bool
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int
    account_id: UUID | None  # the account with `email`, if any
    account_name: str | None
    account_organization_id: UUID | None  # that account's organization, if any
    role: str | None  # their role here when they are a member
    invitation_pending: bool  # `invitation_id` names an unanswered, unexpired invitation


@dataclass(frozen=True)
class ScimUserQuery:
    """Equality conditions, all of which hold (a filter's `and`); an empty query lists all."""

    organization_id: UUID
    user_names: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    ids: tuple[UUID | None, ...] = ()  # None: an id no resource has (a malformed one)
    active: tuple[bool, ...] = ()


_USER_SELECT = """
    SELECT su.id, su.organization_id, su.user_name, su.external_id, su.email, su.invitation_id, su.active,
           su.attributes, su.created_at, su.updated_at, su.version,
           a.id AS account_id, a.name AS account_name, m.organization_id AS account_organization_id,
           CASE WHEN m.organization_id = su.organization_id THEN m.role::text END AS role,
           coalesce(i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now(), false)
               AS invitation_pending
    FROM scim_users su
    LEFT JOIN accounts a ON a.email = su.email
    LEFT JOIN memberships m ON m.account_id = a.id
    LEFT JOIN invitations i ON i.id = su.invitation_id
"""


def _user(row: asyncpg.Record) -> ScimUser:
    values = dict(row)
    values["attributes"] = json.loads(values["attributes"]) if isinstance(values["attributes"], str) \
        else values["attributes"]
    return ScimUser(**values)


async def user(db: Executor, organization_id: UUID, user_id: UUID, *, for_update: bool = False) -> ScimUser | None:
    """The organization's provisioned person (None for another organization's: never revealed)."""
    lock = " FOR UPDATE OF su" if for_update else ""
    row = await db.fetchrow(f"{_USER_SELECT} WHERE su.organization_id = $1 AND su.id = $2{lock}",
                            organization_id, user_id)
    return _user(row) if row else None


def _conditions(query: ScimUserQuery) -> tuple[str, list[Any]]:
    clauses, args = ["su.organization_id = $1"], [query.organization_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    clauses += [f"lower(su.user_name) = lower({arg(v)})" for v in query.user_names]
    clauses += [f"su.external_id = {arg(v)}" for v in query.external_ids]
    clauses += [f"(su.email = lower({(p := arg(v))}) OR EXISTS (SELECT 1 FROM jsonb_array_elements("
                f"CASE jsonb_typeof(su.attributes->'emails') WHEN 'array' THEN su.attributes->'emails'"
                f" ELSE '[]' END) e WHERE lower(e->>'value') = lower({p})))" for v in query.emails]
    clauses += [f"su.id = {arg(v)}" if v is not None else "false" for v in query.ids]
    clauses += [f"su.active = {arg(v)}" for v in query.active]
    return " AND ".join(clauses), args


async def users_page(db: Executor, query: ScimUserQuery, offset: int, limit: int) -> tuple[int, list[ScimUser]]:
    """(total matching, the page), oldest first: a stable order for startIndex paging."""
    where, args = _conditions(query)
    total = await db.fetchval(f"SELECT count(*) FROM scim_users su WHERE {where}", *args)
    if limit == 0:
        return total, []
    rows = await db.fetch(f"{_USER_SELECT} WHERE {where} ORDER BY su.created_at, su.id"
                          f" OFFSET {int(offset)} LIMIT {int(limit)}", *args)
    return total, [_user(r) for r in rows]


async def taken(conn: asyncpg.Connection, organization_id: UUID, user_name: str, email: str,
                but: UUID | None = None) -> str | None:
    """Which of userName and email another provisioned person of the organization already has."""
    row = await conn.fetchrow(
        "SELECT lower(user_name) = lower($2) AS by_name, email = $3 AS by_email FROM scim_users"
        " WHERE organization_id = $1 AND (lower(user_name) = lower($2) OR email = $3)"
        " AND id IS DISTINCT FROM $4 LIMIT 1", organization_id, user_name, email, but)
    if row is None:
        return None
    return "userName" if row["by_name"] else "email"


async def insert_user(conn: asyncpg.Connection, *, organization_id: UUID, user_name: str, external_id: str | None,
                      email: str, invitation_id: UUID | None, active: bool, attributes: dict[str, Any]) -> UUID:
    return await conn.fetchval(
        "INSERT INTO scim_users (id, organization_id, user_name, external_id, email, invitation_id, active,"
        " attributes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) RETURNING id",
        uuid4(), organization_id, user_name, external_id, email, invitation_id, active, json.dumps(attributes))


async def update_user(conn: asyncpg.Connection, user_id: UUID, *, user_name: str, external_id: str | None,
                      invitation_id: UUID | None, active: bool, attributes: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE scim_users SET user_name = $2, external_id = $3, invitation_id = $4, active = $5,"
        " attributes = $6::jsonb, updated_at = now(), version = version + 1 WHERE id = $1",
        user_id, user_name, external_id, invitation_id, active, json.dumps(attributes))


async def delete_user(conn: asyncpg.Connection, user_id: UUID) -> None:
    await conn.execute("DELETE FROM scim_users WHERE id = $1", user_id)


async def members_by_role(db: Executor, organization_id: UUID) -> list[tuple[UUID, str, str]]:
    """(SCIM id, userName, role) of the provisioned people who are members here, by userName."""
    rows = await db.fetch(
        "SELECT su.id, su.user_name, m.role::text AS role FROM scim_users su"
        " JOIN accounts a ON a.email = su.email"
        " JOIN memberships m ON m.account_id = a.id AND m.organization_id = su.organization_id"
        " WHERE su.organization_id = $1 ORDER BY lower(su.user_name), su.id", organization_id)
    return [(r["id"], r["user_name"], r["role"]) for r in rows]


async def create_account_without_password(conn: asyncpg.Connection, *, email: str, name: str) -> UUID | None:
    """An account for corporate sign-in (no password); None when one with this email exists."""
    return await conn.fetchval(
        "INSERT INTO accounts (id, email, name, password_hash) VALUES ($1, $2, $3, NULL)"
        " ON CONFLICT (email) DO NOTHING RETURNING id", uuid4(), email, name)


async def set_account_name(conn: asyncpg.Connection, account_id: UUID, name: str) -> None:
    await conn.execute("UPDATE accounts SET name = $2 WHERE id = $1", account_id, name)


async def set_invitation_role(conn: asyncpg.Connection, invitation_id: UUID, role: str) -> None:
    await conn.execute("UPDATE invitations SET role = $2::organization_role WHERE id = $1", invitation_id, role)


async def pending_invitation(conn: asyncpg.Connection, organization_id: UUID, email: str) -> UUID | None:
    """The newest unanswered, unexpired invitation of this email into the organization, locked."""
    return await conn.fetchval(
        "SELECT id FROM invitations WHERE organization_id = $1 AND email = $2 AND accepted_at IS NULL"
        " AND revoked_at IS NULL AND expires_at > now() ORDER BY created_at DESC LIMIT 1 FOR UPDATE",
        organization_id, email)
