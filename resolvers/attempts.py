"""Guessable secrets (passwords, invitation tokens, refresh tokens) are checked only here and
through these: each check is an attempt counted against the sign-in throttles before it is
made, and given back when it succeeds, so a burst is limited exactly like a sequence.

Every password check goes through `check_password`: counted per account and per client
address, and argon2 (~50 ms of CPU) run in a worker thread so the event loop keeps serving
everyone else meanwhile; hashing a new password likewise.
"""

from __future__ import annotations

import asyncio

from auth import passwords
from resolvers.context import Context


async def take_attempt(ctx: Context, account: str | None = None) -> None:
    """Before a secret is checked: RATE_LIMITED once the address's (or the account's) bucket is full."""
    if ctx.sign_in_throttle:
        await ctx.sign_in_throttle.take_attempt(account, ctx.client_address)


async def give_back_attempt(ctx: Context, account: str | None = None) -> None:
    """The secret was right: the attempt taken for it does not count."""
    if ctx.sign_in_throttle:
        await ctx.sign_in_throttle.give_back_attempt(account, ctx.client_address)


async def check_password(ctx: Context, account: str, password_hash: str | None, password: str) -> bool:
    """Whether `password` matches `password_hash` (None: no password, and the check costs the
    same time as a real one). `account` names the throttle bucket: the account's email."""
    await take_attempt(ctx, account)
    valid = await asyncio.to_thread(passwords.verify_password, password_hash, password)
    if valid:
        await give_back_attempt(ctx, account)
    return valid


async def hash_new_password(password: str) -> str:
    return await asyncio.to_thread(passwords.hash_password, password)
