"""The vendor's own principals: service tokens for machine clients, and staff roles.

Both live apart from customers: a service token names no account, and a staff role is not an
organization role. Scopes and roles are closed lists, so a typo is refused instead of stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from uuid import UUID

SERVICE_TOKEN_PREFIX = "agsvc_"

# What a service token may do; the read scopes also open `Query.staff`.
SCOPES = ("accounts:read", "accounts:write", "billing:read", "licenses:write", "credits:write")
READ_SCOPES = frozenset({"accounts:read", "billing:read"})
STAFF_ROLES = ("SUPPORT", "BILLING", "ADMIN_TOOLING")


@dataclass(frozen=True)
class ServicePrincipal:
    """A machine client acting with a service token: never a customer, never beyond its scopes."""

    id: UUID
    name: str
    scopes: frozenset[str]


def new_service_token() -> str:
    # The prefix tells a service token from a customer's JWT before any decoding.
    return SERVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def is_service_token(token: str) -> bool:
    return token.startswith(SERVICE_TOKEN_PREFIX)


def hash_service_token(token: str) -> bytes:
    """Only this is stored; 256 random bits need no slow hash (nothing to guess from it)."""
    return hashlib.sha256(token.encode()).digest()


def parse_scopes(raw: str) -> tuple[str, ...]:
    """`a,b` into known scopes, in order, without repeats; ValueError names the unknown ones."""
    asked = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = [s for s in asked if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    if not asked:
        raise ValueError(f"name at least one scope: {', '.join(SCOPES)}")
    return tuple(dict.fromkeys(asked))
