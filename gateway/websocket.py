"""GraphQL over WebSocket (`graphql-transport-ws`, the protocol of the `graphql-ws` client and
Apollo) on the same /graphql path as HTTP: live events, and queries and mutations too.

A handler of our own rather than strawberry's (strawberry.subscriptions.protocols.
graphql_transport_ws): strawberry's runs its own execution and extensions around the schema,
where the gateway's admission (size, cost, budget), validation and error formatting must be
the same as over HTTP; and it has no way to close a connection with 4401 when the token
expires or the session ends mid-connection, nor per-connection and per-viewer limits.

Authentication is in `connection_init` (`{"authorization": "Bearer <token>"}`, or
`{"token": "<token>"}`; the upgrade request's Authorization header also counts). Nothing here
is for anonymous callers, so a missing, invalid, expired or revoked token closes the socket
with 4401 right away: graphql-ws clients take 4401 as final (no reconnect loop with the same
bad token) and report it to every subscriber. Close codes, per the protocol: 4400 a message
that is not the protocol's, 4401 unauthorized (also at the token's `exp` and when its session
ends), 4406 subprotocol not acceptable, 4408 no connection_init in time, 4409 a subscription
id already in use, 4429 a second connection_init; besides them 1009 for a message over
MAX_BODY_BYTES and 1001 when the app shuts down. A token revoked without an event (a service
token) is noticed within RECHECK_SECONDS. Too many subscriptions (per connection, per viewer
in this process) are refused with an `error` message naming the limit, and so is whatever
HTTP refuses before running (size, cost and budget, parse, validation).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from graphql import Executor, GraphQLError, create_source_event_stream, get_operation_ast
from graphql.execution.execute import execute_subscription_event
from graphql.pyutils import is_async_iterable
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.types.graphql import OperationType
from strawberry.utils.operation import get_operation_type

from auth.viewer import Credentials, Viewer, authenticate, bearer_token, credentials
from datasources.errors import GatewayError
from gateway.admission import Refusal, admit, viewer_key
from gateway.bodies import InvalidJSON, load_json
from gateway.errors import format_error
from gateway.http import logged_viewer
from gateway.live_answers import LiveAnswers, shareable
from gateway.persisted import sha256_hex
from gateway.services import Services
from loaders import create_loaders
from planning import fragments
from resolvers import live as resolve_live
from resolvers.context import Context
from resolvers.event_hub import Hub, Subscriber
from schema import variable_errors
from schema.documents import Document, document_of
from schema.events import OrganizationEvent
from schema.live_sharing import reads_viewer
from schema.extensions import require_operation_name

PROTOCOL = "graphql-transport-ws"
CONNECTION_INIT_TIMEOUT = 10.0  # seconds a client has to send connection_init
# How often a connection's credentials are checked again. Sign-outs, password changes and the
# like end a session with an event and close its sockets at once; this catches what reports
# none (a revoked service token, a session past its own expiry) within this many seconds.
RECHECK_SECONDS = 300.0
log = logging.getLogger("gateway.websocket")


class Close(Exception):
    """Ends the connection with a close code and a reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class LiveConnections:
    """The process's WebSocket connections and each viewer's count of subscriptions in them."""

    hub: Hub
    per_viewer: Counter[str] = field(default_factory=Counter)
    open: set["Connection"] = field(default_factory=set)
    answers: LiveAnswers = field(default_factory=LiveAnswers)

    async def close_all(self) -> None:
        """At shutdown: every client is told the server is going away (1001)."""
        for connection in list(self.open):
            connection.end(1001, "The server is shutting down.")
        for _ in range(500):  # each closes its socket as its operations end: 5 s at most
            if not self.open:
                return
            await asyncio.sleep(0.01)


async def graphql_ws(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    connections: LiveConnections = websocket.app.state.live
    if PROTOCOL not in websocket.scope.get("subprotocols", ()):
        await websocket.accept()
        await websocket.close(4406, f"Subprotocol not acceptable: use {PROTOCOL}.")
        return
    await websocket.accept(subprotocol=PROTOCOL)
    connection = Connection(websocket, services, connections)
    connections.open.add(connection)
    try:
        await connection.serve()
    finally:
        connections.open.discard(connection)


def _limit_error(setting: str, maximum: int, where: str) -> list[dict[str, Any]]:
    return [{"message": f"Too many subscriptions {where}: {setting} is {maximum}. Complete one before starting "
                        "another.", "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS", "limit": setting,
                                                   "maximum": maximum}}]


class Connection:
    """One socket. A thousand idle subscribers are a thousand of these, so the connection
    holds no task of its own besides the one that serves it (which reads) and one per
    operation: the token's expiry and the periodic recheck are timers, the end of the session
    a callback of the hub (`resolvers.live.watch_session`)."""

    __slots__ = ("ws", "services", "connections", "viewer", "viewer_key", "operations", "closing", "address",
                 "connection_id", "_send_lock", "_task", "_reading", "_expiry", "_recheck_timer", "_recheck_task",
                 "_session_watch")

    def __init__(self, websocket: WebSocket, services: Services, connections: LiveConnections) -> None:
        self.ws = websocket
        self.services = services
        self.connections = connections
        self.viewer: Viewer | None = None  # set once acknowledged
        self.viewer_key = ""
        self.operations: dict[str, asyncio.Task[None]] = {}
        self.closing: Close | None = None  # set by `end`
        self._send_lock = asyncio.Lock()
        self.address = websocket.client.host if websocket.client else "unknown"
        # Names the connection in the errors it is sent and in the log (as a request id does).
        self.connection_id = uuid.uuid4().hex
        self._task: asyncio.Task[Any] | None = None
        self._reading = False
        self._expiry: asyncio.TimerHandle | None = None
        self._recheck_timer: asyncio.TimerHandle | None = None
        self._recheck_task: asyncio.Task[None] | None = None
        self._session_watch: Subscriber | None = None

    # Life of the connection ----------------------------------------------------------------

    async def serve(self) -> None:
        """Reads in the serving task itself; `end` interrupts the reading by cancelling it."""
        self._task = asyncio.current_task()
        try:
            self._reading = True
            try:
                await self._read()
            except asyncio.CancelledError:
                if self.closing is None:
                    raise  # cancelled from outside: the server is going
                assert self._task is not None
                self._task.uncancel()  # our own `end`
            except Close as exc:
                self.end(exc.code, exc.reason)
            except WebSocketDisconnect:
                pass
            except Exception as exc:  # noqa: BLE001 - a bug: logged, and the client told
                log.error("websocket connection failed", exc_info=exc)
                self.end(4500, "Internal error.")
            finally:
                self._reading = False
        finally:
            for timer in (self._expiry, self._recheck_timer):
                if timer is not None:
                    timer.cancel()
            if self._session_watch is not None:
                self.connections.hub.unwatch(self._session_watch)
            tasks = [*self.operations.values(), *([self._recheck_task] if self._recheck_task else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.operations.clear()
            if self.closing is not None:
                await self._close(self.closing.code, self.closing.reason)

    def end(self, code: int, reason: str) -> None:
        """Closes the connection with `code` (the first reason given counts)."""
        if self.closing is not None:
            return
        self.closing = Close(code, reason)
        if self._reading and self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()  # from another task or a timer: the reading stops

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            if self.ws.application_state == WebSocketState.CONNECTED:
                await self.ws.close(code, reason)

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_text(orjson.dumps(message).decode())

    # Reading -----------------------------------------------------------------------------------------

    async def _receive(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message; None when the client went away."""
        try:  # no timeout once signed in: its frame would stay with every idle connection
            if timeout is None:
                raw = await self.ws.receive()
            else:
                async with asyncio.timeout(timeout):  # not wait_for, which may lose a cancel on 3.11
                    raw = await self.ws.receive()
        except TimeoutError:
            raise Close(4408, "Connection initialisation timeout") from None
        if raw["type"] == "websocket.disconnect":
            return None
        text = raw.get("text")
        if text is None:
            raise Close(4400, "Messages are JSON text frames.")
        if len(text) > (limit := self.services.settings.max_body_bytes):
            raise Close(1009, f"Message too big: at most {limit} characters (MAX_BODY_BYTES, as for an HTTP body).")
        try:  # as the HTTP body is read: depth-limited, a lone surrogate escape accepted
            message = load_json(text, "The message")
        except InvalidJSON as exc:
            raise Close(4400, f"Invalid message: {exc}") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise Close(4400, "Invalid message: an object with a 'type' is expected.")
        return message

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECTION_INIT_TIMEOUT
        while True:
            message = await self._receive(None if self.viewer is not None else max(0.0, deadline - loop.time()))
            if message is None:
                return
            # Handled in a frame of its own: an idle reader keeps no message (a subscribe's
            # query text would otherwise stay with every idle connection).
            await self._handle(message)
            del message

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "connection_init":
            if self.viewer is not None:
                raise Close(4429, "Too many initialisation requests")
            await self._init(message.get("payload"))
        elif kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            if self.viewer is None:
                raise Close(4401, "Unauthorized")
            await self._subscribe(message)
        elif kind == "complete":
            task = self.operations.pop(str(message.get("id")), None)
            if task is not None:
                task.cancel()
        else:
            raise Close(4400, f"Invalid message type {kind!r}.")

    # connection_init ------------------------------------------------------------------------------------

    async def _init(self, payload: Any) -> None:
        if payload is not None and not isinstance(payload, dict):
            raise Close(4400, "Invalid message: connection_init's payload must be an object.")
        presented = self._credentials(payload or {})
        try:
            viewer = await authenticate(self.services.db, presented)
        except GatewayError as exc:
            raise Close(1013, f"Try again later: {exc.message}") from None
        if not viewer.authenticated and viewer.service is None:
            raise Close(4401, "Unauthorized: send a valid access token in connection_init as "
                              '{"authorization": "Bearer <token>"}.')
        # What the session check read (`standing`) primes an HTTP request's loaders; a socket's
        # events are read fresh, so the connection does not keep it.
        viewer = dataclasses.replace(viewer, standing=None)
        self.viewer, self.viewer_key = viewer, logged_viewer(viewer)
        await self._send({"type": "connection_ack"})
        loop = asyncio.get_running_loop()
        if presented.claims is not None:
            left = (presented.claims.expires_at - datetime.now(timezone.utc)).total_seconds()
            self._expiry = loop.call_later(max(0.0, left), self.end, 4401,
                                           "Unauthorized: the access token expired. Connect again with a fresh one.")
        if viewer.account_id is not None:
            self._session_watch = resolve_live.watch_session(self.connections.hub, viewer, self._session_ended)
        self._recheck_timer = loop.call_later(RECHECK_SECONDS, self._start_recheck, presented)

    def _credentials(self, payload: dict[str, Any]) -> Credentials:
        raw = payload.get("authorization", payload.get("Authorization"))
        if raw is None and isinstance(payload.get("token"), str):
            raw = f"Bearer {payload['token']}"
        if raw is None:
            raw = self.ws.headers.get("authorization")
        if raw is not None and not isinstance(raw, str):
            raise Close(4400, "Invalid message: 'authorization' must be a string.")
        if raw is not None and bearer_token(raw) is None:
            raw = f"Bearer {raw}"  # a bare token
        return credentials(self.services.settings.secret_key, raw)

    def _session_ended(self) -> None:
        self.end(4401, "Unauthorized: the session ended.")

    def _start_recheck(self, presented: Credentials) -> None:
        self._recheck_timer = None
        self._recheck_task = asyncio.create_task(self._recheck(presented))

    async def _recheck(self, presented: Credentials) -> None:
        try:
            viewer = await authenticate(self.services.db, presented)
        except GatewayError:
            viewer = None  # an outage is no revocation: checked again next time
        current = self.viewer
        assert current is not None
        # A staff role revoked (or changed) reports no event either: what it let the connection
        # follow must stop too.
        if viewer is not None and (viewer.account_id != current.account_id or viewer.service != current.service
                                   or viewer.staff_role != current.staff_role):
            self.end(4401, "Unauthorized: the token was revoked.")
        elif self.closing is None:
            self._recheck_timer = asyncio.get_running_loop().call_later(RECHECK_SECONDS, self._start_recheck,
                                                                        presented)
        self._recheck_task = None

    def _context(self) -> Context:
        assert self.viewer is not None
        services = self.services
        return Context(viewer=self.viewer, loaders=create_loaders(services.db, services.payments), db=services.db,
                       payments=services.payments, config=services.resolver_config,
                       request_id=self.connection_id, client_address=self.address, sign_in_throttle=services.limiter,
                       hub=self.connections.hub)

    # subscribe ----------------------------------------------------------------------------------------------

    async def _subscribe(self, message: dict[str, Any]) -> None:
        id_, payload = message.get("id"), message.get("payload")
        if not isinstance(id_, str) or not id_ or not isinstance(payload, dict) \
                or not isinstance(payload.get("query"), str):
            raise Close(4400, "Invalid message: subscribe needs an 'id' and a payload with a 'query'.")
        if id_ in self.operations:
            raise Close(4409, f"Subscriber for {id_} already exists")
        variables, operation_name = payload.get("variables"), payload.get("operationName")
        if variables is not None and not isinstance(variables, dict) or \
                operation_name is not None and not isinstance(operation_name, str):
            raise Close(4400, "Invalid message: 'variables' must be an object and 'operationName' a string.")
        settings = self.services.settings
        if len(self.operations) >= settings.max_subscriptions_per_connection:
            await self._error(id_, _limit_error("MAX_SUBSCRIPTIONS_PER_CONNECTION",
                                                settings.max_subscriptions_per_connection, "on this connection"))
            return
        if self.connections.per_viewer[self.viewer_key] >= settings.max_subscriptions_per_viewer:
            await self._error(id_, _limit_error("MAX_SUBSCRIPTIONS_PER_VIEWER", settings.max_subscriptions_per_viewer,
                                                "for this account or token in this process"))
            return
        # The viewer's slot is taken before the first await below: other connections of the same
        # viewer check the count meanwhile, and a burst across them must not pass the limit.
        self._hold_slot()
        try:
            document = document_of(payload["query"])
            refused = self._unregistered(payload["query"])
            if refused is None:
                refused = await self._refusal(document, operation_name, variables)
        except BaseException:
            self._release_slot()
            raise
        if refused is not None:
            self._release_slot()
            await self._error(id_, refused)
            return
        task = asyncio.create_task(self._operation(id_, document, variables, operation_name))
        task.add_done_callback(lambda _: self._release_slot())  # also when cancelled before it ran
        self.operations[id_] = task

    def _hold_slot(self) -> None:
        self.connections.per_viewer[self.viewer_key] += 1

    def _release_slot(self) -> None:
        self.connections.per_viewer[self.viewer_key] -= 1
        if self.connections.per_viewer[self.viewer_key] <= 0:
            del self.connections.per_viewer[self.viewer_key]

    def _unregistered(self, query: str) -> list[dict[str, Any]] | None:
        """PERSISTED_OPERATIONS_ONLY holds here as over HTTP: only a registered operation's text runs."""
        services = self.services
        if services.settings.persisted_operations_only and not services.operations.is_registered(sha256_hex(query)):
            return [{"message": "Only registered operations may run here: send a registered operation's text.",
                     "extensions": {"code": "PERSISTED_QUERY_REQUIRED"}}]
        return None

    async def _refusal(self, document: Document, operation_name: str | None, variables: dict[str, Any] | None
                       ) -> list[dict[str, Any]] | None:
        """What HTTP refuses before running: size and cost (admission), parse, validation."""
        services = self.services
        presented = Credentials(claims=None)
        admitted = await admit(services.schema.graphql_schema, services.limiter, document=document,
                               operation_name=operation_name, variables=variables,
                               key=self.viewer_key if self.viewer_key else viewer_key(presented, self.address))
        if isinstance(admitted, Refusal):
            return [{"message": admitted.message, "extensions": {**admitted.extensions, "code": admitted.code}}]
        errors: list[GraphQLError] = []
        if document.node is None:
            assert document.error is not None
            errors = [document.error]
        else:
            try:
                require_operation_name(document.node, operation_name)
            except GraphQLError as error:
                errors = [error]
            else:
                if get_operation_ast(document.node, operation_name) is None:  # as HTTP answers it
                    return [{"message": "Pick the operation to run with 'operationName'.",
                             "extensions": {"code": "BAD_REQUEST"}}]
                errors = services.schema.validation_errors(document)
        if errors:
            return [self._format(e, pre_execution=True) for e in errors]
        return None

    def _format(self, error: GraphQLError, *, pre_execution: bool = False) -> dict[str, Any]:
        return format_error(error, pre_execution=pre_execution, production=self.services.settings.production,
                            request_id=self.connection_id)

    async def _error(self, id_: str, errors: list[dict[str, Any]]) -> None:
        await self._send({"id": id_, "type": "error", "payload": errors})

    async def _operation(self, id_: str, document: Document, variables: dict[str, Any] | None,
                         operation_name: str | None) -> None:
        try:
            assert document.node is not None
            if get_operation_type(document.node, operation_name) == OperationType.SUBSCRIPTION:
                if not await self._stream(id_, document, variables, operation_name):
                    return  # refused with an `error` message, which ends the operation
            else:
                result = await self.services.schema.execute_document(
                    document, variable_values=variables, context_value=self._context(), operation_name=operation_name)
                await self._next(id_, result.data, result.errors)
            await self._send({"id": id_, "type": "complete"})
        except GatewayError as exc:
            await self._error(id_, [{"message": exc.message, "extensions": {**exc.extensions, "code": exc.code}}])
        except WebSocketDisconnect:
            self.end(1000, "")
        except Exception as exc:  # noqa: BLE001 - a bug: masked like any resolver's, the connection lives on
            with contextlib.suppress(Exception):
                await self._error(id_, [self._format(GraphQLError(str(exc) or type(exc).__name__,
                                                                  original_error=exc))])
        finally:
            if asyncio.current_task() is self.operations.get(id_):
                del self.operations[id_]

    def _payload(self, data: Any, errors: list[GraphQLError] | None) -> tuple[str, bool]:
        """The `next` payload's JSON text, and whether subscribers with equal keys may share it."""
        payload: dict[str, Any] = {"data": data}
        formatted = [self._format(e) for e in errors] if errors else None
        if formatted:
            payload["errors"] = formatted
        return fragments.dumps(payload).decode(), shareable(formatted)

    async def _next(self, id_: str, data: Any, errors: list[GraphQLError] | None) -> None:
        await self._send_next(_next_head(id_), self._payload(data, errors)[0])

    async def _send_next(self, head: str, payload: str) -> None:
        """A `next` message: its head (`_next_head`) and a payload already in JSON, which
        several subscribers may share; spliced, not serialized again."""
        async with self._send_lock:
            await self.ws.send_text(f"{head}{payload}}}")

    async def _stream(self, id_: str, document: Document, variables: dict[str, Any] | None,
                      operation_name: str | None) -> bool:
        """The source stream of the subscription field, and each event executed with a context
        of its own (fresh loaders: the event's objects as they are now): once for all the
        subscribers of an organization's event whose answers must be equal (gateway/live_answers.py)."""
        gateway_schema = self.services.schema
        assert document.node is not None
        base = self._context()
        built = Executor.build(gateway_schema.graphql_schema, document.node, context_value=base,
                               raw_variable_values=variables, operation_name=operation_name,
                               hide_suggestions=gateway_schema.hide_suggestions)
        if isinstance(built, list):  # variables that do not coerce: worded as over HTTP, no value repeated
            errors = variable_errors.rebuilt(gateway_schema.graphql_schema, built, variables,
                                             hide_suggestions=gateway_schema.hide_suggestions)
            await self._error(id_, [self._format(e) for e in errors])
            return False
        stream = await _awaited(create_source_event_stream(built))
        if not is_async_iterable(stream):
            await self._error(id_, [self._format(e) for e in stream.errors or ()])
            return False
        # What the answer depends on besides the subscriber's rights; None: answered alone.
        asked = None if reads_viewer(gateway_schema.graphql_schema, document) else (
            document.text, operation_name, _canonical(variables))
        rights: resolve_live.Rights | None = None
        head = _next_head(id_)

        async def execute(event: Any, context: Context) -> tuple[str, bool]:
            per_event = built.build_per_event_executor(event)
            per_event.context_value = context
            result = await _awaited(execute_subscription_event(per_event))
            return self._payload(result.data, result.errors)

        iterator = stream.__aiter__()
        try:
            while True:
                try:
                    event = await iterator.__anext__()
                except StopAsyncIteration:
                    return True
                except GraphQLError as error:
                    original = error.original_error
                    if isinstance(original, GatewayError):
                        raise original from None
                    raise
                logged = event.event
                if asked is not None and isinstance(event, OrganizationEvent) and logged.organization_id is not None \
                        and (rights is None or resolve_live.changes_rights(base, logged)):
                    try:
                        rights = await resolve_live.rights_for(resolve_live.fresh(base), logged.organization_id)
                    except GatewayError:
                        rights = None  # an outage: this event answered alone, its errors its own
                if rights is None or asked is None or not isinstance(event, OrganizationEvent):
                    payload, _ = await execute(event, resolve_live.fresh(base))
                else:
                    found = rights
                    payload = await self.connections.answers.answer(
                        logged, (asked, found.key), lambda: execute(event, resolve_live.for_rights(base, found)))
                await self._send_next(head, payload)
        finally:
            with contextlib.suppress(Exception):
                await iterator.aclose()  # type: ignore[attr-defined]


def _next_head(id_: str) -> str:
    """A `next` message up to its payload, which follows, then the closing brace."""
    return f'{{"id":{orjson.dumps(id_).decode()},"type":"next","payload":'


def _canonical(variables: dict[str, Any] | None) -> str:
    """Variables as a key: equal values, equal text (orjson refuses integers past 64 bits)."""
    try:
        return orjson.dumps(variables, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(variables, sort_keys=True)


async def _awaited(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future) else value
