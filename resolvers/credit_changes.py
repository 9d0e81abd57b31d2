"""Changing members' credit access, and members asking for more credits.

`set_credit_access` is for the OWNER and ADMINs of the viewer's own organization: each named
account that is a member gets the new access, and each whose access actually changed is told by
mail, queued in the same transaction. Accounts outside the organization, unknown and malformed
IDs are all NOT_IN_ORGANIZATION at their index. Setting the access a member already has is a
success that writes, mails and audits nothing for that member.

`request_credits` is for any member: the request is stored and every OWNER and ADMIN is mailed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from datasources.errors import Forbidden
from datasources.postgres import credit_changes
from datasources.postgres import credits as data
from datasources.postgres.credit_changes import Recipient
from resolvers.context import Context
from planning.sources import DEFAULT_CREDIT_MODE
from resolvers.permissions import viewer_membership
from resolvers.seats import account_count_problem, not_member
from resolvers.user_errors import Problem
from resolvers.writes import (after_write, audit_refusal, audit_success, report, require_change, require_change_in,
                              send_mail)

SET_ACCESS = "credits.set_access"
REQUEST = "credits.request"
MODES = ("DISABLED", "UNLIMITED", "QUOTA")
MAX_REQUEST = 1_000_000
MAX_NOTE_LENGTH = 1000
NO_ORGANIZATION = "You are not a member of an organization."


@dataclass(frozen=True)
class AccessResult:
    organization_id: UUID
    account_ids: list[UUID] = field(default_factory=list)  # every member named, in input order, once each
    changed: list[UUID] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class RequestResult:
    request: data.CreditRequest | None = None
    problems: list[Problem] = field(default_factory=list)


def access_problems(mode: str, quota: int | None) -> list[Problem]:
    if mode not in MODES:
        return [Problem(("input", "mode"), "Choose DISABLED, UNLIMITED or QUOTA.", "INVALID")]
    if mode == "QUOTA" and (quota is None or quota < 0):
        return [Problem(("input", "quota"), "A QUOTA needs a quota of 0 or more credits.", "INVALID")]
    if mode != "QUOTA" and quota is not None:
        return [Problem(("input", "quota"), f"{mode} access takes no quota; leave it out.", "INVALID")]
    return []


def describe(mode: str, quota: int | None) -> str:
    if mode == "DISABLED":
        return "you can no longer spend the organization's cloud credits"
    if mode == "QUOTA":
        return f"you can spend up to {quota:,} of the organization's cloud credits in total"
    return "you can spend the organization's cloud credits without a limit of your own"


async def set_credit_access(ctx: Context, account_ids: list[UUID | None], mode: str,
                            quota: int | None) -> AccessResult:
    await require_change(ctx, "setCreditAccess")
    mine = await viewer_membership(ctx)
    if mine is None:
        raise Forbidden(NO_ORGANIZATION)
    organization_id = mine.organization_id
    actor_id = await require_change_in(ctx, "setCreditAccess", organization_id)
    problems = [p for p in (account_count_problem(account_ids),) if p] + access_problems(mode, quota)
    if problems:
        return await _refuse_access(ctx, organization_id, problems)
    actor = await ctx.loaders.accounts.account.load(actor_id)
    async with ctx.db.transaction() as conn:
        members = await credit_changes.members_among(conn, organization_id, [a for a in account_ids if a])
        chosen: list[UUID] = []
        for index, account in enumerate(account_ids):
            if account is None or account not in members:
                problems.append(not_member(index))
            elif account not in chosen:
                chosen.append(account)
        before = await credit_changes.access_of(conn, chosen)
        changed = [a for a in chosen if _current(before.get(a), organization_id) != (mode, quota)]
        if changed:
            await credit_changes.set_access(conn, organization_id, changed, mode, quota)
            organization = await credit_changes.organization_name(conn, organization_id)
            for account in changed:
                await _mail_new_access(conn, members[account], organization, actor.name if actor else None,
                                       mode, quota)
            await audit_success(conn, ctx, organization_id=organization_id, action=SET_ACCESS,
                                target=f"Organization:{organization_id}",
                                outcome="PARTIAL" if problems else "SUCCESS",
                                details={"mode": mode, "quota": quota, "accounts": [str(a) for a in changed],
                                         "before": {str(a): _current(before.get(a), organization_id)
                                                    for a in changed},
                                         "problems": [{"field": list(p.field), "code": p.code} for p in problems]})
            for account in changed:
                await report(conn, ctx, "CREDIT_ACCESS_CHANGED", organization_id=organization_id, account_id=account,
                             data={"account_id": account, "mode": mode, "quota": quota})
    if problems and not changed:
        await audit_refusal(ctx, organization_id=organization_id, action=SET_ACCESS,
                            target=f"Organization:{organization_id}", problems=problems)
    if changed:
        after_write(ctx)
    return AccessResult(organization_id, chosen, changed, problems)


def _one_line(text: str) -> str:
    """For a mail subject: names are free text, and a header takes no line breaks."""
    return " ".join(text.split())


def _current(access: data.Access | None, organization_id: UUID) -> tuple[str, int | None]:
    """What the member has now: no row (or one left from another organization) is the default."""
    if access is None or access.organization_id != organization_id:
        return (DEFAULT_CREDIT_MODE, None)
    return (access.mode, access.quota)


async def _mail_new_access(conn: asyncpg.Connection, member: Recipient, organization: str, actor: str | None, mode: str,
                           quota: int | None) -> None:
    by = f" {actor} changed it." if actor else ""
    await send_mail(conn, to=member.email, subject=f"Your cloud credit access at {_one_line(organization)} changed",
                    body=f"Hello {member.name},\n\nYour access to {organization}'s cloud credits is now {mode}: "
                         f"{describe(mode, quota)}.{by}\n\nAsk your organization's admins if you need more.\n")


async def _refuse_access(ctx: Context, organization_id: UUID, problems: list[Problem]) -> AccessResult:
    await audit_refusal(ctx, organization_id=organization_id, action=SET_ACCESS,
                        target=f"Organization:{organization_id}", problems=problems)
    return AccessResult(organization_id, problems=problems)


async def request_credits(ctx: Context, amount: int, note: str) -> RequestResult:
    await require_change(ctx, "requestCredits")
    mine = await viewer_membership(ctx)
    if mine is None:
        raise Forbidden(NO_ORGANIZATION)
    actor_id = await require_change_in(ctx, "requestCredits", mine.organization_id)
    note = note.strip()
    problems = []
    if not 1 <= amount <= MAX_REQUEST:
        problems.append(Problem(("input", "amount"), f"Ask for 1 to {MAX_REQUEST:,} credits.", "INVALID"))
    if len(note) > MAX_NOTE_LENGTH:
        problems.append(Problem(("input", "note"), f"A note has at most {MAX_NOTE_LENGTH} characters.", "INVALID"))
    if problems:
        await audit_refusal(ctx, organization_id=mine.organization_id, action=REQUEST, target=None,
                            problems=problems)
        return RequestResult(problems=problems)
    requester = await ctx.loaders.accounts.account.load(actor_id)
    async with ctx.db.transaction() as conn:
        request = await credit_changes.insert_request(conn, mine.organization_id, actor_id, amount, note)
        organization = await credit_changes.organization_name(conn, mine.organization_id)
        who = f"{_one_line(requester.name)} ({requester.email})" if requester else "A member"
        reason = f"\nTheir note: {note}\n" if note else ""
        for manager in await credit_changes.managers_of(conn, mine.organization_id):
            await send_mail(conn, to=manager.email, subject=f"{who} asks for {amount:,} cloud credits",
                            body=f"Hello {manager.name},\n\n{who} asks for {amount:,} more cloud credits at "
                                 f"{organization}.\n{reason}\nYou can change their credit access or add credits "
                                 "in the Organization menu, under Cloud credits.\n")
        await audit_success(conn, ctx, organization_id=mine.organization_id, action=REQUEST,
                            target=f"CloudCreditRequest:{request.id}", details={"amount": amount})
        await report(conn, ctx, "CREDIT_REQUEST_MADE", organization_id=mine.organization_id,
                     data={"request_id": request.id, "account_id": actor_id, "amount": amount})
    after_write(ctx)
    return RequestResult(request=request)
