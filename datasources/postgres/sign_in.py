"""Corporate sign-in: each organization's OpenID provider and email domains, sign-ins under
way, one-time codes and the provider identities linked to accounts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from datasources.postgres.database import Executor, in_key_order

ATTEMPT_MINUTES = 10  # from /sso/start to the provider's answer
CODE_SECONDS = 120  # from /sso/callback to completeSignIn


@dataclass(frozen=True)
class EmailDomain:
    organization_id: UUID
    domain: str
    status: str  # PENDING, CONFIRMED, REJECTED
    requested_at: datetime
    decided_at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class SignInConfig:
    organization_id: UUID
    issuer: str
    client_id: str
    client_secret: str
    enforce: bool
    updated_at: datetime
    domains: tuple[EmailDomain, ...] = ()


@dataclass(frozen=True)
class Attempt:
    organization_id: UUID
    nonce: str
    code_verifier: str
    email: str


_DOMAIN_COLUMNS = "organization_id, domain, status, requested_at, decided_at, reason"
_CONFIG_COLUMNS = "organization_id, issuer, client_id, client_secret, enforce, updated_at"


async def configs_of_organizations(db: Executor, organization_ids: Sequence[UUID]) -> list[SignInConfig | None]:
    """Each organization's sign-in settings with its domains (by name), or None."""
    ids = list(organization_ids)
    configs = await db.fetch(f"SELECT {_CONFIG_COLUMNS} FROM sign_in_configs WHERE organization_id = ANY($1::uuid[])",
                             ids)
    domains = await db.fetch(f"SELECT {_DOMAIN_COLUMNS} FROM email_domains WHERE organization_id = ANY($1::uuid[])"
                             " ORDER BY domain", ids)
    found = {r["organization_id"]: SignInConfig(**r, domains=tuple(
        EmailDomain(**d) for d in domains if d["organization_id"] == r["organization_id"])) for r in configs}
    return in_key_order(ids, found)


async def lock_config(conn: asyncpg.Connection, organization_id: UUID) -> SignInConfig | None:
    """The organization's settings, its row queued first so that changes to them go one at a time."""
    await conn.execute("SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE", organization_id)
    [found] = await configs_of_organizations(conn, [organization_id])
    return found


async def save_config(conn: asyncpg.Connection, organization_id: UUID, *, issuer: str, client_id: str,
                      client_secret: str, enforce: bool, actor: UUID) -> None:
    await conn.execute(
        "INSERT INTO sign_in_configs (organization_id, issuer, client_id, client_secret, enforce, updated_by)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (organization_id) DO UPDATE SET issuer = $2, client_id = $3,"
        " client_secret = $4, enforce = $5, updated_by = $6, updated_at = now()",
        organization_id, issuer, client_id, client_secret, enforce, actor)


async def replace_domains(conn: asyncpg.Connection, organization_id: UUID, domains: Sequence[str]) -> None:
    """The organization claims exactly `domains`: new ones wait for staff, those left out are released."""
    await conn.execute("DELETE FROM email_domains WHERE organization_id = $1 AND NOT (domain = ANY($2::text[]))",
                       organization_id, list(domains))
    await conn.executemany(
        "INSERT INTO email_domains (id, organization_id, domain) VALUES ($1, $2, $3)"
        " ON CONFLICT (organization_id, domain) DO NOTHING",
        [(uuid.uuid4(), organization_id, d) for d in domains])


async def confirmed_elsewhere(conn: Executor, organization_id: UUID, domains: Sequence[str]) -> list[str]:
    """Those of `domains` confirmed for another organization."""
    rows = await conn.fetch("SELECT domain FROM email_domains WHERE domain = ANY($1::text[]) AND status = 'CONFIRMED'"
                            " AND organization_id <> $2 ORDER BY domain", list(domains), organization_id)
    return [r["domain"] for r in rows]


async def reset_confirmations(conn: asyncpg.Connection, organization_id: UUID) -> int:
    """The organization's confirmed domains back to PENDING: its provider changed, so staff check again."""
    done = await conn.execute("UPDATE email_domains SET status = 'PENDING', decided_by = NULL, decided_at = NULL,"
                              " reason = NULL WHERE organization_id = $1 AND status = 'CONFIRMED'", organization_id)
    return int(done.split()[-1])


async def decide_domain(conn: asyncpg.Connection, organization_id: UUID, domain: str, status: str,
                        staff_account: UUID | None, reason: str) -> EmailDomain | None:
    """Staff's answer to an organization's claim; None when it made no such claim.

    The domain's advisory lock first: two confirmations for different organizations queue, and
    the second finds the first (`confirmed_elsewhere`) instead of failing on the unique index.
    """
    await lock_domain(conn, domain)
    row = await conn.fetchrow(
        f"UPDATE email_domains SET status = $3, decided_by = $4, decided_at = now(), reason = $5"
        f" WHERE organization_id = $1 AND domain = $2 RETURNING {_DOMAIN_COLUMNS}",
        organization_id, domain, status, staff_account, reason)
    return EmailDomain(**row) if row else None


async def lock_domain(conn: asyncpg.Connection, domain: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('email_domain:' || $1))", domain)


async def config_for_domain(db: Executor, domain: str) -> SignInConfig | None:
    """The settings of the organization whose confirmed domain this is, if it configured sign-in."""
    row = await db.fetchrow(
        f"SELECT {', '.join('c.' + c for c in _CONFIG_COLUMNS.split(', '))} FROM email_domains d"
        " JOIN sign_in_configs c USING (organization_id) WHERE d.domain = $1 AND d.status = 'CONFIRMED'", domain)
    return SignInConfig(**row) if row else None


async def create_attempt(db: Executor, state_hash: bytes, organization_id: UUID, *, nonce: str, code_verifier: str,
                         email: str) -> None:
    # Attempts that were never finished go after a day: no one can finish them any more.
    await db.execute("DELETE FROM sign_in_attempts WHERE expires_at < now() - interval '1 day'")
    await db.execute(
        "INSERT INTO sign_in_attempts (state_hash, organization_id, nonce, code_verifier, email, expires_at)"
        f" VALUES ($1, $2, $3, $4, $5, now() + interval '{ATTEMPT_MINUTES} minutes')",
        state_hash, organization_id, nonce, code_verifier, email)


async def take_attempt(db: Executor, state_hash: bytes) -> Attempt | None:
    """The sign-in `state` belongs to, used up now; None when unknown, used or expired."""
    row = await db.fetchrow(
        "UPDATE sign_in_attempts SET used_at = now() WHERE state_hash = $1 AND used_at IS NULL AND expires_at > now()"
        " RETURNING organization_id, nonce, code_verifier, email", state_hash)
    return Attempt(**row) if row else None


async def identity_account(conn: Executor, issuer: str, subject: str) -> UUID | None:
    return await conn.fetchval("SELECT account_id FROM external_identities WHERE issuer = $1 AND subject = $2",
                               issuer, subject)


async def link_identity(conn: Executor, issuer: str, subject: str, account_id: UUID, organization_id: UUID) -> None:
    await conn.execute(
        "INSERT INTO external_identities (issuer, subject, account_id, organization_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (issuer, subject) DO UPDATE SET last_sign_in_at = now()",
        issuer, subject, account_id, organization_id)


async def create_code(conn: Executor, code_hash: bytes, account_id: UUID) -> None:
    await conn.execute("DELETE FROM sign_in_codes WHERE expires_at < now() - interval '1 day'")
    await conn.execute(
        "INSERT INTO sign_in_codes (code_hash, account_id, expires_at)"
        f" VALUES ($1, $2, now() + interval '{CODE_SECONDS} seconds')", code_hash, account_id)


async def take_code(conn: Executor, code_hash: bytes) -> UUID | None:
    """The account a one-time code signs in, the code used up now; None when unknown, used or expired."""
    return await conn.fetchval(
        "UPDATE sign_in_codes SET used_at = now() WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now()"
        " RETURNING account_id", code_hash)


async def governed_by(db: Executor, account_id: object, organization_id: UUID) -> bool:
    """Whether the organization's sign-in rules apply to the account: it is the organization's or
    in none, and it holds no staff role (staff never sign in through a customer's provider)."""
    return await db.fetchval(
        "SELECT NOT EXISTS (SELECT 1 FROM staff_roles WHERE account_id = $1 AND revoked_at IS NULL)"
        " AND coalesce((SELECT organization_id = $2 FROM memberships WHERE account_id = $1), true)",
        account_id, organization_id)


async def claim_invitation(conn: asyncpg.Connection, organization_id: UUID, emails: Sequence[str]) -> str | None:
    """The role of a pending invitation of the organization for the address, accepted now; None
    when there is none (a person signing in just in time then joins as MEMBER)."""
    return await conn.fetchval(
        "UPDATE invitations SET accepted_at = now() WHERE id = (SELECT id FROM invitations WHERE organization_id = $1"
        " AND email = ANY($2::text[]) AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()"
        " ORDER BY created_at DESC LIMIT 1 FOR UPDATE) RETURNING role::text", organization_id, list(emails))


async def deprovisioned(conn: Executor, organization_id: UUID, emails: Sequence[str]) -> bool:
    """Whether the organization's SCIM provisioning has the person deactivated (`active: false`)."""
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM scim_users WHERE organization_id = $1"
                               " AND email = ANY($2::text[]) AND NOT active)", organization_id, list(emails))
