"""Delivers the mail outbox: into .eml files under the data directory, or over SMTP.

Mutations only queue mail, in their own transaction; this sender runs beside the server
and delivers what has committed. `FOR UPDATE SKIP LOCKED` lets several gateway processes
run it at once without sending a mail twice.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlparse

from datasources.errors import DatabaseUnavailable
from datasources.postgres import outbox
from datasources.postgres.database import Database

log = logging.getLogger("gateway.mailer")
SENDER = "Account Gateway <no-reply@account-gateway.example>"
POLL_SECONDS = 2.0
BATCH = 50  # mails claimed (and locked) by one round


def compose(mail: outbox.OutgoingMail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(idstring=str(mail.id), domain="account-gateway.example")
    message.set_content(mail.body)
    return message


class Mailer:
    def __init__(self, db: Database, mail_dir: Path, smtp_url: str | None) -> None:
        self.db = db
        self.mail_dir = mail_dir
        self.smtp_url = smtp_url

    async def run(self) -> None:
        while True:
            full = False
            try:
                # A whole batch sent: there may be more waiting (a bulk invitation, the first
                # scheduler pass), so the next round starts at once instead of after the pause,
                # which held a backlog to 25 mails a second. A failure pauses as before.
                full = await self.deliver_once() == BATCH
            except DatabaseUnavailable:  # restarting: one line, and try again next round
                log.warning("mail delivery waits for the database")
            except Exception:
                log.exception("mail delivery round failed")
            if not full:
                await asyncio.sleep(POLL_SECONDS)

    async def deliver_once(self) -> int:
        """Delivers a batch of what is queued (at most `BATCH`); returns how many were sent."""
        sent = 0
        async with self.db.transaction() as conn:
            for mail in await outbox.claim_unsent(conn, BATCH):
                try:
                    await asyncio.to_thread(self._deliver, compose(mail))
                except (OSError, smtplib.SMTPException):
                    log.warning("could not deliver mail %s to %s; will retry", mail.id, mail.to_address,
                                exc_info=True)
                    await outbox.mark(conn, mail.id, sent=False)
                    continue
                await outbox.mark(conn, mail.id, sent=True)
                sent += 1
        return sent

    def _deliver(self, message: EmailMessage) -> None:
        if self.smtp_url:
            _send_smtp(self.smtp_url, message)
            return
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        msg_id = message["Message-ID"].strip("<>").split("@")[0]
        (self.mail_dir / f"{msg_id}.eml").write_bytes(bytes(message))


def _send_smtp(url: str, message: EmailMessage) -> None:
    """`smtp://user:password@host:port` (STARTTLS when offered) or `smtps://…` (TLS from the start)."""
    parts = urlparse(url)
    secure = parts.scheme == "smtps"
    client_class = smtplib.SMTP_SSL if secure else smtplib.SMTP
    with client_class(parts.hostname or "localhost", parts.port or (465 if secure else 25), timeout=10) as smtp:
        if not secure and smtp.has_extn("starttls"):
            smtp.starttls()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)
