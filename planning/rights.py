"""Who may see what, in one library: the viewer's kinds and reach (from the access table,
`auth.access`), and each visibility rule as ONE SQL fragment, which the compiled statements
and the per-object loaders both apply.

Every statement that applies a rule takes the same parameters after its keys ($1): the
viewer's `Scope`, in the order of `PARAMETERS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from uuid import UUID

from auth import access
from auth.viewer import Viewer, require_account
from datasources.postgres.accounts import Membership
from loaders import Loaders

MANAGERS = frozenset({"OWNER", "ADMIN"})
# A license expires within this long: EXPIRING (`rules.LICENSE_STATUS`).
EXPIRING_WITHIN = timedelta(days=30)


class Reader(Protocol):
    """What a rule needs of the request (`resolvers.context.Context`)."""

    @property
    def viewer(self) -> Viewer: ...

    @property
    def loaders(self) -> Loaders: ...


async def viewer_membership(ctx: Reader) -> Membership | None:
    if ctx.viewer.service is not None:
        return None  # a service is no one's member
    return await ctx.loaders.accounts.membership.load(require_account(ctx.viewer))


def kinds_everywhere(ctx: Reader) -> frozenset[str]:
    """The viewer's kinds that hold in every organization: a staff role, or a service's scopes."""
    viewer = ctx.viewer
    if viewer.service is not None:
        return viewer.service.scopes
    if viewer.account_id is None:
        return frozenset({access.ANONYMOUS})
    return frozenset({viewer.staff_role}) if viewer.staff_role else frozenset()


def kinds_with(everywhere: frozenset[str], mine: Membership | None, organization_id: UUID | None) -> frozenset[str]:
    """`everywhere`, and MEMBER or OWNER/ADMIN when `organization_id` is the viewer's own (`mine`)."""
    if mine is None or organization_id is None or mine.organization_id != organization_id:
        return everywhere
    return everywhere | {access.MANAGER if mine.role in MANAGERS else access.MEMBER}


async def kinds_in(ctx: Reader, organization_id: UUID | None) -> frozenset[str]:
    """The viewer's kinds in this organization."""
    everywhere = kinds_everywhere(ctx)
    if ctx.viewer.account_id is None:
        return everywhere
    return kinds_with(everywhere, await viewer_membership(ctx), organization_id)


async def may(ctx: Reader, coordinate: str, organization_id: UUID | None) -> bool:
    return access.allows(await kinds_in(ctx, organization_id), coordinate)


@dataclass(frozen=True)
class Reach:
    """Where the viewer reaches a coordinate: every organization, or `organization` (their own) only."""

    everywhere: bool
    organization: UUID | None


async def reach(ctx: Reader, coordinate: str) -> Reach:
    """The table's rows for `coordinate`, for SQL that applies them to many organizations at once."""
    everywhere = kinds_everywhere(ctx)
    mine = await viewer_membership(ctx) if ctx.viewer.account_id is not None else None
    own = mine.organization_id if mine else None
    return Reach(access.allows(everywhere, coordinate),
                 own if access.allows(kinds_with(everywhere, mine, own), coordinate) else None)


@dataclass(frozen=True)
class Scope:
    """Who is reading (an account, or None for a service), and where they see other people's
    accounts and every seat of a license: everywhere, or in one organization (their own) only."""

    viewer_id: UUID | None
    accounts_everywhere: bool
    accounts_in: UUID | None
    seats_everywhere: bool
    seats_in: UUID | None
    expiring_within: timedelta

    def parameters(self) -> tuple[Any, ...]:
        """The statement parameters $2 to $7 (`PARAMETERS`)."""
        return (self.viewer_id, self.expiring_within, self.accounts_everywhere, self.accounts_in,
                self.seats_everywhere, self.seats_in)


# The scope's parameters in statements, after the keys ($1).
VIEWER, EXPIRING = "$2::uuid", "$3::interval"
ACCOUNTS_EVERYWHERE, ACCOUNTS_IN, SEATS_EVERYWHERE, SEATS_IN = "$4::boolean", "$5::uuid", "$6::boolean", "$7::uuid"
PARAMETERS = (VIEWER, EXPIRING, ACCOUNTS_EVERYWHERE, ACCOUNTS_IN, SEATS_EVERYWHERE, SEATS_IN)


async def scope(ctx: Reader) -> Scope | None:
    """The viewer's rights as statements apply them, from the access table's rows for other
    people's accounts and for all of a license's seats; None for an anonymous viewer (whom
    the resolvers refuse)."""
    if ctx.viewer.account_id is None and ctx.viewer.service is None:
        return None
    accounts, seats = await reach(ctx, "Account"), await reach(ctx, "License.allocations")
    return Scope(ctx.viewer.account_id, accounts.everywhere, accounts.organization, seats.everywhere,
                 seats.organization, EXPIRING_WITHIN)


# The access table's "Account": yourself, and others where the scope says. {a} is the account
# row. Its membership is read by its key: as EXISTS, PostgreSQL hashes every membership of the
# organization first (5,000 for a large one).
ACCOUNT_VISIBLE = (f"({{a}}.id = {VIEWER} OR {ACCOUNTS_EVERYWHERE}"
                   f" OR (SELECT m.organization_id FROM memberships m WHERE m.account_id = {{a}}.id) = {ACCOUNTS_IN})")
# "License.allocations": every seat of the license {t}, where the scope says.
EVERY_SEAT = f"{{t}}.organization_id = {SEATS_IN} OR {SEATS_EVERYWHERE}"
# A seat {s} of the license {t}: every seat where the scope says, and anyone's own seat.
SEAT_VISIBLE = f"({EVERY_SEAT} OR {{s}}.account_id = {VIEWER})"


def account_visible(a: str) -> str:
    return ACCOUNT_VISIBLE.replace("{a}", a)


@dataclass(frozen=True)
class Bound:
    """A fragment for a statement of its own numbering: the scope parameters it uses are
    `$first`, `$first + 1`... (`pick` takes them from the scope), each typed where it is used."""

    sql: str
    used: tuple[int, ...]  # positions in `Scope.parameters()`

    def pick(self, scope: Scope) -> tuple[Any, ...]:
        parameters = scope.parameters()
        return tuple(parameters[i] for i in self.used)


def bound(fragment: str, first: int) -> Bound:
    used: list[int] = []

    def renumber(match: re.Match[str]) -> str:
        position = int(match.group(1)) - 2
        if position not in used:
            used.append(position)
        return f"${first + used.index(position)}"

    return Bound(re.sub(r"\$(\d+)", renumber, fragment), tuple(used))
