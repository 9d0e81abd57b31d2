"""The one-command defaults: PostgreSQL and the payment provider, started when not configured.

Several commands may use one data directory at once (`serve`, and an admin command such as
`staff grant` or `seed` while it runs). Each uses what is already running there and stops
only what it started itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import fasteners

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
            if postgres.started:
                log.info("embedded PostgreSQL running, data in %s", postgres.pgdata)
        if payments and not settings.stripe_api_key and not settings.stripe_api_base:
            settings = settings.with_(stripe_api_base=_local_provider(settings, stack))
        yield settings


def _local_provider(settings: Settings, stack: contextlib.ExitStack) -> str:
    """The emulator running on this data directory's store, or one started (and announced) now."""
    store = settings.data_dir / "localstripe.pickle"
    with fasteners.InterProcessLock(settings.data_dir / "localstripe.lock"):
        running = Emulator.running_for(store)
        if running:
            log.info("using the local payment provider already running at %s", running)
            return running
        emulator = stack.enter_context(Emulator.start(store))
        emulator.announce()
    log.info("local payment provider (localstripe) at %s", emulator.api_base)
    return emulator.api_base
