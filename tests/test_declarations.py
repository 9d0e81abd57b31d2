"""Every declaration (`planning.declare`) names tables and columns the database has, and every
statement made from them is one PostgreSQL accepts.

The declarations sit on the schema's fields, so they cannot name a field the schema lacks;
what they can get wrong is the SQL side: a renamed column, a table that is gone, a
relation's subquery. Each check below reads the declarations from the built schema (the
planner's only source) and asks the database itself.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from graphql import GraphQLObjectType
from strawberry import relay
from strawberry.schema.schema_converter import GraphQLCoreConverter

from planning import compile, ids, plan, reads, rights
from planning.declare import Column, Connection, Expression, Relation, Table, declaration_of, table_of
from schema import build_schema

SCHEMA = build_schema()._schema
SCOPE = rights.Scope(uuid4(), False, uuid4(), False, uuid4(), timedelta(days=30))


def _definition(type_: GraphQLObjectType):
    return type_.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)


def declared_types() -> list[tuple[GraphQLObjectType, type, Table | None]]:
    out = []
    for type_ in SCHEMA.type_map.values():
        definition = _definition(type_) if isinstance(type_, GraphQLObjectType) else None
        if definition is None or not hasattr(definition, "origin"):
            continue
        fields = [declaration_of(f.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF))
                  for f in type_.fields.values()]
        table = table_of(definition.origin)
        if table is not None or any(fields):
            out.append((type_, definition.origin, table))
    return out


def declarations(type_: GraphQLObjectType):
    for name, field_def in type_.fields.items():
        field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        declared = declaration_of(field) if field is not None else None
        if declared is not None:
            yield name, field_def, field, declared


def full_shape(type_: GraphQLObjectType) -> compile.Shape:
    """Every id, column and expression the type declares, as the planner would build them."""
    table = table_of(_definition(type_).origin)
    parts: list[tuple[str, compile.Part]] = []
    if table is not None and "id" in type_.fields:
        parts.append(("id", compile.Scalar(table.node_id_sql(type_.name))))
    for name, field_def, _, declared in declarations(type_):
        if isinstance(declared, (Column, Expression)):
            parts.append((name, compile.Scalar(plan.scalar_sql(type_, field_def, declared))))
    return compile.Shape(type_.name, tuple(parts), table.lets if table is not None else ())


def statements_of_every_declaration() -> list[tuple[str, str]]:
    """(coordinate, statement) for each relation and connection, with every field of its child:
    the statement of the field itself where one may start there, else the parent's with it."""
    out = []
    for type_, _, table in declared_types():
        for name, field_def, _, declared in declarations(type_):
            child = plan._object_type(field_def.type)
            part: compile.Child | compile.Page
            if isinstance(declared, Relation):
                part = compile.Child(declared, full_shape(child))
            elif isinstance(declared, Connection):
                node = plan._object_type(child.fields["nodes"].type)
                part = compile.Page(declared, 10, (("totalCount", "totalCount", None),
                                                   ("nodes", "nodes", full_shape(node))))
            else:
                continue
            if declared.entry is None:
                assert table is not None and table.name is not None, f"{type_.name}.{name}: no way to reach it"
                parent = Relation(f"(SELECT json_agg({{object}}) FROM {table.name} {{x}}"
                                  f" WHERE {{x}}.{table.key[0]} = {{t}}.id)", "x")
                part = compile.Child(parent, compile.Shape(type_.name, ((name, part),), table.lets))
            out.append((f"{type_.name}.{name}", compile.statement(part)))
    return out


def test_the_compiled_path_covers_what_the_portal_reads():
    """The declarations are found where the planner looks for them (no second table to keep)."""
    found = {f"{type_.name}.{name}" for type_, _, _ in declared_types() for name, *_ in declarations(type_)}
    assert {"Account.email", "Account.licenses", "Account.creditAccess", "License.status",
            "License.availableCount", "License.allocations", "LicenseAllocation.account", "Member.joinedAt",
            "Organization.members", "Organization.licenses", "CloudCreditAccess.mode", "Product.sku"} <= found


def test_every_entry_reads_an_attribute_its_python_type_has():
    for type_, origin, _ in declared_types():
        for name, _, _, declared in declarations(type_):
            entry = getattr(declared, "entry", None)
            if entry is not None:
                first = entry.key.split(".")[0]
                assert first in getattr(origin, "__annotations__", {}) or hasattr(origin, first), \
                    f"{type_.name}.{name} starts from {entry.key!r}, which {origin.__name__} does not have"


async def columns_of(db) -> dict[str, set[str]]:
    rows = await db.fetch("SELECT table_name, column_name FROM information_schema.columns"
                          " WHERE table_schema = current_schema()")
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["table_name"], set()).add(r["column_name"])
    return out


def missing_columns(columns: dict[str, set[str]], types=None) -> list[str]:
    problems = []
    for type_, _, table in types or declared_types():
        if table is None or table.name is None:
            continue
        have = columns.get(table.name)
        if have is None:
            problems.append(f"{type_.name}: no table {table.name!r}")
            continue
        problems += [f"{type_.name}: no key column {table.name}.{c}" for c in table.key if c not in have]
        problems += [f"{type_.name}.{name}: no column {table.name}.{declared.name}"
                     for name, _, field, declared in declarations(type_)
                     if isinstance(declared, Column) and declared.name not in have]
    return problems


async def test_every_table_and_column_a_declaration_names_exists(db):
    assert missing_columns(await columns_of(db)) == []


async def test_a_declaration_naming_a_missing_column_is_reported(db):
    """The check above can fail: a column renamed in a migration is named in the report."""
    columns = await columns_of(db)
    columns["licenses"] = columns["licenses"] - {"seat_model"}
    assert missing_columns(columns) == ["License.seatModel: no column licenses.seat_model"]


@pytest.mark.parametrize("coordinate, statement", statements_of_every_declaration())
async def test_every_relation_and_connection_compiles_to_sql_postgresql_runs(db, coordinate, statement):
    """Columns of rows no table holds (a member list's, a credit-access row's) are checked here."""
    await db.fetch(statement, [uuid4()], *SCOPE.parameters())


async def test_every_type_with_expressions_reads_them_in_one_statement(db):
    for type_, origin, table in declared_types():
        if any(isinstance(d, Expression) for *_, d in declarations(type_)):
            _, child, converters = reads._expressions(origin)
            assert set(converters) == {f.python_name for _, _, f, d in declarations(type_) if isinstance(d, Expression)}
            await db.fetch(compile.statement(child), [uuid4()], *SCOPE.parameters())


# Fixed ids: parallel test workers must collect the same test names.
_A, _B = "5299a418-5722-42a7-8e43-8ca8267caa9e", "c40313b0-3323-4e85-96b5-17e36094ab95"


@pytest.mark.parametrize("type_name, node_id, length", [
    ("Account", _A, 36), ("LicenseAllocation", f"{_A}:{_B}", 73),
    ("Member", f"i.{_B}", 38), ("Member", f"a.{_A}", 38)])
async def test_relay_ids_are_the_same_made_in_sql_as_in_python(db, type_name, node_id, length):
    """The long ids cross the length where PostgreSQL starts breaking base64 lines."""
    assert len(node_id) == length
    made = await db.fetchval(f"SELECT {ids.global_id_sql(type_name, '$1::text', length)}", node_id)
    assert made == ids.global_id(type_name, node_id) == str(relay.GlobalID(type_name, node_id))
