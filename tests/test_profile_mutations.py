"""The Account menu: profile and password changes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from tests.conftest import LOGIN

UPDATE = """
mutation($input: UpdateProfileInput!) {
  updateProfile(input: $input) { account { name country email } userErrors { field message code } }
}
"""
CHANGE = """
mutation($input: ChangePasswordInput!) {
  changePassword(input: $input) { account { email } otherSessionsEnded userErrors { field message code } }
}
"""
VIEWER = "{ viewer { email } }"


async def test_update_name_and_country(gateway):
    token = await gateway.login("member1@northwind.example")
    body = await gateway.execute(UPDATE, {"input": {"name": "Lena F. Fischer", "country": "de"}}, token=token)
    assert body["data"]["updateProfile"] == {
        "account": {"name": "Lena F. Fischer", "country": "DE", "email": "member1@northwind.example"},
        "userErrors": []}
    cleared = await gateway.execute(UPDATE, {"input": {"country": ""}}, token=token)
    assert cleared["data"]["updateProfile"]["account"]["country"] is None


@pytest.mark.parametrize("change,field,code", [
    ({"name": ""}, "name", "INVALID"),
    ({"name": "x" * 201}, "name", "INVALID"),
    ({"country": "XX"}, "country", "INVALID"),
    ({"country": "Germany"}, "country", "INVALID"),
])
async def test_invalid_profile_values_change_nothing(gateway, change, field, code):
    token = await gateway.login("member1@northwind.example")
    body = await gateway.execute(UPDATE, {"input": {"name": "Someone Else", **change}}, token=token)
    payload = body["data"]["updateProfile"]
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["input", field], code)]
    assert payload["account"]["name"] == "Lena Fischer"


async def test_email_is_not_changeable_and_the_error_gives_the_support_url(gateway, settings):
    token = await gateway.login("member1@northwind.example")
    body = await gateway.execute(UPDATE, {"input": {"email": "new@northwind.example", "name": "New"}}, token=token)
    [error] = body["data"]["updateProfile"]["userErrors"]
    assert error["code"] == "EMAIL_NOT_CHANGEABLE" and settings.help_center_url in error["message"]
    assert body["data"]["updateProfile"]["account"] == {
        "name": "Lena Fischer", "country": "US", "email": "member1@northwind.example"}


async def test_change_password_ends_other_sessions_and_keeps_this_one(gateway):
    other = await gateway.login("member2@northwind.example")
    token = await gateway.login("member2@northwind.example")
    body = await gateway.execute(CHANGE, {"input": {"currentPassword": "demo-password",
                                                    "newPassword": "a-much-better-passphrase"}}, token=token)
    assert body["data"]["changePassword"]["otherSessionsEnded"] == 1
    assert body["data"]["changePassword"]["userErrors"] == []
    assert (await gateway.execute(VIEWER, token=token))["data"]["viewer"]["email"] == "member2@northwind.example"
    assert (await gateway.execute(VIEWER, token=other))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await gateway.login("member2@northwind.example", "a-much-better-passphrase")


@pytest.mark.parametrize("current,new,code", [
    ("wrong-password", "a-much-better-passphrase", "WRONG_PASSWORD"),
    ("demo-password", "short", "WEAK_PASSWORD"),
    ("demo-password", "aaaaaaaaaaaaaaaa", "WEAK_PASSWORD"),
])
async def test_password_change_refusals_change_nothing(gateway, current, new, code):
    other = await gateway.login("member3@northwind.example")
    token = await gateway.login("member3@northwind.example")
    body = await gateway.execute(CHANGE, {"input": {"currentPassword": current, "newPassword": new}}, token=token)
    assert [e["code"] for e in body["data"]["changePassword"]["userErrors"]] == [code]
    assert (await gateway.execute(VIEWER, token=other))["data"]["viewer"] is not None
    assert await gateway.login("member3@northwind.example")  # the old password still works


@pytest.mark.parametrize("mutation,variables", [
    (UPDATE, {"input": {"name": "Anon"}}),
    (CHANGE, {"input": {"currentPassword": "x", "newPassword": "y"}}),
])
async def test_profile_changes_need_a_signed_in_account(gateway, mutation, variables):
    body = await gateway.execute(mutation, variables)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- the current password is a password check like any other ----------------------------------

def change(current: str, new: str = "a-much-better-passphrase") -> dict:
    return {"input": {"currentPassword": current, "newPassword": new}}


async def test_guessing_the_current_password_is_throttled_like_signing_in(gateway):
    token = await gateway.login("member3@northwind.example")
    outcomes = []
    for i in range(15):
        response = await gateway.post(CHANGE, change(f"wrong-{i}"), token=token)
        body = response.json()
        outcomes.append(body["errors"][0]["extensions"]["code"] if body.get("errors")
                        else body["data"]["changePassword"]["userErrors"][0]["code"])
    assert outcomes == ["WRONG_PASSWORD"] * 10 + ["RATE_LIMITED"] * 5  # SIGN_IN_ATTEMPTS, per account
    right = await gateway.post(CHANGE, change("demo-password"), token=token)
    assert right.status_code == 429 and right.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert (await gateway.post(LOGIN, {"email": "member3@northwind.example", "password": "demo-password"})
            ).status_code == 429  # the account's one bucket, whichever way it is guessed
    assert await gateway.login("member2@northwind.example")  # and only that account's


async def test_aliases_in_one_request_are_counted_one_by_one(gateway):
    token = await gateway.login("member3@northwind.example")
    guesses = " ".join(f'g{i}: changePassword(input: {{currentPassword: "wrong-{i}", '
                       f'newPassword: "a-much-better-passphrase"}}) {{ userErrors {{ code }} }}' for i in range(12))
    response = await gateway.post(f"mutation {{ {guesses} }}", token=token)
    assert response.status_code == 429
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED" and error["path"] == ["g10"]  # the 11th
    right = await gateway.post(CHANGE, change("demo-password"), token=token)
    assert right.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


@contextlib.contextmanager
def argon2_calls_on_this_thread() -> Iterator[list[str]]:
    """Names of the argon2 hash/verify calls made on this thread (the event loop's) meanwhile."""
    watched = {PasswordHasher.hash.__code__: "hash", PasswordHasher.verify.__code__: "verify"}
    seen: list[str] = []

    def profile(frame, event, _arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code in watched:
            seen.append(watched[frame.f_code])

    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(None)


async def test_passwords_are_checked_and_hashed_off_the_event_loop(gateway):
    """argon2 costs ~50 ms of CPU a call: on the event loop it stalls every other request."""
    token = await gateway.login("member3@northwind.example")
    with argon2_calls_on_this_thread() as on_the_loop:
        refused = await gateway.execute(CHANGE, change("wrong-password"), token=token)
        changed = await gateway.execute(CHANGE, change("demo-password"), token=token)
        signed_in = await gateway.execute(LOGIN, {"email": "member3@northwind.example",
                                                  "password": "a-much-better-passphrase"})
    assert refused["data"]["changePassword"]["userErrors"][0]["code"] == "WRONG_PASSWORD"
    assert changed["data"]["changePassword"]["userErrors"] == []
    assert signed_in["data"]["login"]["token"]
    assert on_the_loop == []
