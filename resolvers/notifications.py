"""Mail for events a person would want to hear about, as each account chose."""

from __future__ import annotations

import asyncpg

from datasources.postgres.events import Event


async def mail_for(conn: asyncpg.Connection, event: Event) -> None:
    """Queues, in the event's transaction, the mail its recipients chose to receive."""
    # Preferences and the mail itself come with the notifications work (issue 17).
    return None
