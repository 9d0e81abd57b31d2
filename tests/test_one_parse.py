"""A request's query text is parsed once, and that one document serves every step: the
request log, admission and cost, validation and execution (gateway/http.py)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import graphql.language.parser

from schema.documents import parse_cache_info

PARSE = graphql.language.parser.parse.__code__


async def counting_parses(send: Callable[[], Awaitable[Any]]) -> tuple[Any, int, int]:
    """(the answer, graphql-core's `parse` calls, lookups of the gateway's parse step) while
    `send` runs, counted through Python's own profiling hook."""
    calls = 0

    def profile(frame: Any, event: str, _arg: Any) -> None:
        nonlocal calls
        if event == "call" and frame.f_code is PARSE:
            calls += 1

    before = parse_cache_info()
    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        answer = await send()
    finally:
        sys.setprofile(previous)
    after = parse_cache_info()
    return answer, calls, (after.hits + after.misses) - (before.hits + before.misses)


async def test_a_request_parses_its_query_once_and_a_repeated_text_not_at_all(gateway):
    token = await gateway.login("admin@northwind.example")
    # A text no earlier test sent, with page sizes in variables (the cost reads them) and a
    # string literal (admission checks it can be stored).
    query = (f'query Fresh($n: Int!) {{ viewer {{ name organization {{ members(first: $n, search: "{uuid.uuid4()}") '
             "{ totalCount } } } }")
    for parses in (1, 0):
        response, calls, lookups = await counting_parses(lambda: gateway.post(query, {"n": 3}, token=token))
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        assert body["data"]["viewer"]["organization"]["members"]["totalCount"] == 0
        assert body["extensions"]["cost"]["requested"] > 0
        assert (calls, lookups) == (parses, 1)


async def test_a_text_that_does_not_parse_is_parsed_once_per_request(gateway):
    query = f"{{ viewer {{ name  # {uuid.uuid4()}"
    for _ in range(2):
        response, calls, lookups = await counting_parses(lambda: gateway.post(query))
        assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
        assert (calls, lookups) == (1, 1)
