"""CORS: browsers on the origins in CORS_ORIGINS may call the API; no others, and none by default.

The preflight and the headers come from Starlette's CORSMiddleware (gateway/cors.py); these
tests send what a browser sends, to the app and to a real `account-gateway serve`. The browser
itself calling from another origin is tests/test_browser.py::test_a_page_on_an_allowed_origin_calls_the_api.
"""

from __future__ import annotations

import subprocess

import httpx
import pytest

from gateway.settings import SettingsError, from_env
from tests.test_serve import clean_env, command, free_port, start, stop

# Nothing here changes the database but by signing in.
pytestmark = pytest.mark.reads_only

PORTAL = "https://portal.example.com"
ELSEWHERE = "https://evil.example"
VIEWER = "{ viewer { email } }"


def preflight(origin: str, method: str = "POST", headers: str = "authorization, content-type") -> dict[str, str]:
    """What a browser sends before a POST with a bearer token and a JSON body."""
    return {"origin": origin, "access-control-request-method": method, "access-control-request-headers": headers}


def assert_preflight_allowed(response: httpx.Response, origin: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == origin
    assert {m.strip() for m in response.headers["access-control-allow-methods"].split(",")} == {"GET", "POST"}
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "accept", "x-request-id"} <= allowed
    # Tokens travel in the Authorization header, never in cookies: no credentials mode.
    assert "access-control-allow-credentials" not in response.headers
    assert "origin" in response.headers["vary"].lower()


def assert_preflight_refused(response: httpx.Response) -> None:
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_a_preflight_from_an_allowed_origin_is_answered_and_others_are_refused(app_for, settings):
    gateway = await app_for(settings.with_(cors_origins=(PORTAL, "http://localhost:5173")))
    for origin in (PORTAL, "http://localhost:5173"):
        assert_preflight_allowed(await gateway.http.options("/graphql", headers=preflight(origin)), origin)
    for origin in (ELSEWHERE, "http://portal.example.com", "https://portal.example.com:8443", "null"):
        assert_preflight_refused(await gateway.http.options("/graphql", headers=preflight(origin)))
    # A header the gateway does not read, or a method it does not serve, is refused even from an
    # allowed origin: the browser finds neither in the answer's lists.
    for refused in (preflight(PORTAL, headers="x-admin"), preflight(PORTAL, method="DELETE")):
        response = await gateway.http.options("/graphql", headers=refused)
        assert response.status_code == 400
        assert "x-admin" not in response.headers["access-control-allow-headers"].lower()
        assert "DELETE" not in response.headers["access-control-allow-methods"]


async def test_answers_to_an_allowed_origin_can_be_read_by_its_page(app_for, settings):
    gateway = await app_for(settings.with_(cors_origins=(PORTAL,)))
    token = await gateway.login("member1@northwind.example")
    response = await gateway.http.post("/graphql", json={"query": VIEWER},
                                       headers={"origin": PORTAL, "authorization": f"Bearer {token}"})
    assert response.json()["data"] == {"viewer": {"email": "member1@northwind.example"}}
    assert response.headers["access-control-allow-origin"] == PORTAL
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "retry-after"} <= exposed
    # Another origin's page gets the answer without the header, so its browser keeps it from the page.
    other = await gateway.http.post("/graphql", json={"query": VIEWER},
                                    headers={"origin": ELSEWHERE, "authorization": f"Bearer {token}"})
    assert "access-control-allow-origin" not in other.headers
    # Refusals made before GraphQL runs carry the header too: the page can tell the user why.
    too_big = await gateway.http.post("/graphql", content=b"x" * (settings.max_body_bytes + 1),
                                      headers={"origin": PORTAL, "content-type": "application/json"})
    assert too_big.status_code == 413 and too_big.headers["access-control-allow-origin"] == PORTAL


async def test_without_cors_origins_there_is_no_cors(gateway):
    response = await gateway.http.options("/graphql", headers=preflight(PORTAL))
    assert response.status_code == 405
    assert "access-control-allow-origin" not in response.headers
    answer = await gateway.http.post("/graphql", json={"query": VIEWER}, headers={"origin": PORTAL})
    assert "access-control-allow-origin" not in answer.headers


def test_cors_origins_are_read_as_a_browser_writes_them():
    assert from_env({}).cors_origins == ()
    env = {"CORS_ORIGINS": " https://Portal.Example.com:443 ,http://localhost:5173,, http://[::1]:8080,"
                           "https://portal.example.com"}
    assert from_env(env).cors_origins == ("https://portal.example.com", "http://localhost:5173", "http://[::1]:8080")
    assert from_env({"CORS_ORIGINS": "*"}).cors_origins == ("*",)


@pytest.mark.parametrize("raw", [
    "https://portal.example.com/app", "portal.example.com", "ftp://portal.example.com",
    "https://portal.example.com:99999", "https://user@portal.example.com", "https://portal.example.com?x=1",
    "https://portal.example.com, *", "https://por tal.example.com", "https://",
])
def test_an_origin_that_is_not_scheme_host_and_port_is_refused(raw):
    with pytest.raises(SettingsError, match=r"^CORS_ORIGINS must be a comma list of origins such as "):
        from_env({"CORS_ORIGINS": raw})


def test_production_refuses_any_origin():
    with pytest.raises(SettingsError, match=r"^CORS_ORIGINS=\* is refused in production: name the origins"):
        from_env({"GATEWAY_ENV": "production", "CORS_ORIGINS": "*"})


def test_serve_answers_a_preflight_for_its_cors_origins(services, database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "STRIPE_API_BASE": services.stripe_api_base, "CORS_ORIGINS": PORTAL}
    served = start(tmp_path / "data", tmp_path / "serve.log", env)
    try:
        allowed = httpx.options(f"{served.url}/graphql", headers=preflight(PORTAL), timeout=10)
        refused = httpx.options(f"{served.url}/graphql", headers=preflight(ELSEWHERE), timeout=10)
    finally:
        stop(served)
    assert_preflight_allowed(allowed, PORTAL)
    assert_preflight_refused(refused)


@pytest.mark.parametrize("env", [{"CORS_ORIGINS": "https://portal.example.com/app"},
                                 {"CORS_ORIGINS": "*", "GATEWAY_ENV": "production"}])
def test_an_unusable_cors_origins_is_a_one_line_error(tmp_path, env):
    run = subprocess.run([*command(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, env={**clean_env(), **env}, timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("account-gateway: CORS_ORIGINS")
