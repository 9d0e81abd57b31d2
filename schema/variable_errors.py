"""Variables that do not coerce, told from the value's shape rather than from graphql-core's text.

graphql-core's coercion messages repeat what was sent (`found: {'password': ...}`, `Value
'...' does not exist in 'Role' enum`, a scalar's own exception text) and suggest names
(`Did you mean ...?`). Every such error is replaced here by messages built from the
variable's declared type and the positions of the value that do not fit it: the path, the
expected type, the field that is missing or unknown. No message quotes a value; suggestions
come only when asked for (development).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    Undefined,
    VariableDefinitionNode,
    is_required_input_field,
    print_ast,
    type_from_ast,
)

from schema import value_reasons as why
from schema.scalars import ScalarRefusal

MAX_PROBLEMS = 50  # as graphql-core's own cap: a long list of bad items is not a long answer
Path = why.Path


def rebuilt(schema: GraphQLSchema, errors: Sequence[GraphQLError], variables: dict[str, Any] | None,
            *, hide_suggestions: bool) -> list[GraphQLError]:
    """`errors` with each variable's coercion errors replaced by value-free ones (others kept)."""
    answer: list[GraphQLError] = []
    seen: set[str] = set()
    for error in errors:
        node = _coerced_variable(error)
        if node is None:
            answer.append(error)
            continue
        name = node.variable.name.value
        if name in seen:
            continue
        seen.add(name)
        type_ = type_from_ast(schema, node.type)
        problems = [] if type_ is None else list(_problems((variables or {}).get(name, Undefined), type_, (),
                                                           hide_suggestions, [MAX_PROBLEMS]))
        for path, reason in problems or [((), f"expected a value of type '{print_ast(node.type)}'.")]:
            answer.append(GraphQLError(f"Variable '${name}' has an invalid value{why.where(path)}: {reason}", node))
    return answer


def _coerced_variable(error: GraphQLError) -> VariableDefinitionNode | None:
    """The variable whose value this error is about: graphql-core sets the variable's definition
    as the node and the coercion error as the original (default-value errors have no original)."""
    nodes = error.nodes or []
    if len(nodes) == 1 and isinstance(nodes[0], VariableDefinitionNode) and isinstance(error.original_error,
                                                                                        GraphQLError):
        return nodes[0]
    return None


def _problems(value: Any, type_: GraphQLInputType, path: Path, hide_suggestions: bool,
              budget: list[int]) -> Iterator[tuple[Path, str]]:
    """(where, why) for each part of `value` that `type_` does not accept, as graphql-core decides."""
    if budget[0] <= 0:
        return
    if isinstance(type_, GraphQLNonNull):
        if value is Undefined or value is None:
            budget[0] -= 1
            yield path, why.non_null(type_, given=value is None)
            return
        yield from _problems(value, type_.of_type, path, hide_suggestions, budget)
        return
    if value is None or value is Undefined:
        return
    if isinstance(type_, GraphQLList):
        items = enumerate(value) if isinstance(value, list) else [(None, value)]  # one value is a list of one
        for index, item in items:
            yield from _problems(item, type_.of_type, path if index is None else (*path, index), hide_suggestions,
                                 budget)
        return
    if isinstance(type_, GraphQLInputObjectType):
        yield from _object_problems(value, type_, path, hide_suggestions, budget)
        return
    refused = _refusal(value, type_)
    if refused is not None:
        budget[0] -= 1
        if isinstance(refused, ScalarRefusal):  # our own scalars say why, without the value
            yield path, refused.message
            return
        yield path, why.leaf(type_, value, hide_suggestions)


def _object_problems(value: Any, type_: GraphQLInputObjectType, path: Path, hide_suggestions: bool,
                     budget: list[int]) -> Iterator[tuple[Path, str]]:
    if not isinstance(value, dict):
        budget[0] -= 1
        yield path, why.not_an_object(type_)
        return
    fields = type_.fields
    for name, field in fields.items():
        if name in value:
            yield from _problems(value[name], field.type, (*path, name), hide_suggestions, budget)
        elif is_required_input_field(field) and budget[0] > 0:
            budget[0] -= 1
            yield path, why.missing_field(type_, name)
    for key in value:
        if key not in fields and budget[0] > 0:
            budget[0] -= 1
            yield path, why.unknown_field(type_, key, fields, hide_suggestions)
    if type_.is_one_of and budget[0] > 0:
        given = [name for name in fields if name in value]
        if len(given) != 1 or value[given[0]] is None:
            budget[0] -= 1
            yield path, why.one_of(type_)


def _refusal(value: Any, type_: GraphQLInputType) -> Exception | None:
    """None when the value fits; else the scalar's own exception (kept only when it is a
    ScalarRefusal: graphql-core's own scalars repeat the value in theirs)."""
    try:
        fits = type_.coerce_input_value(value) is not Undefined  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001 - a scalar's own refusal, whatever its type: the value does not fit
        return exc
    return None if fits else ValueError()
