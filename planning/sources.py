"""The SQL the declarations share: rules over a row that more than one field or a write needs,
and how one type's rows reach another's. Named here once; the fields in `schema/` say which
they use (`declare`), and nothing else restates them.
"""

from __future__ import annotations

from datasources.postgres.organizations import member_count, member_rows
from planning import rights
from planning.declare import Connection, Entry, Relation

# A license's seats allocated to people; `{allocated}` where used (`declare.Table.lets`).
LICENSE_LETS = {"allocated": "(SELECT coalesce(sum(delta), 0) FROM seat_count_deltas WHERE license_id = {t}.id)"}
# EXPIRED; SUSPENDED once a failed renewal's grace has ended (GRACE until then: still usable); else
# EXPIRING within `rights.EXPIRING_WITHIN`, or ACTIVE. The allocation refuses EXPIRED and SUSPENDED.
LICENSE_STATUS = (f"CASE WHEN {{t}}.expires_at <= now() THEN 'EXPIRED'"
                  f" WHEN {{t}}.grace_until <= now() THEN 'SUSPENDED' WHEN {{t}}.grace_until IS NOT NULL THEN 'GRACE'"
                  f" WHEN {{t}}.expires_at IS NULL THEN 'ACTIVE'"
                  f" WHEN {{t}}.expires_at - now() <= {rights.EXPIRING} THEN 'EXPIRING' ELSE 'ACTIVE' END")
# A floating pool is shared, never allocated: all of it is available.
AVAILABLE_SEATS = ("CASE WHEN {t}.seat_model = 'FLOATING' THEN {t}.quantity"
                   " ELSE greatest(0, {t}.quantity - {allocated}) END")


def one(table: str, column: str, child: str, visible: str | None = None) -> Relation:
    """The row of `table` whose id is the parent's `column` (aliased `{child}`), if `visible`."""
    condition = f" AND {visible}" if visible else ""
    return Relation(f"(SELECT {{object}} FROM {table} {{{child}}} WHERE {{{child}}}.id = {{t}}.{column}{condition})",
                    child, key=column, table="" if visible else table)


def account_at(column: str, entry: Entry | None = None) -> Relation:
    """The account whose id is in `column`, or null when the viewer may not see it."""
    relation = one("accounts", column, "a", rights.ACCOUNT_VISIBLE)
    return Relation(relation.sql, relation.child, relation.key, entry=entry)


_LICENSES = ("(SELECT coalesce(json_agg({object} ORDER BY {p}.name, {l}.id), '[]'::json) FROM {source}"
             " JOIN products {p} ON {p}.id = {l}.product_id WHERE %s)")
# The licenses an account holds a seat of, by product. A join here is planned as a hash of
# every license, once per account (4 ms for 25 accounts); the fenced lateral (OFFSET 0 keeps
# it from being flattened) reads each license by its key.
# A license's product is built from the join that orders them (3% of the dashboard's time in
# PostgreSQL went to reading each product again).
_PRODUCT_JOINED = (("products", "product_id", "p"),)
LICENSES_HELD = Relation(_LICENSES % "{x}.account_id = {t}.id", "l",
                         source="allocations {x} CROSS JOIN LATERAL"
                                " (SELECT * FROM licenses WHERE id = {x}.license_id OFFSET 0) {l}",
                         entry=Entry("uuid"), joined=_PRODUCT_JOINED)
# An organization's licenses, by product; for whoever reads them there.
ORGANIZATION_LICENSES = Relation(_LICENSES % "{l}.organization_id = {t}.id", "l", source="licenses {l}",
                                 entry=Entry("record.id", checked="Organization.licenses"), joined=_PRODUCT_JOINED)

# What an account without a credit_access row may do with its organization's credits.
DEFAULT_CREDIT_MODE = "UNLIMITED"
# An account's credit access: an access row counts only for the account's current organization
# (`organization_id`, for the pool's balance); no row: the default; no organization: DISABLED,
# nothing used.
CREDIT_ACCESS = Relation(
    "(SELECT {object} FROM (SELECT"
    f" CASE WHEN {{x}}.account_id IS NULL THEN 'DISABLED' ELSE coalesce({{a}}.mode, '{DEFAULT_CREDIT_MODE}') END AS mode,"
    " CASE WHEN {a}.mode = 'QUOTA' THEN {a}.quota END AS quota,"
    " (SELECT coalesce(sum(u.amount), 0)::bigint FROM credit_usage u"
    "  WHERE u.account_id = {t}.id AND u.organization_id = {x}.organization_id) AS used,"
    " {x}.organization_id"
    " FROM (SELECT 1) AS one LEFT JOIN memberships {x} ON {x}.account_id = {t}.id"
    " LEFT JOIN credit_access {a} ON {a}.account_id = {t}.id AND {a}.organization_id = {x}.organization_id) {c})",
    "c")

# A license's seats, oldest first: every seat where the viewer sees them all
# ("License.allocations"), otherwise only their own.
SEATS = Connection(
    f"SELECT * FROM allocations {{s}} WHERE {{s}}.license_id = {{t}}.id AND {rights.SEAT_VISIBLE}",
    ("allocated_at", "account_id"),
    count=f"SELECT CASE WHEN {rights.EVERY_SEAT} THEN {{allocated}}"
          f" ELSE (SELECT count(*) FROM allocations o WHERE o.license_id = {{t}}.id AND o.account_id = {rights.VIEWER})"
          f" END AS total")
# `SEATS`'s condition for a seat `a` of the license `l`, for `datasources.postgres.entitlements.allocation_pages`
# (its scope parameters start at $5).
SEAT_OF_LICENSE_VISIBLE = rights.bound(rights.SEAT_VISIBLE.replace("{t}", "l").replace("{s}", "a"), 5)
# An organization's member list without filters: members and pending invitees, by email.
MEMBERS = Connection(member_rows("{t}.id", "NULL", names=False), ("email", "key_id"), count=member_count("{t}.id"),
                     first_rows=lambda first: member_rows("{t}.id", "NULL", first, names=False),
                     entry=Entry("record.id", checked="Organization.members"))
