"""(being written)"""

from __future__ import annotations

from dataclasses import dataclass

from datasources.postgres.database import Database


@dataclass(frozen=True)
class OrganizationLoaders:
    pass


def create(db: Database) -> OrganizationLoaders:
    return OrganizationLoaders()
