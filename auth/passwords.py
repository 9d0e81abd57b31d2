"""Password hashing with argon2id (argon2-cffi's default type)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verifying against this when the email is unknown makes both failures cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


MIN_LENGTH = 10
MAX_LENGTH = 1024


def weakness(password: str, email: str) -> str | None:
    """Why a new password is refused, or None: one policy for every way of setting one."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH or len(set(password)) < 4 \
            or password.lower() in email.lower():
        return (f"Choose a password of {MIN_LENGTH} to {MAX_LENGTH} characters that is not your email "
                "and not one character repeated.")
    return None
