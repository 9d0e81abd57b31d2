"""The mail outbox: written in the transaction of the change, delivered afterwards."""

from __future__ import annotations

from dataclasses import dataclass

from datasources.postgres.database import Executor


@dataclass(frozen=True)
class OutgoingMail:
    id: int
    to_address: str
    subject: str
    body: str


async def enqueue(db: Executor, *, to: str, subject: str, body: str) -> None:
    await db.execute("INSERT INTO mail_outbox (to_address, subject, body) VALUES ($1, $2, $3)", to, subject, body)


async def claim_unsent(db: Executor, limit: int = 50) -> list[OutgoingMail]:
    """Inside a transaction: locks a batch no other sender process is delivering."""
    rows = await db.fetch(
        "SELECT id, to_address, subject, body FROM mail_outbox WHERE sent_at IS NULL AND attempts < 10"
        " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit)
    return [OutgoingMail(**r) for r in rows]


async def mark(db: Executor, mail_id: int, *, sent: bool) -> None:
    await db.execute("UPDATE mail_outbox SET attempts = attempts + 1,"
                     " sent_at = CASE WHEN $2 THEN now() ELSE NULL END WHERE id = $1", mail_id, sent)


async def sent_to(db: Executor, address: str) -> list[OutgoingMail]:
    rows = await db.fetch("SELECT id, to_address, subject, body FROM mail_outbox WHERE to_address = $1"
                          " ORDER BY id", address)
    return [OutgoingMail(**r) for r in rows]
