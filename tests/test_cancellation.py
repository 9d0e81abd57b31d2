"""A field error that nulls a parent makes graphql-core cancel the parent's other fields while
they run. A cancelled field must cancel only itself: never a load another field shares, and
never the request (issue 14, item 6)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from loaders.dataloader import DataLoader
from tests.test_seat_mutations import ALLOCATE, NORTHWIND, holders, ids_of, m

# `allocations(first: 101)` is over the page limit: its error nulls the first `license`, and
# graphql-core cancels `allocatedCount` there, which waits on the seat count `l2` shares.
ALLOCATE_WITH_A_FAILING_SIBLING = """
mutation Allocate($input: AllocateLicenseInput!) {
  allocateLicense(input: $input) {
    license { allocatedCount allocations(first: 101) { totalCount } }
    l2: license { availableCount }
    userErrors { code }
  }
}
"""


async def test_a_field_error_beside_a_shared_load_answers_and_keeps_the_committed_seat(gateway, db):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    variables = {"input": {"licenseId": licenses["LUMEN-RENDER"], "accountIds": [accounts[m(3)]]}}
    response = await gateway.post(ALLOCATE_WITH_A_FAILING_SIBLING, variables, token=token)
    assert response.status_code == 200, response.text
    body = response.json()
    payload = body["data"]["allocateLicense"]
    assert payload["license"] is None
    assert payload["l2"] == {"availableCount": 5}  # 10 seats, 4 held before, 1 allocated now
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    assert m(3) in await holders(db, licenses["LUMEN-RENDER"])
    # The same request again, through the ordinary payload: the state is the one reported.
    again = await gateway.execute(ALLOCATE, variables, token=token)
    assert again["data"]["allocateLicense"]["license"]["availableCount"] == 5


async def test_cancelling_one_waiter_leaves_the_shared_load_to_the_others():
    """The same defect below GraphQL: two fields await one loader future, one is cancelled."""
    release = asyncio.Event()

    async def batch(keys):
        await release.wait()
        return [k * 2 for k in keys]

    loader = DataLoader(batch)
    first = asyncio.ensure_future(loader.load(21))
    second = asyncio.ensure_future(loader.load(21))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await second == 42
    assert first.cancelled()


class _Escaping:
    """Stands in for the schema's `execute` only: raises what graphql-core never catches."""

    def __init__(self, schema, exc: BaseException) -> None:
        self.graphql_schema, self._exc = schema.graphql_schema, exc

    async def execute_document(self, *args, **kwargs):
        raise self._exc


@pytest.mark.parametrize("exc", [asyncio.CancelledError(), KeyError("x"), RecursionError()],
                         ids=lambda e: type(e).__name__)
async def test_an_exception_escaping_execution_is_a_masked_graphql_error_with_the_request_id(settings, exc):
    from dataclasses import replace

    from gateway.app import create_app

    app = create_app(replace(settings, env="production"))
    async with app.router.lifespan_context(app):
        app.state.services = replace(app.state.services, schema=_Escaping(app.state.services.schema, exc))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as http:
            response = await http.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 500
    [error] = response.json()["errors"]
    request_id = response.headers["x-request-id"]
    assert error == {"message": f"Internal server error (request id {request_id}).",
                     "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}}
