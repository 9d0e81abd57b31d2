"""What the vendor's staff and services do across organizations: who may enter `staff`, and the
staff mutations (changeAccountEmail, grantCredits, extendLicense, adjustLicenseQuantity and
resendInvitation on an organization's behalf).

Each mutation is authorized first (FORBIDDEN as a top-level error, before anything is read),
needs a reason, and records the role or scope used with that reason in the audit log of the
organization it changed, in the transaction of the change, so the customer sees it too.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from uuid import UUID

from datasources.errors import NotFound
from datasources.postgres import sessions
from datasources.postgres import people as people_data
from datasources.postgres import staff as data
from datasources.postgres.accounts import Account
from datasources.postgres import subscription_changes
from datasources.postgres.entitlements import License, Subscription
from datasources.postgres.seat_changes import allocated_count, lock_license
from resolvers import people, seat_quantity, subscription_sync
from resolvers.context import Context
from resolvers.permissions import require_everywhere, require_staff
from resolvers.sessions import report_ended
from resolvers.user_errors import Problem
from resolvers.writes import (NOT_FOUND, OnBehalf, after_write, audit_refusal, audit_success, claim_key,
                              complete_key, key_problem, report, send_mail)

MAX_REASON_LENGTH = 1000
MAX_GRANT = 10_000_000
MAX_QUANTITY = seat_quantity.MAX_SEATS
GRANT_SOURCE = "VENDOR"
GRANT_OPERATION = "grantCredits"



def require_staff_reader(ctx: Context) -> None:
    """The `staff` entry point: the staff roles and service scopes of the access table's row."""
    require_everywhere(ctx, "Query.staff")


# Letters and symbols that render as nothing: Hangul fillers, the blank Braille pattern, the
# musical null notehead (Unicode's own "invisible" lookalikes, as named in its confusables notes).
_BLANK_LOOKALIKES = frozenset("\u115f\u1160\u3164\uffa0\u2800\U0001d159\u180e")


def _blank(char: str) -> bool:
    # Spaces, controls and format characters (zero-width space, joiners, BOM), and the blank
    # lookalikes: nothing a reader of the audit log sees.
    return unicodedata.category(char)[0] in "ZC" or char in _BLANK_LOOKALIKES


def staff_reason(reason: str) -> tuple[str, Problem | None]:
    """The reason without blank characters around it; REQUIRED unless it has a letter, digit,
    punctuation or symbol to read."""
    kept = [i for i, char in enumerate(reason) if not _blank(char)]
    reason = reason[kept[0]:kept[-1] + 1] if kept else ""
    # A refused reason is not kept: the audit entry of the refusal records none.
    if not any(unicodedata.category(char)[0] in "LNPS" and not _blank(char) for char in reason):
        return "", Problem(("input", "reason"), "Give the reason for this change; the customer sees it in "
                                                "their audit log.", "REQUIRED")
    if len(reason) > MAX_REASON_LENGTH:
        return "", Problem(("input", "reason"), f"A reason has at most {MAX_REASON_LENGTH} characters.", "INVALID")
    if any(unicodedata.category(char) in ("Cc", "Cs") and char not in "\t\n" for char in reason):
        return "", Problem(("input", "reason"), "A reason is plain text: no control characters.", "INVALID")
    return reason, None


@dataclass(frozen=True)
class AccountChange:
    account: Account | None = None
    sessions_ended: int = 0
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class OrganizationChange:
    organization_id: UUID | None = None
    grant_id: UUID | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class LicenseChange:
    license: License | None = None
    problems: list[Problem] = field(default_factory=list)


# --- changeAccountEmail -------------------------------------------------------------------------

async def change_account_email(ctx: Context, account_id: UUID | None, email: str, reason: str) -> AccountChange:
    """The support path for an email change: both addresses are told, and every session of the
    account ends (it signs in again with the new address). Setting the email it already has
    changes nothing and sends nothing, so a retry is harmless."""
    authority = require_staff(ctx, "changeAccountEmail")
    account = await ctx.loaders.accounts.account.load(account_id) if account_id else None
    if account is None:
        raise NotFound(NOT_FOUND)
    membership = await ctx.loaders.accounts.membership.load(account.id)
    organization_id = membership.organization_id if membership else None
    reason, problem = staff_reason(reason)
    on_behalf = OnBehalf(authority.scope, reason)
    new_email = people.normalize_email(email)
    problems = [p for p in (problem,) if p]
    if new_email is None:
        problems.append(Problem(("input", "email"), "Enter a valid email address.", "INVALID"))
    if not problems:
        assert new_email is not None
        async with ctx.db.transaction() as conn:
            locked = await data.lock_account(conn, account.id)
            if locked is None:
                raise NotFound(NOT_FOUND)
            organization_id = locked.organization_id
            if locked.email == new_email:
                return AccountChange(account=account)
            if not await data.set_email(conn, locked.id, new_email):
                problems.append(Problem(("input", "email"), f"{new_email} already belongs to another account.",
                                        "INVALID"))
            else:
                ended = await sessions.revoke_account_sessions(conn, locked.id)
                for to in (locked.email, new_email):
                    await send_mail(conn, to=to, subject="Your account's email address was changed",
                                    body=_email_change_mail(locked.name, locked.email, new_email, reason))
                await audit_success(conn, ctx, organization_id=organization_id, action="account.email_change",
                                    target=new_email, on_behalf=on_behalf,
                                    details={"accountId": locked.id, "from": locked.email, "to": new_email,
                                             "sessionsEnded": len(ended)})
                await report_ended(conn, locked.id, ended, "EMAIL_CHANGED", actor=ctx.viewer.account_id)
    if problems:
        await audit_refusal(ctx, organization_id=organization_id, action="account.email_change",
                            target=account.email, problems=problems, on_behalf=on_behalf)
        return AccountChange(problems=problems)
    after_write(ctx)
    return AccountChange(account=await ctx.loaders.accounts.account.load(account.id), sessions_ended=len(ended))


def _email_change_mail(name: str, old: str, new: str, reason: str) -> str:
    return (f"Hello {name},\n\nat your request our support changed the email address of your account from "
            f"{old} to {new}.\nReason given: {reason}\n\nSign in again with {new}; every session of the account "
            "has ended. If you did not ask for this, contact support at once.\n")


# --- grantCredits -------------------------------------------------------------------------------

async def grant_credits(ctx: Context, organization_id: UUID | None, amount: int, expires_at: datetime | None,
                        reason: str, idempotency_key: str | None) -> OrganizationChange:
    """Adds a grant to the organization's credit pool. With an idempotency key, a retry of the
    same request grants nothing more."""
    authority = require_staff(ctx, "grantCredits")
    organization = await ctx.loaders.accounts.organization.load(organization_id) if organization_id else None
    if organization is None:
        raise NotFound(NOT_FOUND)
    reason, problem = staff_reason(reason)
    on_behalf = OnBehalf(authority.scope, reason)
    problems = [p for p in (problem, key_problem(idempotency_key)) if p]
    if not 1 <= amount <= MAX_GRANT:
        problems.append(Problem(("input", "amount"), f"Grant 1 to {MAX_GRANT:,} credits.", "INVALID"))
    if expires_at is not None and expires_at <= datetime.now(timezone.utc):
        problems.append(Problem(("input", "expiresAt"), "A grant expires in the future (or never: leave it out).",
                                "INVALID"))
    request = {"organizationId": str(organization.id), "amount": amount, "expiresAt": expires_at, "reason": reason}
    if not problems:
        async with ctx.db.transaction() as conn:
            if await people_data.lock_organization(conn, organization.id) is None:
                raise NotFound(NOT_FOUND)
            claimed = await claim_key(conn, ctx, GRANT_OPERATION, idempotency_key, request)
            if isinstance(claimed, Problem):
                problems.append(claimed)
            elif claimed is not None:
                grant_id = UUID(claimed["grantId"])  # a retry: the first call's grant
            else:
                grant_id = await data.insert_grant(conn, organization_id=organization.id, amount=amount,
                                                   source=GRANT_SOURCE, expires_at=expires_at)
                await audit_success(conn, ctx, organization_id=organization.id, action="credits.grant",
                                    target=str(grant_id), on_behalf=on_behalf,
                                    details={"grantId": grant_id, "amount": amount, "expiresAt": expires_at})
                await complete_key(conn, ctx, GRANT_OPERATION, idempotency_key, {"grantId": str(grant_id)})
    if problems:
        await audit_refusal(ctx, organization_id=organization.id, action="credits.grant", target=None,
                            problems=problems, on_behalf=on_behalf)
        return OrganizationChange(problems=problems)
    after_write(ctx)
    return OrganizationChange(organization_id=organization.id, grant_id=grant_id)


# --- extendLicense, adjustLicenseQuantity -------------------------------------------------------

async def _license_change(ctx: Context, mutation: str, license_id: UUID | None,
                          reason: str) -> tuple[License, OnBehalf, list[Problem]]:
    """Authorized, found, and the reason checked: what both license mutations start with."""
    authority = require_staff(ctx, mutation)
    found = await ctx.loaders.entitlements.license.load(license_id) if license_id else None
    if found is None:
        raise NotFound(NOT_FOUND)
    reason, problem = staff_reason(reason)
    return found, OnBehalf(authority.scope, reason), [p for p in (problem,) if p]


async def extend_license(ctx: Context, license_id: UUID | None, expires_at: datetime, reason: str) -> LicenseChange:
    """Moves a license's expiry later (an expired one comes back to life); never earlier."""
    found, on_behalf, problems = await _license_change(ctx, "extendLicense", license_id, reason)
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=timezone.utc)
    if expires_at <= datetime.now(timezone.utc):
        problems.append(Problem(("input", "expiresAt"), "The new expiry must be in the future.", "INVALID"))
    billed = await _billed_subscription(ctx, found) if not problems else None
    if not problems:
        async with ctx.db.transaction() as conn:
            if billed is not None:  # in the order seat changes lock them: subscription, then license
                await subscription_changes.lock_subscription(conn, billed.id)
            current = await lock_license(conn, found.id)
            if current is None:
                raise NotFound(NOT_FOUND)
            if current.expires_at is None:
                problems.append(Problem(("input", "licenseId"), "A perpetual license never expires.",
                                        "NOT_ALLOWED"))
            elif expires_at <= current.expires_at:
                problems.append(Problem(("input", "expiresAt"), "Extend only: the new expiry must be later than "
                                        f"the current one ({current.expires_at.isoformat()}).", "INVALID"))
            else:
                if billed is not None and billed.provider_subscription_id is not None:
                    # Free time at the provider (its next bill moves to the new expiry); the rows follow.
                    assert ctx.payments is not None
                    provider = await ctx.payments.extend_period(
                        billed.provider_subscription_id, expires_at,
                        idempotency_key=f"extend:{current.id}:{expires_at.isoformat()}")
                    await subscription_changes.follow(conn, billed.id, provider)
                else:
                    await data.set_license_expiry(conn, current.id, expires_at)
                await audit_success(conn, ctx, organization_id=current.organization_id, action="license.extend",
                                    target=str(current.id), on_behalf=on_behalf,
                                    details={"licenseId": current.id, "from": current.expires_at, "to": expires_at})
                if current.subscription_id is not None:
                    # The subscription's license runs longer: for its managers, the subscription renewed.
                    await report(conn, ctx, "SUBSCRIPTION_RENEWED", organization_id=current.organization_id,
                                 data={"subscription_id": current.subscription_id, "renews_at": expires_at,
                                       "license_id": current.id})
    return await _license_outcome(ctx, found, "license.extend", problems, on_behalf)


async def adjust_license_quantity(ctx: Context, license_id: UUID | None, quantity: int,
                                  reason: str) -> LicenseChange:
    """Sets a license's seat count; never below the seats allocated now (the license row is
    locked, as allocations lock it, so no allocation slips in between)."""
    found, on_behalf, problems = await _license_change(ctx, "adjustLicenseQuantity", license_id, reason)
    subscription = await _billed_subscription(ctx, found)
    if subscription is not None and not problems:
        # Seats the provider bills change as the customer's own change does (more: now, charged
        # prorated; fewer: at the period's end), so license, subscription and provider agree.
        change = await seat_quantity.change_seats(ctx, subscription, quantity, idempotency_key=None, dry_run=False,
                                                  on_behalf=on_behalf)
        if change.problems:
            return LicenseChange(problems=change.problems)
        return LicenseChange(license=await ctx.loaders.entitlements.license.load(found.id))
    if not 1 <= quantity <= MAX_QUANTITY:
        problems.append(Problem(("input", "quantity"), f"A license has 1 to {MAX_QUANTITY:,} seats.", "INVALID"))
    if not problems:
        async with ctx.db.transaction() as conn:
            current = await lock_license(conn, found.id)
            if current is None:
                raise NotFound(NOT_FOUND)
            allocated = await allocated_count(conn, current.id)
            if quantity < allocated:
                problems.append(Problem(("input", "quantity"), f"{allocated} seats are allocated: revoke seats "
                                        "before going below that.", "NOT_ALLOWED"))
            elif quantity != current.quantity:
                await data.set_license_quantity(conn, current.id, quantity)
                await audit_success(conn, ctx, organization_id=current.organization_id, action="license.quantity",
                                    target=str(current.id), on_behalf=on_behalf,
                                    details={"licenseId": current.id, "from": current.quantity, "to": quantity})
                await report(conn, ctx, "LICENSE_QUANTITY_CHANGED", organization_id=current.organization_id,
                             data={"license_id": current.id, "old_quantity": current.quantity,
                                   "new_quantity": quantity})
    return await _license_outcome(ctx, found, "license.quantity", problems, on_behalf)


async def _billed_subscription(ctx: Context, license: License) -> Subscription | None:
    """The subscription the provider bills for this license's seats, if it has one."""
    if license.kind != "SUBSCRIPTION" or license.subscription_id is None or ctx.payments is None:
        return None
    found = await ctx.loaders.entitlements.subscription.load(license.subscription_id)
    if found is None:
        return None
    found = await subscription_sync.ensure_at_provider(ctx.db, ctx.payments, found)
    return found if found.provider_subscription_id is not None else None


async def _license_outcome(ctx: Context, found: License, action: str, problems: list[Problem],
                           on_behalf: OnBehalf) -> LicenseChange:
    if problems:
        await audit_refusal(ctx, organization_id=found.organization_id, action=action, target=str(found.id),
                            problems=problems, on_behalf=on_behalf)
        return LicenseChange(problems=problems)
    after_write(ctx)
    return LicenseChange(license=await ctx.loaders.entitlements.license.load(found.id))


# --- resendInvitation on an organization's behalf -----------------------------------------------

async def resend_invitation(ctx: Context, invitation_id: UUID | None, reason: str) -> people.InvitationChange:
    """The organization's own `resendInvitation`, done by support: same rules, same mail."""
    authority = require_staff(ctx, "staffResendInvitation")
    found = await ctx.loaders.organizations.invitation.load(invitation_id) if invitation_id else None
    if found is None:
        raise NotFound(NOT_FOUND)
    reason, problem = staff_reason(reason)
    on_behalf = OnBehalf(authority.scope, reason)
    if problem:  # refused before the organization's own rules run, and audited like them
        await audit_refusal(ctx, organization_id=found.organization_id, action="invitation.resend",
                            target=found.email, problems=[problem], on_behalf=on_behalf)
        return people.InvitationChange(problems=[problem])
    return await people.resend_invitation(ctx, invitation_id, on_behalf)
