"""Live events: what each kind means and carries, and `publish`, which every change that
reports one calls inside its own transaction (so a rolled-back change reports nothing).

Kinds and their `data` (ids as strings; what the GraphQL event types resolve from):

Organization events (organizationEvents, for those who manage the organization):
  MEMBER_JOINED            {account_id, role}
  MEMBER_LEFT              {account_id, email}
  MEMBER_ROLE_CHANGED      {account_id, old_role, new_role}
  INVITATION_SENT          {invitation_id, email, role}
  INVITATION_ACCEPTED      {invitation_id, account_id}
  INVITATION_EXPIRED       {invitation_id, email}                 (scheduler)
  SEAT_ALLOCATED           {license_id, account_id}               (also the holder's viewer event)
  SEAT_REVOKED             {license_id, account_id}               (also the holder's viewer event)
  LICENSE_EXPIRING         {license_id, days_left, expires_at}    (scheduler: 30, 7 and 1 days before)
  LICENSE_EXPIRED          {license_id, expired_at}               (scheduler)
  LICENSE_QUANTITY_CHANGED {license_id, old_quantity, new_quantity}
  SUBSCRIPTION_RENEWED     {subscription_id, renews_at}
  SUBSCRIPTION_ENDING      {subscription_id, ends_at}
  INVOICE_CREATED          {invoice_id, amount_due, currency}
  INVOICE_PAID             {invoice_id, amount_paid, currency}
  INVOICE_PAYMENT_FAILED   {invoice_id, amount_due, currency, reason}
  CREDIT_POOL_LOW          {pool_id, balance, threshold}          (scheduler, once per crossing)
  CREDIT_REQUEST_MADE      {request_id, account_id}
  CREDIT_REQUEST_RESOLVED  {request_id, account_id, outcome}      (also the requester's viewer event)
  STAFF_ACTION_TAKEN       {action, target, scope, reason}        (actor: the staff account, if any)

Viewer events only (viewerEvents, for the account in `account_id`):
  CREDIT_ACCESS_CHANGED    {account_id}
  SESSION_ENDED            {session_id}
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from datasources.postgres import events
from resolvers import notifications

ORGANIZATION_KINDS = (
    "MEMBER_JOINED", "MEMBER_LEFT", "MEMBER_ROLE_CHANGED",
    "INVITATION_SENT", "INVITATION_ACCEPTED", "INVITATION_EXPIRED",
    "SEAT_ALLOCATED", "SEAT_REVOKED",
    "LICENSE_EXPIRING", "LICENSE_EXPIRED", "LICENSE_QUANTITY_CHANGED",
    "SUBSCRIPTION_RENEWED", "SUBSCRIPTION_ENDING",
    "INVOICE_CREATED", "INVOICE_PAID", "INVOICE_PAYMENT_FAILED",
    "CREDIT_POOL_LOW", "CREDIT_REQUEST_MADE", "CREDIT_REQUEST_RESOLVED",
    "STAFF_ACTION_TAKEN",
)
VIEWER_KINDS = ("SEAT_ALLOCATED", "SEAT_REVOKED", "CREDIT_ACCESS_CHANGED", "CREDIT_REQUEST_RESOLVED",
                "SESSION_ENDED")
KINDS = frozenset(ORGANIZATION_KINDS) | frozenset(VIEWER_KINDS)


async def publish(conn: asyncpg.Connection, kind: str, *, organization_id: UUID | None = None,
                  account_id: UUID | None = None, actor_account_id: UUID | None = None,
                  data: dict[str, Any] | None = None, dedupe_key: str | None = None) -> events.Event | None:
    """Records the event in the caller's transaction and queues the mail it calls for.

    Call it after the change's last write: from here to the commit, other event writers wait
    (the log hands out ids in commit order). None when `dedupe_key` was reported before.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    event = await events.emit(conn, type=kind, organization_id=organization_id, account_id=account_id,
                              actor_account_id=actor_account_id, data=data, dedupe_key=dedupe_key)
    if event is not None:
        await notifications.mail_for(conn, event)
    return event
