"""`GET /sso/start?email=…` and `GET /sso/callback`: the browser's two stops at the gateway
during corporate sign-in (resolvers/corporate_sign_in.py says what each does).

Both answer a browser: a redirect on the way (to the provider, then to the portal with a
one-time code), or a short page saying what went wrong and to start again. Nothing is cached
and no Referer leaves these pages: their URLs carry codes.
"""

from __future__ import annotations

import html
import logging

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from datasources.errors import DatabaseUnavailable
from datasources.postgres.sign_in import ATTEMPT_MINUTES
from resolvers import corporate_sign_in as resolve
from resolvers.corporate_sign_in import CALLBACK_PATH, SignInError
from resolvers.sign_in_policy import START_PATH

__all__ = ["START_PATH", "CALLBACK_PATH", "start", "callback"]

log = logging.getLogger("gateway.sso")
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
STATE_COOKIE = "sso_state"


def _public_url(request: Request) -> str:
    configured = request.app.state.services.settings.public_url
    return configured or str(request.base_url).rstrip("/")


async def start(request: Request) -> Response:
    services = request.app.state.services
    public_url = _public_url(request)
    try:
        started = await resolve.start(services.db, services.identity, public_url, request.query_params.get("email", ""))
    except SignInError as refused:
        return _page(refused)
    except DatabaseUnavailable as exc:
        return _page(SignInError(exc.message, 503))
    response = RedirectResponse(started.provider_url, status_code=302, headers=_HEADERS)
    # Lax: the provider's redirect back is a top-level navigation, which carries it.
    response.set_cookie(STATE_COOKIE, started.state, max_age=ATTEMPT_MINUTES * 60, path="/sso/", httponly=True,
                        samesite="lax", secure=public_url.startswith("https://"))
    return response


async def callback(request: Request) -> Response:
    services = request.app.state.services
    query = request.query_params
    try:
        finished = await resolve.finish(services.db, services.identity, services.resolver_config,
                                        _public_url(request), state=query.get("state"), code=query.get("code"),
                                        error=query.get("error"), issuer=query.get("iss"),
                                        browser_state=request.cookies.get(STATE_COOKIE))
    except SignInError as refused:
        log.warning("corporate sign-in refused: %s", refused.message)
        response: Response = _page(refused)
    except DatabaseUnavailable as exc:
        response = _page(SignInError(exc.message, 503))
    else:
        log.info("corporate sign-in of account %s", finished.account_id)
        response = RedirectResponse(finished.portal_url, status_code=302, headers=_HEADERS)
    response.delete_cookie(STATE_COOKIE, path="/sso/")
    return response


def _page(refused: SignInError) -> HTMLResponse:
    body = (f"<!doctype html><meta charset=utf-8><title>Sign-in failed</title><h1>Sign-in failed</h1>"
            f"<p>{html.escape(refused.message)}</p>")
    return HTMLResponse(body, status_code=refused.status, headers=_HEADERS)
