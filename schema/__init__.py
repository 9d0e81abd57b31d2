"""The GraphQL schema: the root Query, Mutation and SubscriptionRoot, assembled once from the domain modules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from inspect import isawaitable
from typing import Annotated, Any

import strawberry
from graphql import (ASTValidationRule, GraphQLError, GraphQLSchema, NoSchemaIntrospectionCustomRule, ValuesOfCorrectTypeRule, execute,
                     specified_rules)
from strawberry import relay
from strawberry.schema.config import StrawberryConfig
from strawberry.exceptions import MissingQueryError
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES, validate_document
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.operation import get_operation_type

from resolvers import accounts as resolve_accounts
from resolvers import entitlements as resolve_entitlements
from schema import node, variable_errors
from schema.literal_errors import values_of_correct_type_rule
from schema.mutations import Mutation
from schema.events import EVENT_TYPES, SubscriptionRoot
from schema.account import Account
from schema.node import NODE_TYPES
from schema.product import Product
from auth.access import who
from auth.viewer import require_account
from schema.common import Info
from schema.execution import LevelExecutor
from schema.documents import Document, document_of
from schema.scalars import SCALAR_MAP
from schema.extensions import RequireOperationName, SelectionLimitsRule, ValidationRules, require_operation_name

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
        return [Product.from_record(p) for p in await resolve_entitlements.catalog(info.context)]

    @strawberry.field(description="The vendor's staff and services: search, any organization, reports. For "
                                  f"{who('Query.staff')}; null with FORBIDDEN for anyone else.")
    async def staff(self, info: Info) -> Staff | None:
        return await staff.staff(info)

    @strawberry.field(description="Where to get help.")
    def support(self, info: Info) -> Support:
        return Support(help_center_url=info.context.config.help_center_url)


class GatewaySchema(strawberry.Schema):
    """strawberry's Schema, with `execute` (the one entry point the gateway serves) done without
    strawberry's per-request extension machinery: extension objects, their runner, a context
    manager per step and a middleware manager cost more than a small query's whole execution.

    It does what the schema's extensions do, in their order: parse, one operation or a name,
    the operation type allowed, validation with `validation_rules`, execute. The parse is the
    request's own (`execute_document` takes its `Document`, schema/documents.py), and the
    validation errors are kept with the document. strawberry's other entry points
    (`execute_sync`, `introspect`) keep its extensions, made from the same rules, so no path
    runs without them.
    """

    def __init__(self, *args: Any, validation_rules: Sequence[type[ASTValidationRule]] = (),
                 hide_suggestions: bool = False, **kwargs: Any) -> None:
        if kwargs.get("extensions"):
            raise TypeError("GatewaySchema.execute runs no SchemaExtension: pass validation_rules instead")
        # The spec's rules, with values written in the document checked without repeating them.
        literal_rule = values_of_correct_type_rule(hide_suggestions=hide_suggestions)
        self.validation_rules = (*(literal_rule if rule is ValuesOfCorrectTypeRule else rule for rule in specified_rules),
                                 *validation_rules)
        extensions: list[Callable[[], SchemaExtension]] = [
            RequireOperationName, lambda: ValidationRules(self.validation_rules)]
        super().__init__(*args, extensions=extensions, **kwargs)
        # Production: no "Did you mean ...?" that would map out the schema introspection hides.
        self.hide_suggestions = hide_suggestions

    @property
    def graphql_schema(self) -> GraphQLSchema:
        """The graphql-core schema strawberry built. strawberry keeps it as `_schema` and offers
        no public name for it: this is the one place that reads it (tests/test_strawberry_internals.py
        checks it on the installed strawberry)."""
        return self._schema

    def as_str(self) -> str:
        """The SDL with its roots always declared. strawberry (like graphql-js) leaves the
        `schema` block out when the roots have the conventional names; a reader then takes any
        type named `Subscription` (ours is the domain's) for the subscription root."""
        printed = super().as_str()
        if printed.startswith("schema"):
            return printed
        schema = self.graphql_schema
        roots = (("query", schema.query_type), ("mutation", schema.mutation_type),
                 ("subscription", schema.subscription_type))
        block = "\n".join(f"  {operation}: {root.name}" for operation, root in roots if root is not None)
        return f"schema {{\n{block}\n}}\n\n{printed}"

    def _validation_errors(self, document: Document) -> list[GraphQLError]:
        assert document.node is not None
        return validate_document(self.graphql_schema, document.node, self.validation_rules)

    def validation_errors(self, document: Document) -> list[GraphQLError]:
        """The document's errors by `validation_rules`, computed once per document (the
        WebSocket transport validates before it runs, as `execute_document` does)."""
        return document.derived(self._validation_errors)

    async def execute(
        self, query: str | None, variable_values: dict[str, Any] | None = None, context_value: Any | None = None,
        root_value: Any | None = None, operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """strawberry's signature, for callers that hold a text: parses it and runs `execute_document`."""
        if not query:
            raise MissingQueryError
        return await self.execute_document(
            document_of(query), variable_values=variable_values, context_value=context_value, root_value=root_value,
            operation_name=operation_name, allowed_operation_types=allowed_operation_types,
            operation_extensions=operation_extensions)

    async def execute_document(
        self, document: Document, variable_values: dict[str, Any] | None = None, context_value: Any | None = None,
        root_value: Any | None = None, operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        if document.node is None:
            assert document.error is not None
            return self._refused([document.error])
        try:
            require_operation_name(document.node, operation_name)
        except GraphQLError as error:
            return self._refused([error])
        try:
            operation_type = get_operation_type(document.node, operation_name)
        except RuntimeError as error:
            raise CannotGetOperationTypeError(operation_name) from error
        if operation_type not in (DEFAULT_ALLOWED_OPERATION_TYPES if allowed_operation_types is None
                                  else allowed_operation_types):
            raise InvalidOperationTypeError(operation_type)
        if errors := self.validation_errors(document):
            return self._refused(errors)
        schema = self.graphql_schema
        try:
            result = execute(schema, document.node, root_value=root_value, context_value=context_value,
                             variable_values=variable_values, operation_name=operation_name,
                             executor_class=self.execution_context_class, is_awaitable=optimized_is_awaitable,
                             operation_extensions=operation_extensions, hide_suggestions=self.hide_suggestions)
            if isawaitable(result):
                result = await result
        except GraphQLError as error:  # as strawberry: an error before any data
            return self._refused([error])
        except Exception as exc:  # noqa: BLE001
            return self._refused([GraphQLError(str(exc), original_error=exc)])
        errors = result.errors
        if errors and result.data is None:  # refused before execution: the variables did not coerce
            errors = variable_errors.rebuilt(schema, errors, variable_values, hide_suggestions=self.hide_suggestions)
        if errors:
            self._process_errors(errors)
        return ExecutionResult(data=result.data, errors=errors, extensions={})

    def _refused(self, errors: list[GraphQLError]) -> PreExecutionError:
        self._process_errors(errors)
        return PreExecutionError(data=None, errors=errors, extensions={})

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """The HTTP layer logs errors with the request id; expected ones are not logged at all."""


class ReferenceExecution(LevelExecutor):
    """graphql-core's own execution for every operation: what the level executor must answer alike."""

    enabled = False


# Settings.executor: the level executor in production; graphql-core's alone, for comparing the two.
EXECUTORS = {"levels": LevelExecutor, "graphql-core": ReferenceExecution}


def build_schema(*, production: bool = False, executor: str = "levels") -> GatewaySchema:
    # Abuse of the document itself, refused by validation before anything runs. The limiters
    # make a rule class per instance: made once here.
    rules = [*QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
             *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules, SelectionLimitsRule]
    if production:
        rules.append(NoSchemaIntrospectionCustomRule)  # what strawberry's DisableIntrospection adds
    return GatewaySchema(query=Query, mutation=Mutation, subscription=SubscriptionRoot,
                         types=[*NODE_TYPES.values(), *EVENT_TYPES],
                         validation_rules=rules, execution_context_class=EXECUTORS[executor], hide_suggestions=production,
                         config=StrawberryConfig(scalar_map=SCALAR_MAP))
