"""Short-lived links that carry their own authorization: an HMAC over their parameters.

A link names what it opens (its query parameters, and whatever the path contributes),
when it stops working (`expires`, Unix seconds) and a `signature` over both and over a
purpose, so that a link made for one endpoint never opens another. Whoever holds the link
may use it until it expires: it is handed only to viewers who may see what it opens, and
kept short-lived because it cannot be revoked.

Pure functions: no I/O, the clock is the caller's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

EXPIRES = "expires"
SIGNATURE = "signature"
# Derives the links' key from SECRET_KEY, so a link's signature is never also valid as a
# bearer token's (or anything else signed with the same secret), and vice versa.
_KEY_CONTEXT = b"account-gateway signed links v1"


class InvalidLink(Exception):
    """The link was not made by this gateway, or was changed since (also: incomplete)."""


class ExpiredLink(InvalidLink):
    """A genuine link whose time is up."""


def signed_params(secret: str, purpose: str, params: Mapping[str, str], *, expires_at: int) -> dict[str, str]:
    """`params` plus `expires` and `signature`: the query of a link valid until `expires_at`."""
    if EXPIRES in params or SIGNATURE in params:
        raise ValueError(f"'{EXPIRES}' and '{SIGNATURE}' are the link's own parameters")
    signed = {**params, EXPIRES: str(int(expires_at))}
    return {**signed, SIGNATURE: _signature(secret, purpose, signed)}


def verified_params(secret: str, purpose: str, params: Mapping[str, str], *, now: float) -> dict[str, str]:
    """The link's parameters (without `expires` and `signature`) if it is genuine and unexpired.

    Every parameter but the signature is covered by it: one added, removed or changed makes
    the link invalid. The signature is checked before the expiry, so an expired link reveals
    nothing about a forged one.
    """
    given = dict(params)
    signature = given.pop(SIGNATURE, None)
    expires = given.get(EXPIRES)
    if not signature or not expires or not hmac.compare_digest(
            signature.encode(), _signature(secret, purpose, given).encode()):
        raise InvalidLink("invalid signature")
    try:
        expires_at = int(expires)
    except ValueError:
        raise InvalidLink("malformed expiry") from None  # cannot be ours: we sign integers
    if now >= expires_at:
        raise ExpiredLink("expired")
    del given[EXPIRES]
    return given


def _signature(secret: str, purpose: str, params: Mapping[str, str]) -> str:
    key = hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
    # JSON of the sorted pairs: unambiguous whatever the values contain ("=", "&", newlines).
    message = json.dumps([purpose, sorted(params.items())], separators=(",", ":")).encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
