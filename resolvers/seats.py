"""Allocating and revoking seats of NAMED licenses.

The rules: only the OWNER or an ADMIN of the license's organization changes its seats; never
more allocations than the license's quantity, also when many admins allocate at once (the
license row is locked while seats are counted and inserted); no allocation of an expired
license; a FLOATING pool has no seats to allocate; TRIAL and BETA seats cannot be revoked, so
they cannot be reassigned either. A free TRIAL or BETA seat may be allocated: that is the
seat's first assignment, not a reassignment, and without it a trial's free seats could never be
used. The allocation is then final for the admin (revoking it is SEAT_LOCKED).

A request names up to 100 accounts. Each account that can have the change gets it and each
that cannot gets a user error at its index, all in one transaction (outcome PARTIAL); when none
can, nothing is written and the refusal is audited. Accounts outside the organization, unknown
and malformed IDs are answered the same, so that nothing about other organizations leaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from datasources.errors import NotFound
from datasources.postgres import entitlements as data
from datasources.postgres import seat_changes
from resolvers.context import Context
from planning.reads import license_status
from resolvers.user_errors import Problem
from resolvers.writes import (NOT_FOUND, after_write, audit_refusal, audit_success, claim_key, complete_key,
                              key_problem, report, require_change, require_change_in)

MAX_ACCOUNTS = 100
ALLOCATE = "license.allocate"
REVOKE = "license.revoke"
LOCKED_KINDS = frozenset({"TRIAL", "BETA"})


@dataclass(frozen=True)
class AllocateResult:
    license_id: UUID
    allocations: list[data.Allocation] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class RevokeResult:
    license_id: UUID
    revoked: list[UUID] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class _Refused(Exception):
    """Leaves the transaction, rolling back everything in it (an idempotency claim included)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("refused")
        self.problems = problems


def target(license_id: UUID) -> str:
    return f"License:{license_id}"


async def managed_license(ctx: Context, mutation: str, license_id: UUID | None) -> tuple[data.License, UUID]:
    """The license and the acting account, when the table lets it run `mutation` in the
    license's organization; NOT_FOUND for an unknown ID and for another organization's license
    alike, FORBIDDEN for a MEMBER."""
    await require_change(ctx, mutation)
    found = await ctx.loaders.entitlements.license.load(license_id) if license_id else None
    if found is None:
        raise NotFound(NOT_FOUND)
    return found, await require_change_in(ctx, mutation, found.organization_id)


def _account_field(index: int) -> tuple[str, ...]:
    return ("input", "accountIds", str(index))


def account_count_problem(account_ids: list[Any]) -> Problem | None:
    if not 1 <= len(account_ids) <= MAX_ACCOUNTS:
        return Problem(("input", "accountIds"), f"Name 1 to {MAX_ACCOUNTS} accounts.", "INVALID")
    return None


def not_member(index: int) -> Problem:
    return Problem(_account_field(index), "This account is not a member of the organization.", "NOT_IN_ORGANIZATION")


def _license_problem(license: data.License, *, allocating: bool, status: str | None = None) -> Problem | None:
    """What refuses the whole request, whichever accounts it names (`status`: the license's, when allocating)."""
    field_ = ("input", "licenseId")
    if license.seat_model == "FLOATING":
        return Problem(field_, "A floating license is a shared pool: it has no seats to allocate or revoke.",
                       "FLOATING_LICENSE")
    if allocating and status == "EXPIRED":
        return Problem(field_, "The license has expired: its seats can no longer be allocated.", "LICENSE_EXPIRED")
    if allocating and status == "SUSPENDED":
        return Problem(field_, "The license is suspended: its renewal is unpaid. Pay the open invoice to allocate "
                               "its seats again.", "LICENSE_SUSPENDED")
    if not allocating and license.kind in LOCKED_KINDS:
        return Problem(field_, f"Seats of a {license.kind} license cannot be revoked or reassigned.", "SEAT_LOCKED")
    return None


async def allocate_license(ctx: Context, license_id: UUID | None, account_ids: list[UUID | None],
                           idempotency_key: str | None) -> AllocateResult:
    """`account_ids` in the client's order; None stands for an ID that names no account."""
    license, actor = await managed_license(ctx, "allocateLicense", license_id)
    problems = [p for p in (account_count_problem(account_ids), key_problem(idempotency_key)) if p]
    if problems:
        return await _refuse_allocation(ctx, license, problems)
    request = {"license": str(license.id), "accounts": [str(a) if a else None for a in account_ids]}
    try:
        async with ctx.db.transaction() as conn:
            stored = await claim_key(conn, ctx, ALLOCATE, idempotency_key, request)
            if isinstance(stored, Problem):
                raise _Refused([stored])
            if stored is not None:
                return _replayed(license.id, stored)
            locked = await seat_changes.lock_license(conn, license.id)
            if locked is None:  # deleted since it was read
                raise NotFound(NOT_FOUND)
            whole = _license_problem(locked, allocating=True, status=await license_status(ctx, locked.id, conn))
            if whole:
                raise _Refused([whole])
            known = [a for a in account_ids if a is not None]
            members = await seat_changes.members_among(conn, locked.organization_id, known)
            holders = await seat_changes.holders_among(conn, locked.id, known)
            limit = await seat_changes.seat_limit(conn, locked)
            free = limit - await seat_changes.allocated_count(conn, locked.id)
            chosen: list[UUID] = []
            for index, account in enumerate(account_ids):
                if account is None or account not in members:
                    problems.append(not_member(index))
                elif account in holders or account in chosen:
                    problems.append(Problem(_account_field(index), "This member already holds a seat of this "
                                                                   "license.", "ALREADY_ALLOCATED"))
                elif len(chosen) >= free:
                    problems.append(Problem(_account_field(index), _no_seat_left(locked, limit), "NO_SEATS_AVAILABLE"))
                else:
                    chosen.append(account)
            if not chosen:
                raise _Refused(problems)
            allocations = await seat_changes.allocate(conn, locked.id, chosen, actor)
            await audit_success(conn, ctx, organization_id=locked.organization_id, action=ALLOCATE,
                                target=target(locked.id), outcome="PARTIAL" if problems else "SUCCESS",
                                details={"accounts": [str(a) for a in chosen], "problems": _details(problems)})
            result = AllocateResult(locked.id, allocations, problems)
            await complete_key(conn, ctx, ALLOCATE, idempotency_key, _stored(result))
            await report_seats(conn, ctx, "SEAT_ALLOCATED", locked.organization_id, locked.id, chosen)
    except _Refused as refused:
        return await _refuse_allocation(ctx, license, refused.problems)
    after_write(ctx)
    return result


def _no_seat_left(license: data.License, limit: int) -> str:
    if limit < license.quantity:
        return (f"No seat is left: the license goes down to {limit} seats at the end of the period, "
                f"and {limit} are allocated.")
    return f"No seat is left: all {license.quantity} seats are allocated."


async def revoke_license(ctx: Context, license_id: UUID | None, account_ids: list[UUID | None]) -> RevokeResult:
    license, _ = await managed_license(ctx, "revokeLicense", license_id)
    count_problem = account_count_problem(account_ids)
    if count_problem:
        return await _refuse_revocation(ctx, license, [count_problem])
    problems: list[Problem] = []
    try:
        async with ctx.db.transaction() as conn:
            locked = await seat_changes.lock_license(conn, license.id)
            if locked is None:
                raise NotFound(NOT_FOUND)
            whole = _license_problem(locked, allocating=False)
            if whole:
                raise _Refused([whole])
            holders = await seat_changes.holders_among(conn, locked.id, [a for a in account_ids if a is not None])
            chosen: list[UUID] = []
            for index, account in enumerate(account_ids):
                if account is None or account not in holders or account in chosen:
                    problems.append(Problem(_account_field(index), "This account holds no seat of this license.",
                                            "NOT_ALLOCATED"))
                else:
                    chosen.append(account)
            if not chosen:
                raise _Refused(problems)
            await seat_changes.revoke(conn, locked.id, chosen)
            await audit_success(conn, ctx, organization_id=locked.organization_id, action=REVOKE,
                                target=target(locked.id), outcome="PARTIAL" if problems else "SUCCESS",
                                details={"accounts": [str(a) for a in chosen], "problems": _details(problems)})
            await report_seats(conn, ctx, "SEAT_REVOKED", locked.organization_id, locked.id, chosen)
    except _Refused as refused:
        return await _refuse_revocation(ctx, license, refused.problems)
    after_write(ctx)
    return RevokeResult(license.id, chosen, problems)


async def report_seats(conn: asyncpg.Connection, ctx: Context, kind: str, organization_id: UUID, license_id: UUID,
                       account_ids: list[UUID]) -> None:
    """One SEAT_ALLOCATED or SEAT_REVOKED per holder: the organization's event and the holder's own."""
    for account in account_ids:
        await report(conn, ctx, kind, organization_id=organization_id, account_id=account,
                     data={"license_id": license_id, "account_id": account})


async def _refuse_allocation(ctx: Context, license: data.License, problems: list[Problem]) -> AllocateResult:
    await audit_refusal(ctx, organization_id=license.organization_id, action=ALLOCATE, target=target(license.id),
                        problems=problems)
    return AllocateResult(license.id, [], problems)


async def _refuse_revocation(ctx: Context, license: data.License, problems: list[Problem]) -> RevokeResult:
    await audit_refusal(ctx, organization_id=license.organization_id, action=REVOKE, target=target(license.id),
                        problems=problems)
    return RevokeResult(license.id, [], problems)


def _details(problems: list[Problem]) -> list[dict[str, Any]]:
    return [{"field": list(p.field), "code": p.code} for p in problems]


# The first result of an idempotency key, as stored and replayed.

def _stored(result: AllocateResult) -> dict[str, Any]:
    return {
        "allocations": [{"license_id": str(a.license_id), "account_id": str(a.account_id),
                         "allocated_at": a.allocated_at.isoformat(),
                         "allocated_by": str(a.allocated_by) if a.allocated_by else None}
                        for a in result.allocations],
        "problems": [{"field": list(p.field), "message": p.message, "code": p.code} for p in result.problems],
    }


def _replayed(license_id: UUID, stored: dict[str, Any]) -> AllocateResult:
    allocations = [data.Allocation(license_id=UUID(a["license_id"]), account_id=UUID(a["account_id"]),
                                   allocated_at=datetime.fromisoformat(a["allocated_at"]),
                                   allocated_by=UUID(a["allocated_by"]) if a["allocated_by"] else None)
                   for a in stored["allocations"]]
    problems = [Problem(tuple(p["field"]), p["message"], p["code"]) for p in stored["problems"]]
    return AllocateResult(license_id, allocations, problems)
