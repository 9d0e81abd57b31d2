"""Schema extensions that close gaps between strawberry and the GraphQL spec."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

from graphql import (ASTValidationRule, DirectiveNode, DocumentNode, FieldNode, GraphQLError, OperationDefinitionNode, SelectionSetNode,
                     ValidationContext, ValidationRule)
from strawberry.extensions import SchemaExtension


class RequireOperationName(SchemaExtension):
    """A document with several operations needs `operationName`.

    strawberry otherwise runs the first one, where the spec (and graphql-core) refuse.
    Raising here turns into a pre-execution error, so HTTP answers 400.
    """

    provided: str | None = None

    def on_operation(self) -> Iterator[None]:
        # Before parsing there is no document to take a name from: what `operation_name` says
        # now is the client's own, or None.
        self.provided = self.execution_context.operation_name
        yield

    def on_parse(self) -> Iterator[None]:
        yield
        document = self.execution_context.graphql_document
        if document is not None:
            require_operation_name(document, self.provided)


class ValidationRules(SchemaExtension):
    """Validates with exactly these rules: strawberry's AddValidationRules can only add to the
    spec's, and the gateway replaces one of them (schema/literal_errors.py)."""

    def __init__(self, rules: Sequence[type[ASTValidationRule]]) -> None:
        self.rules = tuple(rules)

    def on_operation(self) -> Iterator[None]:
        self.execution_context.validation_rules = self.rules
        yield


def require_operation_name(document: DocumentNode, operation_name: str | None) -> None:
    if operation_name is None and sum(isinstance(d, OperationDefinitionNode) for d in document.definitions) > 1:
        raise GraphQLError("Must provide operation name if query contains multiple operations.")


MAX_DIRECTIVES = 50
MAX_REPEATS = 10


class SelectionLimitsRule(ValidationRule):
    """Refuses directive floods and a field repeated over and over in one selection set.

    Both cost the server parsing and validation work while returning nothing new (repeats
    merge into one response key), which makes them cheap amplifiers for an attacker.
    """

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.directives = 0

    def enter_directive(self, node: DirectiveNode, *_args: object) -> None:
        self.directives += 1
        if self.directives == MAX_DIRECTIVES + 1:
            self.report_error(GraphQLError(f"At most {MAX_DIRECTIVES} directives per document.", node))

    def enter_selection_set(self, node: SelectionSetNode, *_args: object) -> None:
        keys = Counter((f.alias or f.name).value for f in node.selections if isinstance(f, FieldNode))
        repeated = [key for key, count in keys.items() if count > MAX_REPEATS]
        if repeated:
            self.report_error(GraphQLError(
                f"Field {repeated[0]!r} is selected more than {MAX_REPEATS} times in one selection set.", node))
