"""Refresh tokens: issued by login, rotated on every use, and a reused one ends its chain, except
when it comes back within the reuse grace while its successor is unused (two tabs, a retry)."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from gateway.limits import LimitSettings
from gateway.settings import SettingsError, from_env
from tests.conftest import DEMO_PASSWORD

LOGIN = """
mutation($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) {
    token refreshToken expiresAt refreshTokenExpiresAt account { email } userErrors { code }
  }
}
"""
REFRESH = """
mutation($refreshToken: String!) {
  refreshToken(input: {refreshToken: $refreshToken}) {
    token refreshToken expiresAt refreshTokenExpiresAt userErrors { field message code }
  }
}
"""
LOGOUT = "mutation($all: Boolean!) { logout(input: {allSessions: $all}) { revoked } }"
VIEWER = "{ viewer { email } }"
REFUSED = "The refresh token is not valid: sign in again."


async def sign_in(gateway, email: str = "member1@northwind.example") -> tuple[str, str]:
    body = await gateway.execute(LOGIN, {"email": email, "password": DEMO_PASSWORD})
    assert "errors" not in body, body
    payload = body["data"]["login"]
    assert payload["account"] == {"email": email} and payload["userErrors"] == []
    return payload["token"], payload["refreshToken"]


async def refresh(gateway, refresh_token: str) -> dict:
    return await gateway.execute(REFRESH, {"refreshToken": refresh_token})


async def rotated(gateway, refresh_token: str) -> tuple[str, str]:
    body = await refresh(gateway, refresh_token)
    assert "errors" not in body, body
    payload = body["data"]["refreshToken"]
    assert payload["userErrors"] == []
    return payload["token"], payload["refreshToken"]


def assert_refused(body: dict) -> None:
    assert "errors" not in body, body
    payload = body["data"]["refreshToken"]
    assert payload["token"] is payload["refreshToken"] is payload["expiresAt"] is None
    assert payload["userErrors"] == [{"field": ["input", "refreshToken"], "message": REFUSED,
                                      "code": "INVALID_REFRESH_TOKEN"}]


async def signed_in_as(gateway, token: str) -> str | None:
    body = await gateway.execute(VIEWER, token=token)
    if body.get("errors"):
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        return None
    return body["data"]["viewer"]["email"]


def sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def test_login_returns_a_short_lived_bearer_token_and_a_refresh_token_stored_only_as_its_hash(gateway, db):
    token, refresh_token = await sign_in(gateway)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", refresh_token)  # 32+ random bytes, URL-safe
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 15 * 60
    row = await db.fetchrow("SELECT r.token_hash, r.expires_at, r.used_at, r.parent_id, r.session_id"
                            " FROM refresh_tokens r")
    assert bytes(row["token_hash"]) == sha256(refresh_token)
    assert row["used_at"] is None and row["parent_id"] is None
    assert str(row["session_id"]) == claims["sid"]
    in_thirty_days = datetime.now(timezone.utc) + timedelta(days=30)
    assert abs(row["expires_at"] - in_thirty_days) < timedelta(minutes=1)
    # When each expires, so that a client need not decode the token.
    expiries = (await gateway.execute(LOGIN, {"email": "member1@northwind.example", "password": DEMO_PASSWORD}))
    payload = expiries["data"]["login"]
    assert datetime.fromisoformat(payload["expiresAt"]).timestamp() == jwt.decode(
        payload["token"], options={"verify_signature": False})["exp"]
    assert datetime.fromisoformat(payload["refreshTokenExpiresAt"]) == await db.fetchval(
        "SELECT expires_at FROM refresh_tokens WHERE token_hash = $1", sha256(payload["refreshToken"]))
    stored = await db.fetchval("SELECT count(*) FROM refresh_tokens r, sessions s"
                               " WHERE strpos(r::text || s::text, $1) > 0", refresh_token)
    assert stored == 0


async def test_a_refresh_returns_a_new_pair_for_the_same_session_and_earlier_bearer_tokens_still_work(gateway, db):
    first_token, first_refresh = await sign_in(gateway)
    second_token, second_refresh = await rotated(gateway, first_refresh)
    assert second_token != first_token and second_refresh != first_refresh
    assert await signed_in_as(gateway, second_token) == "member1@northwind.example"
    # A bearer token cannot be recalled: it works until it expires (15 minutes at most).
    assert await signed_in_as(gateway, first_token) == "member1@northwind.example"
    third_token, _ = await rotated(gateway, second_refresh)
    assert await signed_in_as(gateway, third_token) == "member1@northwind.example"
    sessions = {jwt.decode(t, options={"verify_signature": False})["sid"]
                for t in (first_token, second_token, third_token)}
    assert len(sessions) == 1
    chain = await db.fetch("SELECT id, token_hash, parent_id, used_at FROM refresh_tokens ORDER BY created_at")
    assert [bytes(r["token_hash"]) for r in chain[:2]] == [sha256(first_refresh), sha256(second_refresh)]
    assert [r["parent_id"] for r in chain] == [None, chain[0]["id"], chain[1]["id"]]
    assert [r["used_at"] is not None for r in chain] == [True, True, False]


async def test_an_expired_bearer_token_is_renewed_with_the_refresh_token(app_for, settings):
    expiring = await app_for(settings.with_(token_ttl_seconds=-1))
    token, refresh_token = await sign_in(expiring)
    assert await signed_in_as(expiring, token) is None
    # Another process of the gateway, with the usual lifetime, over the same database.
    gateway = await app_for(settings)
    renewed, _ = await rotated(gateway, refresh_token)
    assert await signed_in_as(gateway, renewed) == "member1@northwind.example"


async def test_a_reused_refresh_token_ends_its_whole_chain_and_only_that(gateway, db):
    first_token, first_refresh = await sign_in(gateway)
    second_token, second_refresh = await rotated(gateway, first_refresh)
    third_token, third_refresh = await rotated(gateway, second_refresh)
    elsewhere_token, elsewhere_refresh = await sign_in(gateway)  # the same account on another device

    assert_refused(await refresh(gateway, first_refresh))

    # The newest token of the chain is refused too, and the chain's bearer tokens stop working.
    assert_refused(await refresh(gateway, third_refresh))
    for token in (first_token, second_token, third_token):
        assert await signed_in_as(gateway, token) is None
    session_id = jwt.decode(third_token, options={"verify_signature": False})["sid"]
    assert await db.fetchval("SELECT revoked_at IS NOT NULL FROM sessions WHERE id = $1::uuid", session_id)
    # The other sign-in of the same account goes on.
    assert await signed_in_as(gateway, elsewhere_token) == "member1@northwind.example"
    renewed, _ = await rotated(gateway, elsewhere_refresh)
    assert await signed_in_as(gateway, renewed) == "member1@northwind.example"


async def test_an_expired_refresh_token_is_refused_without_ending_the_session(app_for, settings, db):
    gateway = await app_for(settings.with_(refresh_token_ttl_seconds=-1))
    token, refresh_token = await sign_in(gateway)
    assert_refused(await refresh(gateway, refresh_token))
    assert await signed_in_as(gateway, token) == "member1@northwind.example"
    assert await db.fetchval("SELECT used_at FROM refresh_tokens") is None


async def test_unknown_and_malformed_refresh_tokens(gateway, db):
    token, refresh_token = await sign_in(gateway)
    for wrong in (refresh_token[:-1], refresh_token + "x", refresh_token.swapcase(), "x" * 256):
        assert_refused(await refresh(gateway, wrong))
    # The bearer token sent by mistake is longer than any refresh token.
    for wrong, code in (("", "REQUIRED"), ("x" * 257, "INVALID"), (token, "INVALID")):
        body = await refresh(gateway, wrong)
        payload = body["data"]["refreshToken"]
        assert payload["token"] is None and payload["refreshToken"] is None
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["input", "refreshToken"], code)]
    # Nothing of that touched the real one.
    renewed, _ = await rotated(gateway, refresh_token)
    assert await signed_in_as(gateway, renewed) == "member1@northwind.example"


async def test_logout_revokes_the_refresh_tokens_of_the_session(gateway):
    token, refresh_token = await sign_in(gateway)
    _, other_refresh = await sign_in(gateway)
    await gateway.execute(LOGOUT, {"all": False}, token=token)
    assert_refused(await refresh(gateway, refresh_token))
    # Only that session's: the other sign-in still refreshes, until every session is ended.
    renewed, renewed_refresh = await rotated(gateway, other_refresh)
    body = await gateway.execute(LOGOUT, {"all": True}, token=renewed)
    assert body["data"]["logout"]["revoked"] == 1
    assert_refused(await refresh(gateway, renewed_refresh))


async def test_logging_out_of_every_session_also_ends_those_whose_bearer_token_expired(app_for, settings):
    expiring = await app_for(settings.with_(token_ttl_seconds=-1))
    _, stale_refresh = await sign_in(expiring)
    gateway = await app_for(settings)
    token, _ = await sign_in(gateway)
    body = await gateway.execute(LOGOUT, {"all": True}, token=token)
    assert body["data"]["logout"]["revoked"] == 2
    assert_refused(await refresh(gateway, stale_refresh))


async def presented_at_once(db, gateway, refresh_token: str, times: int) -> list[dict]:
    """`times` refreshes with one token, all inside their transaction before any trades it in."""
    # Hold the token's row, so that every request is inside its transaction, waiting, before
    # any of them can trade the token in.
    async with db.transaction():
        await db.execute("SELECT 1 FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE", sha256(refresh_token))
        attempts = [asyncio.create_task(refresh(gateway, refresh_token)) for _ in range(times)]
        for _ in range(500):
            await db.execute("SELECT pg_stat_clear_snapshot()")  # a transaction reads one snapshot otherwise
            waiting = await db.fetchval("SELECT count(*) FROM pg_stat_activity"
                                        " WHERE datname = current_database() AND wait_event_type = 'Lock'")
            if waiting >= times:
                break
            await asyncio.sleep(0.01)
        assert waiting >= times
    return await asyncio.gather(*attempts)


async def assert_replay_ends_the_session(gateway, replayed: str, token: str, latest_refresh: str) -> None:
    """Presenting `replayed` is refused, and ends the session: its bearer `token` and its newest
    refresh token stop working too."""
    assert_refused(await refresh(gateway, replayed))
    assert await signed_in_as(gateway, token) is None
    assert_refused(await refresh(gateway, latest_refresh))


def session_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["sid"]


async def test_concurrent_refreshes_with_one_token_all_get_the_same_successor(gateway, db):
    """Two tabs (or a retry after a lost answer) refreshing at once stay signed in."""
    _, refresh_token = await sign_in(gateway)
    bodies = await presented_at_once(db, gateway, refresh_token, 3)
    payloads = [b["data"]["refreshToken"] for b in bodies]
    assert [p["userErrors"] for p in payloads] == [[]] * 3, bodies
    [successor] = {p["refreshToken"] for p in payloads}
    [expires] = {p["refreshTokenExpiresAt"] for p in payloads}
    assert len({p["token"] for p in payloads}) == 3 and len({session_of(p["token"]) for p in payloads}) == 1
    for payload in payloads:
        assert await signed_in_as(gateway, payload["token"]) == "member1@northwind.example"
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens") == 2  # one rotation, no more
    assert await db.fetchval("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL") == 0
    # The successor handed out three times is one token: it trades in once, like any other.
    token, _ = await rotated(gateway, successor)
    assert await signed_in_as(gateway, token) == "member1@northwind.example"
    assert datetime.fromisoformat(expires) == await db.fetchval(
        "SELECT expires_at FROM refresh_tokens WHERE token_hash = $1", sha256(successor))


async def test_a_replay_within_the_grace_gets_the_same_successor_which_is_never_stored(gateway, db):
    _, first_refresh = await sign_in(gateway)
    first = (await refresh(gateway, first_refresh))["data"]["refreshToken"]
    again = (await refresh(gateway, first_refresh))["data"]["refreshToken"]
    assert again["userErrors"] == [] and again["refreshToken"] == first["refreshToken"]
    assert again["refreshTokenExpiresAt"] == first["refreshTokenExpiresAt"]
    assert again["token"] != first["token"] and session_of(again["token"]) == session_of(first["token"])
    # Only hashes are kept: the successor can be handed out again without being stored.
    stored = await db.fetchval("SELECT count(*) FROM refresh_tokens r, sessions s"
                               " WHERE strpos(r::text || s::text, $1) > 0", first["refreshToken"])
    assert stored == 0
    # After logout the grace gives nothing back.
    await gateway.execute(LOGOUT, {"all": False}, token=again["token"])
    assert_refused(await refresh(gateway, first_refresh))


async def test_a_replay_after_the_grace_ends_the_session(app_for, settings, db):
    gateway = await app_for(settings.with_(refresh_reuse_grace_seconds=1))
    _, first_refresh = await sign_in(gateway)
    token, second_refresh = await rotated(gateway, first_refresh)
    await asyncio.sleep(1.2)
    await assert_replay_ends_the_session(gateway, first_refresh, token, second_refresh)


async def test_a_replay_of_an_older_token_ends_the_session_at_once(gateway):
    """Within the grace too: once the successor was traded in, the client has moved on."""
    _, first_refresh = await sign_in(gateway)
    _, second_refresh = await rotated(gateway, first_refresh)
    token, third_refresh = await rotated(gateway, second_refresh)
    await assert_replay_ends_the_session(gateway, first_refresh, token, third_refresh)


async def test_the_successor_handed_out_twice_is_single_use(app_for, settings, db):
    gateway = await app_for(settings.with_(refresh_reuse_grace_seconds=1))
    _, first_refresh = await sign_in(gateway)
    [successor] = {p["data"]["refreshToken"]["refreshToken"]
                   for p in await presented_at_once(db, gateway, first_refresh, 2)}
    token, third_refresh = await rotated(gateway, successor)
    await asyncio.sleep(1.2)
    await assert_replay_ends_the_session(gateway, successor, token, third_refresh)


async def test_without_a_grace_a_concurrent_refresh_ends_the_session(app_for, settings, db):
    gateway = await app_for(settings.with_(refresh_reuse_grace_seconds=0))
    _, refresh_token = await sign_in(gateway)
    bodies = await presented_at_once(db, gateway, refresh_token, 3)
    [won] = [b for b in bodies if not b["data"]["refreshToken"]["userErrors"]]
    for lost in (b for b in bodies if b is not won):
        assert_refused(lost)
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens") == 2  # one rotation, no more
    # The losers presented a used token: indistinguishable from a thief racing the client, so
    # the chain ended, the winner's new pair with it.
    payload = won["data"]["refreshToken"]
    assert await signed_in_as(gateway, payload["token"]) is None
    assert_refused(await refresh(gateway, payload["refreshToken"]))


async def test_guessing_refresh_tokens_is_throttled_per_address(app_for, settings):
    gateway = await app_for(settings.with_(limits=LimitSettings(sign_in_attempts_per_address=5)))
    codes = []
    for i in range(7):
        response = await gateway.post(REFRESH, {"refreshToken": f"guess-{i}"})
        body = response.json()
        codes.append(body["errors"][0]["extensions"]["code"] if body.get("errors")
                     else body["data"]["refreshToken"]["userErrors"][0]["code"])
    assert codes == ["INVALID_REFRESH_TOKEN"] * 5 + ["RATE_LIMITED"] * 2


def test_the_reuse_grace_is_read_from_the_environment():
    assert from_env({}).refresh_reuse_grace_seconds == 10
    assert from_env({"REFRESH_REUSE_GRACE_SECONDS": "0"}).refresh_reuse_grace_seconds == 0
    assert from_env({"REFRESH_REUSE_GRACE_SECONDS": "60"}).refresh_reuse_grace_seconds == 60


@pytest.mark.parametrize("raw", ["-1", "61", "3600", "ten", "1.5"])  # empty is unset: the default
def test_the_reuse_grace_must_be_a_few_seconds(raw):
    with pytest.raises(SettingsError, match=r"^REFRESH_REUSE_GRACE_SECONDS must be an integer from 0 to 60, not "):
        from_env({"REFRESH_REUSE_GRACE_SECONDS": raw})
