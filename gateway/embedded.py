"""The one-command defaults: PostgreSQL and the payment provider, started when not configured."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from datasources.payments.emulator import Emulator
from datasources.postgres.embedded import EmbeddedPostgres
from gateway.settings import Settings

log = logging.getLogger("gateway.embedded")


@contextlib.asynccontextmanager
async def embedded_services(settings: Settings, *, payments: bool = True) -> AsyncIterator[Settings]:
    """Yields settings pointing at what runs; stops what it started on exit, whatever happened."""
    with contextlib.ExitStack() as stack:
        if not settings.database_url:
            postgres = stack.enter_context(EmbeddedPostgres(settings.data_dir / "postgres"))
            settings = settings.with_(database_url=await postgres.ensure_database())
            log.info("embedded PostgreSQL running, data in %s", postgres.pgdata)
        if payments and not settings.stripe_api_key and not settings.stripe_api_base:
            emulator = stack.enter_context(Emulator.start(settings.data_dir / "localstripe.pickle"))
            settings = settings.with_(stripe_api_base=emulator.api_base)
            log.info("local payment provider (localstripe) at %s", emulator.api_base)
        yield settings
