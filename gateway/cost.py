"""The calculated cost of an operation, before it runs (GitHub's node count, Shopify's cost).

Every object a query can return costs 1 each time it may be resolved. A connection
multiplies what is below it by the `first`/`last` it asks for (the default page when it
asks for none), and a plain list by an estimate of its length, so the cost grows with
what the query could fetch, down the tree. Scalars are free. `@skip`/`@include` are
ignored: the cost is an upper bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from graphql import (ArgumentNode, DocumentNode, FieldNode, FragmentDefinitionNode, FragmentSpreadNode,
                     GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLSchema, InlineFragmentNode,
                     OperationDefinitionNode, SelectionSetNode, VariableNode, Visitor, get_named_type,
                     is_abstract_type, is_leaf_type, value_from_ast_untyped, visit)

from datasources.paging import DEFAULT_PAGE, MAX_PAGE
from planning.fragments import Finished
from resolvers import people, seats
from schema.documents import Document

# Plain lists (licenses, subscriptions, cards) hold tens of items: count them as this many.
LIST_ESTIMATE = 10
# The plain lists that can hold more, each counted at its real bound: a payload's list at the
# most its input may name, and an organization's credit lists (one entry per member, one per
# open request) at a full page. These two have no bound of their own: a larger organization's
# answer is charged for what it held (`actual_cost`), and its connection is
# `Organization.members { nodes { account { creditAccess } } }`. `Query.nodes` counts the ids sent.
LIST_BOUNDS = {
    ("AllocateLicensePayload", "allocations"): seats.MAX_ACCOUNTS,
    ("SetCreditAccessPayload", "members"): seats.MAX_ACCOUNTS,
    ("InviteMembersPayload", "results"): people.MAX_INVITATIONS,
    ("PayOutstandingBalancePayload", "invoices"): MAX_PAGE,
    ("CloudCreditPool", "members"): MAX_PAGE,
    ("CloudCreditPool", "pendingRequests"): MAX_PAGE,
}
SIZED_BY_ARGUMENT = {("Query", "nodes"): "ids"}
_SIZING_ARGUMENTS = frozenset(SIZED_BY_ARGUMENT.values())
PAGE_ARGUMENTS = ("first", "last")
_ABSENT = object()
# Variable values a cost can be cached by. The type is part of the key: 1.0 and True hash
# like 1, yet only an int is a page size (and True is one, as an int).
_KEYABLE = frozenset({int, bool, float, str, type(None)})


def query_cost(schema: GraphQLSchema, document: Document, operation_name: str | None,
               variables: Mapping[str, Any] | None) -> int:
    """`operation_cost` of a document that parses, cached by all it depends on: the document,
    the operation, and the values of the variables that size lists (`first: $members`).

    A dashboard costs a walk of its whole document; clients send the same few texts with
    the same page sizes, so most requests are a lookup."""
    assert document.node is not None
    names = document.derived(_page_variables)
    key = []
    for name in names:
        value = variables.get(name, _ABSENT) if variables else _ABSENT
        if value is _ABSENT:
            key.append(_ABSENT)
        elif type(value) in _KEYABLE:
            key.append((type(value), value))
        else:  # a list or an object where a page size goes: rare and not hashable, so not cached
            return operation_cost(schema, document.node, operation_name, variables)
    return _cached_cost(schema, document, operation_name, tuple(key))


# Keyed by the document itself, which hashes by identity (schema/documents.py).
@lru_cache(maxsize=512)
def _cached_cost(schema: GraphQLSchema, document: Document, operation_name: str | None,
                 key: tuple[Any, ...]) -> int:
    # The other variables cannot change the cost: the walk reads only page sizes.
    variables = {name: value[1] for name, value in zip(document.derived(_page_variables), key, strict=True)
                 if value is not _ABSENT}
    assert document.node is not None
    return operation_cost(schema, document.node, operation_name, variables)


def _page_variables(document: Document) -> tuple[str, ...]:
    """The variables used in any argument that sizes a list (`first`, `last`, `ids`), in a fixed order."""
    names: dict[str, None] = {}
    inside: list[bool] = [False]

    class Finder(Visitor):
        def enter_argument(self, node: ArgumentNode, *_args: object) -> None:
            inside[0] = node.name.value in PAGE_ARGUMENTS or node.name.value in _SIZING_ARGUMENTS

        def leave_argument(self, *_args: object) -> None:
            inside[0] = False

        def enter_variable(self, node: VariableNode, *_args: object) -> None:
            if inside[0]:
                names[node.name.value] = None

    assert document.node is not None
    visit(document.node, Finder())
    return tuple(names)


def operation_cost(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
                   variables: Mapping[str, Any] | None) -> int:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return 0  # execution reports the missing or ambiguous operation
    operation = operations[0]
    root = schema.get_root_type(operation.operation)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    defaults = {v.variable.name.value: value_from_ast_untyped(v.default_value)
                for v in operation.variable_definitions or () if v.default_value is not None}
    walker = _Walker(schema, fragments, {**defaults, **(variables or {})})
    return walker.selection_cost(root, operation.selection_set, 1, frozenset()) if root else 0


class _Walker:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: Mapping[str, Any]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def selection_cost(self, parent: Any, selections: SelectionSetNode | None, multiplier: int,
                       seen_fragments: frozenset[str], items: int | None = None) -> int:
        """`items`: inside a connection, how many edges/nodes it may hold (times its parents)."""
        if selections is None:
            return 0
        total = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                total += self.field_cost(parent, selection, multiplier, seen_fragments, items)
            elif isinstance(selection, InlineFragmentNode):
                on = (self.schema.get_type(selection.type_condition.name.value)
                      if selection.type_condition else parent)
                total += self.selection_cost(on, selection.selection_set, multiplier, seen_fragments, items)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen_fragments:  # validation refuses cycles anyway
                    continue
                on = self.schema.get_type(fragment.type_condition.name.value)
                total += self.selection_cost(on, fragment.selection_set, multiplier, seen_fragments | {name}, items)
        return total

    def field_cost(self, parent: Any, node: FieldNode, multiplier: int, seen: frozenset[str],
                   items: int | None) -> int:
        fields = getattr(parent, "fields", None)
        definition = fields.get(node.name.value) if fields else None
        if definition is None:  # __typename, introspection: free
            return 0
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        child_parent = named if isinstance(named, GraphQLObjectType) or is_abstract_type(named) else None
        arguments = {a.name.value: self.value(a.value) for a in node.arguments or ()}
        if "first" in definition.args or "last" in definition.args:
            size = arguments.get("first") if arguments.get("first") is not None else arguments.get("last")
            page = size if isinstance(size, int) and size >= 0 else DEFAULT_PAGE
            # The connection itself once; its edges and nodes `page` times.
            return multiplier + self.selection_cost(child_parent, node.selection_set, multiplier, seen,
                                                    items=multiplier * page)
        if items is not None and node.name.value in ("edges", "nodes"):
            inner = items
        elif _is_list(definition.type):
            inner = multiplier * self.list_items(parent.name, node.name.value, arguments)
        else:
            inner = multiplier
        return inner + self.selection_cost(child_parent, node.selection_set, inner, seen)

    def value(self, node: Any) -> Any:
        return value_from_ast_untyped(node, self.variables)

    @staticmethod
    def list_items(type_name: str, field_name: str, arguments: dict[str, Any]) -> int:
        argument = SIZED_BY_ARGUMENT.get((type_name, field_name))
        if argument is not None:
            sent = arguments.get(argument)
            return len(sent) if isinstance(sent, list) else 1  # a single value is a list of one
        return LIST_BOUNDS.get((type_name, field_name), LIST_ESTIMATE)


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


# Leaves: most of a response's values, skipped on their exact type before any isinstance.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def actual_cost(data: Any) -> int:
    """What the response holds: one per object returned below the root.

    One loop over an explicit stack: a response of a thousand objects holds a few thousand
    values, and a call (or a generator) per value is most of the time of the walk."""
    if not isinstance(data, dict):
        return 0
    count = 0
    stack: list[Any] = [data.values()]
    pop, push = stack.pop, stack.append
    while stack:
        for value in pop():
            if type(value) in _SCALARS:
                continue
            if isinstance(value, dict):
                count += 1
                push(value.values())
            elif isinstance(value, list):
                push(value)
            elif type(value) is Finished:
                count += value.objects
    return count
