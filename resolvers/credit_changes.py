"""Changing members' credit access, and members asking for more credits.

`set_credit_access` is for the OWNER and ADMINs of the viewer's own organization: each named
account that is a member gets the new access, and each whose access actually changed is told by
mail, queued in the same transaction. Accounts outside the organization, unknown and malformed
IDs are all NOT_IN_ORGANIZATION at their index. Setting the access a member already has is a
success that writes, mails and audits nothing for that member.

`request_credits` is for any member: the request is stored and every OWNER and ADMIN is mailed.

`approve_credit_request` and `decline_credit_request` are for the OWNER and ADMINs of the
request's organization: a request is answered once (the row is locked, so of two answers at once
the second is told ALREADY_ANSWERED), approval sets the requester's access as the answer says,
and the requester hears of either through the CREDIT_REQUEST_RESOLVED event and its mail.

`set_credit_pool_alert` is for the OWNER and ADMINs: the pool balance at or under which the
scheduler reports CREDIT_POOL_LOW (and mails them, resolvers/notifications.py), or none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from datasources.errors import Forbidden, NotFound
from datasources.postgres import credit_changes
from datasources.postgres import credits as data
from datasources.postgres.credit_changes import Recipient
from resolvers.context import Context
from planning.sources import DEFAULT_CREDIT_MODE
from resolvers.permissions import viewer_membership
from resolvers.seats import account_count_problem, not_member
from resolvers.user_errors import Problem
from resolvers.writes import (NOT_FOUND, after_write, audit_refusal, audit_success, report, require_change,
                              require_change_in, send_mail)

SET_ACCESS = "credits.set_access"
REQUEST = "credits.request"
SET_ALERT = "credits.set_alert"
ANSWER = "credits.answer_request"
MAX_ALERT_THRESHOLD = 1_000_000_000
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


async def _apply_access(conn: asyncpg.Connection, ctx: Context, organization_id: UUID, accounts: list[UUID],
                        mode: str, quota: int | None) -> tuple[list[UUID], dict[UUID, data.Access]]:
    """Gives `accounts` (members, held) the access; the ones whose access changed, and what each
    had before. Reports each change as CREDIT_ACCESS_CHANGED."""
    before = await credit_changes.access_of(conn, accounts)
    changed = [a for a in accounts if _current(before.get(a), organization_id) != (mode, quota)]
    if changed:
        await credit_changes.set_access(conn, organization_id, changed, mode, quota)
    for account in changed:
        await report(conn, ctx, "CREDIT_ACCESS_CHANGED", organization_id=organization_id, account_id=account,
                     data={"account_id": account, "mode": mode, "quota": quota})
    return changed, before


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
        changed, before = await _apply_access(conn, ctx, organization_id, chosen, mode, quota)
        if changed:
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


@dataclass(frozen=True)
class AnswerResult:
    request: data.CreditRequest | None  # as it is now (also when refused)
    problems: list[Problem] = field(default_factory=list)


async def approve_credit_request(ctx: Context, request_id: UUID | None, mode: str, quota: int | None,
                                 note: str) -> AnswerResult:
    """Approves a pending request and gives the requester the access the answer names."""
    return await _answer(ctx, "approveCreditRequest", request_id, "APPROVED", note, (mode, quota))


async def decline_credit_request(ctx: Context, request_id: UUID | None, note: str) -> AnswerResult:
    return await _answer(ctx, "declineCreditRequest", request_id, "DECLINED", note, None)


async def _answer(ctx: Context, mutation: str, request_id: UUID | None, outcome: str, note: str,
                  access: tuple[str, int | None] | None) -> AnswerResult:
    await require_change(ctx, mutation)
    found = await ctx.loaders.credits.request.load(request_id) if request_id else None
    if found is None:
        raise NotFound(NOT_FOUND)
    organization_id = found.organization_id
    actor_id = await require_change_in(ctx, mutation, organization_id)
    target = f"CloudCreditRequest:{found.id}"
    note = note.strip()
    problems = access_problems(*access) if access else []
    if len(note) > MAX_NOTE_LENGTH:
        problems.append(Problem(("input", "note"), f"A note has at most {MAX_NOTE_LENGTH} characters.", "INVALID"))
    changed: list[UUID] = []
    if not problems:
        async with ctx.db.transaction() as conn:
            found = await credit_changes.lock_request(conn, found.id)
            assert found is not None, "a request goes only with its organization, which the caller manages"
            if found.outcome is not None:
                problems.append(Problem(("input", "requestId"), f"This request was already answered: "
                                        f"{found.outcome}.", "ALREADY_ANSWERED"))
            elif access and not await credit_changes.members_among(conn, organization_id, [found.account_id]):
                problems.append(Problem(("input", "requestId"), "Who asked is no longer a member of the "
                                        "organization: decline the request instead.", "NOT_IN_ORGANIZATION"))
            else:
                found = await credit_changes.answer_request(conn, found.id, outcome, note, actor_id)
                if access:
                    changed, _ = await _apply_access(conn, ctx, organization_id, [found.account_id], *access)
                mode, quota = access or (None, None)
                await audit_success(conn, ctx, organization_id=organization_id, action=ANSWER, target=target,
                                    details={"outcome": outcome, "mode": mode, "quota": quota,
                                             "access_changed": bool(changed)})
                await report(conn, ctx, "CREDIT_REQUEST_RESOLVED", organization_id=organization_id,
                             account_id=found.account_id,
                             data={"request_id": found.id, "account_id": found.account_id, "outcome": outcome,
                                   "note": note, "mode": mode, "quota": quota})
    if problems:
        await audit_refusal(ctx, organization_id=organization_id, action=ANSWER, target=target, problems=problems)
        return AnswerResult(found, problems)
    after_write(ctx)
    return AnswerResult(found)


@dataclass(frozen=True)
class AlertResult:
    organization_id: UUID | None
    problems: list[Problem] = field(default_factory=list)


def alert_problems(threshold: int | None) -> list[Problem]:
    if threshold is not None and not 0 <= threshold <= MAX_ALERT_THRESHOLD:
        return [Problem(("input", "threshold"), f"A threshold is 0 to {MAX_ALERT_THRESHOLD:,} credits (whole "
                                                "credits, not money); null turns the alert off.", "INVALID")]
    return []


async def set_credit_pool_alert(ctx: Context, organization_id: UUID | None, threshold: int | None) -> AlertResult:
    """Sets (or with None, switches off) the threshold. Setting the one already set changes,
    audits and reports nothing."""
    await require_change(ctx, "setCreditPoolAlert")
    if organization_id is None:
        raise NotFound(NOT_FOUND)
    await require_change_in(ctx, "setCreditPoolAlert", organization_id)
    target = f"Organization:{organization_id}"
    problems = alert_problems(threshold)
    if problems:
        await audit_refusal(ctx, organization_id=organization_id, action=SET_ALERT, target=target, problems=problems)
        return AlertResult(organization_id, problems)
    async with ctx.db.transaction() as conn:
        found = await credit_changes.set_low_threshold(conn, organization_id, threshold)
        if found is None:
            raise NotFound(NOT_FOUND)
        changed, before = found
        if changed:
            await audit_success(conn, ctx, organization_id=organization_id, action=SET_ALERT, target=target,
                                details={"threshold": threshold, "before": before})
    if changed:
        after_write(ctx)
    return AlertResult(organization_id)
