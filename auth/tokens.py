"""Signed bearer tokens (HS256 JWTs) that name a server-side session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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
        payload = jwt.decode(token, secret, algorithms=[_ALGORITHM], audience=_AUDIENCE,
                             options={"require": ["sid", "sub", "exp"]})
        return TokenClaims(UUID(payload["sid"]), UUID(payload["sub"]),
                           datetime.fromtimestamp(payload["exp"], timezone.utc))
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
