"""The outbox is delivered once, after the change commits: here into .eml files."""

from __future__ import annotations

import email

from datasources.postgres.database import Database
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
