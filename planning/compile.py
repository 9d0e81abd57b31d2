"""Whole subtrees of a query built as JSON by PostgreSQL: one statement for every object of a level.

The planner (`plan`) hands a field here when every field selected below it is declared
(`declare`): PostgreSQL then returns each object's finished JSON, where the resolvers would
make one Python object and several calls per row (about 600 objects on the dashboard). The
SQL of each field is its declaration's; only how objects, lists and pages are put together
is written here. The viewer's rights come in as the statement's parameters (`rights.Scope`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Union

from datasources.postgres.paging import opaque_limit
from planning import rights
from planning.declare import Connection, Relation


@dataclass(frozen=True)
class Shape:
    """An object to build: its GraphQL type, in response order each key and what it holds,
    and the values its SQL shares (`declare.Table.lets`)."""

    type: str
    fields: tuple[tuple[str, "Part"], ...]
    lets: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Scalar:
    sql: str  # over the row {t}


@dataclass(frozen=True)
class Typename:
    name: str


@dataclass(frozen=True)
class Child:
    """An object or list of objects reached through a relation."""

    relation: Relation
    shape: Shape


@dataclass(frozen=True)
class Page:
    """The first `first` rows of a connection. `parts` holds (kind, key, what):
    ("totalCount", key, None), ("__typename", key, name), ("nodes", key, Shape),
    ("pageInfo", key, ((key, field), ...)), ("edges", key, (edge type name, ((key, "cursor" |
    "__typename" | "node", Shape | None), ...)))."""

    connection: Connection
    first: int
    parts: tuple[tuple[str, str, Any], ...]


Part = Union[Scalar, Typename, Child, Page]
# Where a page built as the entry of a statement holds its rows' keyset values, for the cursors
# (datasources.paging makes them): its last key; no GraphQL response key can contain a space.
CURSOR_KEYS = "cursor keys"


def cursor_slots(page: Page) -> list[tuple[str, str]]:
    """The page's cursor fields in the order the statement leaves a slot for each: (response
    key, "cursor" | "startCursor" | "endCursor"). Slot i is the key `$ci` with a null value,
    which `planning.fragments` replaces; `$` is in no GraphQL name, so no response key is one."""
    slots = []
    for kind, key, what in page.parts:
        if kind == "edges":
            slots += [(edge_key, "cursor") for edge_key, edge_kind, _ in what[1] if edge_kind == "cursor"]
        elif kind == "pageInfo":
            slots += [(info_key, field) for info_key, field in what if field in ("startCursor", "endCursor")]
    return slots


def timestamp(column: str) -> str:
    """datetime.isoformat() of what asyncpg reads: UTC, microseconds only when there are any.
    One to_char with the microseconds, dropped when they are all zero (to_char is strict: NULL
    stays NULL), where two to_char calls and an extract cost twice as much per value."""
    return (f"replace(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US+00:00'),"
            f" '.000000+', '+')")


class _Render:
    def __init__(self) -> None:
        self.count = 0
        self.slots = 0  # cursor slots left so far, in `cursor_slots` order

    def slot(self) -> str:
        self.slots += 1
        # `$c`, not `$`: statements merged into one renumber their `$n` parameters, in literals too.
        return f"'$c{self.slots - 1}', NULL::text"

    def alias(self, hint: str) -> str:
        self.count += 1
        return f"{hint}{self.count}"

    def object(self, shape: Shape, t: str, joined: dict[tuple[str, str], str] | None = None) -> str:
        """`joined`: rows the statement already joined to {t}, by (table, {t}'s column): alias."""
        arguments = []
        for key, part in shape.fields:
            arguments.append(f"'{key}'")  # GraphQL names: letters, digits and _ only
            if isinstance(part, Child) and joined and (part.relation.table, part.relation.key) in joined:
                arguments.append(self.object(part.shape, joined[part.relation.table, part.relation.key]))
            else:
                arguments.append(self.part(part, t))
        built = f"json_build_object({', '.join(arguments)})"
        lets = {name: sql for name, sql in shape.lets if "{" + name + "}" in built}
        if not lets:
            return built
        v = self.alias("v")
        for name in lets:
            built = built.replace("{" + name + "}", f"{v}.{name}")
        # OFFSET 0 keeps PostgreSQL from pulling the values up into each place they are used.
        values = ", ".join(f"{sql.replace('{t}', t)} AS {name}" for name, sql in lets.items())
        return f"(SELECT {built} FROM (SELECT {values} OFFSET 0) {v})"

    def part(self, part: Part, t: str) -> str:
        if isinstance(part, Scalar):
            return part.sql.replace("{t}", t)
        if isinstance(part, Typename):
            return f"'{part.name}'"
        if isinstance(part, Child):
            return self.relation(part.relation, part.shape, t)
        return self.page(part, t)

    def relation(self, relation: Relation, shape: Shape, t: str) -> str:
        names = {"t": t, **{n: self.alias(n) for n in "aplxc"}}
        child = names[relation.child]
        source = relation.source
        for name, value in names.items():
            source = source.replace("{" + name + "}", value)
        sql = relation.sql.replace("{source}", source)
        for name, value in names.items():
            sql = sql.replace("{" + name + "}", value)
        joined = {(table, column): names[letter] for table, column, letter in relation.joined}
        return sql.replace("{object}", self.object(shape, child, joined))

    def page(self, page: Page, t: str, cursor_keys: bool = False) -> str:
        """With `cursor_keys`, the object also holds CURSOR_KEYS: the rows' keyset values."""
        source = page.connection
        r, f, n, b = self.alias("r"), self.alias("f"), self.alias("n"), self.alias("b")
        rows = source.rows.replace("{t}", t).replace("{s}", self.alias("s"))
        order = ", ".join(f"{b}.{c}" for c in source.order)
        arguments = []
        for kind, key, what in page.parts:
            arguments.append(f"'{key}'")
            if kind == "totalCount":
                arguments.append(f"{n}.total")
            elif kind == "__typename":
                arguments.append(f"'{what}'")
            elif kind == "pageInfo":
                arguments.append(f"json_build_object({', '.join(self.page_info(what, n, page.first))})")
            else:  # nodes, or edges: the first page, in key order
                item = self.object(what, b) if kind == "nodes" else self.edge(what, b)
                arguments.append(f"(SELECT coalesce(json_agg({item} ORDER BY {order}), '[]'::json) FROM {f} {b})")
        if cursor_keys:
            arguments.append(f"'{CURSOR_KEYS}', (SELECT coalesce(json_agg(json_build_array({order}) ORDER BY {order}),"
                             f" '[]'::json) FROM {f} {b})")
        count = source.count.replace("{t}", t) if source.count else f"SELECT count(*) AS total FROM {r}"
        candidates = source.first_rows(page.first).replace("{t}", t) if source.first_rows else f"SELECT * FROM {r}"
        # The rows are inlined where used, so an index in key order serves the first page.
        return (f"(WITH {r} AS NOT MATERIALIZED ({rows}),"
                f" {f} AS MATERIALIZED (SELECT * FROM ({candidates}) {f}c ORDER BY {', '.join(source.order)}"
                f" LIMIT {opaque_limit(page.first)}),"
                f" {n} AS MATERIALIZED ({count})"
                f" SELECT json_build_object({', '.join(arguments)}) FROM {n})")

    def page_info(self, wanted: tuple[tuple[str, str], ...], n: str, first: int) -> list[str]:
        """Cursors are slots here: `cursor_keys` gives the keys they are made from."""
        values = {"hasNextPage": f"{n}.total > {int(first)}", "hasPreviousPage": "false", "__typename": "'PageInfo'"}
        return [self.slot() if field in ("startCursor", "endCursor") else f"'{key}', {values[field]}"
                for key, field in wanted]

    def edge(self, edge: tuple[str, tuple[tuple[str, str, Any], ...]], b: str) -> str:
        typename, parts = edge
        arguments = []
        for key, kind, what in parts:
            if kind == "cursor":
                arguments.append(self.slot())
            else:
                arguments.append(f"'{key}'")
                arguments.append(f"'{typename}'" if kind == "__typename" else self.object(what, b))
        return f"json_build_object({', '.join(arguments)})"


@lru_cache(maxsize=512)
def statement(what: Child | Page) -> str:
    """The statement answering a relation (with its object) or a page for a list of keys ($1),
    of the declaration's key column: each key's JSON value, and for a page its cursors' keys.
    Its parameters after the keys are the scope's (`rights.PARAMETERS`)."""
    render = _Render()
    if isinstance(what, Page):
        column = what.connection.key
        built = render.page(what, "k", cursor_keys=True)
    else:
        column = what.relation.key
        built = render.relation(what.relation, what.shape, "k")
    # The scope's parameters are typed here too: a shape may use only some of them.
    return (f"SELECT k.i, {built} AS value"
            f" FROM unnest($1::uuid[]) WITH ORDINALITY AS k({column}, i)"
            f" CROSS JOIN (SELECT {', '.join(rights.PARAMETERS)}) AS scope")
