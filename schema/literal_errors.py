"""Values written in the document that do not fit their type, told without the value.

graphql-core's ValuesOfCorrectTypeRule repeats the literal (`Int cannot represent non-integer
value: "s3cr3t"`, `found: { email: ..., password: "..." }`), in every mode. This rule reports
the same errors (same nodes, same count) with messages built from the argument's name, the
position inside the value and the expected type (schema/value_reasons.py, the words variable
errors use). Suggestions only in development.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    SKIP,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    ListValueNode,
    Node,
    NullValueNode,
    ObjectFieldNode,
    ObjectValueNode,
    ValidationContext,
    ValueNode,
    VisitorAction,
    is_required_input_field,
)
from graphql.language import ArgumentNode, EnumValueNode, StringValueNode, VariableDefinitionNode
from graphql.utilities.validate_input_value import validate_input_literal
from graphql.validation import ValuesOfCorrectTypeRule

from schema import value_reasons as why
from schema.scalars import ScalarRefusal


def values_of_correct_type_rule(*, hide_suggestions: bool) -> type[ValuesOfCorrectTypeRule]:
    """The rule to validate with in place of graphql-core's (production: no suggestions)."""
    return type("ValueFreeValuesOfCorrectTypeRule", (ValueFreeValuesOfCorrectTypeRule,),
                {"hide_suggestions": hide_suggestions})


class ValueFreeValuesOfCorrectTypeRule(ValuesOfCorrectTypeRule):
    hide_suggestions = True

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.owners: list[str] = []  # what holds the value being checked, innermost last
        self.missing: dict[int, list[str]] = {}  # an object's required fields not given, reported in order

    def enter_argument(self, node: ArgumentNode, *_args: Any) -> None:
        self.owners.append(f"Argument '{node.name.value}'")

    def leave_argument(self, *_args: Any) -> None:
        self.owners.pop()

    def enter_variable_definition(self, node: VariableDefinitionNode, *_args: Any) -> None:
        self.owners.append(f"The default value of variable '${node.variable.name.value}'")

    def leave_variable_definition(self, *_args: Any) -> None:
        self.owners.pop()

    def is_valid_value_node(self, node: ValueNode, input_type: GraphQLInputType | None) -> VisitorAction:
        """graphql-core's check of the value (as its own rule makes it), each error retold."""
        if input_type is None:
            return SKIP
        owner = self.owners[-1] if self.owners else "A value"

        def value_free(error: GraphQLError, path: list[str | int]) -> None:
            steps = _steps(node, input_type, path)
            told = None if steps is None else self._reason(error, steps)
            at, reason = told or (node, f"expected a value of type '{input_type}'.")
            self.report_error(GraphQLError(f"{owner} has an invalid value{why.where(tuple(path))}: {reason}", at))

        validate_input_literal(node, input_type, value_free, None, None, self.hide_suggestions)
        return SKIP  # as graphql-core's rule: the value is checked whole

    def _reason(self, error: GraphQLError, steps: list[tuple[Node, GraphQLInputType]]) -> tuple[Node, str] | None:
        """The node graphql-core reported (or the value at the path: a scalar's error may name a
        copy of it, without a location) and why, from the type expected there; None if unknown."""
        reported = error.nodes[0] if error.nodes else None
        if isinstance(reported, ObjectFieldNode):  # a field the type does not have
            object_type = _named(steps[-1][1])
            if not isinstance(object_type, GraphQLInputObjectType):
                return None
            return reported, why.unknown_field(object_type, reported.name.value, object_type.fields,
                                               self.hide_suggestions)
        at, type_ = next((step for step in reversed(steps) if step[0] is reported), steps[-1])
        if isinstance(at, NullValueNode):
            return at, why.non_null(type_, given=True)
        named = _named(type_)
        if isinstance(named, GraphQLInputObjectType):
            if not isinstance(at, ObjectValueNode):
                return at, why.not_an_object(named)
            if named.is_one_of:
                return at, why.one_of(named)
            missing = self.missing.setdefault(id(at), _missing_fields(at, named))
            return (at, why.missing_field(named, missing.pop(0))) if missing else None
        refusal = error if isinstance(error, ScalarRefusal) else error.original_error
        if isinstance(refusal, ScalarRefusal):  # the gateway's own scalars say why, without the value
            return at, refusal.message
        typed = at.value if isinstance(at, EnumValueNode | StringValueNode) else None
        return at, why.leaf(named, typed, self.hide_suggestions)


def _named(type_: GraphQLInputType) -> GraphQLInputType:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


def _missing_fields(node: ObjectValueNode, type_: GraphQLInputObjectType) -> list[str]:
    given = {field.name.value for field in node.fields}
    return [name for name, field in type_.fields.items() if name not in given and is_required_input_field(field)]


def _steps(node: ValueNode, type_: GraphQLInputType, path: list[str | int]
           ) -> list[tuple[Node, GraphQLInputType]] | None:
    """Each value node along `path` with the type expected there, as graphql-core walks it (a
    list accepts one value as a list of one, without an index); None where they do not match."""
    steps: list[tuple[Node, GraphQLInputType]] = [(node, type_)]
    for key in path:
        type_ = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if isinstance(key, int):
            if not (isinstance(type_, GraphQLList) and isinstance(node, ListValueNode) and key < len(node.values)):
                return None
            node, type_ = node.values[key], type_.of_type
        else:
            while isinstance(type_, GraphQLList) and not isinstance(node, ListValueNode):
                type_ = type_.of_type
                type_ = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
            if not isinstance(type_, GraphQLInputObjectType) or not isinstance(node, ObjectValueNode):
                return None
            field = next((f for f in node.fields if f.name.value == key), None)
            if field is None or key not in type_.fields:
                return None
            node, type_ = field.value, type_.fields[key].type
        steps.append((node, type_))
    return steps
