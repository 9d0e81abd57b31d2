"""Signing in and out, and who the viewer is."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace

import jwt
import pytest
from argon2 import PasswordHasher

from auth import tokens
from tests.conftest import LOGIN

VIEWER = "{ viewer { id customerNumber email name country role organization { id name } } }"
NOT_AUTHENTICATED = "Not authenticated: sign in and send 'Authorization: Bearer <token>'."
LOGOUT = "mutation Logout($all: Boolean!) { logout(input: {allSessions: $all}) { revoked userErrors { message } } }"


def assert_unauthenticated(body: dict) -> None:
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert error["message"] == NOT_AUTHENTICATED


async def test_admin_logs_in_and_sees_their_account_and_organization(gateway):
    token = await gateway.login("admin@northwind.example")
    body = await gateway.execute(VIEWER, token=token)
    assert "errors" not in body
    viewer = body["data"]["viewer"]
    assert viewer["email"] == "admin@northwind.example"
    assert viewer["role"] == "ADMIN"
    assert viewer["organization"]["name"] == "Northwind Studio"
    assert viewer["customerNumber"].startswith("C-")
    assert viewer["country"] == "US"


async def test_each_demo_account_sees_its_own_organization(gateway):
    seen = {}
    for email in ("owner@northwind.example", "member3@northwind.example", "owner@globex.example"):
        body = await gateway.execute(VIEWER, token=await gateway.login(email))
        seen[email] = (body["data"]["viewer"]["role"], body["data"]["viewer"]["organization"]["name"])
    assert seen == {
        "owner@northwind.example": ("OWNER", "Northwind Studio"),
        "member3@northwind.example": ("MEMBER", "Northwind Studio"),
        "owner@globex.example": ("OWNER", "Globex Visuals"),
    }


async def test_login_is_case_insensitive_on_email(gateway):
    token = await gateway.login("  Admin@Northwind.EXAMPLE ")
    body = await gateway.execute(VIEWER, token=token)
    assert body["data"]["viewer"]["email"] == "admin@northwind.example"


@pytest.mark.parametrize("email,password", [
    ("admin@northwind.example", "wrong-password"),
    ("nobody@northwind.example", "demo-password"),
])
async def test_wrong_password_and_unknown_email_fail_the_same_way(gateway, email, password):
    body = await gateway.execute(LOGIN, {"email": email, "password": password})
    assert "errors" not in body
    assert body["data"]["login"] == {"token": None, "userErrors": [
        {"field": None, "message": "The email or password is not correct.", "code": "INVALID_CREDENTIALS"}]}


async def test_login_with_malformed_input_returns_user_errors(gateway):
    body = await gateway.execute(LOGIN, {"email": "not-an-email", "password": ""})
    payload = body["data"]["login"]
    assert payload["token"] is None
    assert {tuple(e["field"]) for e in payload["userErrors"]} == {("input", "email"), ("input", "password")}
    assert {e["code"] for e in payload["userErrors"]} == {"INVALID"}


async def test_anonymous_viewer_is_unauthenticated(gateway):
    body = await gateway.execute(VIEWER)
    assert body["data"] == {"viewer": None}
    assert_unauthenticated(body)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "Bearer", ""])
async def test_malformed_token_is_unauthenticated(gateway, token):
    response = await gateway.http.post("/graphql", json={"query": VIEWER},
                                       headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert_unauthenticated(response.json())


async def test_expired_token_is_unauthenticated(gateway, settings, db):
    token = await gateway.login("admin@northwind.example")
    claims = tokens.decode(settings.secret_key, token)
    expired, _ = tokens.issue(settings.secret_key, session_id=claims.session_id,
                              account_id=claims.account_id, ttl_seconds=-10)
    assert_unauthenticated(await gateway.execute(VIEWER, token=expired))
    # The live token of the same session still works: only expiry was at fault.
    assert "errors" not in await gateway.execute(VIEWER, token=token)


def test_a_token_verified_once_still_expires_on_time(monkeypatch):
    # Verification is remembered per token: expiry must still be read off the clock each time.
    secret = "s" * 48
    token, claims = tokens.issue(secret, session_id=uuid.uuid4(), account_id=uuid.uuid4(), ttl_seconds=60)
    assert tokens.decode(secret, token) == claims
    expires = claims.expires_at.timestamp()
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: expires - 0.5))
    assert tokens.decode(secret, token) == claims
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: expires))
    assert tokens.decode(secret, token) is None
    monkeypatch.setattr(tokens, "time", time)
    assert tokens.decode("another-" + secret, token) is None


async def test_token_signed_with_another_key_is_unauthenticated(gateway, settings):
    token = await gateway.login("admin@northwind.example")
    payload = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(payload, "another-secret-" + "y" * 40, algorithm="HS256")
    assert_unauthenticated(await gateway.execute(VIEWER, token=forged))


async def test_tokens_expire_after_the_configured_lifetime(app_for, settings):
    gateway = await app_for(settings.with_(token_ttl_seconds=-1))
    token = await gateway.login("admin@northwind.example")
    assert_unauthenticated(await gateway.execute(VIEWER, token=token))


async def test_logout_revokes_the_token(gateway):
    token = await gateway.login("admin@northwind.example")
    other = await gateway.login("admin@northwind.example")
    body = await gateway.execute(LOGOUT, {"all": False}, token=token)
    assert body["data"]["logout"] == {"revoked": 1, "userErrors": []}
    assert_unauthenticated(await gateway.execute(VIEWER, token=token))
    assert "errors" not in await gateway.execute(VIEWER, token=other)


async def test_logout_of_all_sessions_ends_every_token_of_the_account(gateway):
    first = await gateway.login("admin@northwind.example")
    second = await gateway.login("admin@northwind.example")
    bystander = await gateway.login("owner@northwind.example")
    body = await gateway.execute(LOGOUT, {"all": True}, token=second)
    assert body["data"]["logout"]["revoked"] == 2
    assert_unauthenticated(await gateway.execute(VIEWER, token=first))
    assert_unauthenticated(await gateway.execute(VIEWER, token=second))
    assert "errors" not in await gateway.execute(VIEWER, token=bystander)


async def test_logout_needs_a_token(gateway):
    assert_unauthenticated(await gateway.execute(LOGOUT, {"all": False}))


def test_passwords_are_stored_as_argon2id_hashes(services):
    """What the seed stored (the test template then swaps in cheaper hashes: see conftest)."""
    hashes = services.seeded_password_hashes
    assert len(hashes) == 16
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert not any(PasswordHasher().check_needs_rehash(h) for h in hashes)  # argon2-cffi's work factor
    assert len(set(hashes)) == 16  # salted: no two alike


async def test_server_keeps_serving_after_failed_logins(gateway):
    for _ in range(3):
        await gateway.execute(LOGIN, {"email": "admin@northwind.example", "password": "nope"})
    assert await gateway.login("admin@northwind.example")
