"""Which fields the level executor may hand to PostgreSQL whole (`compile`).

A field qualifies when its declaration (`declare`) says where a statement may start (an
`Entry`) and everything selected below it, at every depth, is declared too: then one
statement answers the field for every object of the level, with its whole subtree. Anything
else selected below it (an argument the statement does not take, a field without a
declaration, a cursor) leaves the field to the resolvers, as before. So does a viewer the
entry's own check refuses: the resolvers then report the error at its path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from operator import attrgetter
from dataclasses import dataclass
from typing import Any

import orjson

from graphql import GraphQLError, GraphQLList, GraphQLNonNull, GraphQLObjectType
from graphql.execution.collect_fields import FieldDetails
from graphql.execution.values import get_argument_values
from strawberry import relay
from strawberry.schema.schema_converter import GraphQLCoreConverter

from datasources.paging import DEFAULT_PAGE, MAX_PAGE
from planning import compile as sql
from planning import fragments
from planning import rights
from planning.compile import timestamp
from planning.declare import Column, Connection, Declaration, Expression, Relation, Table, declaration_of, table_of


def _declaration(field_def: Any) -> Declaration | None:
    field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return declaration_of(field) if field is not None else None


def _table(type_: GraphQLObjectType) -> Table | None:
    definition = type_.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return table_of(definition.origin) if definition is not None else None


def _named(type_: Any) -> str:
    return _object_type(type_).name


def scalar_sql(type_: GraphQLObjectType, field_def: Any, declared: Column | Expression) -> str:
    """A column or expression as the resolvers would serialize it: timestamps as isoformat()."""
    text = f"{{t}}.{declared.name}" if isinstance(declared, Column) else declared.sql
    return timestamp(text) if _named(field_def.type) == "DateTime" else text


async def _may_on_all(ctx: Any, coordinate: str, organization_ids: Sequence[Any]) -> bool:
    return all([await rights.may(ctx, coordinate, o) for o in organization_ids])


Build = Callable[[list[Any]], Awaitable[list[Any] | None]]


@dataclass(frozen=True)
class _Plan:
    what: sql.Child | sql.Page
    statement: str  # stands for the shape in loader keys: hashed once, where a shape's hash walks the tree
    key_of: Callable[[Any], Any]
    checked: str | None  # the entry's own check, on every key


# Plans by the field's nodes in a parsed document (cached by its text, `schema.documents`) and
# the request's variables: working a plan out walked the whole selection on every request (a
# tenth of the members page's time). A cache of a pure function, like `sql.statement`'s, for
# the process: each entry keeps its nodes, so their ids cannot be taken by other nodes.
_PLANS: dict[tuple[Any, ...], tuple[tuple[Any, ...], _Plan | None]] = {}
MAX_PLANS = 4096


def projection(executor: Any, parent_type: GraphQLObjectType, name: str, field_def: Any,
               details: list[FieldDetails], info: Any) -> Build | None:
    """How to answer this field for a level in one statement; None if it cannot be."""
    if getattr(_declaration(field_def), "entry", None) is None:
        return None
    plan = _cached_plan(executor, parent_type, field_def, details)
    if plan is None:
        return None
    what, statement, key_of, checked = plan.what, plan.statement, plan.key_of, plan.checked
    ctx = info.context

    async def build(sources: list[Any]) -> list[Any] | None:
        keys = [key_of(source) for source in sources]
        scope = await rights.scope(ctx)
        if scope is None or (checked is not None and not await _may_on_all(ctx, checked, keys)):
            return None
        wanted = [k for k in keys if k is not None]
        parameters = scope.parameters()
        built = dict(zip(wanted, await ctx.loaders.statements.values.load_all(
            [(statement, parameters, k) for k in wanted])))
        texts = [None if k is None else built[k] for k in keys]
        if isinstance(what, sql.Page):
            return [None if text is None else fragments.finished_page(what, text) for text in texts]
        return [None if text is None else fragments.finished(text) for text in texts]

    return build


def _cached_plan(executor: Any, parent_type: GraphQLObjectType, field_def: Any,
                 details: list[FieldDetails]) -> _Plan | None:
    variables = _variables_key(executor)
    if variables is None or any(d.fragment_variable_values for d in details):
        return _plan(executor, parent_type, field_def, details)
    nodes = (parent_type, field_def, *(d.node for d in details))
    key = (*map(id, nodes), variables)
    found = _PLANS.get(key)
    if found is not None and all(a is b for a, b in zip(found[0], nodes)):
        return found[1]
    plan = _plan(executor, parent_type, field_def, details)
    if len(_PLANS) >= MAX_PLANS:
        _PLANS.clear()  # documents come and go; the portal's few are planned again at once
    _PLANS[key] = (nodes, plan)
    return plan


def _variables_key(executor: Any) -> bytes | None:
    """The request's variables as one value, once per request; None when they have no such form."""
    try:
        return executor.plan_variables_key  # type: ignore[no-any-return]
    except AttributeError:
        pass
    try:
        coerced = executor.variable_values.coerced  # graphql-core 3.3's VariableValues
        key: bytes | None = orjson.dumps(coerced, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        key = None
    executor.plan_variables_key = key
    return key


def _plan(executor: Any, parent_type: GraphQLObjectType, field_def: Any, details: list[FieldDetails]) -> _Plan | None:
    declared = _declaration(field_def)
    entry = getattr(declared, "entry", None)
    assert entry is not None
    what: sql.Child | sql.Page | None
    if isinstance(declared, Connection):
        what = _page(executor, declared, field_def, details, cursors=True)
    elif details[0].node.arguments:
        return None
    else:
        shape = _shape(executor, _object_type(field_def.type), details)
        what = sql.Child(declared, shape) if shape is not None else None  # type: ignore[arg-type]
    if what is None:
        return None
    return _Plan(what, sql.statement(what), attrgetter(entry.key), entry.checked)


def _object_type(type_: Any) -> Any:
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        type_ = type_.of_type
    return type_


def _shape(executor: Any, type_: Any, details: list[FieldDetails]) -> sql.Shape | None:
    if not isinstance(type_, GraphQLObjectType):
        return None
    table = _table(type_)
    fields: list[tuple[str, sql.Part]] = []
    for key, field_details in executor.collect_subfields(type_, details).grouped_field_set.items():
        node = field_details[0].node
        name = node.name.value
        if name == "__typename":
            fields.append((key, sql.Typename(type_.name)))
            continue
        field_def = type_.fields.get(name)
        if field_def is None:
            return None
        declared = _declaration(field_def)
        if isinstance(declared, Connection):
            part: sql.Part | None = _page(executor, declared, field_def, field_details)
        elif node.arguments:
            return None
        elif name == "id" and table is not None and _is_node_id(field_def):
            part = sql.Scalar(table.node_id_sql(type_.name))
        elif isinstance(declared, (Column, Expression)):
            part = sql.Scalar(scalar_sql(type_, field_def, declared))
        elif isinstance(declared, Relation):
            child = _shape(executor, _object_type(field_def.type), field_details)
            part = sql.Child(declared, child) if child is not None else None
        else:
            return None
        if part is None:
            return None
        fields.append((key, part))
    if len(fields) > 50:  # json_build_object takes at most 100 arguments
        return None
    return sql.Shape(type_.name, tuple(fields), table.lets if table is not None else ())


def _page(executor: Any, declared: Connection, field_def: Any, details: list[FieldDetails],
          cursors: bool = False) -> sql.Page | None:
    """A first page from the start, with `first` and no other argument; its cursors only where
    the caller can make them (`cursors`)."""
    try:
        args = get_argument_values(field_def, details[0].node, executor.variable_values)
    except GraphQLError:
        return None
    first = args.get("first")
    first = DEFAULT_PAGE if first is None else first
    if any(value is not None for arg, value in args.items() if arg != "first") or not isinstance(first, int) \
            or not 0 <= first <= MAX_PAGE:
        return None  # filters, cursors and bad values: the resolver applies or reports them
    connection = _object_type(field_def.type)
    parts: list[tuple[str, str, Any]] = []
    for key, field_details in executor.collect_subfields(connection, details).grouped_field_set.items():
        child = field_details[0].node
        child_name = child.name.value
        if child.arguments:
            return None
        if child_name == "__typename":
            parts.append(("__typename", key, connection.name))
        elif child_name == "totalCount":
            parts.append(("totalCount", key, None))
        elif child_name == "nodes":
            shape = _shape(executor, _object_type(connection.fields["nodes"].type), field_details)
            if shape is None:
                return None
            parts.append(("nodes", key, shape))
        elif child_name == "edges":
            edge = _edge(executor, _object_type(connection.fields["edges"].type), field_details, cursors)
            if edge is None:
                return None
            parts.append(("edges", key, edge))
        elif child_name == "pageInfo":
            info_type = _object_type(connection.fields["pageInfo"].type)
            wanted = []
            for info_key, info_details in executor.collect_subfields(info_type, field_details).grouped_field_set.items():
                info_name = info_details[0].node.name.value
                if info_name not in ("hasNextPage", "hasPreviousPage", "__typename") and not (
                        cursors and info_name in ("startCursor", "endCursor")):
                    return None
                wanted.append((info_key, info_name))
            parts.append(("pageInfo", key, tuple(wanted)))
        else:
            return None
    return sql.Page(declared, first, tuple(parts))


def _edge(executor: Any, edge_type: Any, details: list[FieldDetails], cursors: bool) -> tuple[str, tuple] | None:
    parts: list[tuple[str, str, Any]] = []
    for key, field_details in executor.collect_subfields(edge_type, details).grouped_field_set.items():
        name = field_details[0].node.name.value
        if name == "__typename" or (name == "cursor" and cursors):
            parts.append((key, name, None))
        elif name == "node":
            shape = _shape(executor, _object_type(edge_type.fields["node"].type), field_details)
            if shape is None:
                return None
            parts.append((key, "node", shape))
        else:
            return None
    return edge_type.name, tuple(parts)


def _is_node_id(field_def: Any) -> bool:
    """relay.Node's own `id`: the type's key, encoded (`ids`)."""
    field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return field is not None and field.origin is relay.Node and field.python_name == "_id"
