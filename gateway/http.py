"""GraphQL over HTTP, per the GraphQL-over-HTTP spec.

strawberry's own view answers only `application/json` and returns 200 for requests that
do not parse or validate, so the gateway does its own content negotiation and status
codes around `Schema.execute`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

from graphql import GraphQLError
from strawberry.types.graphql import OperationType
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from auth.viewer import Credentials, Viewer, authenticate, credentials, session_viewer
from datasources import instrumentation
from datasources.errors import GatewayError
from datasources.instrumentation import IOStats
from datasources.postgres import staff
from datasources.postgres.staff import SessionStanding, standing_from
from gateway.admission import Admission, Refusal, admit, viewer_key
from gateway import graphiql, request_log
from gateway.bodies import BodyTooLarge, InvalidJSON, load_json
from gateway.cost import actual_cost
from gateway.errors import format_error, is_request_error
from gateway.metrics import Metrics
from gateway.persisted import document_key, sha256_hex
from gateway.request_log import ANONYMOUS, RequestRecord, describe_operation, request_id, user_error_codes
from gateway.services import Services
from loaders import create_loaders
from loaders.accounts import prime_viewer
from planning import fragments
from resolvers.context import Context
from schema.documents import Document, document_of

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# HEAD is GET without the response body (RFC 9110): the same request, queries only.
QUERY_STRING_METHODS = ("GET", "HEAD")
log = logging.getLogger("gateway.http")
_NO_SPAN: AbstractContextManager[Any] = nullcontext()


class BadRequest(Exception):
    """A request that is not well-formed GraphQL over HTTP (always a 4xx)."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None,
                 code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.code = code


class PersistedQueryNotFound(Exception):
    """A hash that names no persisted operation: Apollo's cue for the client to send the text."""


@dataclass(frozen=True)
class GraphQLParams:
    query: str | None  # None: only a persisted operation's hash was sent (see `persisted_hash`)
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    # extensions.persistedQuery.sha256Hash (Apollo's shape), lower-case.
    persisted_hash: str | None = None
    # Set once a hash and its text were both sent, verified, and may be remembered (development APQ).
    learn: bool = False


@functools.lru_cache(maxsize=256)  # a client sends the same Accept with every request
def negotiate(accept: str | None) -> str | None:
    """The media type to answer in, or None when the client accepts neither of ours.

    A missing Accept header means application/json, for clients that predate the spec.
    """
    if not accept:
        return JSON
    best, best_q = None, 0.0
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        for candidate, matches in ((GRAPHQL_RESPONSE, {GRAPHQL_RESPONSE}),
                                   (JSON, {JSON, "application/*", "*/*"})):
            # On equal q the newer media type wins; it carries the accurate status codes.
            if media in matches and q > 0 and (q > best_q or (q == best_q and candidate == GRAPHQL_RESPONSE
                                                              and best != GRAPHQL_RESPONSE)):
                best, best_q = candidate, q
    return best


def _json_object(raw: Any, name: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadRequest(f"'{name}' must be a JSON object.")
    return raw


def _persisted_hash(extensions: dict[str, Any] | None) -> str | None:
    """Apollo's `{"persistedQuery": {"version": 1, "sha256Hash": "<hex>"}}`, or None without it.

    The hash may carry the GraphQL-over-HTTP spec's `sha256:` prefix.
    """
    if not extensions or extensions.get("persistedQuery") is None:
        return None
    persisted = extensions["persistedQuery"]
    if not isinstance(persisted, dict):
        raise BadRequest("'extensions.persistedQuery' must be a JSON object.")
    if persisted.get("version") != 1:
        raise BadRequest("Unsupported persisted query version: 'extensions.persistedQuery.version' must be 1.")
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not digest:
        raise BadRequest("'extensions.persistedQuery.sha256Hash' must be a non-empty string.")
    return document_key(digest)  # graphql-codegen 6 sends "sha256:<hex>"


def params_from(data: Any) -> GraphQLParams:
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    extensions = _json_object(data.get("extensions"), "extensions")
    persisted_hash = _persisted_hash(extensions)
    query = data.get("query")
    if not (query is None and persisted_hash) and (not isinstance(query, str) or not query.strip()):
        raise BadRequest("'query' must be a non-empty string.")
    operation_name = data.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest("'operationName' must be a string.")
    return GraphQLParams(query, _json_object(data.get("variables"), "variables"), operation_name,
                         extensions, persisted_hash)


def resolve_persisted(params: GraphQLParams, services: Services) -> GraphQLParams:
    """The text to run: the request's own, or the persisted operation its hash names.

    - hash only: the registered operation (or, in development, one a client registered);
      unknown is PersistedQueryNotFound, which tells Apollo clients to send the text.
    - hash and text: the hash must be the text's. Development remembers it (APQ registration);
      production runs the text but learns nothing from clients.
    - with PERSISTED_OPERATIONS_ONLY, text runs only when it is a registered operation's.
    """
    settings, registry = services.settings, services.operations
    only_registered = settings.persisted_operations_only
    if params.query is None:
        digest = params.persisted_hash or ""
        # Only registered operations when they alone may run (nothing is learned then anyway).
        query = registry.get(digest) if not only_registered or registry.is_registered(digest) else None
        if query is None:
            raise PersistedQueryNotFound()
        return replace(params, query=query)
    if params.persisted_hash is not None and sha256_hex(params.query) != params.persisted_hash:
        raise BadRequest("provided sha does not match query")  # Apollo's words
    if only_registered:
        if not registry.is_registered(params.persisted_hash or sha256_hex(params.query)):
            raise BadRequest("Only registered operations may run here: send a persisted operation's "
                             "hash in 'extensions.persistedQuery'.", code="PERSISTED_QUERY_REQUIRED")
        return params
    if params.persisted_hash is not None and not settings.production:
        return replace(params, learn=True)
    return params


async def read_params(request: Request) -> GraphQLParams:
    """GET and HEAD read the query string only: a body sent with them is never read, let alone run."""
    if request.method in QUERY_STRING_METHODS:
        data: dict[str, Any] = dict(request.query_params)
        for name in ("variables", "extensions"):
            if name in data:
                data[name] = _load_json(data[name], f"'{name}'")
        return params_from(data)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JSON:
        raise BadRequest("POST requests must have 'Content-Type: application/json'.", status=415)
    try:
        body = await request.body()
    except BodyTooLarge as exc:
        raise BadRequest(str(exc), status=413, code="PAYLOAD_TOO_LARGE") from None
    return params_from(_load_json(body, "The request body"))


def _load_json(raw: bytes | str, what: str) -> Any:
    try:
        return load_json(raw, what)
    except InvalidJSON as exc:
        raise BadRequest(str(exc)) from None


def wants_graphiql(request: Request, enabled: bool) -> bool:
    return (enabled and request.method in QUERY_STRING_METHODS and "query" not in request.query_params
            and "extensions" not in request.query_params and "text/html" in request.headers.get("accept", ""))


async def graphql_endpoint(request: Request) -> Response:
    response = await _graphql(request)
    if request.method == "HEAD":  # the headers GET would send, Content-Length included
        response.body = b""
    return response


async def graphql_asgi(scope: Any, receive: Any, send: Any) -> None:
    """`graphql_endpoint` as a plain ASGI app, for GatewayApp's shortcut past the router."""
    response = await graphql_endpoint(Request(scope, receive, send))
    await response(scope, receive, send)


async def _graphql(request: Request) -> Response:
    services: Services = request.app.state.services
    if wants_graphiql(request, not services.settings.production):
        return HTMLResponse(graphiql.page(request.scope.get("root_path", "")))
    record = RequestRecord(request_id(request.headers.get("x-request-id")), request.method)
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    observing = instrumentation.observer.set(metrics)
    try:
        return await _answer(request, services, record)
    except BaseException:
        record.outcome, record.status = "error", 500
        raise
    finally:
        instrumentation.observer.reset(observing)
        record.finish()
        if metrics is not None:
            metrics.request_done(record)
        request_log.write(record, services.settings.request_log_format)
        setattr(request.state, request_log.LOGGED, True)


async def _answer(request: Request, services: Services, record: RequestRecord) -> Response:
    media_type = negotiate(request.headers.get("accept"))
    if media_type is None:
        return _refuse(record, JSON, 406, f"Accept {GRAPHQL_RESPONSE} or {JSON}.")
    try:
        params = resolve_persisted(await read_params(request), services)
    except BadRequest as exc:
        return _refuse(record, media_type, exc.status, str(exc), exc.headers, code=exc.code)
    except PersistedQueryNotFound:
        # Apollo's convention is 200 for application/json; graphql-response+json must not answer
        # 2xx without data, and 404 (the Apollo Router's choice) keeps older Apollo links from
        # taking a 400 to mean that persisted queries are not supported at all.
        return _refuse(record, media_type, 200 if media_type == JSON else 404, "PersistedQueryNotFound",
                       code="PERSISTED_QUERY_NOT_FOUND")
    return await execute(request, services, params, media_type, record)


def logged_viewer(viewer: Viewer) -> str:
    """Who the request log names: the account, or a service token's id (a service never has an account)."""
    if viewer.account_id is not None:
        return str(viewer.account_id)
    return f"service:{viewer.service.id}" if viewer.service is not None else ANONYMOUS


@dataclass(slots=True)
class Exchange:
    """One GraphQL request on its way through `execute`'s steps: what they read and leave."""

    request: Request
    services: Services
    params: GraphQLParams
    media_type: str
    record: RequestRecord
    document: Document  # the request's one parse
    stats: IOStats
    address: str


class Answered(Exception):
    """A step answered the request itself (refused it, or met an outage): no later step runs."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def execute(request: Request, services: Services, params: GraphQLParams, media_type: str,
                  record: RequestRecord) -> Response:
    """A well-formed request, step by step; each step does one thing and the order is the point:
    nothing is read from the database before the request is admitted."""
    exchange = Exchange(request, services, params, media_type, record, _parse(params, record), _io_counted(),
                        request.client.host if request.client else "unknown")
    presented = credentials(services.settings.secret_key, request.headers.get("authorization"))
    try:
        admitted = await _admission(exchange, presented)
        guess = _guess(exchange, presented)
        if guess is None:
            result = await _execution(exchange, _context(exchange, await _authentication(exchange, presented)))
        else:
            result = await _checked_in_flight(exchange, presented, guess)
    except Answered as answered:
        return answered.response
    _learn_persisted(exchange, result)
    body, request_failed = _body(exchange, result)
    extensions = await _settle_cost(exchange, admitted, result.data) if admitted is not None else {}
    extensions.update(await _development_extensions(exchange))
    if extensions:
        body["extensions"] = extensions
    status, headers = _status(exchange, body, request_failed)
    _log(exchange, status, body, result, request_failed)
    return _json_response(body, status, media_type, record.request_id, headers)


def _parse(params: GraphQLParams, record: RequestRecord) -> Document:
    """The request's one parse (a lookup for a text seen before): every later step reads it."""
    assert params.query is not None  # resolve_persisted has found the text
    document = document_of(params.query)
    record.operation_type, record.operation = describe_operation(document, params.operation_name)
    return document


def _io_counted() -> IOStats:
    stats = IOStats()
    instrumentation.current.set(stats)  # each request runs in its own task: nothing leaks between them
    return stats


async def _admission(exchange: Exchange, presented: Credentials) -> Admission | None:
    """Size, cost and the viewer's query budget, before any I/O (gateway/admission.py)."""
    record, params = exchange.record, exchange.params
    key = viewer_key(presented, exchange.address)
    if key.startswith("account:"):  # until the session is checked: the token's own account
        record.viewer_id = key.removeprefix("account:")
    admitted = await admit(exchange.services.schema.graphql_schema, exchange.services.limiter,
                           document=exchange.document, operation_name=params.operation_name,
                           variables=params.variables, key=key)
    if not isinstance(admitted, Refusal):
        return admitted
    if admitted.code == "RATE_LIMITED":
        record.rate_limited = "query_cost"
    if "cost" in admitted.extensions:
        record.cost_requested = admitted.extensions["cost"].get("requested")
    status = admitted.status if admitted.status == 429 or exchange.media_type == GRAPHQL_RESPONSE else 200
    raise Answered(_refuse(record, exchange.media_type, status, admitted.message, admitted.headers,
                           code=admitted.code, extensions=admitted.extensions))


def _guess(exchange: Exchange, presented: Credentials) -> SessionStanding | None:
    """For a query with a signed token: what the session's check found last time in this
    process, if anything. Mutations (which act) and subscriptions check first, always."""
    if presented.claims is None or exchange.record.operation_type != "query":
        return None
    return exchange.services.recent_sessions.guess(presented.claims)


async def _checked_in_flight(exchange: Exchange, presented: Credentials, guess: SessionStanding) -> ExecutionResult:
    """A query run for the session as its last check found it, the check riding in the query's
    first statement instead of a round trip of its own before it (one statement fewer per
    request). The answer stands only if that check finds the same, in the same snapshot as the
    data it came with; otherwise (a sign-out, a role, membership or name changed) it is thrown
    away and the query runs again for the session as the check found it, or as anonymous. A
    query's only writes are the billing mirror's (the provider's answers, whoever asked)."""
    assert presented.claims is not None
    context = _context(exchange, session_viewer(presented.claims, guess))
    reader = context.loaders.reader
    check = reader.ride_along(staff.SESSION_CHECK, guess.session_id)
    exchange.record.viewer_id = logged_viewer(context.viewer)
    # A refusal (Answered) reads nothing of the viewer's, and leaves the check unsent.
    result = await _execution(exchange, context)
    await reader.send_riders()  # still waiting: no statement went out (answered from the session's own rows)
    try:
        rows = await check
    except Exception:  # noqa: BLE001 - an outage or a bug: the usual check answers it as it would
        viewer = await _authentication(exchange, presented)
    else:
        viewer = session_viewer(presented.claims, standing_from(rows[0]) if rows else None)
        exchange.services.recent_sessions.note(presented.claims, viewer)
        exchange.record.viewer_id = logged_viewer(viewer)
    if viewer.standing == guess:
        return result
    return await _execution(exchange, _context(exchange, viewer))


async def _authentication(exchange: Exchange, presented: Credentials) -> Viewer:
    """The viewer, from the token and its session: the request's first I/O."""
    record = exchange.record
    try:
        viewer = await authenticate(exchange.services.db, presented)
        if presented.claims is not None:
            exchange.services.recent_sessions.note(presented.claims, viewer)
    except GatewayError as exc:
        record.outcome, record.status, record.error_codes = "error", 503, [exc.code]
        raise Answered(_error_response(exchange.media_type, 503, exc.message, record.request_id,
                                       code=exc.code)) from None
    except Exception as exc:  # noqa: BLE001 - a bug, not an outage: masked and logged, as in a resolver
        raise Answered(_unexpected(exc, exchange.services, exchange.media_type, record)) from None
    record.viewer_id = logged_viewer(viewer)
    return viewer


def _context(exchange: Exchange, viewer: Viewer) -> Context:
    """The request's own loaders (the viewer's rows already in them) and datasources."""
    services = exchange.services
    loaders = create_loaders(services.db, services.payments)
    if (standing := viewer.standing) is not None:
        prime_viewer(loaders.accounts, standing.account_id, standing.account, standing.membership,
                     standing.organization)
    return Context(viewer=viewer, loaders=loaders, db=services.db, payments=services.payments,
                   config=services.resolver_config, request_id=exchange.record.request_id,
                   client_address=exchange.address, sign_in_throttle=services.limiter,
                   identity=services.identity)


async def _execution(exchange: Exchange, context: Context) -> ExecutionResult:
    """The operation run on the request's document; the ways it cannot run are answered here."""
    params, record, media_type = exchange.params, exchange.record, exchange.media_type
    query_string = exchange.request.method in QUERY_STRING_METHODS
    allowed = {OperationType.QUERY} if query_string else {OperationType.QUERY, OperationType.MUTATION}
    try:
        with _operation_span(record):
            return await exchange.services.schema.execute_document(
                exchange.document, variable_values=params.variables, context_value=context,
                operation_name=params.operation_name, allowed_operation_types=allowed,
                operation_extensions=params.extensions)
    except InvalidOperationTypeError as exc:
        if exc.operation_type == OperationType.SUBSCRIPTION:
            raise Answered(_refuse(record, media_type, 400, "Subscriptions are served over WebSocket on this same "
                                   "path (subprotocol graphql-transport-ws), not over HTTP.")) from None
        raise Answered(_refuse(record, media_type, 405, "Only queries may be sent with GET; use POST.",
                               {"Allow": "POST"})) from None
    except CannotGetOperationTypeError:
        raise Answered(_refuse(record, media_type, 400, "Pick the operation to run with 'operationName'.")) from None
    except BaseException as exc:
        if not isinstance(exc, (Exception, asyncio.CancelledError)) or _being_cancelled():
            raise  # the request itself is ending (client gone, shutdown): nobody to answer
        # An exception graphql-core does not catch (a CancelledError, say) that escaped
        # execution: answered through the error path like any unexpected error, never a bare 500.
        raise Answered(_unexpected(exc, exchange.services, media_type, record)) from None


def _learn_persisted(exchange: Exchange, result: ExecutionResult) -> None:
    """APQ in development: a hash sent with its text is remembered once the text parsed and validated."""
    params = exchange.params
    if params.learn and params.persisted_hash and params.query and not isinstance(result, PreExecutionError):
        exchange.services.operations.learn(params.persisted_hash, params.query)


def _body(exchange: Exchange, result: ExecutionResult) -> tuple[dict[str, Any], bool]:
    """The response body's data and errors, and whether the request failed as a whole (no data)."""
    pre_execution = isinstance(result, PreExecutionError)
    body: dict[str, Any] = {}
    errors = result.errors or []
    request_failed = pre_execution or (result.data is None and bool(errors) and all(map(is_request_error, errors)))
    if not request_failed:
        body["data"] = result.data
    if errors:
        body["errors"] = [format_error(e, pre_execution=pre_execution, production=exchange.services.settings.production,
                                       request_id=exchange.record.request_id)
                          for e in errors]
    return body, request_failed


async def _development_extensions(exchange: Exchange) -> dict[str, Any]:
    """What the request cost in I/O, for developers checking that loaders batch."""
    if exchange.services.settings.production:
        return {}
    # asyncpg tells its query loggers (the statement count) of a statement a turn of the event
    # loop after it: the request's last statement is counted once the loop has turned.
    await asyncio.sleep(0)
    stats = exchange.stats
    extensions: dict[str, Any] = {"io": {"sqlStatements": stats.sql_statements, "providerCalls": stats.provider_calls,
                                         "loaderRounds": stats.loader_rounds}}
    if stats.executor:
        extensions["executor"] = stats.executor
    return extensions


def _status(exchange: Exchange, body: dict[str, Any], request_failed: bool) -> tuple[int, dict[str, str]]:
    """The HTTP status: application/json keeps 200 for every well-formed request, as the spec asks
    of it; a throttled sign-in is 429 with Retry-After in either."""
    status = 400 if request_failed and exchange.media_type == GRAPHQL_RESPONSE else 200
    retry = _retry_after(body.get("errors", []))
    if retry is None:
        return status, {}
    exchange.record.rate_limited = "sign_in"
    return 429, {"Retry-After": str(retry)}


def _log(exchange: Exchange, status: int, body: dict[str, Any], result: ExecutionResult, request_failed: bool) -> None:
    """The request log's record of an answered request (written when the request ends)."""
    codes = dict.fromkeys((e.get("extensions") or {}).get("code", "") for e in body.get("errors", ()))
    exchange.record.answered(status, list(codes), user_error_codes(result.data), ran=not request_failed)


def _unexpected(exc: BaseException, services: Services, media_type: str, record: RequestRecord) -> Response:
    """A bug, not a refusal: masked (in production) and logged with its traceback under the request id."""
    error = format_error(GraphQLError(str(exc) or type(exc).__name__, original_error=exc),  # type: ignore[arg-type]
                         pre_execution=False, production=services.settings.production, request_id=record.request_id)
    record.outcome, record.status, record.error_codes = "error", 500, ["INTERNAL_SERVER_ERROR"]
    return _json_response({"errors": [error]}, 500, media_type, record.request_id)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _operation_span(record: RequestRecord) -> AbstractContextManager[Any]:
    observer = instrumentation.observer.get()
    if observer is None or not observer.tracing:
        return _NO_SPAN
    return observer.span(f"{record.operation_type or 'graphql'} {record.operation}",
                         {"graphql.operation.name": record.operation,
                          "graphql.operation.type": record.operation_type or "",
                          "gateway.request_id": record.request_id})


async def _settle_cost(exchange: Exchange, admitted: Admission, data: Any) -> dict[str, Any]:
    """Shopify's shape: what was asked, what the answer held, and the budget left once the
    difference is settled (given back, or charged when the answer held more than estimated)."""
    limiter = exchange.services.limiter
    actual = actual_cost(data)
    await limiter.settle_query(admitted.viewer_key, admitted.requested, actual)
    limits = limiter.settings
    remaining = min(limits.cost_budget, admitted.available + admitted.requested - actual)
    exchange.record.cost_requested, exchange.record.cost_actual = admitted.requested, actual
    return {"cost": {"requested": admitted.requested, "actual": actual,
                     "budget": {"maximum": limits.cost_budget, "remaining": int(max(0, remaining)),
                                "restoreRate": limits.cost_restore_rate}}}


def _retry_after(errors: list[dict[str, Any]]) -> int | None:
    for error in errors:
        extensions = error.get("extensions") or {}
        if extensions.get("code") == "RATE_LIMITED":
            return int(extensions.get("retryAfter", 1))
    return None


def _json_response(body: dict[str, Any], status: int, media_type: str, request_id: str,
                   headers: dict[str, str] | None = None) -> Response:
    # orjson: the dashboard's answer is a few hundred KB, which the stdlib encodes ten times slower;
    # subtrees PostgreSQL finished go in as their bytes (planning.fragments).
    return Response(fragments.dumps(body), status_code=status,
                    media_type=f"{media_type}; charset=utf-8",
                    headers={"X-Request-Id": request_id, **(headers or {})})


def _refuse(record: RequestRecord, media_type: str, status: int, message: str,
            headers: dict[str, str] | None = None, code: str = "BAD_REQUEST",
            extensions: dict[str, Any] | None = None) -> Response:
    record.refused(code, status)
    return _error_response(media_type, status, message, record.request_id, headers, code, extensions)


def _error_response(media_type: str, status: int, message: str, request_id: str,
                    headers: dict[str, str] | None = None, code: str = "BAD_REQUEST",
                    extensions: dict[str, Any] | None = None) -> Response:
    body = {"errors": [{"message": message, "extensions": {**(extensions or {}), "code": code}}]}
    return _json_response(body, status, media_type, request_id, headers)
