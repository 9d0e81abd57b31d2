"""Built statements (`planning`) answered for every key a round asks for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from datasources.postgres import statements
from datasources.postgres.database import Database
from loaders.base import loader
from loaders.dataloader import DataLoader


@dataclass(frozen=True)
class StatementLoaders:
    # (statement, parameters, key) -> the statement's `value` for that key (None: no row)
    values: DataLoader
    # (statement, parameters, key) -> the statement's row for that key, as a dict (None: no row)
    records: DataLoader


def create(db: Database) -> StatementLoaders:
    return StatementLoaders(values=loader(partial(_grouped, partial(statements.values, db))),
                            records=loader(partial(_grouped, partial(statements.records, db))))


Run = Callable[[str, Sequence[Any], Sequence[Any]], Awaitable[list[Any]]]


async def _grouped(run: Run, keys: Sequence[tuple[str, tuple[Any, ...], Any]]) -> list[Any]:
    """One statement per kind of statement and parameters asked for in the round (usually one),
    all sent together."""
    groups: dict[tuple[str, tuple[Any, ...]], list[int]] = {}
    for position, (statement, parameters, _) in enumerate(keys):
        groups.setdefault((statement, parameters), []).append(position)
    runs = [run(statement, [keys[p][2] for p in positions], parameters)
            for (statement, parameters), positions in groups.items()]
    # gather wraps each in a task; the usual round has one, awaited as it is.
    built = [await runs[0]] if len(runs) == 1 else await asyncio.gather(*runs)
    out: list[Any] = [None] * len(keys)
    for positions, found in zip(groups.values(), built):
        for position, value in zip(positions, found):
            out[position] = value
    return out
