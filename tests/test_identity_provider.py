"""The OpenID provider of the tests (tests/oidc_harness.py) on its own, without the gateway:
a hand-made code flow with PKCE, ID tokens verified with joserfc, and each forged token failing
verification the way it should. Needs node and npm (skips without them), no database."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import errors, jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Route

from tests.oidc_harness import (
    FORGE_MODES,
    AuthorizationDenied,
    IdentityProvider,
    OidcClient,
    authorization_code,
    browse,
    pkce_pair,
)

CALLBACK = "http://rp.test/callback"
CLIENT = OidcClient("gateway-app", "gateway-secret", [CALLBACK, "http://gateway.test/sso/callback"])
OTHER = OidcClient("other-app", "other-secret", ["http://other.test/callback"])
LOGIN = "alice@corp.example"


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider([CLIENT, OTHER]) as provider:
        yield provider


@pytest.fixture(autouse=True)
def no_forgery_left(idp: IdentityProvider) -> Iterator[None]:
    idp.forge = None
    yield
    idp.forge = None


async def sign_in(idp: IdentityProvider, *, login: str = LOGIN, client: OidcClient = CLIENT,
                  auth: str = "basic") -> tuple[httpx.Response, str]:
    """A whole code flow by hand: the token endpoint's answer and the nonce sent."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    async with httpx.AsyncClient(timeout=10) as browser:
        code, returned_state = await authorization_code(
            browser, idp.authorize_url(client.client_id, CALLBACK, state=state, nonce=nonce,
                                       code_challenge=challenge), login)
        assert returned_state == state
        return await exchange(browser, idp, code, verifier, client=client, auth=auth), nonce


async def exchange(http: httpx.AsyncClient, idp: IdentityProvider, code: str, verifier: str, *,
                   client: OidcClient = CLIENT, auth: str = "basic") -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier}
    if auth == "basic":
        return await http.post(idp.metadata["token_endpoint"], data=form,
                               auth=(client.client_id, client.client_secret))
    return await http.post(idp.metadata["token_endpoint"],
                           data={**form, "client_id": client.client_id, "client_secret": client.client_secret})


def verify(idp: IdentityProvider, id_token: str, nonce: str, **more: dict) -> jwt.Token:
    """joserfc's verification as a relying party does it: the published JWKS, RS256, iss/aud/nonce/exp."""
    keys = KeySet.import_key_set(httpx.get(idp.metadata["jwks_uri"], timeout=10).json())
    token = jwt.decode(id_token, keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": idp.issuer}, aud={"essential": True, "value": CLIENT.client_id},
        nonce={"essential": True, "value": nonce}, exp={"essential": True}, iat={"essential": True},
        sub={"essential": True}, **more,
    ).validate(token.claims)
    return token


def test_discovery_points_at_the_proxy(idp):
    meta = idp.metadata
    assert meta["issuer"] == idp.issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        assert meta[endpoint].startswith(idp.issuer + "/"), endpoint
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert {"client_secret_basic", "client_secret_post"} <= set(meta["token_endpoint_auth_methods_supported"])
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    assert {"openid", "email", "profile"} <= set(meta["scopes_supported"])
    assert {"sub", "email", "email_verified", "name"} <= set(meta["claims_supported"])
    assert httpx.get(meta["jwks_uri"], timeout=10).json() == {"keys": [idp.private_jwk.as_dict(private=False)]}


async def test_code_flow_with_pkce_gives_a_verifiable_id_token(idp):
    answer, nonce = await sign_in(idp)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"].lower() == "bearer" and body["access_token"]
    token = verify(idp, body["id_token"], nonce)
    assert token.header["alg"] == "RS256" and token.header["kid"] == idp.kid
    claims = token.claims
    assert claims["sub"] == f"sub-{LOGIN}"
    assert (claims["email"], claims["email_verified"], claims["name"]) == (LOGIN, True, "alice")
    assert idp.token_responses[-1].json == body and idp.token_responses[-1].forged is None


async def test_client_secret_post_is_accepted_too(idp):
    answer, nonce = await sign_in(idp, login="bob@corp.example", auth="post")
    assert answer.status_code == 200, answer.text
    assert verify(idp, answer.json()["id_token"], nonce).claims["sub"] == "sub-bob@corp.example"


async def test_pkce_is_required_and_checked(idp):
    async with httpx.AsyncClient(timeout=10) as browser:
        url = idp.authorize_url(CLIENT.client_id, CALLBACK, state="s", nonce="n", code_challenge="x")
        without = url.replace("&code_challenge=x&code_challenge_method=S256", "")
        with pytest.raises(AuthorizationDenied) as denied:
            await authorization_code(browser, without, LOGIN)
        assert denied.value.error == "invalid_request" and denied.value.params["state"] == "s"

        verifier, challenge = pkce_pair()
        code, _ = await authorization_code(browser, idp.authorize_url(
            CLIENT.client_id, CALLBACK, state="s", nonce="n", code_challenge=challenge), LOGIN)
        wrong = await exchange(browser, idp, code, pkce_pair()[0])
        assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")


async def test_a_code_is_good_once(idp):
    verifier, challenge = pkce_pair()
    async with httpx.AsyncClient(timeout=10) as browser:
        code, _ = await authorization_code(browser, idp.authorize_url(
            CLIENT.client_id, CALLBACK, state="s", nonce="n", code_challenge=challenge), LOGIN)
        assert (await exchange(browser, idp, code, verifier)).status_code == 200
        again = await exchange(browser, idp, code, verifier)
        assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


EXPECTED = {
    "wrong_issuer": (errors.InvalidClaimError, "iss"),
    "wrong_audience": (errors.InvalidClaimError, "aud"),
    "wrong_nonce": (errors.InvalidClaimError, "nonce"),
    "expired": (errors.ExpiredTokenError, None),
    "bad_signature": (errors.BadSignatureError, None),
    "alg_none": (errors.UnsupportedAlgorithmError, None),
    "unverified_email": (errors.InvalidClaimError, "email_verified"),
    "unverified_email_as_text": (errors.InvalidClaimError, "email_verified"),
}


def test_every_forge_mode_is_tested():
    assert set(EXPECTED) == set(FORGE_MODES)


@pytest.mark.parametrize("mode", FORGE_MODES)
async def test_forged_id_token_fails_verification(idp, mode):
    idp.forge = mode
    answer, nonce = await sign_in(idp)
    assert answer.status_code == 200 and idp.forge is None  # one token response only
    record = idp.token_responses[-1]
    assert record.forged == mode and record.sent_json == answer.json()
    original, forged = record.json["id_token"], answer.json()["id_token"]
    verify(idp, original, nonce)  # the provider's own token was fine
    error, claim = EXPECTED[mode]
    with pytest.raises(error) as failed:
        verify(idp, forged, nonce, email_verified={"essential": True, "value": True})
    if claim:
        assert failed.value.claim == claim

    # Only what the mode says changed.
    def claims_of(token: str) -> dict:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    changed = {name for name in claims_of(original).keys() | claims_of(forged).keys()
               if claims_of(original).get(name) != claims_of(forged).get(name)}
    assert changed == {"wrong_issuer": {"iss"}, "wrong_audience": {"aud"}, "wrong_nonce": {"nonce"},
                       "expired": {"exp", "iat"}, "unverified_email": {"email_verified"},
                       "unverified_email_as_text": {"email_verified"}}.get(mode, set())
    if mode == "wrong_audience":
        assert claims_of(forged)["aud"] == OTHER.client_id
    if mode == "expired":
        assert claims_of(forged)["exp"] < time.time() - 60


def gateway_stand_in(idp: IdentityProvider) -> Starlette:
    """What the gateway's SSO routes will do, in a dozen lines: start (state cookie, PKCE, nonce)
    and callback (checks state, exchanges the code, verifies the ID token, redirects to the portal)."""
    pending: dict[str, tuple[str, str]] = {}

    async def start(request: Request):
        verifier, challenge = pkce_pair()
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        pending[state] = (verifier, nonce)
        answer = RedirectResponse(idp.authorize_url(
            CLIENT.client_id, "http://gateway.test/sso/callback", state=state, nonce=nonce,
            code_challenge=challenge, login_hint=request.query_params["email"]), 302)
        answer.set_cookie("sso_state", state, httponly=True, samesite="lax")
        return answer

    async def callback(request: Request):
        state = request.query_params.get("state", "")
        if request.cookies.get("sso_state") != state or state not in pending:
            return PlainTextResponse("state mismatch", 400)
        verifier, nonce = pending.pop(state)
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(idp.metadata["token_endpoint"], auth=(CLIENT.client_id, CLIENT.client_secret),
                                     data={"grant_type": "authorization_code", "code": request.query_params["code"],
                                           "redirect_uri": "http://gateway.test/sso/callback",
                                           "code_verifier": verifier})
        try:
            claims = verify(idp, answer.json()["id_token"], nonce,
                            email_verified={"essential": True, "value": True}).claims
        except errors.JoseError as error:
            return PlainTextResponse(f"refused: {error}", 401)
        return RedirectResponse(f"http://portal.test/?{urlencode({'code': 'one-time', 'who': claims['email']})}", 302)

    return Starlette(routes=[Route("/sso/start", start), Route("/sso/callback", callback)])


async def test_browse_through_an_asgi_app_mounted_beside_the_network(idp):
    app = gateway_stand_in(idp)
    mounts = {"http://gateway.test": httpx.ASGITransport(app=app)}
    async with httpx.AsyncClient(mounts=mounts, timeout=10) as browser:
        done = await browse(browser, "http://gateway.test/sso/start?email=carol@corp.example", "carol@corp.example")
        assert done.status_code == 302 and done.url.path == "/sso/callback"
        portal = urlsplit(done.headers["location"])
        assert portal.netloc == "portal.test"
        assert parse_qs(portal.query) == {"code": ["one-time"], "who": ["carol@corp.example"]}

        # The same browser signs in again as someone else: the provider asks anew.
        again = await browse(browser, "http://gateway.test/sso/start?email=dave@corp.example", "dave@corp.example")
        assert parse_qs(urlsplit(again.headers["location"]).query)["who"] == ["dave@corp.example"]

        idp.forge = "unverified_email"
        refused = await browse(browser, "http://gateway.test/sso/start?email=erin@corp.example", "erin@corp.example")
        assert refused.status_code == 401 and "email_verified" in refused.text
