"""What every mutation shares: its authorization by the access table (`auth.access`),
idempotency, the audit log, mail, and fresh loaders afterwards.

A mutation runs its checks and writes in one transaction (`ctx.db.transaction()`), records
its audit entry, queues its mail and reports its events (`report`, after its last write) in
that same transaction, and then calls `after_write` so that the payload reads the new state.
A change made on a customer's behalf (`OnBehalf`) also reports STAFF_ACTION_TAKEN, from
`audit_success`, since every such change is audited with its scope and reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from auth import access
from auth.viewer import NOT_AUTHENTICATED, require_account
from datasources.errors import Forbidden, NotFound, Unauthenticated
from datasources.postgres import audit, billing_mirror, idempotency, outbox
from resolvers import events
from resolvers.context import Context
from resolvers.permissions import kinds_everywhere, kinds_in, kinds_of_own, refusal
from resolvers.user_errors import Problem

MAX_KEY_LENGTH = 200
NOT_FOUND = "No such object, or it is not visible to you."
MANAGERS_ONLY = "Only the organization's OWNER or ADMIN can do this."
CUSTOMERS = frozenset({access.MEMBER, access.MANAGER})


async def require_change(ctx: Context, mutation: str) -> None:
    """Before a mutation reads anything, its target included: refuses now those whom its row
    refuses wherever the target is: anonymous (UNAUTHENTICATED where the row is for accounts),
    a service, a staff account in no organization (FORBIDDEN). A customer the row refuses is
    told at the target (`require_change_in`), so that another organization's stays NOT_FOUND."""
    if access.allows(kinds_everywhere(ctx), mutation):
        return
    kinds = await kinds_of_own(ctx)
    if not access.allows(kinds, mutation) and kinds.isdisjoint(CUSTOMERS):
        raise _refusal(mutation, kinds)


async def require_own_change(ctx: Context, mutation: str) -> UUID:
    """The acting account, for a change to itself (its profile, password, sessions)."""
    kinds = await kinds_of_own(ctx)
    if not access.allows(kinds, mutation):
        raise _refusal(mutation, kinds)
    return require_account(ctx.viewer)


async def require_change_in(ctx: Context, mutation: str, organization_id: UUID) -> UUID:
    """The acting account, when the table lets it run `mutation` in the organization owning the target.

    A customer of another organization (or of none) is told NOT_FOUND, as for an ID that does
    not exist, so that existence is not revealed; a customer of this one whom the row refuses
    (a MEMBER) is told FORBIDDEN, and so are staff and services.
    """
    await require_change(ctx, mutation)
    kinds = await kinds_in(ctx, organization_id)
    if access.allows(kinds, mutation):
        return require_account(ctx.viewer)
    if not kinds.isdisjoint(CUSTOMERS):
        only_managers = access.ROW_OF[mutation].allowed & CUSTOMERS == {access.MANAGER}
        raise Forbidden(MANAGERS_ONLY if only_managers else refusal(mutation))
    if kinds:
        raise _refusal(mutation, kinds)
    raise NotFound(NOT_FOUND)


def _refusal(mutation: str, kinds: frozenset[str]) -> Exception:
    if access.refused_as(kinds, mutation) == "UNAUTHENTICATED":
        return Unauthenticated(NOT_AUTHENTICATED)
    return Forbidden(refusal(mutation))


def request_hash(operation: str, request: dict[str, Any]) -> bytes:
    canonical = json.dumps({"operation": operation, "request": request}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).digest()


def _scope(ctx: Context, operation: str) -> str:
    # Keys are the client's: scoped per account (or service) so two clients can never collide.
    service = ctx.viewer.service
    return f"{operation}:service:{service.id}" if service else f"{operation}:{require_account(ctx.viewer)}"


def key_problem(key: str | None) -> Problem | None:
    if key is not None and not 1 <= len(key) <= MAX_KEY_LENGTH:
        return Problem(("input", "idempotencyKey"), f"An idempotency key has 1 to {MAX_KEY_LENGTH} characters.",
                       "INVALID")
    return None


async def claim_key(conn: asyncpg.Connection, ctx: Context, operation: str, key: str | None,
                    request: dict[str, Any]) -> dict[str, Any] | Problem | None:
    """Inside the mutation's transaction, before any write.

    None: go ahead, then `complete_key`. A dict: the first request's stored response, to
    replay as it is. A Problem: the key was used for a different input.
    """
    if key is None:
        return None
    found = await idempotency.claim(conn, _scope(ctx, operation), key, request_hash(operation, request))
    if not found.same_request:
        return Problem(("input", "idempotencyKey"),
                       "This idempotency key was already used with a different input; use a new key.",
                       "IDEMPOTENCY_KEY_REUSED")
    return found.response


async def complete_key(conn: asyncpg.Connection, ctx: Context, operation: str, key: str | None,
                       response: dict[str, Any]) -> None:
    if key is not None:
        await idempotency.complete(conn, _scope(ctx, operation), key, response)


def provider_key(ctx: Context, operation: str, key: str, *parts: str) -> str:
    """The key given to the payment provider: derived from the client's, so that a retry of
    the same request reuses it, and distinct per account and step."""
    raw = ":".join((_scope(ctx, operation), key, *parts))
    return "ag-" + hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class OnBehalf:
    """A change the vendor's staff or a service makes in a customer's organization: the role
    or scope that allowed it and the reason given, both kept in the audit entry."""

    scope: str
    reason: str


def _actor(ctx: Context, on_behalf: OnBehalf | None) -> dict[str, Any]:
    if on_behalf is None:
        return {"actor_account_id": require_account(ctx.viewer)}
    service = ctx.viewer.service
    return {"actor_account_id": ctx.viewer.account_id, "actor_service": service.name if service else None,
            "scope": on_behalf.scope, "reason": on_behalf.reason}


async def audit_success(conn: asyncpg.Connection, ctx: Context, *, organization_id: UUID | None, action: str,
                        target: str | None, outcome: str = "SUCCESS", details: dict | None = None,
                        on_behalf: OnBehalf | None = None) -> None:
    await audit.record(conn, organization_id=organization_id, action=action, target=target, outcome=outcome,
                       details=details, **_actor(ctx, on_behalf))
    if on_behalf is not None and outcome != "REFUSED":
        await report(conn, ctx, "STAFF_ACTION_TAKEN", organization_id=organization_id,
                     data={"action": action, "target": target, "scope": on_behalf.scope,
                           "reason": on_behalf.reason})


async def report(conn: asyncpg.Connection, ctx: Context, kind: str, *, organization_id: UUID | None,
                 account_id: UUID | None = None, data: dict[str, Any], dedupe_key: str | None = None) -> None:
    """The change's event (resolvers/events.py says what `data` holds), in its transaction and
    after its last write; the actor is the viewer's account (None for a service)."""
    await events.publish(conn, kind, organization_id=organization_id, account_id=account_id,
                         actor_account_id=ctx.viewer.account_id, data=data, dedupe_key=dedupe_key)


async def audit_refusal(ctx: Context, *, organization_id: UUID | None, action: str, target: str | None,
                        problems: list[Problem], on_behalf: OnBehalf | None = None) -> None:
    """In a transaction of its own: the refused change itself was rolled back."""
    async with ctx.db.transaction() as conn:
        await audit.record(conn, organization_id=organization_id, action=action, target=target, outcome="REFUSED",
                           details={"problems": [{"field": list(p.field), "code": p.code} for p in problems]},
                           **_actor(ctx, on_behalf))


async def send_mail(conn: asyncpg.Connection, *, to: str, subject: str, body: str) -> None:
    """Queued in the caller's transaction: the mail goes out only if the change commits."""
    await outbox.enqueue(conn, to=to, subject=subject, body=body)


async def forget_billing(ctx: Context, customer_id: str | None) -> None:
    """Around a write to the payment provider for this customer: its mirror is dropped (any
    fetch under way writes nothing back) and the request's loaders forgotten, so the next read
    asks the provider. After such a write, whatever came of it: an unanswered write may have
    been applied."""
    if customer_id is not None:
        await billing_mirror.drop(ctx.db, [customer_id])
    ctx.loaders.clear_all()


def after_write(ctx: Context) -> None:
    """Mutations run one after another, so clearing every loader is cheap and never stale."""
    ctx.loaders.clear_all()
