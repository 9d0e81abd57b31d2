"""Whole subtrees of a query built as JSON by PostgreSQL: one statement for every object of a level.

The level executor hands a field here when every field selected below it is one this
module can build: licenses with their products, seat counts and first page of
allocations, and accounts with the licenses they hold. PostgreSQL then returns each
object's finished JSON, where the resolvers would make one Python object and several
calls per row (about 600 objects on the dashboard).

Each SQL expression below is the twin of a resolver, named in its comment; the level
executor's tests run the portal's operations both ways and require the same bytes. The
viewer's rights come in as a `Scope`, from the same rules `resolvers.permissions` applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, Union
from uuid import UUID

from datasources.postgres.database import Executor
from datasources.postgres.organizations import member_count, member_rows
from datasources.postgres.paging import opaque_limit


@dataclass(frozen=True)
class Scope:
    """Who is reading (an account, or None for a service), and where they see other people's
    accounts and every seat of a license: everywhere, or in one organization (their own) only."""

    viewer_id: UUID | None
    accounts_everywhere: bool
    accounts_in: UUID | None
    seats_everywhere: bool
    seats_in: UUID | None
    expiring_within: timedelta  # resolvers.entitlements.EXPIRING_WITHIN


@dataclass(frozen=True)
class Shape:
    """An object to build: its GraphQL type and, in response order, each key and what it holds."""

    type: str
    fields: tuple[tuple[str, "Part"], ...]


@dataclass(frozen=True)
class Scalar:
    field: str


@dataclass(frozen=True)
class Typename:
    name: str


@dataclass(frozen=True)
class Child:
    """An object or list of objects reached through a relation of `RELATIONS`."""

    field: str
    shape: Shape


@dataclass(frozen=True)
class Page:
    """The first `first` rows of a connection of `PAGES`. `parts` holds (kind, key, what):
    ("totalCount", key, None), ("__typename", key, name), ("nodes", key, Shape),
    ("pageInfo", key, ((key, field), ...)), ("edges", key, (edge type name, ((key, "cursor" |
    "__typename" | "node", Shape | None), ...)))."""

    field: str
    first: int
    parts: tuple[tuple[str, str, Any], ...]


Part = Union[Scalar, Typename, Child, Page]
# Where a page built as the entry of a statement holds its rows' keyset values, for the cursors
# (datasources.paging makes them); no GraphQL response key can contain a space.
CURSOR_KEYS = "cursor keys"

# Parameters of every statement: $1 the keys, then the scope.
_VIEWER, _EXPIRING = "$2::uuid", "$3::interval"
_ACCOUNTS_EVERYWHERE, _ACCOUNTS_IN, _SEATS_EVERYWHERE, _SEATS_IN = "$4::boolean", "$5::uuid", "$6::boolean", "$7::uuid"


def _gid(type_name: str, expression: str, length: int = 36) -> str:
    """relay's GlobalID: base64 of "Type:id", where the id is `length` ASCII characters (a uuid).

    PostgreSQL breaks base64 lines after 76 characters (57 bytes); only an id that long pays
    for removing the break, which costs more than the encoding."""
    encoded = f"encode(convert_to('{type_name}:' || {expression}, 'UTF8'), 'base64')"
    return encoded if len(type_name) + 1 + length <= 57 else f"replace({encoded}, E'\\n', '')"


def _timestamp(column: str) -> str:
    """datetime.isoformat() of what asyncpg reads: UTC, microseconds only when there are any."""
    return (f"CASE WHEN {column} IS NOT NULL THEN to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
            f" || CASE WHEN extract(microseconds FROM {column})::bigint % 1000000 = 0 THEN ''"
            f" ELSE to_char({column} AT TIME ZONE 'UTC', '.US') END || '+00:00' END")


# Values a type's SQL uses more than once, named `{name}` in SCALARS and PAGES: an object that
# selects any of them computes each once (a large license's seats were counted three times).
LETS: dict[str, dict[str, str]] = {
    "License": {"allocated": "(SELECT count(*) FROM allocations WHERE license_id = {t}.id)"},
}
_ALLOCATED = "{allocated}"

# Scalar fields: SQL over the row aliased {t}.
SCALARS: dict[str, dict[str, str]] = {
    "Account": {  # schema.account.Account.from_record
        "id": _gid("Account", "{t}.id::text"), "email": "{t}.email", "name": "{t}.name",
        "customerNumber": "{t}.customer_number", "country": "{t}.country"},
    "Product": {  # schema.product.Product.from_record
        "id": _gid("Product", "{t}.id::text"), "sku": "{t}.sku", "name": "{t}.name", "family": "{t}.family",
        "description": "{t}.description"},
    "License": {  # schema.license.License.from_record; status: resolvers.entitlements.license_status
        "id": _gid("License", "{t}.id::text"), "kind": "{t}.kind", "seatModel": "{t}.seat_model",
        "quantity": "{t}.quantity", "expiresAt": _timestamp("{t}.expires_at"),
        "status": f"CASE WHEN {{t}}.expires_at IS NULL THEN 'ACTIVE' WHEN {{t}}.expires_at <= now() THEN 'EXPIRED'"
                  f" WHEN {{t}}.expires_at - now() <= {_EXPIRING} THEN 'EXPIRING' ELSE 'ACTIVE' END",
        "allocatedCount": _ALLOCATED,  # loaders.entitlements allocation_count
        # resolvers.entitlements.available_seats
        "availableCount": f"CASE WHEN {{t}}.seat_model = 'FLOATING' THEN {{t}}.quantity"
                          f" ELSE greatest(0, {{t}}.quantity - {_ALLOCATED}) END"},
    # resolvers.credits.credit_accesses and spendable, but for `remaining` (the pool's settled
    # balance, which stays in Python): the row of the `creditAccess` relation below.
    "CloudCreditAccess": {"mode": "{t}.mode", "limit": "{t}.quota", "used": "{t}.used"},
    # schema.organization.Member.from_record over a row of member_rows; the id is
    # resolvers.organizations.member_node_id ("a." account, "i." invitation).
    "Member": {
        "id": _gid("Member", "CASE WHEN {t}.account_id IS NOT NULL THEN 'a.' || {t}.account_id::text"
                             " ELSE 'i.' || {t}.invitation_id::text END", 38),
        "email": "{t}.email", "role": "{t}.role", "status": "{t}.status",
        "joinedAt": f"CASE WHEN {{t}}.status = 'ACTIVE' THEN {_timestamp('{t}.since')} END",
        "invitedAt": f"CASE WHEN {{t}}.status <> 'ACTIVE' THEN {_timestamp('{t}.since')} END"},
    "LicenseAllocation": {  # schema.license.LicenseAllocation.from_record
        "id": _gid("LicenseAllocation", "{t}.license_id::text || ':' || {t}.account_id::text", 73),
        "allocatedAt": _timestamp("{t}.allocated_at")},
}

# resolvers.permissions.can_see_accounts: yourself, and others where the scope says (the access
# table's "Account"). The account's membership is read by its key: as
# EXISTS, PostgreSQL hashes every membership of the organization first (5,000 for a large one).
_VISIBLE = (f"({{a}}.id = {_VIEWER} OR {_ACCOUNTS_EVERYWHERE}"
            f" OR (SELECT m.organization_id FROM memberships m WHERE m.account_id = {{a}}.id) = {_ACCOUNTS_IN})")
_ACCOUNT_AT = "(SELECT {object} FROM accounts {a} WHERE {a}.id = {t}.%s AND " + _VISIBLE + ")"
_LICENSES = ("(SELECT coalesce(json_agg({object} ORDER BY {p}.name, {l}.id), '[]'::json) FROM {source}"
             " JOIN products {p} ON {p}.id = {l}.product_id WHERE %s)")

# Relations: SQL with {object} (the child's JSON), {t} (the parent row) and fresh aliases.
RELATIONS: dict[tuple[str, str], str] = {
    # loaders.entitlements licenses_held (datasources.postgres.entitlements.licenses_held_by_accounts)
    ("Account", "licenses"): _LICENSES % "{x}.account_id = {t}.id",
    # Organization.licenses (licenses_of_organizations)
    ("Organization", "licenses"): _LICENSES % "{l}.organization_id = {t}.id",
    ("License", "product"): "(SELECT {object} FROM products {p} WHERE {p}.id = {t}.product_id)",
    # schema.references.accounts_at: the account, or null when the viewer may not see it
    ("LicenseAllocation", "account"): _ACCOUNT_AT % "account_id",
    ("LicenseAllocation", "allocatedBy"): _ACCOUNT_AT % "allocated_by",
    ("Member", "account"): _ACCOUNT_AT % "account_id",
    # An access row counts only for the account's current organization; no row: UNLIMITED;
    # no organization: DISABLED, nothing used.
    ("Account", "creditAccess"): (
        "(SELECT {object} FROM (SELECT"
        " CASE WHEN {x}.account_id IS NULL THEN 'DISABLED' ELSE coalesce({a}.mode, 'UNLIMITED') END AS mode,"
        " CASE WHEN {a}.mode = 'QUOTA' THEN {a}.quota END AS quota,"
        " (SELECT coalesce(sum(u.amount), 0)::bigint FROM credit_usage u"
        "  WHERE u.account_id = {t}.id AND u.organization_id = {x}.organization_id) AS used"
        " FROM (SELECT 1) AS one LEFT JOIN memberships {x} ON {x}.account_id = {t}.id"
        " LEFT JOIN credit_access {a} ON {a}.account_id = {t}.id AND {a}.organization_id = {x}.organization_id) {c})"),
}
_SOURCES = {
    # A join here is planned as a hash of every license, once per account (4 ms for 25
    # accounts); the fenced lateral (OFFSET 0 keeps it from being flattened) reads each
    # license by its key.
    ("Account", "licenses"): "allocations {x} CROSS JOIN LATERAL"
                             " (SELECT * FROM licenses WHERE id = {x}.license_id OFFSET 0) {l}",
    ("Organization", "licenses"): "licenses {l}",
}
_CHILD_ALIAS = {"licenses": "l", "product": "p", "account": "a", "allocatedBy": "a", "creditAccess": "c"}

@dataclass(frozen=True)
class _PageSource:
    rows: str  # a SELECT of the parent {t}'s rows; {s} is free for its own alias
    order: tuple[str, ...]  # the keyset columns, ascending
    count: str | None = None  # a cheaper SELECT of the rows' number, as `total`
    first_rows: Callable[[int], str] | None = None  # a cheaper SELECT of (at least) the first n rows


_SEAT_VISIBLE = f"({{t}}.organization_id = {_SEATS_IN} OR {_SEATS_EVERYWHERE} OR {{s}}.account_id = {_VIEWER})"
PAGES: dict[tuple[str, str], _PageSource] = {
    # resolvers.entitlements.allocations_page: where the scope lets the viewer see every seat
    # ("License.allocations"), every seat; anyone else sees only their own; oldest first.
    ("License", "allocations"): _PageSource(
        f"SELECT * FROM allocations {{s}} WHERE {{s}}.license_id = {{t}}.id AND {_SEAT_VISIBLE}",
        ("allocated_at", "account_id"),
        count=f"SELECT CASE WHEN {{t}}.organization_id = {_SEATS_IN} OR {_SEATS_EVERYWHERE} THEN {_ALLOCATED}"
              f" ELSE (SELECT count(*) FROM allocations o WHERE o.license_id = {{t}}.id AND o.account_id = {_VIEWER})"
              f" END AS total"),
    # members_page without filters: members and pending invitees, by email.
    ("Organization", "members"): _PageSource(member_rows("{t}.id", "NULL"), ("email", "key_id"),
                                             count=member_count("{t}.id"),
                                             first_rows=lambda first: member_rows("{t}.id", "NULL", first)),
}
# The column each relation reads from its parent row, named the same when the parent is a key.
KEY_COLUMNS = {("Account", "licenses"): "id", ("Organization", "licenses"): "id", ("Organization", "members"): "id",
               ("Member", "account"): "account_id",
               ("LicenseAllocation", "account"): "account_id", ("LicenseAllocation", "allocatedBy"): "allocated_by"}


def supports_scalar(type_name: str, field: str) -> bool:
    return field in SCALARS.get(type_name, ())


def supports_relation(type_name: str, field: str) -> bool:
    return (type_name, field) in RELATIONS


def supports_page(type_name: str, field: str) -> bool:
    return (type_name, field) in PAGES


class _Render:
    def __init__(self) -> None:
        self.count = 0

    def alias(self, hint: str) -> str:
        self.count += 1
        return f"{hint}{self.count}"

    def object(self, shape: Shape, t: str) -> str:
        arguments = []
        for key, part in shape.fields:
            arguments.append(f"'{key}'")  # GraphQL names: letters, digits and _ only
            arguments.append(self.part(shape.type, part, t))
        built = f"json_build_object({', '.join(arguments)})"
        lets = {name: sql for name, sql in LETS.get(shape.type, {}).items() if "{" + name + "}" in built}
        if not lets:
            return built
        v = self.alias("v")
        for name in lets:
            built = built.replace("{" + name + "}", f"{v}.{name}")
        # OFFSET 0 keeps PostgreSQL from pulling the values up into each place they are used.
        values = ", ".join(f"{sql.replace('{t}', t)} AS {name}" for name, sql in lets.items())
        return f"(SELECT {built} FROM (SELECT {values} OFFSET 0) {v})"

    def part(self, type_name: str, part: Part, t: str) -> str:
        if isinstance(part, Scalar):
            return SCALARS[type_name][part.field].replace("{t}", t)
        if isinstance(part, Typename):
            return f"'{part.name}'"
        if isinstance(part, Child):
            return self.relation(type_name, part.field, part.shape, t)
        return self.page(type_name, part, t)

    def relation(self, type_name: str, field: str, shape: Shape, t: str) -> str:
        template = RELATIONS[(type_name, field)]
        names = {"t": t, **{n: self.alias(n) for n in "aplxc"}}
        child = names[_CHILD_ALIAS[field]]
        source = _SOURCES.get((type_name, field), "")
        for name, value in names.items():
            source = source.replace("{" + name + "}", value)
        sql = template.replace("{source}", source)
        for name, value in names.items():
            sql = sql.replace("{" + name + "}", value)
        return sql.replace("{object}", self.object(shape, child))

    def page(self, type_name: str, page: Page, t: str, cursor_keys: bool = False) -> str:
        """With `cursor_keys`, the object also holds CURSOR_KEYS: the rows' keyset values."""
        source = PAGES[(type_name, page.field)]
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
        """Cursors are left null here: `cursor_keys` gives the keys they are made from."""
        values = {"hasNextPage": f"{n}.total > {int(first)}", "hasPreviousPage": "false",
                  "startCursor": "NULL::text", "endCursor": "NULL::text", "__typename": "'PageInfo'"}
        return [f"'{key}', {values[field]}" for key, field in wanted]

    def edge(self, edge: tuple[str, tuple[tuple[str, str, Any], ...]], b: str) -> str:
        typename, parts = edge
        arguments = []
        for key, kind, what in parts:
            arguments.append(f"'{key}'")
            arguments.append({"cursor": "NULL::text", "__typename": f"'{typename}'"}.get(kind) or self.object(what, b))
        return f"json_build_object({', '.join(arguments)})"


@lru_cache(maxsize=512)
def statement(type_name: str, field: str, what: Shape | Page) -> str:
    """The statement answering `type_name.field` (a relation with the object `what`, or a
    page) for a list of keys ($1): each key's JSON value, and for a page its cursors' keys."""
    column = KEY_COLUMNS[(type_name, field)]
    render = _Render()
    if isinstance(what, Page):
        built = render.page(type_name, what, "k", cursor_keys=True)
    else:
        built = render.relation(type_name, field, what, "k")
    # The scope's parameters are typed here too: a shape may use only some of them.
    return (f"SELECT k.i, {built} AS value"
            f" FROM unnest($1::uuid[]) WITH ORDINALITY AS k({column}, i)"
            f" CROSS JOIN (SELECT {_VIEWER}, {_EXPIRING}, {_ACCOUNTS_EVERYWHERE}, {_ACCOUNTS_IN}, {_SEATS_EVERYWHERE},"
            f" {_SEATS_IN}) AS scope")


async def build(db: Executor, statement: str, scope: Scope, keys: Sequence[UUID]) -> list[str | None]:
    """Each key's JSON text (null where the relation has no object), in key order; `statement`
    comes from `statement()`."""
    rows = await db.fetch(statement, list(keys), scope.viewer_id, scope.expiring_within, scope.accounts_everywhere,
                          scope.accounts_in, scope.seats_everywhere, scope.seats_in)
    found = {r["i"]: r["value"] for r in rows}  # merged reads come back as an array, in no set order
    return [found.get(i + 1) for i in range(len(keys))]
