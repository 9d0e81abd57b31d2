"""Each account's choice of notification mail (resolvers/notifications.py says which kinds
mail, to whom, and the defaults): read and changed by the account itself only."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from datasources.errors import Forbidden
from datasources.postgres import notifications as data
from resolvers.context import Context
from resolvers.notifications import MAIL_KINDS, OWN_KINDS, on_by_default_for, receives
from resolvers.permissions import viewer_membership
from resolvers.user_errors import Problem
from resolvers.writes import after_write, require_own_change

UPDATE = "updateNotificationPreferences"
SERVICE_HAS_NONE = "Notification preferences belong to accounts; a service token has none."


@dataclass(frozen=True)
class Choice:
    kind: str
    mail: bool  # mailed about it now
    by_default: bool  # what the account's role gets unless it chooses otherwise
    applies: bool  # whether the account receives this kind at all in its role


@dataclass(frozen=True)
class UpdateResult:
    choices: list[Choice] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _choices(role: str | None, stored: dict[str, bool]) -> list[Choice]:
    out = []
    for kind in MAIL_KINDS:
        default = role in on_by_default_for(kind)
        applies = receives(kind, role)
        out.append(Choice(kind, applies and stored.get(kind, default), default, applies))
    return out


async def _role_and_stored(ctx: Context, account_id: UUID) -> tuple[str | None, dict[str, bool]]:
    # Both loads are queued before the first await: one round.
    stored = ctx.loaders.accounts.notification_preferences.load(account_id)
    membership = await viewer_membership(ctx)
    return (membership.role if membership else None), {p.kind: p.mail for p in await stored}


async def preferences(ctx: Context) -> list[Choice]:
    """The viewer's own, every mailable kind in MAIL_KINDS order."""
    if ctx.viewer.service is not None:
        raise Forbidden(SERVICE_HAS_NONE)
    account_id = await require_own_change(ctx, UPDATE)  # whoever may change them may read them
    return _choices(*await _role_and_stored(ctx, account_id))


async def update_preferences(ctx: Context, chosen: list[tuple[str, bool]]) -> UpdateResult:
    """Sets the viewer's own choices; every kind left out keeps its choice. Refused whole, with
    nothing stored, when a kind is named twice or turned on for an account that never
    receives it."""
    account_id = await require_own_change(ctx, UPDATE)
    role, _ = await _role_and_stored(ctx, account_id)
    problems = []
    seen: set[str] = set()
    for index, (kind, mail) in enumerate(chosen):
        path = ("input", "mail", str(index), "kind")
        if kind not in MAIL_KINDS:  # the enum admits only these; kept for callers other than GraphQL
            problems.append(Problem(path, "Not a kind of notification mail.", "INVALID"))
        elif kind in seen:
            problems.append(Problem(path, "Name each kind at most once.", "INVALID"))
        elif mail and not receives(kind, role):
            who = "members of an organization" if kind in OWN_KINDS else "the organization's OWNER and ADMINs"
            problems.append(Problem(path, f"Only {who} receive this mail.", "NOT_ALLOWED"))
        seen.add(kind)
    if problems:
        return UpdateResult(choices=await preferences(ctx), problems=problems)
    if chosen:
        async with ctx.db.transaction() as conn:
            await data.save_preferences(conn, account_id, dict(chosen),
                                        {kind: role in on_by_default_for(kind) for kind in MAIL_KINDS})
        after_write(ctx)
    return UpdateResult(choices=await preferences(ctx))
