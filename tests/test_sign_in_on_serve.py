"""Corporate sign-in on `serve`, as a new user runs it, with a real OpenID provider
(tests/oidc_harness.py): the OWNER sets up, support confirms the domain, a newcomer signs in."""

from __future__ import annotations

import asyncio

import httpx

from tests.oidc_harness import IdentityProvider, OidcClient, browse
from tests.test_admin_commands import run
from tests.test_corporate_sign_in import (CLIENT_ID, COMPLETE, CONFIGURE, CONFIRM, OWNER, SECRET, VIEWER,
                                          configure_input, one_time_code, org_id)
from tests.test_serve import free_port, graphql, login, start as serve, stop


def test_end_to_end_on_serve(tmp_path):
    """As a new user runs it: `serve`, the OWNER sets up, support confirms, a newcomer signs in."""
    port = free_port()
    served_url = f"http://127.0.0.1:{port}"
    with IdentityProvider([OidcClient(CLIENT_ID, SECRET, [f"{served_url}/sso/callback"])]) as provider:
        served = serve(tmp_path / "data", tmp_path / "serve.log", port=port)
        try:
            run(tmp_path / "data", "staff", "grant", "admin@globex.example", "SUPPORT")
            set_up = graphql(served, CONFIGURE, {"input": configure_input(provider)}, token=login(served, OWNER))
            assert set_up["data"]["configureSignIn"]["organization"]["corporateSignIn"]["redirectUri"] == \
                f"{served_url}/sso/callback"
            decided = graphql(served, CONFIRM, {"input": {"organizationId": org_id(), "domain": "northwind.example",
                                                          "reason": "DNS TXT record checked"}},
                              token=login(served, "admin@globex.example"))
            assert decided["data"]["confirmEmailDomain"]["domain"]["status"] == "CONFIRMED", decided

            async def signs_in() -> dict:
                async with httpx.AsyncClient(timeout=30) as browser:
                    email = "newcomer@northwind.example"
                    url = f"{served_url}/sso/start?{httpx.QueryParams({'email': email})}"
                    code = one_time_code(await browse(browser, url, email))
                return graphql(served, COMPLETE, {"input": {"code": code}})["data"]["completeSignIn"]

            signed = asyncio.run(signs_in())
            assert signed["userErrors"] == [], signed
            viewer = graphql(served, VIEWER, token=signed["token"])["data"]["viewer"]
            assert viewer["organization"] == {"name": "Northwind Studio", "viewerRole": "MEMBER"}
        finally:
            assert stop(served) == 0
