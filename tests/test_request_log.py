"""One log line per request on stdout: JSON in production, a readable line in development."""

from __future__ import annotations

import json
from typing import Any

ORGANIZATION = "query OrganizationName { viewer { id organization { name } } }"


def request_lines(captured: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in captured.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "gateway.requests"]


async def test_production_logs_one_json_line_per_request_with_the_clients_request_id(app_for, settings, db, capsys):
    gateway = await app_for(settings.with_(env="production"))
    token = await gateway.login("admin@northwind.example")
    account_id = str(await db.fetchval("SELECT id FROM accounts WHERE email = 'admin@northwind.example'"))
    capsys.readouterr()

    response = await gateway.http.post("/graphql", json={"query": ORGANIZATION},
                                       headers={"authorization": f"Bearer {token}", "x-request-id": "web-7f3a.2_b"})
    assert response.headers["x-request-id"] == "web-7f3a.2_b"
    assert "errors" not in response.json()
    [line] = request_lines(capsys.readouterr().out)
    assert line["request_id"] == "web-7f3a.2_b"
    assert line["operation"] == "OrganizationName" and line["operation_type"] == "query"
    assert line["viewer_id"] == account_id
    assert line["outcome"] == "ok" and line["status"] == 200
    assert line["error_codes"] == [] and line["user_error_codes"] == []
    cost = response.json()["extensions"]["cost"]
    assert (line["cost_requested"], line["cost_actual"]) == (cost["requested"], cost["actual"])
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert line["level"] == "info" and line["method"] == "POST"


async def test_a_masked_error_carries_the_request_id_of_the_header_and_the_log_line(app_for, settings, db, capsys):
    gateway = await app_for(settings.with_(env="production"))
    token = await gateway.login("admin@northwind.example")
    # A bug rather than an outage: the gateway's SQL names a column that is not there.
    await db.execute("ALTER TABLE organizations RENAME COLUMN name TO renamed")
    capsys.readouterr()

    response = await gateway.post(ORGANIZATION, token=token)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32  # ours: the client sent none
    assert error["extensions"]["requestId"] == request_id
    assert error["message"] == f"Internal server error (request id {request_id})."
    [line] = request_lines(capsys.readouterr().out)
    assert line["request_id"] == request_id
    assert line["outcome"] == "error" and line["error_codes"] == ["INTERNAL_SERVER_ERROR"]


async def test_a_request_id_that_is_not_a_plain_token_is_replaced(gateway):
    for unusable in ("x" * 65, "has space", "new\\nline", "quote\"", ""):
        response = await gateway.http.post("/graphql", json={"query": "{ __typename }"},
                                           headers={"x-request-id": unusable})
        assert response.headers["x-request-id"] != unusable
        assert len(response.headers["x-request-id"]) == 32
    kept = "a" * 64
    response = await gateway.http.post("/graphql", json={"query": "{ __typename }"}, headers={"x-request-id": kept})
    assert response.headers["x-request-id"] == kept


async def test_refused_requests_are_logged_too(app_for, settings, capsys):
    gateway = await app_for(settings.with_(env="production"))
    capsys.readouterr()
    response = await gateway.http.post("/graphql", content=b"{", headers={"content-type": "application/json"})
    assert response.status_code == 400
    [line] = request_lines(capsys.readouterr().out)
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["outcome"] == "refused" and line["status"] == 400 and line["error_codes"] == ["BAD_REQUEST"]
    assert line["operation"] == "anonymous" and line["viewer_id"] == "anonymous"


async def test_development_logs_a_readable_line(gateway, capsys):
    token = await gateway.login("member1@northwind.example")
    capsys.readouterr()
    response = await gateway.post("query Me { viewer { name } }", token=token)
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if response.headers["x-request-id"] in line]
    assert not line.startswith("{")
    assert " POST Me ok 200 " in line and " ms viewer=" in line and "cost=" in line


async def test_a_service_tokens_requests_are_logged_as_the_service(app_for, settings, db, capsys):
    from tests.test_service_tokens import create_token

    gateway = await app_for(settings.with_(env="production"))
    token = await create_token(db, "licensing-dashboard", "accounts:read")
    service_id = await db.fetchval("SELECT id FROM service_tokens WHERE name = 'licensing-dashboard'")
    capsys.readouterr()
    body = await gateway.execute("query S { staff { service } }", token=token)
    assert body["data"]["staff"] == {"service": "licensing-dashboard"}
    [line] = request_lines(capsys.readouterr().out)
    assert line["viewer_id"] == f"service:{service_id}"


async def test_requests_outside_graphql_get_one_line_each_without_their_query_string(app_for, settings, capsys):
    """uvicorn's access log is off: health checks, files and webhooks are logged here, once."""
    gateway = await app_for(settings.with_(env="production"))
    capsys.readouterr()
    answers = [await gateway.http.get("/healthz", headers={"x-request-id": "probe-1"}),
               await gateway.http.get("/invoices/in_x.pdf?expires=1&signature=secret-part"),
               await gateway.http.post("/webhooks/payments", content=b"{}"),
               await gateway.http.post("/graphql", json={"query": "{ __typename }"})]
    lines = request_lines(capsys.readouterr().out)
    assert [(line["method"], line["operation"], line["status"]) for line in lines] == [
        ("GET", "/healthz", 200), ("GET", "/invoices/in_x.pdf", 403),
        ("POST", "/webhooks/payments", answers[2].status_code), ("POST", "anonymous", 200)]
    assert [a.status_code for a in answers[:2]] == [200, 403] and answers[2].status_code >= 400
    assert lines[0]["request_id"] == "probe-1" and lines[0]["outcome"] == "ok"
    assert lines[1]["outcome"] == "refused" and "secret-part" not in str(lines)


async def test_a_client_chosen_name_cannot_break_or_forge_a_log_line(gateway, capsys):
    capsys.readouterr()
    body = json.dumps({"query": "query Q { __typename }", "operationName": "a\ud800b"})  # escaped as \\ud800
    await gateway.http.post("/graphql", content=body, headers={"content-type": "application/json"})
    await gateway.http.get("/invoices/x%0a2026-12-02 10:00:00,000 POST Login ok 200 viewer=admin.pdf")
    captured = capsys.readouterr()
    assert "Logging error" not in captured.err and "UnicodeEncodeError" not in captured.err
    lines = [line for line in captured.out.splitlines() if line.strip()]
    assert len(lines) == 2, lines
    assert "a\\ud800b" in lines[0] and "x\\n2026-12-02" in lines[1]


def test_a_request_lines_log_record_is_what_logging_itself_makes():
    """The request line's log record is copied from the process's first (its time set anew):
    every attribute a handler or filter of the operator's may read is the one `makeRecord`
    gives, the thread included when another thread writes; a custom record factory makes each."""
    import logging
    import threading

    from gateway import request_log

    made: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            made.append(record)

    logger = logging.getLogger("gateway.requests")
    keep, level = Keep(), logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        record = request_log.RequestRecord("abc", "POST")
        extra = {"request": record, "log_format": "json"}
        request_log.write(record, "json")
        request_log.write(record, "json")
        thread = threading.Thread(target=request_log.write, args=(record, "json"))
        thread.start()
        thread.join()
        expected = logger.makeRecord(logger.name, logging.INFO, request_log.__file__, 0, "request", (), None, "write",
                                     extra)
        made_here, made_there = made[1], made[2]
        # The time and thread, and what formatters set on a record they handled.
        timeless = ("created", "msecs", "relativeCreated", "thread", "threadName", "message", "asctime")
        assert {k: v for k, v in vars(made_here).items() if k not in timeless} == \
               {k: v for k, v in vars(expected).items() if k not in timeless}
        assert abs(made_here.created - expected.created) < 5
        assert made_here.thread == expected.thread and made_there.thread == thread.ident
        assert made_there.threadName == thread.name

        class Tagged(logging.LogRecord):
            pass

        factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(Tagged)
        try:
            request_log.write(record, "json")
        finally:
            logging.setLogRecordFactory(factory)
        assert type(made[-1]) is Tagged
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
