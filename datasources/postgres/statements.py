"""Built statements run for a list of keys: each key's value, in key order.

The statements come from above (`planning.compile`); this module knows nothing of what they
answer. Each takes the keys as $1 (numbered by `WITH ORDINALITY` as `i`) and `parameters`
after them, and yields `i` and `value` columns, or `i` and a record's columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasources.postgres.database import Executor


async def values(db: Executor, statement: str, keys: Sequence[Any], parameters: Sequence[Any]) -> list[Any]:
    """Each key's `value` (None where the statement has no row for it), in key order."""
    rows = await db.fetch(statement, list(keys), *parameters)
    found = {r["i"]: r["value"] for r in rows}  # merged reads come back as an array, in no set order
    return [found.get(i + 1) for i in range(len(keys))]


async def records(db: Executor, statement: str, keys: Sequence[Any], parameters: Sequence[Any]) -> list[Any]:
    """Each key's row without `i` (None where there is none), in key order."""
    rows = await db.fetch(statement, list(keys), *parameters)
    found = {r["i"]: {k: v for k, v in dict(r).items() if k != "i"} for r in rows}
    return [found.get(i + 1) for i in range(len(keys))]
