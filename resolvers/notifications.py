"""Mail for events a person would want to hear about, as each account chose.

Which kinds mail (MAIL_KINDS), to whom, and by default:
- organization kinds go to the organization's OWNER and ADMINs, on by default for them; a
  MEMBER gets none of them;
- CREDIT_REQUEST_RESOLVED goes to the member who asked, on by default for every role.
Each account may turn any kind it can receive off or on (`updateNotificationPreferences`); only
choices that differ from the role's default are stored, so a member promoted to ADMIN starts
receiving the managers' mail unless they turned it off.

`mail_for` runs inside the transaction that records the event (resolvers/events.publish): the
mail is queued in the outbox only if the change commits. It writes to the outbox itself rather
than through resolvers/writes.send_mail: writes reports events, so it imports this module.
Reading and changing the choices is resolvers/notification_preferences.py.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from datasources.postgres import notifications as data
from datasources.postgres import outbox
from datasources.postgres.events import Event
from resolvers.invoice_pdf import money

MANAGER_ROLES = ("OWNER", "ADMIN")
ALL_ROLES = ("OWNER", "ADMIN", "MEMBER")
# The kinds that mail, with what the mail says; the GraphQL enum NotificationKind is made from it.
MAIL_KINDS: dict[str, str] = {
    "LICENSE_EXPIRING": "A license of the organization expires in 30, 7 or 1 days.",
    "LICENSE_EXPIRED": "A license of the organization has expired.",
    "INVOICE_PAYMENT_FAILED": "A payment of one of the organization's invoices failed.",
    "LICENSE_QUANTITY_CHANGED": "Seats were added to a license (bought, or applied at renewal).",
    "SEATS_DECREASE_SCHEDULED": "A subscription will have fewer seats from the end of its period.",
    "SUBSCRIPTION_RENEWED": "A subscription renewed, or will renew again.",
    "SUBSCRIPTION_PAST_DUE": "A subscription's renewal payment failed; its licenses work until the grace ends.",
    "LICENSE_SUSPENDED": "A license's payment grace ended unpaid; its seats stopped working.",
    "CREDIT_POOL_LOW": "The organization's cloud credits fell to the alert threshold its admins set.",
    "INVITATION_ACCEPTED": "Someone accepted an invitation and joined the organization.",
    "CREDIT_REQUEST_RESOLVED": "Your own request for more cloud credits was answered.",
}
OWN_KINDS = frozenset({"CREDIT_REQUEST_RESOLVED"})  # to the account the event is about
PREFERENCES_PATH = "/account/notifications"  # the portal's page of these choices (Account menu)


def on_by_default_for(kind: str) -> tuple[str, ...]:
    """The roles that receive `kind` unless they turned it off."""
    return ALL_ROLES if kind in OWN_KINDS else MANAGER_ROLES


def receives(kind: str, role: str | None) -> bool:
    """Whether an account of `role` (None: in no organization) is ever mailed about `kind`."""
    return role is not None and (kind in OWN_KINDS or role in MANAGER_ROLES)


async def mail_for(conn: asyncpg.Connection, event: Event) -> None:
    """Queues, in the event's transaction, the mail its recipients chose to receive."""
    if event.type not in MAIL_KINDS:
        return
    facts = event.data
    own = event.type in OWN_KINDS
    found = await data.recipients(
        # The account an own kind is for: the event's, or the one its data names (the requester).
        conn, event.type, organization_id=event.organization_id,
        account_id=event.account_id or _uuid(facts.get("account_id")), to_managers=not own,
        on_by_default_for=on_by_default_for(event.type), license_id=_uuid(facts.get("license_id")),
        subject_account_id=_uuid(facts.get("account_id")), request_id=_uuid(facts.get("request_id")))
    for recipient in found:
        subject, text, path = _compose(event, recipient)
        link = (f"{recipient.portal_url}{path}" if recipient.portal_url else "the portal")
        settings = (f"{recipient.portal_url}{PREFERENCES_PATH}" if recipient.portal_url
                    else "the portal's Account menu")
        await outbox.enqueue(conn, to=recipient.email, subject=" ".join(subject.split()),
                             body=f"Hello {recipient.name},\n\n{text}\n\nSee it in {link}\n\n"
                                  f"You get this mail because of your notification preferences; change them in "
                                  f"{settings}\n")


def _compose(event: Event, to: data.Recipient) -> tuple[str, str, str]:
    """The subject, the message and the portal path it points to."""
    facts, organization = event.data, to.organization_name
    product = to.product_name or "A license"
    if event.type == "LICENSE_EXPIRING":
        days = int(facts.get("days_left") or 0)
        when = f"{days} day{'s' if days != 1 else ''}"
        return (f"{product} at {organization} expires in {when}",
                f"The {product} license of {organization} expires on {_day(facts.get('expires_at'))}, in {when}. "
                "Renew it before then to keep its seats working.", "/licensing")
    if event.type == "LICENSE_EXPIRED":
        return (f"{product} at {organization} has expired",
                f"The {product} license of {organization} expired on {_day(facts.get('expired_at'))}. Its seats "
                "no longer work; renew it to use them again.", "/licensing")
    if event.type == "INVOICE_PAYMENT_FAILED":
        amount = facts.get("amount_due")
        what = (f" of {money(int(amount), str(facts.get('currency', '')).upper())}"
                if isinstance(amount, int) else "")
        reason = str(facts.get("reason") or "").replace("_", " ").lower()
        why = f" ({reason})" if reason else ""
        return (f"A payment{what} for {organization} failed",
                f"The payment{what} of an invoice of {organization} failed{why}. Pay it with another card, or add "
                "one, in the Billing menu.", "/billing")
    if event.type == "LICENSE_QUANTITY_CHANGED":
        old, new = int(facts.get("old_quantity") or 0), int(facts.get("new_quantity") or 0)
        return (f"{product} at {organization} now has {new} seats",
                f"The {product} license of {organization} went from {old} to {new} seats. Any charge for it is in "
                "the Billing menu.", "/licensing")
    if event.type == "SEATS_DECREASE_SCHEDULED":
        seats = int(facts.get("seats") or 0)
        if facts.get("canceled"):
            return (f"{product} at {organization} keeps its seats",
                    f"The decrease of the {product} subscription of {organization} was canceled: it keeps its "
                    "seats.", "/licensing")
        return (f"{product} at {organization} goes down to {seats} seats",
                f"The {product} subscription of {organization} goes down to {seats} seats on "
                f"{_day(facts.get('effective_at'))}. Until then no more than {seats} seats can be allocated.",
                "/licensing")
    if event.type == "SUBSCRIPTION_RENEWED":
        return (f"{product} at {organization} renews",
                f"The {product} subscription of {organization} runs until {_day(facts.get('renews_at'))} and then "
                "renews.", "/licensing")
    if event.type == "SUBSCRIPTION_PAST_DUE":
        return (f"Renewal payment for {product} at {organization} failed",
                f"The renewal payment of the {product} subscription of {organization} failed. Its seats keep "
                f"working until {_day(facts.get('grace_until'))}; pay the open invoice, or add a card, in the "
                "Billing menu before then, or the license is suspended.", "/billing")
    if event.type == "LICENSE_SUSPENDED":
        return (f"{product} at {organization} is suspended",
                f"The {product} license of {organization} is suspended: its renewal was not paid within the grace "
                "period. Its seats work again as soon as the open invoice is paid in the Billing menu.", "/billing")
    if event.type == "CREDIT_POOL_LOW":
        balance, threshold = int(facts.get("balance") or 0), int(facts.get("threshold") or 0)
        return (f"Cloud credits at {organization} are running low: {balance:,} left",
                f"{organization} has {balance:,} cloud credits left, at or under the alert threshold of "
                f"{threshold:,}. Buy more, or change the threshold, in the Organization menu under Cloud "
                "credits.", "/organization")
    if event.type == "INVITATION_ACCEPTED":
        who = f"{to.subject_name} ({to.subject_email})" if to.subject_email else "Someone you invited"
        return (f"{who} joined {organization}", f"{who} accepted the invitation and joined {organization}.",
                "/organization")
    # CREDIT_REQUEST_RESOLVED
    outcome = str(facts.get("outcome") or "answered").lower()
    amount = f" for {to.request_amount:,} cloud credits" if to.request_amount is not None else ""
    access = ""
    if facts.get("mode") == "QUOTA":
        access = f" Your credit access is now a quota of {int(facts.get('quota') or 0):,} credits in total."
    elif facts.get("mode"):
        access = f" Your credit access is now {facts['mode']}."
    note = f"\n\nTheir note: {facts['note']}" if facts.get("note") else ""
    return (f"Your request{amount} was {outcome}",
            f"Your request{amount} at {organization} was {outcome} by the organization's admins.{access}{note}",
            "/organization")


def _day(moment: object) -> str:
    """An ISO timestamp from the event's data as a day (UTC)."""
    try:
        return datetime.fromisoformat(str(moment)).strftime("%Y-%m-%d (UTC)")
    except ValueError:
        return "its expiry date"


def _uuid(value: object) -> UUID | None:
    try:
        return UUID(str(value)) if value is not None else None
    except ValueError:
        return None
