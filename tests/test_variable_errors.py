"""Variables that do not coerce: the error says where and what was expected, never what was sent.

graphql-core's own messages repeat the submitted value (a password among them) and suggest
names; production must suggest nothing, and no mode may echo a value.
"""

from __future__ import annotations

import pytest

from tests.test_staff import make_staff

# Nothing here changes the database but by signing in, save where a test says otherwise.
pytestmark = pytest.mark.reads_only

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


# --- values written in the document ----------------------------------------------------------------
WRONG = "s3cr3t-Wr0ngValue"  # the value that does not fit: it must not come back either
NUMBER = "98765432109"
STAFF = "literal-values-staff@vendor.example"  # a wrong number: the gateway's own messages once said "got <number>"


def _login(email: str = '"a@b.example"', extra: str = "") -> str:
    return f'mutation {{ login(input: {{email: {email}, password: "{PROBE}"{extra}}}) {{ token }} }}'


def _org(field: str) -> str:
    return f"{{ viewer {{ organization {{ {field} }} }} }}"


# name: (document, what every message must say, the suggestion development adds)
LITERAL_CASES = {
    "Int given a string": (_org(f'members(first: "{WRONG}") {{ totalCount }}'),
                           "Argument 'first' has an invalid value: expected a value of type 'Int'.", None),
    "Int out of range": (_org(f"members(first: {NUMBER}) {{ totalCount }}"),
                         "Argument 'first' has an invalid value: expected a value of type 'Int'.", None),
    "String given a number": (_login(email=NUMBER), "at .email: expected a value of type 'String'.", None),
    "String given an object": (_login(email=f'{{nested: "{WRONG}"}}'),
                               "at .email: expected a value of type 'String'.", None),
    "Boolean given a string": (_login().replace(") {", f') @include(if: "{WRONG}") {{', 1),
                               "Argument 'if' has an invalid value: expected a value of type 'Boolean'.", None),
    "ID given a float": (f"{{ node(id: {NUMBER}.5) {{ id }} }}",
                         "Argument 'id' has an invalid value: expected a value of type 'ID'.", None),
    "Date not a day": (_org(f'invoicesArchiveUrl(from: "{WRONG}", to: "2026-01-31")'),
                       "Argument 'from' has an invalid value: Date takes an ISO 8601 calendar day", None),
    "DateTime not a moment": (_org(f'invoices(filter: {{issuedFrom: "{WRONG}"}}) {{ totalCount }}'),
                              "at .issuedFrom: DateTime takes an ISO 8601 string", None),
    "enum given a name": ('mutation { changeMemberRole(input: {accountId: "x", role: ADMN}) '
                          "{ userErrors { code } } }",
                          "at .role: expected a value of enum 'OrganizationRole'.",
                          "Did you mean the enum value 'ADMIN'?"),
    "enum given a string": ('mutation { changeMemberRole(input: {accountId: "x", role: "' + WRONG + '"}) '
                            "{ userErrors { code } } }",
                            "at .role: expected a value of enum 'OrganizationRole'.", None),
    "unknown input field": (_login(extra=f', pasword: "{WRONG}"'), "'LoginInput' has no field 'pasword'.",
                            "Did you mean 'password'?"),
    "missing required field": (f'mutation {{ login(input: {{password: "{PROBE}"}}) {{ token }} }}',
                               "the required field 'email' of 'LoginInput' was not given.", None),
    "null for non-null": (_login(email="null"), "at .email: expected a value of non-null type 'String!', not null.",
                          None),
    "not an object": (f'mutation {{ login(input: "{WRONG}") {{ token }} }}',
                      "Argument 'input' has an invalid value: expected an object of type 'LoginInput'.", None),
    "wrong list item": ('mutation { setCreditAccess(input: {accountIds: ["QWNjb3VudDox", ' + NUMBER + '.5], '
                        'mode: UNLIMITED, quota: null}) { userErrors { code } } }',
                        "at .accountIds[1]: expected a value of type 'ID'.", None),
    "variable default": (f'query($n: Int = "{WRONG}") {{ viewer {{ id }} }}',
                         "The default value of variable '$n' has an invalid value: expected a value of type 'Int'.",
                         None),
}


@pytest.mark.parametrize("env", ["production", "development"])
async def test_literal_value_errors_never_echo_values(app_for, settings, env):
    gateway = await app_for(settings.with_(env=env))
    for name, (query, expected, suggestion) in LITERAL_CASES.items():
        response = await gateway.post(query, accept=GRAPHQL_RESPONSE)
        assert response.status_code == 400, (name, response.text)
        body = response.json()
        assert "data" not in body, name
        for secret in (PROBE, WRONG, NUMBER, "ADMN", "found"):
            assert secret not in response.text, (name, secret, response.text)
        messages = [error["message"] for error in body["errors"]]
        assert all(error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" for error in body["errors"]), name
        assert all(error.get("locations") for error in body["errors"]), (name, body)
        assert any(expected in message for message in messages), (name, messages)
        if env == "production" or suggestion is None:
            assert not any("Did you mean" in message for message in messages), (name, messages)
        else:
            assert any(suggestion in message for message in messages), (name, messages)


async def test_each_wrong_part_of_a_literal_is_one_error_where_it_was_written(gateway):
    query = ('mutation { setCreditAccess(input: {accountIds: [1.5, {x: "' + PROBE + '"}], mode: "' + WRONG
             + '", quota: "' + PROBE + '", extra: "' + PROBE + '"}) { userErrors { code } } }')
    body = (await gateway.post(query)).json()
    found = sorted((e["locations"][0]["column"], e["message"].split(": ", 1)[1]) for e in body["errors"])
    column = query.index
    assert found == sorted([
        (column("1.5") + 1, "expected a value of type 'ID'."),
        (column("{x:") + 1, "expected a value of type 'ID'."),
        (column(f'"{WRONG}"') + 1, "expected a value of enum 'CloudCreditAccessMode'."),
        (column("extra:") + 1, "'SetCreditAccessInput' has no field 'extra'."),
        (column(f'"{PROBE}", extra') + 1, "expected a value of type 'Int'."),
    ]), found
    assert PROBE not in str(body) and WRONG not in str(body)


@pytest.mark.parametrize(("document", "allowed"), [
    ("{ staff { organizations(first: 101) { totalCount } } }", "`first` and `last` take 0 to 100."),
    ("{ staff { licensesExpiring(withinDays: 2147483647) { totalCount } } }", "`withinDays` takes 1 to"),
])
@pytest.mark.reads_only(False)  # it writes
async def test_the_gateways_own_range_errors_say_the_range_not_the_value(gateway, db, document, allowed):
    await make_staff(db, "SUPPORT", STAFF)
    body = (await gateway.post(document, token=await gateway.login(STAFF))).json()
    assert allowed in body["errors"][0]["message"], body
    assert "101" not in str(body["errors"]) and "2147483647" not in str(body["errors"]), body
