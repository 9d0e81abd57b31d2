"""Corporate sign-in against a real OpenID provider (npm oidc-provider, tests/oidc_harness.py),
driven through the whole redirect flow by a real HTTP client playing the browser.

The demo (gateway/demo.py): Northwind's people have @northwind.example addresses; its OWNER sets
up sign-in, staff confirm the domain, then people sign in at /sso/start.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from strawberry.relay import to_base64

from gateway.demo import demo_id
from tests.conftest import production_executor_only
from tests.oidc_harness import FORGE_MODES, IdentityProvider, OidcClient, authorization_code, browse
from tests.test_staff import AGENT, make_staff

pytestmark = production_executor_only

NORTHWIND = demo_id("organization", "northwind")
GLOBEX = demo_id("organization", "globex")
OWNER, ADMIN, MEMBER = "owner@northwind.example", "admin@northwind.example", "member1@northwind.example"
CLIENT_ID, SECRET = "account-gateway", "gateway-client-secret-0123456789"
GATEWAY = "http://gateway.test"
ERRORS = "userErrors { field message code }"
CONFIGURE = f"""mutation C($input: ConfigureSignInInput!) {{ configureSignIn(input: $input) {{
  organization {{ corporateSignIn {{ issuer clientId enforce redirectUri domains {{ domain status }} }} }} {ERRORS} }} }}"""
CONFIRM = f"""mutation D($input: ConfirmEmailDomainInput!) {{
  confirmEmailDomain(input: $input) {{ domain {{ domain status reason }} {ERRORS} }} }}"""
REJECT = f"""mutation R($input: RejectEmailDomainInput!) {{
  rejectEmailDomain(input: $input) {{ domain {{ domain status }} {ERRORS} }} }}"""
COMPLETE = f"""mutation S($input: CompleteSignInInput!) {{
  completeSignIn(input: $input) {{ token refreshToken account {{ email name }} {ERRORS} }} }}"""
LOGIN = f"""mutation L($email: String!, $password: String!) {{
  login(input: {{email: $email, password: $password}}) {{ token {ERRORS} }} }}"""
VIEWER = "{ viewer { email name organization { name viewerRole } } }"


@pytest.fixture(scope="module")
def idp():
    clients = [OidcClient(CLIENT_ID, SECRET, [f"{GATEWAY}/sso/callback"]),
               OidcClient("another-client", "another-secret-0123456789", [f"{GATEWAY}/sso/callback"])]
    with IdentityProvider(clients) as provider:
        yield provider


@pytest.fixture
async def gateway(app_for, settings):
    return await app_for(settings.with_(public_url=GATEWAY))


@pytest.fixture
async def browser(gateway):
    mounts = {GATEWAY: httpx.ASGITransport(app=gateway.app)}
    async with httpx.AsyncClient(mounts=mounts, timeout=30) as client:
        yield client


def org_id(raw=NORTHWIND) -> str:
    return to_base64("Organization", str(raw))


def configure_input(idp, **changes) -> dict:
    return {"issuer": idp.issuer, "clientId": CLIENT_ID, "clientSecret": SECRET, "domains": ["northwind.example"],
            **changes}


async def configure(gateway, idp, token=None, **changes) -> dict:
    token = token or await gateway.login(OWNER)
    return (await gateway.execute(CONFIGURE, {"input": configure_input(idp, **changes)}, token=token))[
        "data"]["configureSignIn"]


async def staff_token(gateway, db, role="SUPPORT") -> str:
    await make_staff(db, role)
    return await gateway.login(AGENT)


async def confirm(gateway, token, domain="northwind.example", organization=NORTHWIND) -> dict:
    return (await gateway.execute(CONFIRM, {"input": {"organizationId": org_id(organization), "domain": domain,
                                                      "reason": "DNS TXT record checked"}}, token=token))[
        "data"]["confirmEmailDomain"]


@pytest.fixture
async def ready(gateway, db, idp):
    """Northwind signs in through the provider: set up by its OWNER, the domain confirmed by support."""
    assert (await configure(gateway, idp))["userErrors"] == []
    assert (await confirm(gateway, await staff_token(gateway, db)))["userErrors"] == []


def start(email: str) -> str:
    return f"{GATEWAY}/sso/start?{httpx.QueryParams({'email': email})}"


def one_time_code(response: httpx.Response) -> str:
    assert response.status_code == 302, (response.status_code, response.text)
    location = urlsplit(response.headers["location"])
    assert location.path == "/sso/complete", response.headers["location"]
    return parse_qs(location.query)["code"][0]


async def sign_in(gateway, browser, email: str) -> dict:
    code = one_time_code(await browse(browser, start(email), email))
    return (await gateway.execute(COMPLETE, {"input": {"code": code}}))["data"]["completeSignIn"]


def codes(payload) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


# --- the flow ---------------------------------------------------------------------------------

async def test_a_new_person_signs_in_and_joins_as_a_member(gateway, browser, db, idp, ready):
    signed = await sign_in(gateway, browser, "newcomer@northwind.example")
    assert signed["userErrors"] == [] and signed["account"]["email"] == "newcomer@northwind.example"
    viewer = (await gateway.execute(VIEWER, token=signed["token"]))["data"]["viewer"]
    assert viewer["organization"] == {"name": "Northwind Studio", "viewerRole": "MEMBER"}
    assert viewer["name"] == "newcomer"  # the provider's `name` claim
    # No password: the account signs in through the provider only.
    assert await db.fetchval("SELECT password_hash FROM accounts WHERE email = 'newcomer@northwind.example'") is None
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'member.join_sign_in'"
                             " AND target = 'newcomer@northwind.example'") == 1
    # The second sign-in finds the same account by the provider's subject; no second membership.
    again = await sign_in(gateway, browser, "newcomer@northwind.example")
    assert again["userErrors"] == [] and again["token"] != signed["token"]
    assert await db.fetchval("SELECT count(*) FROM accounts WHERE email = 'newcomer@northwind.example'") == 1
    assert await db.fetchval("SELECT count(*) FROM external_identities WHERE subject = 'sub-newcomer@northwind.example'") == 1


async def test_an_existing_member_keeps_their_account_and_role(gateway, browser, db, idp, ready):
    signed = await sign_in(gateway, browser, ADMIN)
    assert signed["userErrors"] == []
    viewer = (await gateway.execute(VIEWER, token=signed["token"]))["data"]["viewer"]
    assert viewer["email"] == ADMIN and viewer["organization"]["viewerRole"] == "ADMIN"


async def test_the_refresh_token_of_a_corporate_sign_in_works_like_any_other(gateway, browser, idp, ready):
    signed = await sign_in(gateway, browser, MEMBER)
    body = await gateway.execute("mutation R($t: String!) { refreshToken(input: {refreshToken: $t}) { token "
                                 "userErrors { code } } }", {"t": signed["refreshToken"]})
    assert body["data"]["refreshToken"]["userErrors"] == [] and body["data"]["refreshToken"]["token"]


async def test_the_one_time_code_works_once_even_when_sent_at_once(gateway, browser, idp, ready):
    code = one_time_code(await browse(browser, start(MEMBER), MEMBER))
    answers = await asyncio.gather(*[gateway.execute(COMPLETE, {"input": {"code": code}}) for _ in range(6)])
    outcomes = sorted(codes(a["data"]["completeSignIn"]) or ["OK"] for a in answers)
    assert outcomes == [["INVALID_SIGN_IN_CODE"]] * 5 + [["OK"]]
    for bad in ("", "x" * 5000, "not-a-code"):
        payload = (await gateway.execute(COMPLETE, {"input": {"code": bad}}))["data"]["completeSignIn"]
        assert payload["token"] is None and codes(payload) in (["REQUIRED"], ["INVALID_SIGN_IN_CODE"])


async def test_without_a_confirmed_domain_no_one_is_sent_to_the_provider(gateway, browser, db, idp):
    assert (await configure(gateway, idp))["userErrors"] == []  # claimed, not yet confirmed
    refused = await browser.get(start(MEMBER))
    assert refused.status_code == 404 and "sign in with your password" in refused.text
    assert (await browser.get(start("someone@unclaimed.example"))).status_code == 404
    assert (await browser.get(f"{GATEWAY}/sso/start?email=not-an-email")).status_code == 400
    assert await db.fetchval("SELECT count(*) FROM sign_in_attempts") == 0


# --- forged and replayed answers ---------------------------------------------------------------

@pytest.mark.parametrize("mode", FORGE_MODES)
async def test_a_forged_id_token_is_refused_and_changes_nothing(gateway, browser, db, idp, ready, mode):
    email = f"forged-{mode.replace('_', '-')}@northwind.example"
    idp.forge = mode
    refused = await browse(browser, start(email), email)
    assert refused.status_code in (400, 403), (refused.status_code, refused.text)
    assert "Sign-in failed" in refused.text and "location" not in refused.headers
    assert await db.fetchval("SELECT count(*) FROM accounts WHERE email = $1", email) == 0
    assert await db.fetchval("SELECT count(*) FROM sign_in_codes") == 0
    assert idp.token_responses[-1].forged  # the gateway did get the forged token, and refused it


async def test_a_replayed_answer_is_refused(gateway, browser, db, idp, ready):
    code, state = await authorization_code(browser, start(MEMBER), MEMBER)
    callback = f"{GATEWAY}/sso/callback?{httpx.QueryParams({'code': code, 'state': state, 'iss': idp.issuer})}"
    first = await browser.get(callback)
    assert first.status_code == 302
    browser.cookies.set("sso_state", state, domain="gateway.test", path="/sso/")  # as if the browser kept it
    replayed = await browser.get(callback)
    assert replayed.status_code == 400 and "finished already" in replayed.text
    # The code again with a sign-in of its own (a fresh state): the provider refuses the used code.
    _, fresh_state = await authorization_code(browser, start(MEMBER), MEMBER)
    stolen = await browser.get(f"{GATEWAY}/sso/callback?{httpx.QueryParams({'code': code, 'state': fresh_state})}")
    assert stolen.status_code == 400 and "refused" in stolen.text
    assert await db.fetchval("SELECT count(*) FROM sign_in_codes") == 1


async def test_an_answer_finished_in_another_browser_is_refused(gateway, browser, db, idp, ready):
    """Login CSRF: the attacker signs in as themselves, stops before the way back, and has a victim's
    browser finish it, which would sign the victim in as the attacker."""
    code, state = await authorization_code(browser, start(MEMBER), MEMBER)
    async with httpx.AsyncClient(mounts={GATEWAY: httpx.ASGITransport(app=gateway.app)}) as victim:
        planted = await victim.get(f"{GATEWAY}/sso/callback",
                                   params={"code": code, "state": state, "iss": idp.issuer})
    assert planted.status_code == 400 and "not started in this browser" in planted.text
    assert await db.fetchval("SELECT count(*) FROM sign_in_codes") == 0


async def test_answers_not_started_here_or_from_another_issuer_are_refused(gateway, browser, db, idp, ready):
    assert (await browser.get(f"{GATEWAY}/sso/callback?code=abc&state=made-up")).status_code == 400
    assert (await browser.get(f"{GATEWAY}/sso/callback")).status_code == 400
    code, state = await authorization_code(browser, start(MEMBER), MEMBER)
    mixed_up = await browser.get(f"{GATEWAY}/sso/callback?"
                                 f"{httpx.QueryParams({'code': code, 'state': state, 'iss': 'https://evil.example'})}")
    assert mixed_up.status_code == 400 and "another identity provider" in mixed_up.text
    assert await db.fetchval("SELECT count(*) FROM sign_in_codes") == 0


async def test_someone_of_another_organization_is_not_taken_over(gateway, browser, db, idp, ready):
    await db.execute("INSERT INTO accounts (id, email, name) VALUES (gen_random_uuid(), 'moved@northwind.example', 'M')")
    await db.execute("INSERT INTO memberships (account_id, organization_id, role) SELECT id, $1, 'MEMBER' FROM accounts"
                     " WHERE email = 'moved@northwind.example'", GLOBEX)
    refused = await browse(browser, start("moved@northwind.example"), "moved@northwind.example")
    assert refused.status_code == 403 and "another organization" in refused.text
    assert await db.fetchval("SELECT organization_id FROM memberships m JOIN accounts a ON a.id = m.account_id"
                             " WHERE a.email = 'moved@northwind.example'") == GLOBEX


# --- enforce ------------------------------------------------------------------------------------

async def test_enforce_refuses_passwords_of_the_confirmed_domain_only(gateway, browser, db, idp, ready):
    before = await gateway.login(MEMBER)
    assert (await configure(gateway, idp, enforce=True))["userErrors"] == []
    refused = (await gateway.execute(LOGIN, {"email": MEMBER, "password": "demo-password"}))["data"]["login"]
    assert refused["token"] is None and codes(refused) == ["SIGN_IN_WITH_PROVIDER"]
    assert "/sso/start?email=member1%40northwind.example" in refused["userErrors"][0]["message"]
    # A wrong password is still just wrong: the provider is named to whoever knows the password only.
    wrong = (await gateway.execute(LOGIN, {"email": MEMBER, "password": "nope"}))["data"]["login"]
    assert codes(wrong) == ["INVALID_CREDENTIALS"]
    assert await gateway.login("owner@globex.example")  # another domain: passwords as before
    assert (await sign_in(gateway, browser, MEMBER))["userErrors"] == []
    assert (await gateway.execute(VIEWER, token=before))["data"]["viewer"]["email"] == MEMBER  # sessions live on
    # Support rejecting the domain is the way back to passwords (a provider that broke, say).
    assert (await gateway.execute(REJECT, {"input": {"organizationId": org_id(), "domain": "northwind.example",
                                                     "reason": "provider outage"}},
                                  token=await gateway.login(AGENT)))["data"]["rejectEmailDomain"]["userErrors"] == []
    assert await gateway.login(MEMBER)


# --- setting it up --------------------------------------------------------------------------------

async def test_the_owner_sets_it_up_and_reads_it_back_without_the_secret(gateway, idp):
    payload = await configure(gateway, idp, domains=["Northwind.Example", "bücher.example"])
    assert payload["userErrors"] == []
    shown = payload["organization"]["corporateSignIn"]
    assert shown == {"issuer": idp.issuer, "clientId": CLIENT_ID, "enforce": False,
                     "redirectUri": f"{GATEWAY}/sso/callback",
                     "domains": [{"domain": "northwind.example", "status": "PENDING"},
                                 {"domain": "xn--bcher-kva.example", "status": "PENDING"}]}
    # Changed without the secret: the one stored is kept; a domain left out is released.
    again = await configure(gateway, idp, clientSecret=None, domains=["northwind.example"])
    assert again["userErrors"] == [] and len(again["organization"]["corporateSignIn"]["domains"]) == 1
    member = await gateway.login(MEMBER)
    body = await gateway.execute("{ viewer { organization { corporateSignIn { issuer } } } }", token=member)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_bad_settings_are_refused_and_change_nothing(gateway, db, idp):
    admin = await gateway.login(ADMIN)
    assert codes(await configure(gateway, idp, token=admin)) == ["NOT_ALLOWED"]
    member = await gateway.login(MEMBER)
    body = await gateway.execute(CONFIGURE, {"input": configure_input(idp)}, token=member)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    cases = {
        "PROVIDER_UNREACHABLE": {"issuer": "http://127.0.0.1:9/nowhere"},
        "INVALID": {"issuer": "ftp://login.example"},
    }
    for code, change in cases.items():
        assert codes(await configure(gateway, idp, **change)) == [code], change
    # The issuer must be written exactly as the provider's discovery document writes it.
    assert codes(await configure(gateway, idp, issuer=idp.issuer + "/")) == ["PROVIDER_UNREACHABLE"]
    bad = await configure(gateway, idp, clientId="has space", clientSecret="", domains=[
        "not a domain", "-bad.example", "x" * 400, "localhost", "127.0.0.1", "ok.example", "OK.example"])
    assert sorted((tuple(e["field"]), e["code"]) for e in bad["userErrors"]) == sorted([
        (("input", "clientId"), "INVALID"), (("input", "clientSecret"), "INVALID"),
        *[(("input", "domains", str(i)), "INVALID") for i in (0, 1, 2, 3, 4, 6)]])
    assert codes(await configure(gateway, idp, domains=[])) == ["INVALID"]
    assert codes(await configure(gateway, idp, clientSecret=None)) == ["REQUIRED"]  # none stored yet
    assert await db.fetchval("SELECT count(*) FROM sign_in_configs") == 0
    assert await db.fetchval("SELECT count(*) FROM email_domains") == 0


async def test_a_domain_is_confirmed_for_one_organization_only(gateway, db, idp):
    support = await staff_token(gateway, db)
    assert (await configure(gateway, idp, domains=["shared.example"]))["userErrors"] == []
    globex_owner = await gateway.login("owner@globex.example")
    assert (await configure(gateway, idp, token=globex_owner, domains=["shared.example"]))["userErrors"] == []
    # Both confirmed at once: one wins, the other is told the domain is taken.
    answers = await asyncio.gather(confirm(gateway, support, "shared.example", NORTHWIND),
                                   confirm(gateway, support, "shared.example", GLOBEX))
    assert sorted(codes(a) for a in answers) == [[], ["DOMAIN_TAKEN"]]
    winner = NORTHWIND if answers[0]["userErrors"] == [] else GLOBEX
    loser_token = globex_owner if winner == NORTHWIND else await gateway.login(OWNER)
    assert codes(await configure(gateway, idp, token=loser_token, domains=["shared.example"])) == ["DOMAIN_TAKEN"]
    assert codes(await confirm(gateway, support, "unclaimed.example")) == ["NOT_CLAIMED"]
    assert codes(await confirm(gateway, support, "not a domain")) == ["INVALID"]
    assert await db.fetchval("SELECT count(*) FROM email_domains WHERE status = 'CONFIRMED'") == 1
    entry = await db.fetchrow("SELECT details, reason FROM audit_log WHERE action = 'organization.email_domain_decision'"
                              " AND outcome = 'SUCCESS'")
    assert entry["reason"] == "DNS TXT record checked"


async def test_staff_without_the_right_role_cannot_decide(gateway, db):
    billing = await staff_token(gateway, db, "BILLING")
    body = await gateway.execute(CONFIRM, {"input": {"organizationId": org_id(), "domain": "northwind.example",
                                                     "reason": "x"}}, token=billing)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    owner = await gateway.login(OWNER)
    body = await gateway.execute(CONFIRM, {"input": {"organizationId": org_id(), "domain": "northwind.example",
                                                     "reason": "x"}}, token=owner)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"



async def test_crafted_values_at_the_browser_endpoints_are_refused_plainly(gateway, browser, db, idp, ready):
    crafted = ["", "@", "a" * 10_000 + "@northwind.example", "ad\u202ea@northwind.example", "ada@northwind.example\r\nX-Injected: 1",
               "<script>@northwind.example", "ada@northwind.example@evil.example", "ada\x00@northwind.example"]
    for email in crafted:
        answer = await browser.get(f"{GATEWAY}/sso/start", params={"email": email})
        assert answer.status_code in (400, 404), (email, answer.status_code)
        assert "<script>" not in answer.text
    for params in ({"state": "s" * 10_000, "code": "c"}, {"state": "\x00", "code": "\x00"},
                   {"state": "x", "error": "access_denied"}, {"code": "c" * 60_000, "state": "y"}):
        assert (await browser.get(f"{GATEWAY}/sso/callback", params=params)).status_code == 400, params
    # The person cancels at the provider: the attempt is used up and told so.
    code_and_state = await browser.get(start(MEMBER))
    state = parse_qs(urlsplit(code_and_state.headers["location"]).query)["state"][0]
    denied = await browser.get(f"{GATEWAY}/sso/callback", params={"state": state, "error": "access_denied"})
    assert denied.status_code == 400 and "did not sign you in (access_denied)" in denied.text
    assert await db.fetchval("SELECT count(*) FROM sign_in_codes") == 0


async def test_staff_and_other_organizations_accounts_are_not_the_domains_to_govern(gateway, browser, db, idp, ready):
    # A staff account with an address of the domain: never signed in through the customer's provider,
    # and its password keeps working under enforce.
    await make_staff(db, "SUPPORT", "agent@northwind.example")
    refused = await browse(browser, start("agent@northwind.example"), "agent@northwind.example")
    assert refused.status_code == 403 and "signs in with its password" in refused.text
    await db.execute("INSERT INTO accounts (id, email, name, password_hash) SELECT gen_random_uuid(),"
                     " 'elsewhere@northwind.example', 'E', password_hash FROM accounts WHERE email = $1", OWNER)
    await db.execute("INSERT INTO memberships (account_id, organization_id, role) SELECT id, $1, 'MEMBER' FROM accounts"
                     " WHERE email = 'elsewhere@northwind.example'", GLOBEX)
    assert (await configure(gateway, idp, enforce=True))["userErrors"] == []
    assert await gateway.login("agent@northwind.example")
    assert await gateway.login("elsewhere@northwind.example")
    assert await db.fetchval("SELECT count(*) FROM sign_in_codes") == 0


async def test_an_invitation_is_taken_by_signing_in_with_its_role(gateway, browser, db, idp, ready):
    owner = await gateway.login(OWNER)
    invited = await gateway.execute("mutation { inviteMembers(input: {invitations: [{email: \"lead@northwind.example\","
                                    " role: ADMIN}]}) { userErrors { code } } }", token=owner)
    assert invited["data"]["inviteMembers"]["userErrors"] == []
    assert (await configure(gateway, idp, enforce=True))["userErrors"] == []
    # Under enforce the mailed link cannot set a password: the invitation waits for the provider.
    token = await mailed_invitation_token(db, "lead@northwind.example")
    accepted = await gateway.execute("mutation A($t: String!) { acceptInvitation(input: {token: $t, name: \"Lea\","
                                     " password: \"a-long-password-9\"}) { token userErrors { code } } }", {"t": token})
    assert codes(accepted["data"]["acceptInvitation"]) == ["SIGN_IN_WITH_PROVIDER"]
    signed = await sign_in(gateway, browser, "lead@northwind.example")
    viewer = (await gateway.execute(VIEWER, token=signed["token"]))["data"]["viewer"]
    assert viewer["organization"]["viewerRole"] == "ADMIN"
    assert await db.fetchval("SELECT accepted_at IS NOT NULL FROM invitations WHERE email = 'lead@northwind.example'")


async def mailed_invitation_token(db, email: str) -> str:
    body = await db.fetchval("SELECT body FROM mail_outbox WHERE to_address = $1 ORDER BY id DESC LIMIT 1", email)
    return re.search(r"/accept-invitation\?token=([A-Za-z0-9_-]+)", body).group(1)


async def test_international_domains_are_one_domain_in_either_form(gateway, browser, db, idp):
    support = await staff_token(gateway, db)
    assert (await configure(gateway, idp, domains=["bücher.example"], enforce=True))["userErrors"] == []
    assert (await confirm(gateway, support, "BÜCHER.example"))["domain"]["domain"] == "xn--bcher-kva.example"
    await db.execute("INSERT INTO accounts (id, email, name, password_hash) SELECT gen_random_uuid(),"
                     " 'ida@bücher.example', 'Ida', password_hash FROM accounts WHERE email = $1", MEMBER)
    await db.execute("INSERT INTO memberships (account_id, organization_id, role) SELECT id, $1, 'MEMBER' FROM accounts"
                     " WHERE email = 'ida@bücher.example'", NORTHWIND)
    for form in ("ida@bücher.example", "IDA@BÜCHER.EXAMPLE", "ida@xn--bcher-kva.example"):
        refused = (await gateway.execute(LOGIN, {"email": form, "password": "demo-password"}))["data"]["login"]
        assert codes(refused) in (["SIGN_IN_WITH_PROVIDER"], ["INVALID_CREDENTIALS"]), form
    assert codes((await gateway.execute(LOGIN, {"email": "ida@bücher.example", "password": "demo-password"}))[
        "data"]["login"]) == ["SIGN_IN_WITH_PROVIDER"]
    # The provider names her in ASCII: the same account, not a second one.
    signed = await sign_in(gateway, browser, "ida@xn--bcher-kva.example")
    assert signed["userErrors"] == [] and signed["account"]["email"] == "ida@bücher.example"
    assert (await browser.get(start("ida@bücher.example"))).status_code == 302


async def test_urls_the_gateway_cannot_fetch_are_user_errors(gateway, db, idp):
    for issuer in ("http://127.0.0.1:%36%36", "http://127.0.0.1:99999", "http://\u202e127.0.0.1", idp.issuer + "\n",
                   "http://[::1", "http://127.0.0.1:0/x", idp.issuer + "?x=1", "http://user:pw@127.0.0.1/"):
        payload = await configure(gateway, idp, issuer=issuer)
        assert codes(payload) in (["INVALID"], ["PROVIDER_UNREACHABLE"]), (issuer, payload)
    assert await db.fetchval("SELECT count(*) FROM sign_in_configs") == 0


async def test_another_provider_needs_the_domains_confirmed_again(gateway, browser, db, idp, ready):
    async with IdentityProvider([OidcClient(CLIENT_ID, SECRET, [f"{GATEWAY}/sso/callback"])]) as other:
        moved = await configure(gateway, other)
        assert moved["userErrors"] == []
        assert moved["organization"]["corporateSignIn"]["domains"] == [{"domain": "northwind.example",
                                                                        "status": "PENDING"}]
        assert (await browser.get(start(MEMBER))).status_code == 404
    assert (await configure(gateway, idp))["userErrors"] == []
    assert (await confirm(gateway, await gateway.login(AGENT)))["userErrors"] == []
    # The secret or enforce changed, the provider the same: the confirmation stands.
    same = await configure(gateway, idp, clientSecret="a-new-secret-0123456789", enforce=True)
    assert same["organization"]["corporateSignIn"]["domains"][0]["status"] == "CONFIRMED"


async def test_someone_deactivated_by_provisioning_does_not_come_back_by_signing_in(gateway, browser, db, idp, ready):
    await db.execute("INSERT INTO scim_users (id, organization_id, user_name, email, active) VALUES"
                     " (gen_random_uuid(), $1, 'gone@northwind.example', 'gone@northwind.example', false)", NORTHWIND)
    refused = await browse(browser, start("gone@northwind.example"), "gone@northwind.example")
    assert refused.status_code == 403 and "deactivated" in refused.text
    assert await db.fetchval("SELECT count(*) FROM accounts WHERE email = 'gone@northwind.example'") == 0
