"""An account changing itself: profile fields and password. Email only through support."""

from __future__ import annotations

from dataclasses import dataclass, field

from auth import passwords
from datasources.postgres import profile as data
from resolvers.attempts import check_password, hash_new_password
from resolvers.context import Context
from resolvers.countries import CODES
from resolvers.sessions import report_ended
from resolvers.user_errors import Problem
from resolvers.writes import after_write, require_own_change

MAX_NAME = 200


@dataclass(frozen=True)
class ProfileChange:
    name: str | None = None
    country: str | None = None
    clear_country: bool = False
    email: str | None = None


def _profile_problems(ctx: Context, change: ProfileChange) -> list[Problem]:
    problems = []
    if change.email is not None:
        problems.append(Problem(("input", "email"), "Your email can only be changed by support: contact "
                                f"{ctx.config.help_center_url}", "EMAIL_NOT_CHANGEABLE"))
    if change.name is not None and not 1 <= len(change.name.strip()) <= MAX_NAME:
        problems.append(Problem(("input", "name"), f"A name has 1 to {MAX_NAME} characters.", "INVALID"))
    if change.country is not None and change.country.upper() not in CODES:
        problems.append(Problem(("input", "country"), "Use an ISO 3166-1 alpha-2 country code, such as \"DE\".",
                                "INVALID"))
    return problems


async def update_profile(ctx: Context, change: ProfileChange) -> list[Problem]:
    account_id = await require_own_change(ctx, "updateProfile")
    problems = _profile_problems(ctx, change)
    if problems:
        return problems
    async with ctx.db.transaction() as conn:
        await data.update_profile(conn, account_id, name=change.name.strip() if change.name else None,
                                  country=change.country.upper() if change.country else None,
                                  clear_country=change.clear_country)
    after_write(ctx)
    return []


@dataclass(frozen=True)
class PasswordChange:
    problems: list[Problem] = field(default_factory=list)
    sessions_ended: int = 0


async def change_password(ctx: Context, current: str, new: str) -> PasswordChange:
    """Needs the current password, checked like a sign-in (throttled per account and address);
    ends every other session of the account, keeps this one."""
    account_id = await require_own_change(ctx, "changePassword")
    account = await ctx.loaders.accounts.account.load(account_id)
    assert account is not None
    wrong = PasswordChange([Problem(("input", "currentPassword"), "The current password is not correct.",
                                    "WRONG_PASSWORD")])
    # Checked and hashed outside the transaction: no connection or row lock is held meanwhile.
    stored = await data.password_hash(ctx.db, account_id)
    if not await check_password(ctx, account.email, stored, current):
        return wrong
    weak = passwords.weakness(new, account.email)
    if weak:
        return PasswordChange([Problem(("input", "newPassword"), weak, "WEAK_PASSWORD")])
    new_hash = await hash_new_password(new)
    async with ctx.db.transaction() as conn:
        if not await data.replace_password_hash(conn, account_id, stored, new_hash):
            return wrong  # changed by another request since it was checked: `current` is no longer it
        ended = await data.revoke_other_sessions(conn, account_id, ctx.viewer.session_id)
        await report_ended(conn, account_id, ended, "PASSWORD_CHANGED", actor=account_id)
    after_write(ctx)
    return PasswordChange(sessions_ended=len(ended))
