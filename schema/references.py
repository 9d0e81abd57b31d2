"""Account references for the modules that schema.account itself imports.

Account's own fields return licenses, credits and organizations, so those modules can
only name Account lazily; these helpers import it at call time, in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeAlias
from uuid import UUID

import strawberry

from datasources.postgres.accounts import Account as AccountRecord
from resolvers import accounts as resolve_accounts
from schema.common import Info

if TYPE_CHECKING:
    from schema.account import Account, OrganizationRole

AccountRef: TypeAlias = Annotated["Account", strawberry.lazy("schema.account")]
RoleRef: TypeAlias = Annotated["OrganizationRole", strawberry.lazy("schema.account")]


def account_node(record: AccountRecord) -> AccountRef:
    from schema.account import Account

    return Account.from_record(record)


async def visible_account_node(info: Info, account_id: UUID | None) -> AccountRef | None:
    """The account if the viewer may see it; None otherwise, as for no account at all."""
    found = await resolve_accounts.visible_account(info.context, account_id) if account_id else None
    return account_node(found) if found else None


def role_enum(value: str) -> RoleRef:
    from schema.account import OrganizationRole

    return OrganizationRole(value)
