"""What a field reads, declared on the field itself: the planner and the per-object resolvers
both start from these.

A type says where its rows live (`table`); each of its fields that can be read in bulk
says what it is over such a row:

- `column`: a column of the row. The per-object value is the record's attribute of that
  name (`from_record` fills every declared column), so the level executor reads it as a
  plain attribute.
- `expression`: SQL over the row. Its per-object resolver loads the SAME SQL, every
  expression of the type in one row, one statement per type and level (`reads`).
- `Relation`: the rows another type reaches from this one, with their order and the
  visibility predicate they pass (`rights`); attached to a resolver field with `planned`.
- `Connection`: a page of rows in keyset order, with its count and predicate.

The declarations are frozen values held in the strawberry field's `metadata` under `PLAN`
and in the class's `__plan_table__`: the planner reads them from the built schema, so
there is no second table keyed by GraphQL names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

import strawberry

from planning import ids

PLAN = "plan"  # the metadata key of a field's declaration
T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class Table:
    """Where a type's rows live: `name` (a table; None for rows only a connection's SQL makes), the key columns whose
    values, joined by ":", are the relay node id, and the values its SQL fields share
    (`lets`: name -> SQL over the row {t}, written `{name}` where used, computed once per row)."""

    name: str | None
    key: tuple[str, ...] = ("id",)
    lets: tuple[tuple[str, str], ...] = ()
    # A node id other than the key's values: (Python over the record, SQL over the row {t}, its length).
    node_id: tuple[Callable[[Any], str], Callable[[str], str], int] | None = None

    def node_id_sql(self, type_name: str) -> str:
        if self.node_id is not None:
            return ids.global_id_sql(type_name, self.node_id[1]("{t}"), self.node_id[2])
        return ids.global_id_sql(type_name, " || ':' || ".join(f"{{t}}.{c}::text" for c in self.key),
                                 37 * len(self.key) - 1)

    def node_id_of(self, record: Any) -> str:
        if self.node_id is not None:
            return self.node_id[0](record)
        return ":".join(str(getattr(record, c)) for c in self.key)


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Expression:
    sql: str  # over the row {t}; `{name}` for a let of the type's table


@dataclass(frozen=True)
class Entry:
    """Where the level executor may start a statement: the source object's key for it (an
    attribute path; None: no object) and, where the key is an organization's, the access
    table's coordinate the viewer must reach there for the statement to answer (the resolvers,
    which check the same coordinate, answer otherwise)."""

    key: str
    checked: str | None = None


@dataclass(frozen=True)
class Relation:
    """The child object (or list) reached from the parent row {t}.

    `sql`: a scalar subquery yielding the child's JSON, `{object}`, over the child row aliased
    `{child}` (one of the fresh aliases {a} {p} {l} {x} {c}); `{source}` stands for `source`,
    the rows it reads from. `key`: the parent's column the statement starts from.
    `table`: set where the child is simply the row of that table whose id is the parent's `key`
    (no condition), so that a parent which already joined that row can build the child from
    its join; `joined`: the rows this relation's SQL joins to each child, as (table, the
    child's column, the alias's letter)."""

    sql: str
    child: str
    key: str = "id"
    source: str = ""
    entry: Entry | None = None
    table: str = ""
    joined: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Connection:
    """A page of the parent {t}'s rows, in keyset order, with a count."""

    rows: str  # a SELECT of the parent {t}'s rows; {s} is free for its own alias
    order: tuple[str, ...]  # the keyset columns, ascending
    count: str | None = None  # a cheaper SELECT of the rows' number, as `total`
    first_rows: Callable[[int], str] | None = None  # a cheaper SELECT of (at least) the first n rows
    key: str = "id"
    entry: Entry | None = None


Declaration = Column | Expression | Relation | Connection


def table(name: str | None, key: tuple[str, ...] = ("id",), lets: dict[str, str] | None = None,
          node_id: tuple[Callable[[Any], str], Callable[[str], str], int] | None = None) -> Callable[[T], T]:
    """Declares the class's rows; put it above `@strawberry.type`."""

    def mark(cls: T) -> T:
        cls.__plan_table__ = Table(name, key, tuple((lets or {}).items()), node_id)  # type: ignore[attr-defined]
        return cls

    return mark


def table_of(cls: type) -> Table | None:
    return cls.__dict__.get("__plan_table__")


def column(name: str, *, description: str) -> Any:
    """A field holding the column `name` of the type's row."""
    return strawberry.field(description=description, metadata={PLAN: Column(name)})


def expression(sql: str, *, description: str) -> Any:
    """A field computed by `sql` over the type's row, in the compiled statement and, through
    one batched statement per level, for each object."""
    from planning.reads import expression_resolver

    declared = Expression(sql)
    return strawberry.field(resolver=expression_resolver(declared), description=description,
                            metadata={PLAN: declared})


def planned(declaration: Column | Relation | Connection, *, description: str) -> Any:
    """`strawberry.field` for a resolver whose level can also be answered by a statement (a
    column read through a resolver: the resolver turns the record's value into its type)."""
    return strawberry.field(description=description, metadata={PLAN: declaration})


def checked(declared: Relation | Connection) -> str:
    """The access table's coordinate a declaration's statement checks: its resolver checks the same."""
    assert declared.entry is not None and declared.entry.checked is not None
    return declared.entry.checked


def declaration_of(strawberry_field: Any) -> Declaration | None:
    metadata = getattr(strawberry_field, "metadata", None)
    return metadata.get(PLAN) if metadata else None


@dataclass(frozen=True)
class _Filling:
    names: tuple[tuple[str, str, Callable[[Any], Any] | None], ...]  # python name, column, to its type
    table: Table | None = field(default=None)


_FILLINGS: dict[type, _Filling] = {}


def _filling(cls: type) -> _Filling:
    found = _FILLINGS.get(cls)
    if found is None:
        names = []
        for each in cls.__strawberry_definition__.fields:  # type: ignore[attr-defined]
            declared = declaration_of(each)
            if isinstance(declared, Column) and each.base_resolver is None:
                names.append((each.python_name, declared.name, enum_of(each.type)))
        found = _FILLINGS[cls] = _Filling(tuple(names), table_of(cls))
    return found


def python_type(type_: Any) -> Any:
    """The Python class a strawberry field's type stands for (an Optional's, an enum's)."""
    type_ = getattr(type_, "of_type", type_)
    return getattr(type_, "wrapped_cls", type_)


def enum_of(type_: Any) -> Callable[[Any], Any] | None:
    """An enum field holds the enum member of the column's text; anything else, the value as is."""
    wrapped = python_type(type_)
    if isinstance(wrapped, type) and issubclass(wrapped, Enum):
        return lambda value: None if value is None else wrapped(value)
    return None


def from_record(cls: type, record: Any, /, **more: Any) -> Any:
    """An object of `cls` from a record: its node id from the table's key, each declared column
    from the record's attribute of that name, and `more` (its private values)."""
    filling = _filling(cls)
    values = {}
    for python_name, column_name, convert in filling.names:
        value = getattr(record, column_name)
        values[python_name] = convert(value) if convert is not None else value
    if filling.table is not None and "id" not in more:
        values["id"] = filling.table.node_id_of(record)
    return cls(**values, **more)
