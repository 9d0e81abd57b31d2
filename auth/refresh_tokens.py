"""Refresh tokens: opaque random strings, stored only as their hash.

A sign-in's first token is random; each later one is derived from the token it replaces with
the gateway's secret key (`successor`). So the gateway can hand out a rotation's result again,
to a client that lost the answer or raced itself, from the presented token alone: nothing but
hashes is stored, and neither the database nor a stolen older token yields the next one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# 32 random bytes: nothing to guess, so a plain (unsalted, fast) hash is enough to store.
TOKEN_BYTES = 32
# Far longer than any token this module makes; anything longer is refused unread.
MAX_TOKEN_LENGTH = 256


def new() -> tuple[str, bytes]:
    """A fresh token for the client (URL-safe) and the hash to store in its place."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, hash_token(token)


def successor(secret_key: str, token: str) -> tuple[str, bytes]:
    """The token that replaces `token` when it is traded in, and its hash: the same every time.

    HMAC-SHA256 under the secret key: as unguessable as a random token to anyone without the
    key, who could forge bearer tokens anyway. Keyed on the plaintext, which only the client
    holds, never on the stored hash.
    """
    mac = hmac.new(secret_key.encode(), b"refresh-token-successor\0" + token.encode(), hashlib.sha256)
    derived = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
    return derived, hash_token(derived)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
