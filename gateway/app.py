"""The app factory: a Starlette app built from Settings, its resources opened by the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from datasources.identity.oidc import IdentityProviders
from datasources.payments.client import PaymentsClient
from datasources.payments.emulator import EMULATOR_API_KEY
from datasources.postgres.database import Database
from datasources.postgres.listener import listening
from gateway import graphiql, invoice_files, sso
from gateway.bodies import BodyLimit
from gateway.cors import cors_middleware
from gateway.request_log import GRAPHQL_PATH, OtherRequests
from gateway.health import healthz, readyz
from gateway.http import graphql_asgi, graphql_endpoint
from gateway.limits import Limiter
from gateway.mailer import Mailer
from gateway.metrics import Metrics, metrics_endpoint, on_public_port
from gateway.request_log import install_handler as install_request_log
from gateway.tracing import load_tracer
from gateway.persisted import load_operations
from gateway.ratelimit import LocalBuckets, RedisBuckets
from gateway.scheduler import Scheduler
from gateway.services import Services, resolver_config
from gateway.settings import Settings
from gateway.scim import ALL_METHODS, PREFIX as SCIM_PREFIX, scim_endpoint
from gateway.webhooks import payment_webhook
from gateway.websocket import LiveConnections, graphql_ws
from resolvers.event_hub import Hub
from schema import build_schema


class GatewayApp(Starlette):
    """Starlette, with GraphQL's own requests handed straight to their handlers.

    The WebSocket: the middleware is HTTP's (request log, CORS, body limit: each passes a
    WebSocket through) and so is the router's exception handling; yet each of those layers
    stays suspended in every open socket for its whole life, about 5 KB per idle subscriber
    of frames and closures. A POST: the one request that writes its own log line, answers
    its own errors and reads no path parameters, through the only layers it needs (CORS and
    the body limit); the router's stack of seven layers cost a query 25 us of CPU."""

    graphql_post: Any = None  # set by create_app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("path") == GRAPHQL_PATH:
            if scope["type"] == "websocket":
                scope["app"] = self
                await graphql_ws(WebSocket(scope, receive, send))
                return
            if scope["method"] == "POST" and self.graphql_post is not None:
                scope["app"] = self
                await self.graphql_post(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    """`settings.database_url` must be set: the CLI starts embedded services before this."""
    assert settings.database_url, "create_app needs a database_url"
    assert settings.secret_key, "create_app needs a secret_key"
    operations = load_operations(settings)  # once, at app start

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = await Database.connect(settings.database_url, max_size=settings.db_pool_max_size,
                                    acquire_timeout=settings.db_acquire_timeout_seconds,
                                    connect_timeout=settings.db_connect_timeout_seconds,
                                    command_timeout=settings.db_command_timeout_seconds,
                                    portal_url=settings.portal_url)
        payments = PaymentsClient(settings.stripe_api_key or EMULATOR_API_KEY,
                                  api_base=settings.stripe_api_base,
                                  timeout_seconds=settings.provider_timeout_seconds,
                                  max_retries=settings.provider_max_retries,
                                  breaker_failure_threshold=settings.provider_breaker_failures,
                                  breaker_cooldown_seconds=settings.provider_breaker_cooldown_seconds)
        buckets = (RedisBuckets(settings.redis_url, settings.redis_key_prefix) if settings.redis_url
                   else LocalBuckets())
        identity = IdentityProviders(timeout_seconds=settings.provider_timeout_seconds,
                                     require_https=settings.production, public_hosts_only=settings.production)
        app.state.services = Services(settings=settings, db=db, payments=payments,
                                      schema=build_schema(production=settings.production,
                                                           executor=settings.executor),
                                      resolver_config=resolver_config(settings),
                                      limiter=Limiter(buckets, settings.limits), operations=operations,
                                      identity=identity)
        metrics = app.state.metrics = Metrics(operations, db=db, payments=payments,
                                              tracer=load_tracer(settings.tracing))
        install_request_log()
        # One LISTEN connection per process, apart from the pool, fans live events out to its sockets.
        hub = Hub(lambda: listening(settings.database_url or "", connect_timeout=settings.db_connect_timeout_seconds))
        live = app.state.live = LiveConnections(hub)
        background = [asyncio.create_task(Mailer(db, settings.data_dir / "mail", settings.smtp_url).run()),
                      asyncio.create_task(metrics.share()), asyncio.create_task(hub.run(), name="event-hub")]
        app.state.scheduler = Scheduler(db, settings, payments) if settings.run_scheduler else None
        if app.state.scheduler is not None:
            background.append(asyncio.create_task(app.state.scheduler.run()))
        try:
            yield
        finally:
            await live.close_all()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await buckets.close()
            await identity.close()
            await payments.close()
            await db.close()

    app = GatewayApp(
        routes=[
            Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_ws),
            Route(graphiql.ASSET_PATH + "/{name}", graphiql.asset, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *([Route("/metrics", metrics_endpoint, methods=["GET"])] if on_public_port(settings) else []),
            Route("/webhooks/payments", payment_webhook, methods=["POST"]),
            Route(sso.START_PATH, sso.start, methods=["GET"]),
            Route(sso.CALLBACK_PATH, sso.callback, methods=["GET"]),
            Route(SCIM_PREFIX + "/{path:path}", scim_endpoint, methods=ALL_METHODS),
            Route("/invoices/{invoice_id}.pdf", invoice_files.invoice_pdf, methods=["GET"]),
            Route("/invoices.zip", invoice_files.invoices_zip, methods=["GET"]),
        ],
        # CORS outermost: a page can read the refusals of the layers inside too (the body limit's 413).
        middleware=[Middleware(OtherRequests, log_format=settings.request_log_format),
                    *cors_middleware(settings.cors_origins), Middleware(BodyLimit, max_bytes=settings.max_body_bytes)],
        lifespan=lifespan,
    )
    # CORS outermost here too; the route above serves what the shortcut does not take (GET, HEAD).
    app.graphql_post = BodyLimit(graphql_asgi, max_bytes=settings.max_body_bytes)
    for middleware in reversed(cors_middleware(settings.cors_origins)):
        app.graphql_post = middleware.cls(app.graphql_post, *middleware.args, **middleware.kwargs)
    return app
