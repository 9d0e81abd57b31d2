"""The Account menu: profile and password changes."""

from __future__ import annotations

import pytest

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
