"""An organization's people: inviting, accepting, resending and revoking invitations, removing
members and changing their roles.

Each mutation authorizes against the organization owning its target (`require_change_in`),
validates, then decides and writes in one transaction holding the rows its decision depends on.
A refusal found inside the transaction raises `_Refused`, which rolls back anything written so
far; the refusal is then audited in a transaction of its own and returned as user errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import asyncpg

from auth import passwords
from datasources.errors import Forbidden, NotFound
from datasources.postgres import audit
from datasources.postgres import people as data
from datasources.postgres.accounts import Account, Membership
from datasources.postgres.organizations import Invitation, MemberRow
from resolvers import organizations as resolve_organizations
from resolvers.attempts import check_password, give_back_attempt, hash_new_password, take_attempt
from resolvers.context import Context
from resolvers.events import publish
from resolvers.permissions import viewer_membership
from resolvers.seats import report_seats
from resolvers.sessions import SessionTokens, start_session
from resolvers.sign_in_policy import START_PATH, config_for_email
from resolvers.user_errors import Problem
from resolvers.user_errors import Refused as _Refused
from resolvers.writes import (MANAGERS_ONLY, NOT_FOUND, OnBehalf, after_write, audit_refusal, audit_success, claim_key,
                              complete_key, key_problem, report, require_change, require_change_in, send_mail)

# The portal's page that reads `token` from the invitation mail's link and calls `acceptInvitation`;
# the portal's address is the PORTAL_URL setting (ctx.config.portal_url).
ACCEPT_PATH = "/accept-invitation"

MAX_INVITATIONS = 50
MAX_EMAIL_LENGTH = 320
MAX_NAME_LENGTH = 200
MAX_PASSWORD_LENGTH = 1024
MAX_TOKEN_LENGTH = 200
INVITABLE_ROLES = ("MEMBER", "ADMIN")
LOCKED_SEAT_KINDS = ("TRIAL", "BETA")  # an admin cannot revoke these
INVITE_OPERATION = "inviteMembers"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NOT_IN_ADDRESSES = frozenset('"<>()[]\\,;:')



@dataclass(frozen=True)
class InvitationOutcome:
    """One email of an `inviteMembers` call: its invitation, or why it got none."""

    email: str
    invitation: Invitation | None
    problems: list[Problem]


@dataclass(frozen=True)
class InviteResult:
    outcomes: list[InvitationOutcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # about the request as a whole


@dataclass(frozen=True)
class InvitationChange:
    invitation: Invitation | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class AcceptResult:
    account: Account | None = None
    tokens: SessionTokens | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class RemoveResult:
    removed_account_id: UUID | None = None
    organization_id: UUID | None = None
    revoked_seats: int = 0
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class RoleChange:
    member: MemberRow | None = None
    problems: list[Problem] = field(default_factory=list)


def hash_token(token: str) -> bytes:
    """Only this is stored: a database leak hands out no usable invitation."""
    return hashlib.sha256(token.encode()).digest()


def accept_url(portal_url: str, token: str) -> str:
    return f"{portal_url}{ACCEPT_PATH}?token={token}"  # token_urlsafe needs no escaping


def is_pending(invitation: Invitation, now: datetime | None = None) -> bool:
    now = now or datetime.now(timezone.utc)
    return invitation.accepted_at is None and invitation.revoked_at is None and invitation.expires_at > now


def _answered(invitation: Invitation) -> bool:
    """Accepted or revoked: nothing more can be done with it (an expired one can be resent)."""
    return invitation.accepted_at is not None or invitation.revoked_at is not None


def _not_pending(field_name: str) -> Problem:
    return Problem(("input", field_name), "This invitation was already accepted or revoked, or has expired.",
                   "INVITATION_NOT_PENDING")


def normalize_email(raw: str) -> str | None:
    """The address in lower case, or None for one no mail server would take: besides the shape,
    no characters that change how it reads (right-to-left overrides, zero-width and control
    characters: an invitation to a look-alike of a colleague), no quotes or brackets, and no dot
    at the ends of the local part or twice in a row (RFC 5321's dot-atom)."""
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        return None
    local = email.split("@", 1)[0]
    if (any(unicodedata.category(c)[0] in "CZ" or c in _NOT_IN_ADDRESSES for c in email)
            or local.startswith(".") or local.endswith(".") or ".." in email):
        return None
    return email


# --- inviteMembers ----------------------------------------------------------------------------

async def viewer_organization_id(ctx: Context) -> UUID | None:
    """The organization an input leaves unnamed: the viewer's own (none: NOT_FOUND later)."""
    mine = await viewer_membership(ctx)
    return mine.organization_id if mine else None


async def invite_members(ctx: Context, organization_id: UUID | None, invitations: Sequence[tuple[str, str, str]],
                         idempotency_key: str | None) -> InviteResult:
    """Invites each (email, role, name) into the organization; each email succeeds or fails alone.

    Concurrent invitations of one organization serialize on its row, so two calls can never
    both invite the same email. With an idempotency key, a retry of the same request replays the
    first result (no new invitations, no new mail).
    """
    await require_change(ctx, INVITE_OPERATION)
    if organization_id is None:
        raise NotFound(NOT_FOUND)
    actor = await require_change_in(ctx, INVITE_OPERATION, organization_id)
    problems = _invite_request_problems(invitations, idempotency_key)
    if problems:
        await audit_refusal(ctx, organization_id=organization_id, action="member.invite", target=None,
                            problems=problems)
        return InviteResult(problems=problems)
    request = {"organizationId": str(organization_id),
               # A name only when given: a retry of a request stored before names keeps matching it.
               "invitations": [{"email": email, "role": role, **({"name": name} if name else {})}
                               for email, role, name in invitations]}
    inviter = await ctx.loaders.accounts.account.load(actor)
    try:
        async with ctx.db.transaction() as conn:
            organization = await data.lock_organization(conn, organization_id)
            if organization is None:
                raise NotFound(NOT_FOUND)
            claimed = await claim_key(conn, ctx, INVITE_OPERATION, idempotency_key, request)
            if isinstance(claimed, Problem):
                raise _Refused(claimed)
            if claimed is not None:
                stored = claimed  # a retry: replay the first result
            else:
                stored, created = await invite_in(conn, ctx, organization, inviter, invitations)
                await complete_key(conn, ctx, INVITE_OPERATION, idempotency_key, stored)
                for invitation in created:
                    await report_sent(conn, ctx, invitation, resent=False)
    except _Refused as refused:
        await audit_refusal(ctx, organization_id=organization_id, action="member.invite", target=None,
                            problems=refused.problems)
        return InviteResult(problems=refused.problems)
    after_write(ctx)
    return await _outcomes(ctx, stored)


def _invite_request_problems(invitations: Sequence[tuple[str, str, str]], key: str | None) -> list[Problem]:
    problems = []
    if not invitations:
        problems.append(Problem(("input", "invitations"), "List at least one email to invite.", "REQUIRED"))
    elif len(invitations) > MAX_INVITATIONS:
        problems.append(Problem(("input", "invitations"),
                                f"Invite at most {MAX_INVITATIONS} people at once; send the rest in another call.",
                                "INVALID"))
    bad_key = key_problem(key)
    if bad_key:
        problems.append(bad_key)
    return problems


def _invitation_path(index: int) -> tuple[str, ...]:
    return ("input", "invitations", str(index))


async def invite_in(conn: asyncpg.Connection, ctx: Context, organization: data.LockedOrganization,
                  inviter: Account | None, invitations: Sequence[tuple[str, str, str]],
                  path_of: Callable[[int], tuple[str, ...]] = _invitation_path
                  ) -> tuple[dict[str, Any], list[Invitation]]:
    """Creates what can be created of (email, role, name); returns the result as stored for
    replays (JSON), and the invitations created. `path_of` names each invitation's input field.
    A name is kept with the invitation, and the mail greets the invitee by it."""
    emails = [normalize_email(raw) for raw, _, _ in invitations]
    standings = await data.email_standings(conn, organization.id, [e for e in emails if e])
    invited_now: set[str] = set()
    results = []
    sent: list[Invitation] = []
    for index, ((raw, role, name), email) in enumerate(zip(invitations, emails)):
        path = path_of(index)
        name = name.strip()
        problem = name_problem(path, name) or invitation_problem(path, email, role, standings.get(email or ""),
                                                                 organization.id, invited_now)
        if problem is not None:
            await audit_success(conn, ctx, organization_id=organization.id, action="member.invite",
                                target=email or raw, outcome="REFUSED",
                                details={"problems": [{"field": list(problem.field), "code": problem.code}]})
            results.append({"email": raw, "invitationId": None, "problems": [_problem_json(problem)]})
            continue
        assert email is not None
        created = await send_invitation(conn, ctx, organization, inviter, email, role, name)
        invited_now.add(email)
        await audit_success(conn, ctx, organization_id=organization.id, action="member.invite", target=email,
                            details={"invitationId": created.id, "role": role})
        results.append({"email": raw, "invitationId": str(created.id), "problems": []})
        sent.append(created)
    return {"results": results}, sent


async def send_invitation(conn: asyncpg.Connection, ctx: Context, organization: data.LockedOrganization,
                          inviter: Account | None, email: str, role: str, name: str) -> Invitation:
    """A new invitation of `email` (normalized, checked), mailed with its single-use link; the
    caller audits and reports it. `inviter` None: sent by the organization (SCIM provisioning)."""
    token = secrets.token_urlsafe(32)
    created = await data.create_invitation(conn, organization_id=organization.id, email=email, role=role,
                                           token_hash=hash_token(token), invited_by=inviter.id if inviter else None,
                                           name=name)
    await send_mail(conn, to=email, subject=f"You are invited to join {organization.name}",
                    body=_invitation_mail(ctx, inviter, organization.name, role, token, name))
    return created


def name_problem(path: tuple[str, ...], name: str) -> Problem | None:
    if len(name) > MAX_NAME_LENGTH or any(unicodedata.category(c)[0] == "C" for c in name):
        return Problem((*path, "name"), f"A name has at most {MAX_NAME_LENGTH} characters, on one line.", "INVALID")
    return None


def invitation_problem(path: tuple[str, ...], email: str | None, role: str, standing: data.EmailStanding | None,
                        organization_id: UUID, invited_now: set[str]) -> Problem | None:
    if email is None:
        return Problem((*path, "email"), "Enter a valid email address.", "INVALID")
    if role not in INVITABLE_ROLES:
        return Problem((*path, "role"), "Invite as MEMBER or ADMIN: an organization has exactly one OWNER.",
                       "INVALID")
    if standing is not None and standing.organization_id == organization_id:
        return Problem((*path, "email"), f"{email} is already a member of the organization.", "ALREADY_MEMBER")
    if standing is not None and standing.organization_id is not None:
        return Problem((*path, "email"), f"{email} already belongs to another organization; an account can "
                                         "belong to only one.", "IN_ANOTHER_ORGANIZATION")
    if email in invited_now or (standing is not None and standing.pending_invitation_id is not None):
        return Problem((*path, "email"), f"{email} already has a pending invitation; resend it instead.",
                       "ALREADY_INVITED")
    return None


async def report_sent(conn: asyncpg.Connection, ctx: Context, invitation: Invitation, *, resent: bool) -> None:
    await report(conn, ctx, "INVITATION_SENT", organization_id=invitation.organization_id,
                 data={"invitation_id": invitation.id, "email": invitation.email, "role": invitation.role,
                       "resent": resent})


def _invitation_mail(ctx: Context, inviter: Account | None, organization_name: str, role: str, token: str,
                     name: str = "") -> str:
    who = inviter.name if inviter else "An administrator"
    hello = f"Hello {name},\n\n" if name else ""
    return (f"{hello}{who} invited you to join {organization_name} as {role.lower()} on the account portal.\n\n"
            f"Accept the invitation within {data.INVITATION_DAYS} days:\n{accept_url(ctx.config.portal_url, token)}\n\n"
            "The link works once. If you did not expect this invitation, you can ignore this mail.\n")


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {"field": list(problem.field), "message": problem.message, "code": problem.code}


async def _outcomes(ctx: Context, stored: dict[str, Any]) -> InviteResult:
    """The stored result with each invitation read fresh (in one batch)."""
    results = stored["results"]
    found = await asyncio.gather(*(
        ctx.loaders.organizations.invitation.load(UUID(r["invitationId"])) if r["invitationId"] else _none()
        for r in results))
    return InviteResult(outcomes=[
        InvitationOutcome(email=r["email"], invitation=invitation,
                          problems=[Problem(tuple(p["field"]), p["message"], p["code"]) for p in r["problems"]])
        for r, invitation in zip(results, found)])


async def _none() -> None:
    return None


# --- resendInvitation, revokeInvitation ---------------------------------------------------------

async def _managed_invitation(ctx: Context, mutation: str, invitation_id: UUID | None) -> tuple[Invitation, UUID]:
    """The invitation and the acting manager; NOT_FOUND for a missing one, as for another
    organization's, and FORBIDDEN for a MEMBER of its organization."""
    await require_change(ctx, mutation)  # anonymous is told UNAUTHENTICATED, whatever the ID
    found = await ctx.loaders.organizations.invitation.load(invitation_id) if invitation_id else None
    if found is None:
        raise NotFound(NOT_FOUND)
    actor = await require_change_in(ctx, mutation, found.organization_id)
    return found, actor


async def resend_invitation(ctx: Context, invitation_id: UUID | None,
                            on_behalf: OnBehalf | None = None) -> InvitationChange:
    """A new token and 7 more days for a pending or expired invitation, and a new mail.

    The previous link stops working. An expired invitation is re-checked as a new one would be
    (the email may have joined an organization or been invited again meanwhile). With
    `on_behalf`, the vendor's staff or a service resends it (authorized by the caller), and the
    mail still names the person who first invited.
    """
    if on_behalf is None:
        found, actor = await _managed_invitation(ctx, "resendInvitation", invitation_id)
        inviter = await ctx.loaders.accounts.account.load(actor)
    else:
        found = await ctx.loaders.organizations.invitation.load(invitation_id) if invitation_id else None
        if found is None:
            raise NotFound(NOT_FOUND)
        inviter = await ctx.loaders.accounts.account.load(found.invited_by) if found.invited_by else None
    try:
        async with ctx.db.transaction() as conn:
            organization = await data.lock_organization(conn, found.organization_id)
            current = await data.invitation_for_update(conn, found.id)
            if organization is None or current is None:
                raise NotFound(NOT_FOUND)
            if _answered(current):
                raise _Refused(_not_pending("invitationId"))
            standing = (await data.email_standings(conn, organization.id, [current.email])).get(current.email)
            problem = _resend_problem(current, standing, organization.id)
            if problem:
                raise _Refused(problem)
            token = secrets.token_urlsafe(32)
            renewed = await data.renew_invitation(conn, current.id, hash_token(token))
            await send_mail(conn, to=renewed.email, subject=f"You are invited to join {organization.name}",
                            body=_invitation_mail(ctx, inviter, organization.name, renewed.role, token, renewed.name))
            await audit_success(conn, ctx, organization_id=organization.id, action="invitation.resend",
                                target=renewed.email, details={"invitationId": renewed.id}, on_behalf=on_behalf)
            await report_sent(conn, ctx, renewed, resent=True)
    except _Refused as refused:
        await audit_refusal(ctx, organization_id=found.organization_id, action="invitation.resend",
                            target=found.email, problems=refused.problems, on_behalf=on_behalf)
        return InvitationChange(problems=refused.problems)
    after_write(ctx)
    return InvitationChange(invitation=await ctx.loaders.organizations.invitation.load(found.id))


def _resend_problem(invitation: Invitation, standing: data.EmailStanding | None,
                    organization_id: UUID) -> Problem | None:
    path = ("input", "invitationId")
    if standing is not None and standing.organization_id == organization_id:
        return Problem(path, f"{invitation.email} is already a member of the organization.", "ALREADY_MEMBER")
    if standing is not None and standing.organization_id is not None:
        return Problem(path, f"{invitation.email} already belongs to another organization.",
                       "IN_ANOTHER_ORGANIZATION")
    if standing is not None and standing.pending_invitation_id not in (None, invitation.id):
        return Problem(path, f"{invitation.email} has a newer pending invitation; resend that one.",
                       "ALREADY_INVITED")
    return None


async def revoke_invitation(ctx: Context, invitation_id: UUID | None) -> InvitationChange:
    """Withdraws a pending (or expired) invitation: its link stops working for good."""
    found, _ = await _managed_invitation(ctx, "revokeInvitation", invitation_id)
    try:
        async with ctx.db.transaction() as conn:
            current = await data.invitation_for_update(conn, found.id)
            if current is None:
                raise NotFound(NOT_FOUND)
            if _answered(current):
                raise _Refused(_not_pending("invitationId"))
            revoked = await data.revoke_invitation(conn, current.id)
            await audit_success(conn, ctx, organization_id=revoked.organization_id, action="invitation.revoke",
                                target=revoked.email, details={"invitationId": revoked.id})
    except _Refused as refused:
        await audit_refusal(ctx, organization_id=found.organization_id, action="invitation.revoke",
                            target=found.email, problems=refused.problems)
        return InvitationChange(problems=refused.problems)
    after_write(ctx)
    return InvitationChange(invitation=await ctx.loaders.organizations.invitation.load(found.id))


# --- acceptInvitation ---------------------------------------------------------------------------

async def accept_invitation(ctx: Context, token: str, name: str | None, password: str) -> AcceptResult:
    """Joins the invited email's account to the organization, creating the account if the email
    has none, and signs it in. Anonymous: the token is the credential, and it works once.

    The invitation row is locked first, so of two concurrent accepts one joins and the other
    finds the invitation accepted (INVITATION_NOT_PENDING) and writes nothing.
    """
    await require_change(ctx, "acceptInvitation")
    token = token.strip()
    name = (name or "").strip()
    problems = []
    if not token:
        problems.append(Problem(("input", "token"), "The invitation token is missing.", "REQUIRED"))
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(Problem(("input", "password"), f"A password has at most {MAX_PASSWORD_LENGTH} characters.",
                                "INVALID"))
    if len(name) > MAX_NAME_LENGTH:
        problems.append(Problem(("input", "name"), f"A name has at most {MAX_NAME_LENGTH} characters.", "INVALID"))
    if problems:
        return AcceptResult(problems=problems)
    await take_attempt(ctx)  # guessing tokens is throttled like guessing passwords
    if len(token) > MAX_TOKEN_LENGTH:
        return AcceptResult(problems=[_not_pending("token")])
    try:
        async with ctx.db.transaction() as conn:
            invitation = await data.invitation_by_token_for_update(conn, hash_token(token))
            # An unknown token is told the same as a used one: nothing tells them apart.
            if invitation is None or not is_pending(invitation):
                raise _Refused(_not_pending("token"))
            await give_back_attempt(ctx)  # the token is right; an account's password is its own attempt
            enforced = await config_for_email(conn, invitation.email)
            if enforced is not None and enforced.enforce and enforced.organization_id == invitation.organization_id:
                # No password for someone the organization signs in through its provider: signing in
                # there (`/sso/start`) takes the invitation, with its role.
                raise _Refused(Problem(("input", "token"), "Your organization signs you in through its identity "
                                                           f"provider: start at {START_PATH}?email=… and the "
                                                           "invitation is taken then.", "SIGN_IN_WITH_PROVIDER"))
            # The name the inviter gave stands in for one the invitee left out.
            account_id, created = await _joining_account(ctx, conn, invitation.email, name or invitation.name,
                                                         password)
            await data.add_membership(conn, account_id=account_id, organization_id=invitation.organization_id,
                                      role=invitation.role)
            await data.mark_accepted(conn, invitation.id)
            await audit.record(conn, organization_id=invitation.organization_id, actor_account_id=account_id,
                               action="member.join", target=invitation.email,
                               details={"invitationId": invitation.id, "role": invitation.role,
                                        "accountCreated": created})
            signed_in = await start_session(ctx, conn, account_id)
            # Anonymous request: the actor is the account that joined (as in the audit entry).
            await publish(conn, "INVITATION_ACCEPTED", organization_id=invitation.organization_id,
                          actor_account_id=account_id,
                          data={"invitation_id": invitation.id, "account_id": account_id})
            await publish(conn, "MEMBER_JOINED", organization_id=invitation.organization_id,
                          actor_account_id=account_id, data={"account_id": account_id, "role": invitation.role})
    except _Refused as refused:
        return AcceptResult(problems=refused.problems)
    after_write(ctx)
    return AcceptResult(account=await ctx.loaders.accounts.account.load(account_id), tokens=signed_in)


async def _joining_account(ctx: Context, conn: asyncpg.Connection, email: str, name: str,
                           password: str) -> tuple[UUID, bool]:
    """The account that joins (locked), and whether it was created now."""
    existing = await data.account_for_join(conn, email)
    if existing is None:
        problems = []
        if not name:
            problems.append(Problem(("input", "name"), "Enter your name to create your account.", "REQUIRED"))
        weak = passwords.weakness(password, email)
        if weak:
            problems.append(Problem(("input", "password"), weak, "WEAK_PASSWORD"))
        if problems:
            raise _Refused(*problems)
        password_hash = await hash_new_password(password)
        created = await data.create_account(conn, email=email, name=name, password_hash=password_hash)
        if created is not None:
            return created, True
        existing = await data.account_for_join(conn, email)  # created by a concurrent request
        assert existing is not None
    if existing.organization_id is not None:
        raise _Refused(Problem(("input", "token"), f"{email} already belongs to an organization; an account can "
                                                   "belong to only one.", "IN_ANOTHER_ORGANIZATION"))
    if existing.password_hash is None:
        # An account that never had a password (created by support, say): this one becomes it.
        weak = passwords.weakness(password, email)
        if weak:
            raise _Refused(Problem(("input", "password"), weak, "WEAK_PASSWORD"))
        await data.set_password(conn, existing.id, await hash_new_password(password))
    elif not await check_password(ctx, email, existing.password_hash, password):
        raise _Refused(Problem(("input", "password"), f"{email} already has an account: enter its password to "
                                                      "join with it.", "WRONG_PASSWORD"))
    return existing.id, False


# --- removeMember, changeMemberRole -------------------------------------------------------------

async def _managed_member(ctx: Context, mutation: str, account_id: UUID | None) -> tuple[UUID, UUID, UUID]:
    """(account id, organization id, acting manager): NOT_FOUND for an account that is in no
    organization, does not exist, or is in another organization; FORBIDDEN for a MEMBER."""
    await require_change(ctx, mutation)
    membership = await ctx.loaders.accounts.membership.load(account_id) if account_id else None
    if membership is None:
        raise NotFound(NOT_FOUND)
    actor = await require_change_in(ctx, mutation, membership.organization_id)
    return membership.account_id, membership.organization_id, actor


async def remove_member(ctx: Context, account_id: UUID | None, *, revoke_seats: bool) -> RemoveResult:
    """Removes a member from the organization, with their credit access there.

    Refused while they hold seats of the organization's pool (any kind but TRIAL and BETA),
    unless `revoke_seats`: then those seats are revoked in the same transaction. TRIAL and BETA
    seats belong to the person, not to the pool (an admin cannot revoke them to give them to
    someone else), so they are released with the removal whatever `revoke_seats` says, and
    audited as released. The OWNER cannot be removed. Their sessions stay valid; they simply
    belong to no organization any more.
    """
    account_id, organization_id, actor = await _managed_member(ctx, "removeMember", account_id)
    account = await ctx.loaders.accounts.account.load(account_id)
    target = account.email if account else str(account_id)
    try:
        async with ctx.db.transaction() as conn:
            membership = await _lock_member_and_manager(conn, account_id, organization_id, actor)
            if membership.role == "OWNER":
                if account_id == actor:
                    raise _Refused(Problem(("input", "accountId"), "The OWNER cannot leave the organization: "
                                                                   "hand it over first (transferOwnership).",
                                           "NOT_ALLOWED"))
                raise _Refused(Problem(("input", "accountId"), "The OWNER cannot be removed.", "OWNER_PROTECTED"))
            seats = await data.seats_held(conn, account_id, organization_id)
            _check_seats(target, seats, revoke_seats)

            async def audited(details: dict[str, Any]) -> None:
                await audit_success(conn, ctx, organization_id=organization_id, action="member.remove", target=target,
                                    details=details)

            revoked = await take_out(conn, ctx, organization_id, account_id, target, membership.role, seats, audited)
    except _Refused as refused:
        await audit_refusal(ctx, organization_id=organization_id, action="member.remove", target=target,
                            problems=refused.problems)
        return RemoveResult(problems=refused.problems)
    after_write(ctx)
    return RemoveResult(removed_account_id=account_id, organization_id=organization_id, revoked_seats=revoked)


async def take_out(conn: asyncpg.Connection, ctx: Context, organization_id: UUID, account_id: UUID, target: str,
                   role: str, seats: Sequence[data.HeldSeat],
                   audited: Callable[[dict[str, Any]], Awaitable[None]]) -> int:
    """The member leaves with every seat in `seats` (their locked rows, as `seats_held` read them)
    and their credit access; `audited(details)` writes the `member.remove` entry. Returns the
    number of seats revoked. The caller has checked that they may go (not the OWNER)."""
    revoked = await data.revoke_seats(conn, account_id, [s.license_id for s in seats]) if seats else 0
    await data.remove_membership(conn, account_id, organization_id)
    await audited({"accountId": account_id, "role": role,
                   "revokedSeats": _seat_details(s for s in seats if not _locked(s)),
                   "releasedSeats": _seat_details(s for s in seats if _locked(s))})
    for seat in seats:
        await report_seats(conn, ctx, "SEAT_REVOKED", organization_id, seat.license_id, [account_id])
    await report(conn, ctx, "MEMBER_LEFT", organization_id=organization_id,
                 data={"account_id": account_id, "email": target, "role": role})
    return revoked


def _locked(seat: data.HeldSeat) -> bool:
    return seat.kind in LOCKED_SEAT_KINDS


def _seat_details(seats: Iterable[data.HeldSeat]) -> list[dict[str, Any]]:
    return [{"licenseId": s.license_id, "product": s.product_name, "kind": s.kind} for s in seats]


async def _lock_member_and_manager(conn: asyncpg.Connection, account_id: UUID, organization_id: UUID,
                                   actor: UUID) -> Membership:
    """The member's row, and the acting manager's, held until commit: the actor's standing was
    checked before the transaction, and two ADMINs removing each other at once would otherwise
    both succeed. NOT_FOUND when the member has left meanwhile; FORBIDDEN when the actor has
    (or is no longer an OWNER or ADMIN)."""
    rows = await data.memberships_for_update(conn, [account_id, actor])
    mine = rows.get(actor)
    if mine is None or mine.organization_id != organization_id or mine.role not in ("OWNER", "ADMIN"):
        raise Forbidden(MANAGERS_ONLY)
    membership = rows.get(account_id)
    if membership is None or membership.organization_id != organization_id:
        raise NotFound(NOT_FOUND)
    return membership


def _check_seats(who: str, seats: Sequence[data.HeldSeat], revoke_seats: bool) -> None:
    """Pool seats go only when asked for; TRIAL and BETA seats go with the person (see remove_member)."""
    pool = [s for s in seats if not _locked(s)]
    if pool and not revoke_seats:
        products = ", ".join(s.product_name for s in pool)
        raise _Refused(Problem(("input", "revokeSeats"),
                               f"{who} holds seats of {products}. Revoke them first, or set revokeSeats to "
                               "revoke them together with the removal.", "HOLDS_SEATS"))


async def change_member_role(ctx: Context, account_id: UUID | None, role: str) -> RoleChange:
    """Makes a member an ADMIN or a MEMBER. The OWNER keeps their role, no one changes their
    own, and OWNER is not granted here (resolvers/ownership.py hands it over)."""
    account_id, organization_id, actor = await _managed_member(ctx, "changeMemberRole", account_id)
    account = await ctx.loaders.accounts.account.load(account_id)
    target = account.email if account else str(account_id)
    try:
        if role not in INVITABLE_ROLES:
            raise _Refused(Problem(("input", "role"), "Choose ADMIN or MEMBER; the OWNER hands over with "
                                                      "transferOwnership.", "INVALID"))
        async with ctx.db.transaction() as conn:
            membership = await _lock_member_and_manager(conn, account_id, organization_id, actor)
            if membership.role == "OWNER":
                raise _Refused(Problem(("input", "accountId"), "The OWNER's role cannot be changed.",
                                       "OWNER_PROTECTED"))
            if account_id == actor:
                raise _Refused(Problem(("input", "accountId"), "You cannot change your own role.", "OWN_ROLE"))
            if membership.role != role:
                async def audited(details: dict[str, Any]) -> None:
                    await audit_success(conn, ctx, organization_id=organization_id, action="member.role_change",
                                        target=target, details=details)

                await set_role_of(conn, ctx, organization_id, account_id, membership.role, role, audited)
    except _Refused as refused:
        await audit_refusal(ctx, organization_id=organization_id, action="member.role_change", target=target,
                            problems=refused.problems)
        return RoleChange(problems=refused.problems)
    after_write(ctx)
    member = await resolve_organizations.visible_member(ctx, f"{resolve_organizations.MEMBER_PREFIX}{account_id}")
    return RoleChange(member=member)


async def set_role_of(conn: asyncpg.Connection, ctx: Context, organization_id: UUID, account_id: UUID, old_role: str,
                      role: str, audited: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """A member's new role (ADMIN or MEMBER, never the OWNER's), audited as `member.role_change`
    by `audited(details)` and reported; the caller holds their membership row."""
    await data.set_role(conn, account_id, role)
    await audited({"accountId": account_id, "from": old_role, "to": role})
    await report(conn, ctx, "MEMBER_ROLE_CHANGED", organization_id=organization_id,
                 data={"account_id": account_id, "old_role": old_role, "new_role": role})
