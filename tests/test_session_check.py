"""A query by a session this process has checked before carries the session check in its own
first statement (gateway/http.py `_checked_in_flight`): one statement fewer, and every change to
the session, its account, role, membership or organization still counts from the next request.
"""

from __future__ import annotations

import asyncio

import pytest

from auth import tokens

from tests.test_authentication import LOGOUT, NOT_AUTHENTICATED

ADMIN = "admin@northwind.example"
OTHER = "owner@northwind.example"
VIEWER = "{ viewer { name role organization { name } } }"
# Needs a statement of its own (the members are not among the session's rows).
MEMBERS = "{ viewer { name organization { name members(first: 3) { totalCount edges { node { email } } } } } }"


def statements(body: dict) -> int:
    return body["extensions"]["io"]["sqlStatements"]


def refused(body: dict) -> bool:
    """Answered as to an anonymous client: the error, and nothing of the account's."""
    return ([e["extensions"]["code"] for e in body.get("errors", [])] == ["UNAUTHENTICATED"]
            and body["errors"][0]["message"] == NOT_AUTHENTICATED and body["data"] == {"viewer": None})


async def known_session(gateway, email: str = ADMIN) -> str:
    """A token whose session this process has checked (and every statement text prepared)."""
    token = await gateway.login(email)
    for query in (VIEWER, MEMBERS):
        body = await gateway.execute(query, token=token)
        assert "errors" not in body, body
    return token


async def test_a_known_sessions_query_costs_one_statement_fewer_and_answers_the_same(gateway):
    await known_session(gateway, OTHER)  # statement texts prepared, column names learnt
    token = await gateway.login(ADMIN)
    first = await gateway.execute(MEMBERS, token=token)
    again = await gateway.execute(MEMBERS, token=token)
    assert "errors" not in first and again["data"] == first["data"]
    assert statements(again) == statements(first) - 1, (statements(first), statements(again))
    # Answered from the session's own rows: the check is its one statement, alone, each time.
    assert [statements(await gateway.execute(VIEWER, token=token)) for _ in range(2)] == [1, 1]


@pytest.mark.parametrize("query", [VIEWER, MEMBERS])
async def test_a_signed_out_session_is_refused_on_its_next_query(gateway, query):
    token = await known_session(gateway)
    body = await gateway.execute(LOGOUT, {"all": False}, token=token)
    assert body["data"]["logout"]["revoked"] == 1
    body = await gateway.execute(query, token=token)
    assert refused(body), body


ACCOUNT = "(SELECT id FROM accounts WHERE email = 'admin@northwind.example')"
CHANGES = {
    "session revoked": (f"UPDATE sessions SET revoked_at = now() WHERE account_id = {ACCOUNT}", None),
    "session expired": (f"UPDATE sessions SET expires_at = now() - interval '1 second' WHERE account_id = {ACCOUNT}",
                        None),
    "account deleted": (f"DELETE FROM accounts WHERE id = {ACCOUNT}", None),
    "membership ended": (f"DELETE FROM memberships WHERE account_id = {ACCOUNT}",
                         {"name": "Arjun Mehta", "role": None, "organization": None}),
    "role changed": (f"UPDATE memberships SET role = 'MEMBER' WHERE account_id = {ACCOUNT}",
                     {"name": "Arjun Mehta", "role": "MEMBER", "organization": {"name": "Northwind Studio"}}),
    "organization renamed": (f"UPDATE organizations SET name = 'Southwind' WHERE id = (SELECT organization_id "
                             f"FROM memberships WHERE account_id = {ACCOUNT})",
                             {"name": "Arjun Mehta", "role": "ADMIN", "organization": {"name": "Southwind"}}),
    "account renamed": (f"UPDATE accounts SET name = 'Arjun Renamed' WHERE id = {ACCOUNT}",
                        {"name": "Arjun Renamed", "role": "ADMIN", "organization": {"name": "Northwind Studio"}}),
}


@pytest.mark.parametrize("change", CHANGES)
async def test_a_change_made_elsewhere_counts_from_the_next_query(gateway, db, change):
    """Written straight to the database (another process, the CLI, an operator): no notice reaches
    this process, and the next query still sees it."""
    token = await known_session(gateway)
    before = await gateway.execute(VIEWER, token=token)
    assert before["data"]["viewer"]["organization"] == {"name": "Northwind Studio"}, before
    statement, expected = CHANGES[change]
    await db.execute(statement)
    for query in (VIEWER, MEMBERS):
        body = await gateway.execute(query, token=token)
        if expected is None:
            assert refused(body), (query, body)
            continue
        seen = body["data"]["viewer"]
        if query == VIEWER:
            assert "errors" not in body and seen == expected, body
            continue
        # The same, read with the members (the check inside that statement): a MEMBER may not list them.
        assert seen["name"] == expected["name"], body
        if expected["organization"] is None:
            assert seen["organization"] is None and "errors" not in body, body
        elif expected["role"] == "MEMBER":
            assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body
            assert seen["organization"] == {**expected["organization"], "members": None}
        else:
            assert "errors" not in body and seen["organization"]["name"] == expected["organization"]["name"], body
            assert seen["organization"]["members"]["totalCount"] == 9


async def test_a_burst_of_queries_across_a_revocation_never_answers_after_it(gateway, db):
    """Queries in flight while the session is revoked answer as before or as refused, never an
    error or half an answer; every query sent after the revocation committed is refused."""
    token = await known_session(gateway)
    expected = (await gateway.execute(MEMBERS, token=token))["data"]

    async def ask() -> dict:
        return await gateway.execute(MEMBERS, token=token)

    in_flight = [asyncio.create_task(ask()) for _ in range(40)]
    await asyncio.sleep(0)
    await db.execute(f"UPDATE sessions SET revoked_at = now() WHERE account_id = {ACCOUNT}")
    after = await asyncio.gather(*(ask() for _ in range(20)))
    answers = await asyncio.gather(*in_flight)
    for body in answers:
        assert body["data"] == expected and "errors" not in body or refused(body), body
    assert all(refused(body) for body in after)


async def test_a_token_naming_another_account_for_a_known_session_is_refused(gateway, settings):
    """What a session's check found is used for its own account only, as the check itself is."""
    token = await known_session(gateway)
    other = await known_session(gateway, OTHER)
    session = tokens.decode(settings.secret_key, token)
    other_account = tokens.decode(settings.secret_key, other)
    assert session is not None and other_account is not None
    crossed, _ = tokens.issue(settings.secret_key, session_id=session.session_id,
                              account_id=other_account.account_id, ttl_seconds=60)
    for query in (VIEWER, MEMBERS):
        assert refused(await gateway.execute(query, token=crossed))
    assert "errors" not in await gateway.execute(VIEWER, token=token)


def test_recent_sessions_keep_the_most_recently_used_and_guess_only_live_ones():
    from datetime import datetime, timedelta, timezone
    from uuid import uuid4

    from auth.viewer import ANONYMOUS, RecentSessions, Viewer
    from auth.tokens import TokenClaims
    from datasources.postgres.staff import SessionStanding

    now = datetime.now(timezone.utc)

    def session(expires_in: float = 60) -> tuple[TokenClaims, Viewer]:
        account, sid = uuid4(), uuid4()
        standing = SessionStanding(sid, account, None, now + timedelta(seconds=expires_in), None, None, None)
        return TokenClaims(sid, account, now + timedelta(minutes=5)), Viewer(account_id=account, session_id=sid,
                                                                             standing=standing)

    recent = RecentSessions(capacity=2)
    (a, va), (b, vb), (c, vc) = session(), session(), session()
    recent.note(a, va)
    recent.note(b, vb)
    assert recent.guess(a) == va.standing  # a used again: b is now the oldest
    recent.note(a, va)
    recent.note(c, vc)
    assert recent.guess(b) is None and recent.guess(a) == va.standing and recent.guess(c) == vc.standing
    recent.note(c, ANONYMOUS)  # the check found no live session
    assert recent.guess(c) is None
    expired, ve = session(expires_in=-1)
    recent.note(expired, ve)
    assert recent.guess(expired) is None
    assert recent.guess(TokenClaims(a.session_id, uuid4(), a.expires_at)) is None  # another account's token
