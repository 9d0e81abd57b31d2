"""The audit log: who did what to which target, when, and how it ended."""

from __future__ import annotations

import json
from uuid import UUID

from datasources.postgres.database import Executor


async def record(db: Executor, *, organization_id: UUID | None, actor_account_id: UUID | None,
                 action: str, target: str | None, outcome: str = "SUCCESS", details: dict | None = None,
                 actor_service: str | None = None, reason: str | None = None, scope: str | None = None) -> None:
    """`scope`: the staff role or service scope the vendor acted under (None for customers)."""
    await db.execute(
        "INSERT INTO audit_log (organization_id, actor_account_id, actor_service, action, target, details,"
        " reason, outcome, scope) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)",
        organization_id, actor_account_id, actor_service, action, target,
        json.dumps(details or {}, default=str), reason, outcome, scope)
