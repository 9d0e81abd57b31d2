"""Schema extensions that close gaps between strawberry and the GraphQL spec."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension


class RequireOperationName(SchemaExtension):
    """A document with several operations needs `operationName`.

    strawberry otherwise runs the first one, where the spec (and graphql-core) refuse.
    Raising here turns into a pre-execution error, so HTTP answers 400.
    """

    def on_parse(self) -> Iterator[None]:
        yield
        context = self.execution_context
        document = context.graphql_document
        if document is None or context._provided_operation_name is not None:  # noqa: SLF001
            return
        operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
        if operations > 1:
            raise GraphQLError("Must provide operation name if query contains multiple operations.")
