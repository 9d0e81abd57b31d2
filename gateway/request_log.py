"""One log line per GraphQL request: JSON in production, one readable line in development.

The HTTP layer fills a `RequestRecord` as the request goes and hands it to `write`, which
logs it on the `gateway.requests` logger through the stdlib. The line carries the request
id (also the `X-Request-Id` response header and `requestId` of masked errors), the
operation, the viewer, the duration, the cost, the outcome and the error codes.

Outcomes, also the `outcome` label of the metrics:
- `ok`: answered without errors;
- `user_error`: answered, with errors the client caused (UNAUTHENTICATED, NOT_FOUND,
  BAD_USER_INPUT...) or a mutation's `userErrors`;
- `refused`: not run (malformed HTTP, parse or validation failure, over the cost limit,
  rate limited, a persisted operation unknown or required);
- `error`: the gateway or what it depends on failed (INTERNAL_SERVER_ERROR,
  DATABASE_UNAVAILABLE, PROVIDER_UNAVAILABLE, an exception).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from graphql import OperationDefinitionNode

from gateway.logs import PerRecord
from schema.documents import Document

log = logging.getLogger("gateway.requests")

ANONYMOUS = "anonymous"
# A client's own X-Request-Id is kept when it is a plain token (it goes into logs as is).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SERVER_FAULTS = frozenset({"INTERNAL_SERVER_ERROR", "DATABASE_UNAVAILABLE", "PROVIDER_UNAVAILABLE"})
_REFUSALS = frozenset({"RATE_LIMITED", "QUERY_TOO_COMPLEX", "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED",
                       "BAD_REQUEST", "PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_REQUIRED"})
_MAX_LOGGED_NAME = 100


def loggable(text: str) -> str:
    """Client-chosen text (an operation name, a path) as a log line may hold it: on one line
    (a newline could forge a line of its own) and encodable (a lone surrogate breaks the text
    handler and strict JSON parsers). Anything but printable ASCII is written as an escape."""
    if text.isascii() and text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def request_id(header: str | None) -> str:
    """The client's X-Request-Id when it is a sane token, so its logs and ours join; else a new one."""
    if header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return secrets.token_hex(16)  # as random as uuid4's hex, a fifth of its cost


def describe_operation(document: Document, operation_name: str | None) -> tuple[str | None, str]:
    """(`query`/`mutation`/`subscription` or None, the operation's name or "anonymous").

    The name is the client's operationName, else the name of the document's one operation.
    """
    if document.node is None:
        return None, operation_name or ANONYMOUS
    for definition in document.node.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        name = definition.name.value if definition.name else None
        if operation_name is None or name == operation_name:
            return definition.operation.value, name or ANONYMOUS
    return None, operation_name or ANONYMOUS


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    method: str
    started: float = field(default_factory=time.perf_counter)
    operation: str = ANONYMOUS
    operation_type: str | None = None
    viewer_id: str = ANONYMOUS
    status: int = 200
    outcome: str = "ok"
    cost_requested: int | None = None
    cost_actual: int | None = None
    error_codes: list[str] = field(default_factory=list)
    user_error_codes: list[str] = field(default_factory=list)
    # "query_cost" (the budget) or "sign_in" (the throttles) when rate limited.
    rate_limited: str | None = None
    duration_seconds: float = 0.0

    def refused(self, code: str, status: int) -> None:
        self.outcome, self.status, self.error_codes = "refused", status, [code]

    def answered(self, status: int, codes: list[str], user_error_codes: list[str], *, ran: bool) -> None:
        """`ran`: the operation executed (rather than failing to parse, validate or coerce)."""
        self.status, self.error_codes, self.user_error_codes = status, codes, user_error_codes
        if not _SERVER_FAULTS.isdisjoint(codes):
            self.outcome = "error"
        elif not ran or not _REFUSALS.isdisjoint(codes):
            self.outcome = "refused"
        elif codes or user_error_codes:
            self.outcome = "user_error"
        else:
            self.outcome = "ok"

    def finish(self) -> None:
        self.duration_seconds = time.perf_counter() - self.started

    def fields(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "method": self.method,
            "operation": loggable(self.operation[:_MAX_LOGGED_NAME]),
            "operation_type": self.operation_type,
            "viewer_id": self.viewer_id,
            "status": self.status,
            "outcome": self.outcome,
            "duration_ms": round(self.duration_seconds * 1000, 3),
            "cost_requested": self.cost_requested,
            "cost_actual": self.cost_actual,
            "error_codes": self.error_codes,
            "user_error_codes": self.user_error_codes,
        }

    def summary(self) -> str:
        """The readable line of development logs."""
        actual = "-" if self.cost_actual is None else self.cost_actual
        cost = f" cost={actual}/{self.cost_requested}" if self.cost_requested is not None else ""
        codes = self.error_codes + self.user_error_codes
        errors = f" errors={','.join(codes)}" if codes else ""
        return (f"{self.method} {loggable(self.operation[:_MAX_LOGGED_NAME])} {self.outcome} {self.status} "
                f"{self.duration_seconds * 1000:.1f} ms viewer={self.viewer_id}{cost}{errors} id={self.request_id}")


def user_error_codes(data: Any) -> list[str]:
    """The codes of the `userErrors` of a mutation's top-level payloads (nothing deeper: no
    per-field work)."""
    if not isinstance(data, dict):
        return []
    codes = []
    for payload in data.values():
        if isinstance(payload, dict):
            for problem in payload.get("userErrors") or ():
                if isinstance(problem, dict) and problem.get("code"):
                    codes.append(problem["code"])
    return codes


def write(record: RequestRecord, log_format: str) -> None:
    if log.isEnabledFor(logging.INFO):
        # What `log.info` does, less its walk up the stack for the caller's file and line,
        # which no line shows; the log record is a copy of this process's first (`_log_record`).
        log.handle(_log_record({"request": record, "log_format": log_format}))


_first_record: dict[str, Any] = {}  # this process's first request record's attributes; emptied in a forked child
os.register_at_fork(after_in_child=_first_record.clear)


def _log_record(extra: dict[str, Any]) -> logging.LogRecord:
    """The request line's log record: every attribute a record made by `makeRecord` has, all but
    its time the same for every request of a process (file, function, process, thread...), so
    copied from the first one made; making each anew (the file's name split, the process id
    asked of the kernel) was a fifth of a line's cost. A custom record factory makes each."""
    if logging.getLogRecordFactory() is not logging.LogRecord or (
            _first_record and _first_record["thread"] not in (None, threading.get_ident())):
        return log.makeRecord(log.name, logging.INFO, __file__, 0, "request", (), None, "write", extra)
    if not _first_record:
        _first_record.update(vars(log.makeRecord(log.name, logging.INFO, __file__, 0, "request", (), None, "write")))
    record = logging.LogRecord.__new__(logging.LogRecord)
    record.__dict__.update(_first_record)
    record.created = now = time.time()
    record.msecs = int((now - int(now)) * 1000) + 0.0  # as LogRecord sets them
    record.relativeCreated = _first_record["relativeCreated"] + (now - _first_record["created"]) * 1000
    record.__dict__.update(extra)
    return record


class OtherRequests:
    """One line for each request the GraphQL endpoint does not log itself (health checks, the
    metrics scrape, invoice files, webhook deliveries, GraphiQL): uvicorn's access log is off,
    so that each request has exactly one line. The path is logged without its query string,
    which holds a signed link's signature."""

    def __init__(self, app: Any, log_format: str) -> None:
        self.app = app
        self.log_format = log_format

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # POST /graphql always writes its own line: no second layer on the hot path.
        if scope["type"] != "http" or (scope["method"] == "POST" and scope["path"] == GRAPHQL_PATH):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        record = RequestRecord(request_id(headers.get(b"x-request-id", b"").decode("latin-1") or None),
                               scope["method"])
        record.operation = scope["path"]
        state = scope.setdefault("state", {})

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        record.status = 500  # until a response starts
        try:
            await self.app(scope, receive, sending)
        finally:
            if not state.get(LOGGED):
                record.outcome = "ok" if record.status < 400 else "refused" if record.status < 500 else "error"
                record.finish()
                write(record, self.log_format)


GRAPHQL_PATH = "/graphql"
LOGGED = "gateway.request_logged"  # set in the request's state by whoever wrote its line


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (as logging's last-resort handler does
    for stderr), so a redirected stdout is honoured."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def install_handler() -> None:
    """Request lines go to stdout unless the operator's logging configuration has already
    given `gateway.requests` a handler. Idempotent: several apps in one process share it."""
    if log.handlers:
        return
    handler = _StdoutHandler()
    handler.setFormatter(PerRecord())
    log.addHandler(handler)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    log.propagate = False  # one line per request, not another through the root handlers
