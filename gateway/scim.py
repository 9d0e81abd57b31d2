"""`/scim/v2/`: SCIM 2.0 (RFC 7644) for an organization's identity provider.

The HTTP side only: the bearer token, the path and method, the body and query parameters,
and every answer as `application/scim+json`, errors as SCIM Error bodies (scim2-models') with
their status and `scimType`. What each request does is resolvers/scim.py's.

- 401 for a missing, unknown or revoked token (and `WWW-Authenticate: Bearer`), before
  anything else, unknown paths included;
- 404 for a path or resource that does not exist, the same for another organization's ids;
- 405 for a method a path does not take; 400 for a body that is not JSON, not an object, or
  nested too deep; 413 for one over MAX_BODY_BYTES; 503 while PostgreSQL does not answer.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from scim2_models import Context as ScimContext
from scim2_models import Error, InvalidSyntaxException, NotImplementedException, SCIMException
from starlette.requests import Request
from starlette.responses import Response

from datasources.errors import DatabaseUnavailable
from gateway.bodies import BodyTooLarge, InvalidJSON, load_json
from gateway.services import Services, request_context
from resolvers import scim
from resolvers.context import Context

log = logging.getLogger("gateway.scim")

PREFIX = "/scim/v2"
MEDIA_TYPE = "application/scim+json"
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
NOT_AUTHENTICATED = "Send the organization's SCIM token as 'Authorization: Bearer scim_…'."
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def scim_endpoint(request: Request) -> Response:
    services: Services = request.app.state.services
    request_id = uuid.uuid4().hex
    try:
        principal = await scim.authenticate(services.db, request.headers.get("authorization"))
        if principal is None:
            return _error(401, NOT_AUTHENTICATED, None, {"WWW-Authenticate": 'Bearer realm="scim"'})
        parts = [p for p in request.path_params.get("path", "").split("/") if p]
        ctx = request_context(services, request, request_id)
        return await _dispatch(request, ctx, principal, parts)
    except SCIMException as exc:
        error = exc.to_error()
        return _error(error.status or 400, error.detail or "", error.scim_type)
    except BodyTooLarge as exc:
        return _error(413, str(exc), None)
    except DatabaseUnavailable as exc:
        return _error(503, exc.message, None)
    except Exception:  # a defect: said in SCIM's shape, logged with the request id
        log.exception("SCIM request %s failed", request_id)
        return _error(500, f"Internal error (request {request_id}).", None)


def _base_url(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}{PREFIX}"


async def _dispatch(request: Request, ctx: Context, principal: scim.ScimPrincipal, parts: list[str]) -> Response:
    method, base, params = request.method, _base_url(request), request.query_params
    shown = scim.response_parameters(params.get("attributes"), params.get("excludedAttributes"))
    match parts:
        case ["ServiceProviderConfig"]:
            _allow(method, "GET")
            return _answer(scim.service_provider_config(base))
        case ["ResourceTypes", *rest] if len(rest) <= 1:
            _allow(method, "GET")
            return _answer(scim.resource_types(base, rest[0] if rest else None))
        case ["Schemas", *rest] if len(rest) <= 1:
            _allow(method, "GET")
            return _answer(scim.schemas(base, rest[0] if rest else None))
        case ["Users"]:
            _allow(method, "GET", "POST")
            if method == "POST":
                created = await scim.create_user(ctx, principal, await _body(request), base)
                return _answer(created, 201, {"Location": created["meta"]["location"]})
            return _answer(await scim.list_users(ctx, principal, base, params.get("filter"), params.get("startIndex"),
                                                 params.get("count"), shown))
        case ["Users", ".search"]:
            _allow(method, "POST")
            search = scim.search_request(await _body(request))
            return _answer(await scim.list_users(ctx, principal, base, search.filter, search.start_index,
                                                 search.count, search))
        case ["Users", user_id]:
            _allow(method, "GET", "PUT", "PATCH", "DELETE")
            if method == "GET":
                return _answer(await scim.get_user(ctx, principal, user_id, base, shown))
            if method == "PUT":
                return _answer(await scim.replace_user(ctx, principal, user_id, await _body(request), base))
            if method == "PATCH":
                return _answer(await scim.patch_user(ctx, principal, user_id, await _body(request), base))
            await scim.delete_user(ctx, principal, user_id)
            return Response(status_code=204, headers=HEADERS)
        case ["Groups"]:
            _allow(method, "GET", "POST")
            if method == "POST":
                raise scim.refuse_group_change()
            return _answer(await scim.list_groups(ctx, principal, base, params.get("filter"),
                                                  params.get("startIndex"), params.get("count"), shown))
        case ["Groups", group_id]:
            _allow(method, "GET", "PUT", "PATCH", "DELETE")
            if method == "GET":
                return _answer(await scim.get_group(ctx, principal, group_id, base, shown))
            if method == "DELETE":
                raise scim.refuse_group_delete(principal, group_id)
            if method == "PUT":
                return _answer(await scim.replace_group(ctx, principal, group_id, await _body(request), base))
            return _answer(await scim.patch_group(ctx, principal, group_id, await _body(request), base))
        case [".search"]:
            _allow(method, "POST")
            raise NotImplementedException(detail="Search one resource type at a time: POST /Users/.search.")
    return _error(404, f"No SCIM endpoint at {request.url.path[:200]}.", None)


class _MethodNotAllowed(SCIMException):
    status = 405
    _default_detail = "This endpoint does not take this method."


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise _MethodNotAllowed(detail=f"This endpoint takes {', '.join(allowed)}.")


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return load_json(raw, "The request body")
    except InvalidJSON as exc:
        raise InvalidSyntaxException(detail=str(exc)) from None


def _answer(payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status_code=status, media_type=MEDIA_TYPE,
                    headers={**HEADERS, **(headers or {})})


def _error(status: int, detail: str, scim_type: str | None, headers: dict[str, str] | None = None) -> Response:
    body = Error(status=status, scim_type=scim_type, detail=detail).model_dump(scim_ctx=ScimContext.RESOURCE_QUERY_RESPONSE)
    return _answer(body, status, headers)
