"""Liveness and readiness, for process supervisors and load balancers.

`GET /healthz` (liveness): the process runs and its event loop answers. It checks no
dependency on purpose: a database outage must not make an orchestrator restart every
gateway, which would fix nothing and lose the in-flight requests.

`GET /readyz` (readiness): whether this gateway can serve now. Ready (200) when PostgreSQL
answers `SELECT 1` through the app's own pool within about a second; not ready (503,
`"status": "unavailable"`) otherwise, so a load balancer sends traffic elsewhere while this
process cannot reach the database (nearly every request, authentication included, needs it).

The payment provider is probed too and reported as `paymentProvider`, but it does not gate
readiness (PROVIDER_GATES_READINESS): the provider is shared by every gateway, so a provider
outage would take all of them out of rotation at once and turn a billing-only degradation
(billing fields answer PROVIDER_UNAVAILABLE; sign-in, people, licenses, credits keep working)
into a full outage. Status "degraded" (still 200) tells monitoring. The provider probe is a
GET of a customer that does not exist (an answer of 404 means reachable and the key accepted),
cached for a few seconds per app so that frequent probes do not become provider traffic.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from datasources.errors import GatewayError

DATABASE_CHECK_SECONDS = 1.0
PROVIDER_CHECK_SECONDS = 1.0
PROVIDER_CACHE_SECONDS = 10.0
PROVIDER_GATES_READINESS = False
_PROBE_CUSTOMER = "cus_account_gateway_readiness_probe"
_NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers=_NO_STORE)


async def readyz(request: Request) -> JSONResponse:
    services = getattr(request.app.state, "services", None)
    if services is None:  # the lifespan has not opened the resources (yet)
        return JSONResponse({"status": "unavailable", "database": False, "paymentProvider": False},
                            status_code=503, headers=_NO_STORE)
    database, provider = await asyncio.gather(_database_reachable(services.db),
                                              _provider_reachable(request.app.state, services.payments))
    ready = database and (provider or not PROVIDER_GATES_READINESS)
    status = "unavailable" if not ready else "ready" if provider else "degraded"
    return JSONResponse({"status": status, "database": database, "paymentProvider": provider},
                        status_code=200 if ready else 503, headers=_NO_STORE)


async def _database_reachable(db: Any) -> bool:
    try:
        # ping bounds itself; the outer limit covers a release that waits on a cancelled query.
        return await asyncio.wait_for(db.ping(DATABASE_CHECK_SECONDS), DATABASE_CHECK_SECONDS + 0.5)
    except (TimeoutError, GatewayError):
        return False


async def _provider_reachable(state: Any, payments: Any) -> bool:
    cached = getattr(state, "provider_probe", None)
    now = time.monotonic()
    if cached is not None and now - cached[0] < PROVIDER_CACHE_SECONDS:
        return cached[1]
    try:
        await asyncio.wait_for(payments.get_customer(_PROBE_CUSTOMER), PROVIDER_CHECK_SECONDS)
        reachable = True
    except (TimeoutError, GatewayError):
        reachable = False
    state.provider_probe = (now, reachable)
    return reachable
