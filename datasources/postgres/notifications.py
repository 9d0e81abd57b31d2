"""Notification preferences (migration 0011) and who is mailed about an event."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from datasources.postgres.database import PORTAL_URL_SETTING, Executor


@dataclass(frozen=True)
class Preference:
    """A choice that differs from the account's default."""

    account_id: UUID
    kind: str
    mail: bool


async def preferences_of_accounts(db: Executor, account_ids: Sequence[UUID]) -> list[Preference]:
    rows = await db.fetch("SELECT account_id, kind, mail FROM notification_preferences"
                          " WHERE account_id = ANY($1::uuid[]) ORDER BY account_id, kind", list(account_ids))
    return [Preference(**r) for r in rows]


async def save_preferences(conn: asyncpg.Connection, account_id: UUID, chosen: Mapping[str, bool],
                           defaults: Mapping[str, bool]) -> None:
    """Stores each choice that differs from its default and forgets those that equal it."""
    keep = {kind: mail for kind, mail in chosen.items() if mail != defaults[kind]}
    # One account's saves one at a time: two at once deleted and upserted the same rows in
    # different orders and PostgreSQL ended one with "deadlock detected" (a 500 to the client).
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"notification-preferences:{account_id}")
    await conn.execute("DELETE FROM notification_preferences WHERE account_id = $1 AND kind = ANY($2::text[])",
                       account_id, [k for k in chosen if k not in keep])
    await conn.execute(
        "INSERT INTO notification_preferences (account_id, kind, mail)"
        " SELECT $1, kind, mail FROM unnest($2::text[], $3::boolean[]) AS c (kind, mail)"
        " ON CONFLICT (account_id, kind) DO UPDATE SET mail = excluded.mail, updated_at = now()",
        account_id, list(keep), list(keep.values()))


@dataclass(frozen=True)
class Recipient:
    """Someone to mail about an event, with the facts the mail names (None where the event has
    no such subject)."""

    email: str
    name: str
    organization_name: str
    portal_url: str | None  # the connection's setting (Database.connect); None on other connections
    product_name: str | None  # the license's product
    subject_name: str | None  # the account the event is about (who joined)
    subject_email: str | None
    request_amount: int | None  # the credit request's amount


async def recipients(conn: asyncpg.Connection, kind: str, *, organization_id: UUID | None,
                     account_id: UUID | None, to_managers: bool, on_by_default_for: Sequence[str],
                     license_id: UUID | None = None, subject_account_id: UUID | None = None,
                     request_id: UUID | None = None) -> list[Recipient]:
    """In one statement: the OWNER and ADMINs of `organization_id` (`to_managers`), or the
    account `account_id` while it is a member of that organization, who want mail of `kind`
    (a manager is not told about themselves: the ADMIN who just joined):
    their stored choice, else the default of their role (`on_by_default_for`); and the facts
    their mail names."""
    rows = await conn.fetch(
        f"""SELECT a.email, a.name, o.name AS organization_name,
                   nullif(current_setting('{PORTAL_URL_SETTING}', true), '') AS portal_url,
                   (SELECT p.name FROM licenses l JOIN products p ON p.id = l.product_id WHERE l.id = $6)
                       AS product_name,
                   s.name AS subject_name, s.email AS subject_email,
                   (SELECT r.amount FROM credit_requests r WHERE r.id = $8) AS request_amount
            FROM memberships m
            JOIN accounts a ON a.id = m.account_id
            JOIN organizations o ON o.id = m.organization_id
            LEFT JOIN accounts s ON s.id = $7
            LEFT JOIN notification_preferences np ON np.account_id = m.account_id AND np.kind = $1
            WHERE CASE WHEN $4 THEN m.organization_id = $2 AND m.role IN ('OWNER', 'ADMIN')
                                    AND m.account_id IS DISTINCT FROM $7
                       ELSE m.account_id = $3 AND ($2::uuid IS NULL OR m.organization_id = $2) END
              AND coalesce(np.mail, m.role::text = ANY($5::text[]))
            ORDER BY m.role, a.email""",
        kind, organization_id, account_id, to_managers, list(on_by_default_for), license_id, subject_account_id,
        request_id)
    return [Recipient(**r) for r in rows]
