"""A field declared once answers the same however it is read: compiled into the statement of
its whole subtree, loaded per level by the level executor, or per object by graphql-core."""

from __future__ import annotations

import base64

from tests.conftest import production_executor_only
from tests.test_level_executor import both

NORTHWIND = "Northwind Studio"
COMPILED = "{ viewer { organization { licenses { id status allocatedCount availableCount } } } }"
# `subscription` has no declaration: the licenses are left to their resolvers.
PER_OBJECT = ("{ viewer { organization { licenses { id status allocatedCount availableCount"
              " subscription { id } } } } }")


@production_executor_only  # `gateway` runs levels, `reference` graphql-core's execution
async def test_a_license_status_at_each_boundary_is_the_same_however_it_is_read(gateway, reference, db):
    ids = [r["id"] for r in await db.fetch(
        "SELECT l.id FROM licenses l JOIN organizations o ON o.id = l.organization_id"
        " WHERE o.name = $1 AND l.kind <> 'PERPETUAL' ORDER BY l.id LIMIT 3", NORTHWIND)]
    # A second either side of EXPIRING's 30 days, and a second past the expiry: later than
    # the statement's now(), whichever path reads them.
    await db.execute("UPDATE licenses SET expires_at = now() + interval '30 days 1 minute' WHERE id = $1", ids[0])
    await db.execute("UPDATE licenses SET expires_at = now() + interval '30 days' - interval '1 minute'"
                     " WHERE id = $1", ids[1])
    await db.execute("UPDATE licenses SET expires_at = now() - interval '1 second' WHERE id = $1", ids[2])
    expected = dict(zip(ids, ["ACTIVE", "EXPIRING", "EXPIRED"]))
    admin = await gateway.login("admin@northwind.example")
    answers = []
    for query in (COMPILED, PER_OBJECT):
        levels, core, used = await both(gateway, reference, query, {}, admin)
        assert "errors" not in core, core["errors"]
        assert used == "levels"
        assert levels == core
        answers.append({lic["id"]: {k: v for k, v in lic.items() if k != "subscription"}
                        for lic in levels["data"]["viewer"]["organization"]["licenses"]})
    assert answers[0] == answers[1]
    statuses = {_uuid(gid): lic["status"] for gid, lic in answers[0].items()}
    assert {str(i): statuses[str(i)] for i in ids} == {str(i): s for i, s in expected.items()}


def _uuid(global_id: str) -> str:
    return base64.b64decode(global_id).decode().partition(":")[2]
