"""Live events: what each kind means and carries, and `publish`, which every change that
reports one calls inside its own transaction (so a rolled-back change reports nothing).

Kinds and their `data` (ids as strings; what the GraphQL event types resolve from), and what
reports them. Every event of a change carries the change's organization in `organization_id`
and the acting account in `actor_account_id` (None for a service, the payment provider's
webhooks and the scheduler); a viewer event also names its account in `account_id`. One event
per object changed; a refused change, a replayed idempotency key, or a request that changes
nothing reports none.

Organization events (organizationEvents, for those who manage the organization):
  MEMBER_JOINED            {account_id, role}                     acceptInvitation
  MEMBER_LEFT              {account_id, email, role}              removeMember (a member leaving too)
  MEMBER_ROLE_CHANGED      {account_id, old_role, new_role}       changeMemberRole
  INVITATION_SENT          {invitation_id, email, role, resent}   inviteMembers (one per invitation),
                                                                  resendInvitation (resent: true)
  INVITATION_ACCEPTED      {invitation_id, account_id}            acceptInvitation (actor: the joiner)
  INVITATION_EXPIRED       {invitation_id, email}                 (scheduler)
  SEAT_ALLOCATED           {license_id, account_id}               allocateLicense (one per holder;
                                                                  also the holder's viewer event)
  SEAT_REVOKED             {license_id, account_id}               revokeLicense, removeMember with
                                                                  revokeSeats (idem)
  LICENSE_EXPIRING         {license_id, days_left, expires_at}    (scheduler: 30, 7 and 1 days before)
  LICENSE_EXPIRED          {license_id, expired_at}               (scheduler)
  LICENSE_QUANTITY_CHANGED {license_id, old_quantity, new_quantity}   changeSeatQuantity or
                                                                  adjustLicenseQuantity adding seats,
                                                                  a decrease applied at renewal (provider
                                                                  event customer.subscription.updated)
  SUBSCRIPTION_RENEWED     {subscription_id, renews_at[, license_id]}  auto-renew switched back on
                                                                  (renews_at: the period's end);
                                                                  extendLicense of a subscription's
                                                                  license (license_id; renews_at:
                                                                  the license's new expiry)
  SUBSCRIPTION_ENDING      {subscription_id, ends_at}             auto-renew switched off
  SEATS_DECREASE_SCHEDULED {subscription_id, license_id, seats, effective_at, canceled}
                                                                  changeSeatQuantity to fewer seats (or
                                                                  back to the current count: canceled
                                                                  true), adjustLicenseQuantity likewise
  SUBSCRIPTION_PAST_DUE    {subscription_id, license_id, invoice_id, grace_until}   provider event
                                                                  invoice.payment_failed of a renewal
                                                                  (license_id: its first license)
  SUBSCRIPTION_RESTORED    {subscription_id, license_id, invoice_id}   a PAST_DUE subscription's
                                                                  invoice paid (payInvoice,
                                                                  payOutstandingBalance, invoice.paid)
  LICENSE_SUSPENDED        {license_id, suspended_at}             (scheduler: a payment grace ended)
  INVOICE_CREATED          {invoice_id, amount_due, currency}     provider event invoice.created
  INVOICE_PAID             {invoice_id, amount_paid, currency}    payInvoice, payOutstandingBalance (one
                                                                  per invoice paid), provider events
                                                                  invoice.paid and payment_intent.
                                                                  succeeded: once per invoice (dedupe)
  INVOICE_PAYMENT_FAILED   {invoice_id, amount_due, currency, reason}   a declined payInvoice or
                                                                  payOutstandingBalance (reason: the
                                                                  PaymentDeclineReason), provider event
                                                                  payment_intent.payment_failed
  CREDIT_POOL_LOW          {pool_id, balance, threshold}          (scheduler, once per crossing)
  CREDIT_REQUEST_MADE      {request_id, account_id, amount}       requestCredits
  CREDIT_REQUEST_RESOLVED  {request_id, account_id, outcome,      approveCreditRequest (outcome APPROVED,
                            note, mode, quota}                    the access given) or declineCreditRequest
                                                                  (DECLINED, mode and quota null); also the
                                                                  requester's viewer event
  STAFF_ACTION_TAKEN       {action, target, scope, reason}        every change made on a customer's
                                                                  behalf (resolvers.writes.OnBehalf:
                                                                  the audit entry's action, target,
                                                                  scope and reason), besides its own
                                                                  event; actor: the staff account

Viewer events only (viewerEvents, for the account in `account_id`):
  CREDIT_ACCESS_CHANGED    {account_id, mode, quota}              setCreditAccess (one per member
                                                                  whose access changed; organization_id
                                                                  set too)
  SESSION_ENDED            {session_id, reason}                   a session ended other than by expiry;
                                                                  reason: SIGNED_OUT, SIGNED_OUT_EVERYWHERE,
                                                                  REFRESH_TOKEN_REUSED, PASSWORD_CHANGED
                                                                  (every other session), EMAIL_CHANGED
                                                                  (changeAccountEmail ends them all)

Amounts are in minor units; an INVOICE_* amount or currency is null when the gateway could not
read it."""

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
    "SUBSCRIPTION_RENEWED", "SUBSCRIPTION_ENDING", "SEATS_DECREASE_SCHEDULED", "SUBSCRIPTION_PAST_DUE",
    "SUBSCRIPTION_RESTORED", "LICENSE_SUSPENDED",
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
