"""Variables that do not coerce: the error says where and what was expected, never what was sent.

graphql-core's own messages repeat the submitted value (a password among them) and suggest
names; production must suggest nothing, and no mode may echo a value.
"""

from __future__ import annotations

import pytest

GRAPHQL_RESPONSE = "application/graphql-response+json"
PROBE = "hunter2-Sup3rSecret"  # a password-like value: it must never come back
ROLE = "mutation($i: ChangeMemberRoleInput!) { changeMemberRole(input: $i) { userErrors { code } } }"
LOGIN = "mutation($i: LoginInput!) { login(input: $i) { token } }"
CREDITS = "mutation($i: SetCreditAccessInput!) { setCreditAccess(input: $i) { userErrors { code } } }"
MEMBERS = "query($n: Int!) { viewer { organization { members(first: $n) { totalCount } } } }"

# name: (query, variables, what the message must say, the suggestion development adds)
CASES = {
    "wrong enum value": (ROLE, {"i": {"accountId": "x", "role": PROBE}},
                         "at .role: expected a value of enum 'OrganizationRole'.", None),
    "near-miss enum value": (ROLE, {"i": {"accountId": "x", "role": "ADMN"}},
                             "at .role: expected a value of enum 'OrganizationRole'.",
                             "Did you mean the enum value 'ADMIN'?"),
    "unknown input field": (LOGIN, {"i": {"email": "a@b.example", "password": PROBE, "pasword": PROBE}},
                            "'LoginInput' has no field 'pasword'.", "Did you mean 'password'?"),
    "wrong type": (LOGIN, {"i": {"email": "a@b.example", "password": {"nested": PROBE}}},
                   "at .password: expected a value of type 'String'.", None),
    "missing required field": (LOGIN, {"i": {"password": PROBE}},
                               "the required field 'email' of 'LoginInput' was not given.", None),
    "null for non-null": (LOGIN, {"i": {"email": None, "password": PROBE}},
                          "at .email: expected a value of non-null type 'String!', not null.", None),
    "not an object": (LOGIN, {"i": PROBE}, "expected an object of type 'LoginInput'.", None),
    "wrong list item": (CREDITS, {"i": {"accountIds": ["QWNjb3VudDox", {"p": PROBE}], "mode": "UNLIMITED"}},
                        "at .accountIds[1]: expected a value of type 'ID'.", None),
    "wrong scalar": (MEMBERS, {"n": PROBE}, "expected a value of type 'Int'.", None),
    "not provided": (MEMBERS, {}, "expected a value of non-null type 'Int!', none was given.", None),
}


@pytest.mark.parametrize("env", ["production", "development"])
async def test_coercion_errors_never_echo_values_and_production_suggests_nothing(app_for, settings, env):
    gateway = await app_for(settings.with_(env=env))
    for name, (query, variables, expected, suggestion) in CASES.items():
        response = await gateway.post(query, variables, accept=GRAPHQL_RESPONSE)
        assert response.status_code == 400, name
        body = response.json()
        assert "data" not in body, name
        [error] = body["errors"]
        message = error["message"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", name
        assert PROBE not in response.text and "ADMN" not in response.text, (name, message)
        if env == "production" or suggestion is None:
            assert "Did you mean" not in message, (name, message)
        else:
            assert suggestion in message, (name, message)
        assert message.startswith("Variable '$") and "has an invalid value" in message, message
        assert expected in message, (name, message)


async def test_every_wrong_part_of_one_variable_is_named(gateway):
    variables = {"i": {"accountIds": [1.5, {"x": PROBE}], "mode": PROBE, "quota": PROBE, "extra": PROBE}}
    body = (await gateway.post(CREDITS, variables)).json()
    messages = sorted(e["message"].split(": ", 1)[1] for e in body["errors"])
    assert messages == sorted([
        "'SetCreditAccessInput' has no field 'extra'.",
        "expected a value of enum 'CloudCreditAccessMode'.",
        "expected a value of type 'ID'.",
        "expected a value of type 'ID'.",
        "expected a value of type 'Int'.",
    ])
    assert PROBE not in str(body)


async def test_production_validation_suggests_nothing_either(app_for, settings):
    gateway = await app_for(settings.with_(env="production"))
    literal = 'mutation { changeMemberRole(input: {accountId: "x", role: ADMN}) { userErrors { code } } }'
    for query in (literal, "{ viewer { nme } }", 'mutation { login(input: {email: "a", pasword: "b"}) { token } }'):
        body = (await gateway.post(query)).json()
        assert body["errors"] and all("Did you mean" not in e["message"] for e in body["errors"]), body
