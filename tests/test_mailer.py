"""The outbox is delivered once, after the change commits: here into .eml files."""

from __future__ import annotations

import asyncio
import email

from datasources.postgres.database import Database
from gateway import mailer as mailer_module
from gateway.mailer import Mailer


async def test_queued_mail_is_written_as_eml_once(database_url, db, tmp_path):
    await db.execute("INSERT INTO mail_outbox (to_address, subject, body) VALUES "
                     "('member1@northwind.example', 'Your credit access changed', 'Quota: 500 credits.')")
    gateway_db = await Database.connect(database_url, max_size=2)
    try:
        mailer = Mailer(gateway_db, tmp_path / "mail", smtp_url=None)
        assert await mailer.deliver_once() == 1
        assert await mailer.deliver_once() == 0  # nothing sent twice
    finally:
        await gateway_db.close()
    [path] = (tmp_path / "mail").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes())
    assert message["To"] == "member1@northwind.example"
    assert message["Subject"] == "Your credit access changed"
    assert "Quota: 500 credits." in message.get_payload()
    assert await db.fetchval("SELECT sent_at IS NOT NULL FROM mail_outbox") is True


async def test_undeliverable_mail_is_kept_for_a_retry(database_url, db, tmp_path):
    await db.execute("INSERT INTO mail_outbox (to_address, subject, body) VALUES ('a@b.example', 's', 'b')")
    gateway_db = await Database.connect(database_url, max_size=2)
    try:
        # Nothing listens on port 9: the SMTP connection fails.
        assert await Mailer(gateway_db, tmp_path, smtp_url="smtp://127.0.0.1:9").deliver_once() == 0
    finally:
        await gateway_db.close()
    row = await db.fetchrow("SELECT sent_at, attempts FROM mail_outbox")
    assert row["sent_at"] is None and row["attempts"] == 1


async def queue(db, n: int, to: str = "member{}@northwind.example") -> None:
    await db.executemany("INSERT INTO mail_outbox (to_address, subject, body) VALUES ($1, 'Backlog', 'b')",
                         [(to.format(i),) for i in range(n)])


async def running(mailer: Mailer, until, seconds: float, then: float = 0.0) -> None:
    """Runs the sender as `serve` does until `until()` holds or `seconds` pass, and `then`
    seconds more."""
    task = asyncio.create_task(mailer.run())
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while not await until() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(then)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_backlog_is_delivered_without_pausing_between_full_batches(database_url, db, tmp_path, monkeypatch):
    # A pause longer than the test: each pause between batches would hold the rest back.
    monkeypatch.setattr(mailer_module, "POLL_SECONDS", 60.0)
    await queue(db, 2 * mailer_module.BATCH + 20)
    gateway_db = await Database.connect(database_url, max_size=2)
    try:
        async def all_sent() -> bool:
            return await db.fetchval("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL") == 0
        await running(Mailer(gateway_db, tmp_path / "mail", smtp_url=None), all_sent, 20)
    finally:
        await gateway_db.close()
    assert await db.fetchval("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL") == 0
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 2 * mailer_module.BATCH + 20


async def test_an_unreachable_server_still_pauses_between_rounds(database_url, db, tmp_path, monkeypatch):
    monkeypatch.setattr(mailer_module, "POLL_SECONDS", 60.0)
    await queue(db, mailer_module.BATCH)
    gateway_db = await Database.connect(database_url, max_size=2)
    try:
        async def all_tried() -> bool:
            return await db.fetchval("SELECT min(attempts) FROM mail_outbox") >= 1
        # A sender that did not pause would be retrying within the second after.
        await running(Mailer(gateway_db, tmp_path, smtp_url="smtp://127.0.0.1:9"), all_tried, 20, then=1.0)
    finally:
        await gateway_db.close()
    assert await db.fetchval("SELECT max(attempts) FROM mail_outbox") == 1
    assert await db.fetchval("SELECT count(*) FROM mail_outbox WHERE sent_at IS NOT NULL") == 0
