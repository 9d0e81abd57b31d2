"""Refresh tokens: opaque random strings, stored only as their hash."""

from __future__ import annotations

import hashlib
import secrets

# 32 random bytes: nothing to guess, so a plain (unsalted, fast) hash is enough to store.
TOKEN_BYTES = 32
# Far longer than any token this module makes; anything longer is refused unread.
MAX_TOKEN_LENGTH = 256


def new() -> tuple[str, bytes]:
    """A fresh token for the client (URL-safe) and the hash to store in its place."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, hash_token(token)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
