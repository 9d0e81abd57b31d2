"""Per-object reads derived from the declarations: what a resolver returns when the level
executor does not hand its level to one compiled statement (and always under graphql-core).

An expression field loads its own SQL: every expression of the type in one row, one
statement per type and level. A visible account is read with the one SQL predicate of
`rights`. Nothing here restates a rule in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from functools import lru_cache
from typing import Any, get_args, get_type_hints
from uuid import UUID

import orjson
from strawberry.types import Info

from auth.viewer import NOT_AUTHENTICATED
from datasources.errors import Unauthenticated
from datasources.postgres import statements
from datasources.postgres.accounts import Account, account_columns
from datasources.postgres.database import Executor
from planning import compile, rights
from planning.declare import Expression, Relation, Table, declaration_of, enum_of, python_type, table_of
from planning.levels import level_resolver, one
from planning.sources import LICENSE_STATUS


async def _scope(ctx: rights.Reader) -> rights.Scope:
    found = await rights.scope(ctx)
    if found is None:
        raise Unauthenticated(NOT_AUTHENTICATED)
    return found


def _from_text(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@lru_cache(maxsize=None)
def _expressions(cls: type) -> tuple[str, compile.Child, dict[str, Any]]:
    """The statement reading every expression field of `cls` by key, and each field's
    conversion from its JSON value."""
    table = table_of(cls)
    if table is None or len(table.key) != 1:
        raise TypeError(f"{cls.__name__} declares expressions but no table with a one-column key")
    parts, converters = [], {}
    for each in cls.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        declared = declaration_of(each)
        if isinstance(declared, Expression):
            # A timestamp travels as the compiled statements write it (UTC isoformat).
            moment = python_type(each.type) is datetime
            parts.append((each.python_name, compile.Scalar(compile.timestamp(declared.sql) if moment else declared.sql)))
            converters[each.python_name] = _from_text if moment else enum_of(each.type)
    [key] = table.key
    itself = Relation(f"(SELECT {{object}} FROM {table.name} {{x}} WHERE {{x}}.{key} = {{t}}.{key})", "x", key=key)
    child = compile.Child(itself, compile.Shape(cls.__name__, tuple(parts), table.lets))
    return key, child, converters


async def expression_rows(ctx: rights.Reader, cls: type, keys: Sequence[Any]) -> list[dict[str, Any] | None]:
    """Every expression field of `cls` for each key, by python name, converted to its type."""
    key, child, converters = _expressions(cls)
    statement = compile.statement(child)
    parameters = (await _scope(ctx)).parameters()
    found = await ctx.loaders.statements.values.load_all([(statement, parameters, k) for k in keys])
    out = []
    for text in found:
        if text is None:
            out.append(None)
            continue
        row = orjson.loads(text)
        out.append({name: convert(row[name]) if convert else row[name] for name, convert in converters.items()})
    return out


def _key(source: Any, table: Table) -> Any:
    [column] = table.key
    value = getattr(source, column)
    return UUID(value) if isinstance(value, str) else value


def expression_resolver(declared: Expression) -> Any:
    """The per-object resolver of an expression field, with its level form."""

    async def level(sources: Sequence[Any], info: Info) -> list[Any]:
        if not sources:
            return []
        cls = type(sources[0])
        table = table_of(cls)
        assert table is not None
        rows = await expression_rows(info.context, cls, [_key(s, table) for s in sources])
        name = info.python_name
        return [row[name] if row is not None else None for row in rows]

    @level_resolver(level)
    async def resolve(root: Any, info: Info):  # the type is the field's annotation
        return await one(level, root, info)

    return resolve


_VISIBLE_ACCOUNTS = (f"SELECT k.i, {account_columns('a')}"
                     f" FROM unnest($1::uuid[]) WITH ORDINALITY AS k(id, i) JOIN accounts a ON a.id = k.id"
                     f" CROSS JOIN (SELECT {', '.join(rights.PARAMETERS)}) AS scope"
                     f" WHERE {rights.account_visible('a')}")


async def visible_accounts(ctx: rights.Reader, account_ids: Sequence[UUID]) -> list[Account | None]:
    """Each account the viewer may see (`rights.ACCOUNT_VISIBLE`, the predicate the compiled
    statements apply), None for the others and for those that do not exist; in order."""
    parameters = (await _scope(ctx)).parameters()
    found = await ctx.loaders.statements.records.load_all([(_VISIBLE_ACCOUNTS, parameters, a) for a in account_ids])
    return [Account(**row) if row is not None else None for row in found]


_LICENSE_STATUS = (f"SELECT k.i, {LICENSE_STATUS.replace('{t}', 'l')} AS value"
                   f" FROM unnest($1::uuid[]) WITH ORDINALITY AS k(id, i) JOIN licenses l ON l.id = k.id"
                   f" CROSS JOIN (SELECT {', '.join(rights.PARAMETERS)}) AS scope")


async def license_status(ctx: rights.Reader, license_id: UUID, db: Executor | None = None) -> str | None:
    """What a license's `status` field answers (`sources.LICENSE_STATUS`), for the writes that
    depend on it: read on `db` (a transaction holding the license) when given."""
    parameters = (await _scope(ctx)).parameters()
    if db is not None:
        [status] = await statements.values(db, _LICENSE_STATUS, [license_id], parameters)
        return status
    return await ctx.loaders.statements.values.load((_LICENSE_STATUS, parameters, license_id))


async def relation_rows(ctx: rights.Reader, relation: Relation, type_name: str, columns: tuple[str, ...],
                        keys: Sequence[Any]) -> list[dict[str, Any] | None]:
    """The `columns` of the row `relation` reaches from each key (JSON values), by the same
    statement the compiled path builds for it."""
    shape = compile.Shape(type_name, tuple((c, compile.Scalar(f"{{t}}.{c}")) for c in columns))
    statement = compile.statement(compile.Child(relation, shape))
    parameters = (await _scope(ctx)).parameters()
    found = await ctx.loaders.statements.values.load_all([(statement, parameters, k) for k in keys])
    return [orjson.loads(text) if text is not None else None for text in found]


@lru_cache(maxsize=None)
def _record_shape(cls: type) -> tuple[compile.Shape, tuple[tuple[str, Any], ...]]:
    """Every field of the record class `cls` as the child of a relation, and how each JSON value
    becomes the field's type again (timestamps travel as UTC isoformat, as asyncpg reads them)."""
    hints = get_type_hints(cls)
    parts, parsers = [], []
    for each in fields(cls):
        options = [t for t in get_args(hints[each.name]) if t is not type(None)] or [hints[each.name]]
        kind = options[0]
        parts.append((each.name, compile.Scalar(compile.timestamp(f"{{t}}.{each.name}") if kind is datetime
                                                else f"{{t}}.{each.name}")))
        parsers.append((each.name, UUID if kind is UUID else _from_text if kind is datetime else None))
    return compile.Shape(cls.__name__, tuple(parts)), tuple(parsers)


async def relation_records(ctx: rights.Reader, relation: Relation, cls: type, keys: Sequence[Any]) -> list[Any]:
    """The records (of the dataclass `cls`) a list `relation` reaches from each key, in its order,
    by the same statement the compiled path builds for it."""
    shape, parsers = _record_shape(cls)
    statement = compile.statement(compile.Child(relation, shape))
    parameters = (await _scope(ctx)).parameters()
    found = await ctx.loaders.statements.values.load_all([(statement, parameters, k) for k in keys])
    return [[cls(**{name: parse(item[name]) if parse is not None and item[name] is not None else item[name]
                    for name, parse in parsers}) for item in orjson.loads(text)] for text in found]
