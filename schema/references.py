"""Account references for the modules that schema.account itself imports.

Account's own fields return licenses, credits and organizations, so those modules can
only name Account lazily; these helpers import it at call time, in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias
from uuid import UUID

import strawberry

from datasources.postgres.accounts import Account as AccountRecord
from resolvers import accounts as resolve_accounts
from schema.common import Info
from planning.levels import LevelResolver

if TYPE_CHECKING:
    from schema.account import Account, OrganizationRole

AccountRef: TypeAlias = Annotated["Account", strawberry.lazy("schema.account")]
RoleRef: TypeAlias = Annotated["OrganizationRole", strawberry.lazy("schema.account")]


def account_node(record: AccountRecord) -> AccountRef:
    from schema.account import Account

    return Account.from_record(record)


async def visible_account_node(info: Info, account_id: UUID | None) -> AccountRef | None:
    """The account if the viewer may see it; None otherwise, as for no account at all."""
    [found] = await visible_account_nodes(info, [account_id])
    return found


async def visible_account_nodes(info: Info, account_ids: Sequence[UUID | None]) -> list[AccountRef | None]:
    found = await resolve_accounts.visible_accounts(info.context, account_ids)
    nodes = {a.id: account_node(a) for a in found if a}  # the same account often appears many times
    return [nodes[a.id] if a else None for a in found]


def accounts_at(attribute: str) -> LevelResolver:
    """The level form of a field holding the account whose id is in `attribute` of its object."""

    async def level(sources: Sequence[Any], info: Info) -> list[AccountRef | None]:
        return await visible_account_nodes(info, [getattr(source, attribute) for source in sources])

    return level


def role_enum(value: str) -> RoleRef:
    from schema.account import OrganizationRole

    return OrganizationRole(value)
