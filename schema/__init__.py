"""The GraphQL schema: the root Query and Mutation, assembled once from the domain modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import (AddValidationRules, DisableIntrospection, MaxAliasesLimiter, ParserCache,
                                   QueryDepthLimiter, SchemaExtension, ValidationCache)
from strawberry.types import ExecutionContext

from resolvers import accounts as resolve_accounts
from schema import node
from schema.mutations import Mutation
from schema.account import Account
from schema.node import NODE_TYPES
from schema.product import Product
from auth.viewer import require_account
from schema.common import Info
from schema.execution import LevelExecutor
from schema.extensions import RequireOperationName, SelectionLimitsRule

MAX_DEPTH = 15
MAX_ALIASES = 30
from schema.support import Support
from schema import staff
from schema.staff import Staff


@strawberry.type(description="Everything a client can read.")
class Query:
    @strawberry.field(description="The signed-in account. Without a valid bearer token: null, with an "
                                  "UNAUTHENTICATED error.")
    async def viewer(self, info: Info) -> Account | None:
        return Account.from_record(await resolve_accounts.viewer_account(info.context))

    @strawberry.field(description="Fetches an object by its global ID; null when it does not exist or "
                                  "is not visible to the viewer.")
    async def node(self, info: Info,
                   id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")]
                   ) -> relay.Node | None:
        return await node.resolve_node(info, id)

    @strawberry.field(description="Fetches objects by their global IDs (at most 100), in the order "
                                  "given; null for each one missing or not visible.")
    async def nodes(self, info: Info,
                    ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global IDs.")]
                    ) -> list[relay.Node | None]:
        return await node.resolve_nodes(info, ids)

    @strawberry.field(description="The vendor's product catalog, by family and name, with downloads "
                                  "(for entitled accounts) and learning resources.")
    async def products(self, info: Info) -> list[Product]:
        require_account(info.context.viewer)
        return [Product.from_record(p) for p in await info.context.loaders.entitlements.catalog.load("all")]

    @strawberry.field(description="The vendor's staff and services: search, any organization, reports. Null with "
                                  "FORBIDDEN for anyone who is neither staff nor a service token with a read scope.")
    async def staff(self, info: Info) -> Staff | None:
        return await staff.staff(info)

    @strawberry.field(description="Where to get help.")
    def support(self, info: Info) -> Support:
        return Support(help_center_url=info.context.config.help_center_url)


class GatewaySchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """The HTTP layer logs errors with the request id; expected ones are not logged at all."""


def build_schema(*, production: bool = False) -> strawberry.Schema:
    # Abuse of the document itself, refused by validation before anything runs. The limiters
    # make a rule class per instance, and the validation cache is keyed by the rule classes:
    # made once here, or every request would miss the cache and validate again.
    rules = [*QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
             *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules, SelectionLimitsRule]
    # Factories: strawberry builds the extensions per request; both caches live at module level.
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=256), lambda: ValidationCache(maxsize=256), RequireOperationName,
        lambda: AddValidationRules(rules),
    ]
    if production:
        extensions.append(DisableIntrospection)
    return GatewaySchema(query=Query, mutation=Mutation, types=list(NODE_TYPES.values()),
                         extensions=extensions, execution_context_class=LevelExecutor)
