"""Signed bearer tokens (HS256 JWTs) that name a server-side session."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from uuid import UUID, uuid4

import jwt

_ALGORITHM = "HS256"
_AUDIENCE = "account-gateway"


@dataclass(frozen=True)
class TokenClaims:
    session_id: UUID
    account_id: UUID
    expires_at: datetime


def issue(secret: str, *, session_id: UUID, account_id: UUID, ttl_seconds: int) -> tuple[str, TokenClaims]:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    claims = TokenClaims(session_id, account_id, now + timedelta(seconds=ttl_seconds))
    token = jwt.encode(
        # jti: two tokens of one session issued within a second (a refresh) still differ.
        {"sid": str(session_id), "sub": str(account_id), "aud": _AUDIENCE,
         "iat": now, "exp": claims.expires_at, "jti": uuid4().hex},
        secret, algorithm=_ALGORITHM,
    )
    return token, claims


def decode(secret: str, token: str) -> TokenClaims | None:
    """The claims of a valid, unexpired token; None for anything else, whatever the reason."""
    try:
        claims, expires = _verified(secret, token)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    # What a verified token's validity still depends on: the clock, as PyJWT compares it.
    return claims if expires > time.time() else None


@lru_cache(maxsize=4096)
def _verified(secret: str, token: str) -> tuple[TokenClaims, int]:
    """The claims of a token that verified, and its `exp` as PyJWT reads it.

    The signature and the claims are a function of the secret and the token alone, and a token
    that was valid once stays valid until `exp`: a client sends the same token with every
    request, so verifying (a tenth of a millisecond) once per token is enough. A failure
    raises, which lru_cache never keeps: `iat` ahead of this host's clock, say, is retried."""
    payload = jwt.decode(token, secret, algorithms=[_ALGORITHM], audience=_AUDIENCE,
                         options={"require": ["sid", "sub", "exp"]})
    return (TokenClaims(UUID(payload["sid"]), UUID(payload["sub"]),
                        datetime.fromtimestamp(payload["exp"], timezone.utc)), int(payload["exp"]))
