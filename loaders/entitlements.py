"""(being written)"""

from __future__ import annotations

from dataclasses import dataclass

from datasources.postgres.database import Database


@dataclass(frozen=True)
class EntitlementLoaders:
    pass


def create(db: Database) -> EntitlementLoaders:
    return EntitlementLoaders()
