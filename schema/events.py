"""Live events: the subscription root, the event interfaces, and one object type per kind.

Each event carries the objects it changed as the graph's own types, resolved through the
event's fresh loaders with the queries' visibility, so a client refreshes its cache from the
event itself; the change's figures (old and new role, days left, ...) come from the log's
`data`. The kinds and their `data` are resolvers/events.py's; the enums are made from them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry import relay

from auth.access import who
from datasources.errors import NotFound
from datasources.postgres.events import Event
from planning.ids import INVITED_PREFIX, MEMBER_PREFIX
from resolvers import live
from resolvers.events import ORGANIZATION_KINDS, VIEWER_KINDS
from schema.account import Account, OrganizationRole
from schema.billing import Invoice
from schema.common import Info, node_uuid, parse_uuid
from schema.credits import CloudCreditPool, CloudCreditRequest
from schema.license import License
from schema.money import Money
from schema.organization import Invitation, Member
from schema.references import visible_account_node
from schema.subscription import Subscription

# What each kind means, for the enums' values and the event types' descriptions.
MEANINGS = {
    "MEMBER_JOINED": "Someone joined the organization (accepted an invitation).",
    "MEMBER_LEFT": "A member left or was removed from the organization.",
    "MEMBER_ROLE_CHANGED": "A member's role changed.",
    "INVITATION_SENT": "An invitation was sent (or sent again).",
    "INVITATION_ACCEPTED": "An invitation was accepted.",
    "INVITATION_EXPIRED": "An invitation expired unaccepted.",
    "SEAT_ALLOCATED": "A seat of a license was given to someone.",
    "SEAT_REVOKED": "A seat of a license was taken back.",
    "LICENSE_EXPIRING": "A license expires soon (reported 30, 7 and 1 days before).",
    "LICENSE_EXPIRED": "A license expired.",
    "LICENSE_QUANTITY_CHANGED": "A license's number of seats changed.",
    "SUBSCRIPTION_RENEWED": "A subscription renewed.",
    "SUBSCRIPTION_ENDING": "A subscription will end at its period's end (auto-renew off or canceled).",
    "SEATS_DECREASE_SCHEDULED": "A subscription will have fewer seats from the end of its period (or a decrease "
                                "scheduled before was canceled).",
    "SUBSCRIPTION_PAST_DUE": "A subscription's renewal payment failed: its licenses work until the grace ends.",
    "SUBSCRIPTION_RESTORED": "A past-due subscription was paid: its licenses work again.",
    "LICENSE_SUSPENDED": "A license's payment grace ended unpaid: its seats no longer work until an invoice is paid.",
    "INVOICE_CREATED": "An invoice was issued.",
    "INVOICE_PAID": "An invoice was paid.",
    "INVOICE_PAYMENT_FAILED": "A payment of an invoice failed.",
    "CREDIT_POOL_LOW": "The cloud-credit pool fell below the threshold the admins set.",
    "CREDIT_REQUEST_MADE": "A member asked for more cloud credits.",
    "CREDIT_REQUEST_RESOLVED": "A request for cloud credits was granted or declined.",
    "STAFF_ACTION_TAKEN": "The vendor's staff changed something of the organization, with a reason.",
    "CREDIT_ACCESS_CHANGED": "Your cloud-credit access changed.",
    "SESSION_ENDED": "One of your sessions ended (signed out, here or elsewhere).",
}
assert set(MEANINGS) == set(ORGANIZATION_KINDS) | set(VIEWER_KINDS), "every kind needs its meaning"


def _kinds(name: str, kinds: tuple[str, ...], description: str) -> Any:
    values = {kind: strawberry.enum_value(kind, description=MEANINGS[kind]) for kind in kinds}
    return strawberry.enum(Enum(name, values), description=description)  # type: ignore[misc]


OrganizationEventType = _kinds("OrganizationEventType", ORGANIZATION_KINDS,
                               "The kinds of organization events, for `organizationEvents(types:)`.")
ViewerEventType = _kinds("ViewerEventType", VIEWER_KINDS, "The kinds of the signed-in account's own events.")


def _data(event: Event, key: str) -> Any:
    return event.data.get(key)


def _int(event: Event, key: str) -> int | None:
    raw = _data(event, key)
    return int(raw) if raw is not None else None


async def _node(info: Info, cls: type[relay.Node], raw_id: Any) -> Any:
    """The object if it exists and the viewer may see it now; null otherwise, as `node(id:)`."""
    if raw_id is None:
        return None
    [found] = await cls.resolve_nodes(info=info, node_ids=[str(raw_id)])
    return found


def _uuid(raw: Any) -> UUID | None:
    return parse_uuid(str(raw)) if raw is not None else None


# The interfaces --------------------------------------------------------------------------------


@strawberry.interface(description="What every live event has: its place in the log and when it happened.")
class LiveEvent:
    event: strawberry.Private[Event]

    @strawberry.field(description="The event's id; ids grow in the order the changes were committed.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.event.id))

    @strawberry.field(description="When the change was committed.")
    def occurred_at(self) -> datetime:
        return self.event.occurred_at

    @strawberry.field(description="Pass it as `after` to resume after this event (within the log's window, "
                                  "EVENT_RETENTION_DAYS): the events missed are delivered first, none twice.")
    def cursor(self) -> str:
        return live.cursor_of(self.event)


@strawberry.interface(description="Something that changed in an organization, for those who may read it.")
class OrganizationEvent(LiveEvent):
    @strawberry.field(description="The kind of event.")
    def type(self) -> OrganizationEventType:  # type: ignore[valid-type]
        return OrganizationEventType[self.event.type]  # type: ignore[misc]

    @strawberry.field(description="Who made the change, when it was a person the viewer may see; null for "
                                  "the scheduler, the payment provider or a service.")
    async def actor(self, info: Info) -> Account | None:
        return await visible_account_node(info, self.event.actor_account_id)


@strawberry.interface(description="Something that happened to the signed-in account itself.")
class ViewerEvent(LiveEvent):
    @strawberry.field(description="The kind of event.")
    def type(self) -> ViewerEventType:  # type: ignore[valid-type]
        return ViewerEventType[self.event.type]  # type: ignore[misc]


# What several kinds carry ----------------------------------------------------------------------------


@strawberry.type(description="A change about a person (never in the schema on its own).")
class _AboutAccount:
    event: strawberry.Private[Event]

    @strawberry.field(description="The person's account; null when the viewer may no longer see it.")
    async def account(self, info: Info) -> Account | None:
        return await visible_account_node(info, _uuid(_data(self.event, "account_id")))


@strawberry.type(description="A change about a member (never in the schema on its own).")
class _AboutMember(_AboutAccount):
    @strawberry.field(description="The member as the member list shows them; null once they left.")
    async def member(self, info: Info) -> Member | None:
        account_id = _data(self.event, "account_id")
        return await _node(info, Member, f"{MEMBER_PREFIX}{account_id}" if account_id else None)


@strawberry.type(description="A change about an invitation (never in the schema on its own).")
class _AboutInvitation:
    event: strawberry.Private[Event]

    @strawberry.field(description="The invitation.")
    async def invitation(self, info: Info) -> Invitation | None:
        return await _node(info, Invitation, _data(self.event, "invitation_id"))


@strawberry.type(description="A change about a license (never in the schema on its own).")
class _AboutLicense:
    event: strawberry.Private[Event]

    @strawberry.field(description="The license, as it is now; null when the viewer may no longer see it.")
    async def license(self, info: Info) -> License | None:
        return await _node(info, License, _data(self.event, "license_id"))


@strawberry.type(description="A seat given or taken back (never in the schema on its own).")
class _SeatChange(_AboutLicense, _AboutAccount):
    pass


@strawberry.type(description="A change about a subscription (never in the schema on its own).")
class _AboutSubscription:
    event: strawberry.Private[Event]

    @strawberry.field(description="The subscription, as it is now.")
    async def subscription(self, info: Info) -> Subscription | None:
        return await _node(info, Subscription, _data(self.event, "subscription_id"))


@strawberry.type(description="A change about an invoice (never in the schema on its own).")
class _AboutInvoice:
    event: strawberry.Private[Event]

    @strawberry.field(description="The invoice, as the payment provider has it now; null with PROVIDER_UNAVAILABLE "
                                  "when the provider does not answer in time.")
    async def invoice(self, info: Info) -> Invoice | None:
        return await _node(info, Invoice, _data(self.event, "invoice_id"))

    def _money(self, key: str) -> Money | None:
        amount, currency = _data(self.event, key), _data(self.event, "currency")
        return Money(amount=int(amount), currency=str(currency).upper()) if amount is not None and currency else None


@strawberry.type(description="A credit request made or resolved (never in the schema on its own).")
class _AboutCreditRequest(_AboutAccount):
    @strawberry.field(description="The request.")
    async def request(self, info: Info) -> CloudCreditRequest | None:
        return await _node(info, CloudCreditRequest, _data(self.event, "request_id"))


@strawberry.type(description="A resolved credit request (never in the schema on its own).")
class _CreditRequestResolved(_AboutCreditRequest):
    @strawberry.field(description="How it was resolved, APPROVED or DECLINED (`CloudCreditRequestStatus`).")
    def outcome(self) -> str | None:
        return _data(self.event, "outcome")


def _role(value: Any) -> OrganizationRole | None:
    return OrganizationRole(value) if value in OrganizationRole.__members__ else None


# Organization events, one type per kind ------------------------------------------------------------------

@strawberry.type(description=MEANINGS["MEMBER_JOINED"])
class MemberJoinedEvent(_AboutMember, OrganizationEvent):
    @strawberry.field(description="The role they joined with.")
    def role(self) -> OrganizationRole | None:
        return _role(_data(self.event, "role"))


@strawberry.type(description=MEANINGS["MEMBER_LEFT"])
class MemberLeftEvent(_AboutAccount, OrganizationEvent):
    @strawberry.field(description="Their email when they left.")
    def email(self) -> str | None:
        return _data(self.event, "email")


@strawberry.type(description=MEANINGS["MEMBER_ROLE_CHANGED"])
class MemberRoleChangedEvent(_AboutMember, OrganizationEvent):
    @strawberry.field(description="The role before.")
    def old_role(self) -> OrganizationRole | None:
        return _role(_data(self.event, "old_role"))

    @strawberry.field(description="The role now.")
    def new_role(self) -> OrganizationRole | None:
        return _role(_data(self.event, "new_role"))


@strawberry.type(description=MEANINGS["INVITATION_SENT"])
class InvitationSentEvent(_AboutInvitation, OrganizationEvent):
    @strawberry.field(description="Who was invited.")
    def email(self) -> str | None:
        return _data(self.event, "email")

    @strawberry.field(description="The role they are invited with.")
    def role(self) -> OrganizationRole | None:
        return _role(_data(self.event, "role"))


@strawberry.type(description=MEANINGS["INVITATION_ACCEPTED"])
class InvitationAcceptedEvent(_AboutInvitation, _AboutMember, OrganizationEvent):
    pass


@strawberry.type(description=MEANINGS["INVITATION_EXPIRED"])
class InvitationExpiredEvent(_AboutInvitation, OrganizationEvent):
    @strawberry.field(description="Who had been invited.")
    def email(self) -> str | None:
        return _data(self.event, "email")


@strawberry.type(description=MEANINGS["SEAT_ALLOCATED"])
class SeatAllocatedEvent(_SeatChange, OrganizationEvent):
    pass


@strawberry.type(description=MEANINGS["SEAT_REVOKED"])
class SeatRevokedEvent(_SeatChange, OrganizationEvent):
    pass


@strawberry.type(description=MEANINGS["LICENSE_EXPIRING"])
class LicenseExpiringEvent(_AboutLicense, OrganizationEvent):
    @strawberry.field(description="Days left until it expires when this was reported: 30, 7 or 1.")
    def days_left(self) -> int | None:
        return _int(self.event, "days_left")

    @strawberry.field(description="When it expires.")
    def expires_at(self) -> datetime | None:
        return _moment(self.event, "expires_at")


@strawberry.type(description=MEANINGS["LICENSE_EXPIRED"])
class LicenseExpiredEvent(_AboutLicense, OrganizationEvent):
    @strawberry.field(description="When it expired.")
    def expired_at(self) -> datetime | None:
        return _moment(self.event, "expired_at")


@strawberry.type(description=MEANINGS["LICENSE_QUANTITY_CHANGED"])
class LicenseQuantityChangedEvent(_AboutLicense, OrganizationEvent):
    @strawberry.field(description="Seats before.")
    def old_quantity(self) -> int | None:
        return _int(self.event, "old_quantity")

    @strawberry.field(description="Seats now.")
    def new_quantity(self) -> int | None:
        return _int(self.event, "new_quantity")


@strawberry.type(description=MEANINGS["SUBSCRIPTION_RENEWED"])
class SubscriptionRenewedEvent(_AboutSubscription, OrganizationEvent):
    @strawberry.field(description="When it renews next.")
    def renews_at(self) -> datetime | None:
        return _moment(self.event, "renews_at")


@strawberry.type(description=MEANINGS["SUBSCRIPTION_ENDING"])
class SubscriptionEndingEvent(_AboutSubscription, OrganizationEvent):
    @strawberry.field(description="When it ends.")
    def ends_at(self) -> datetime | None:
        return _moment(self.event, "ends_at")


@strawberry.type(description=MEANINGS["SEATS_DECREASE_SCHEDULED"])
class SeatsDecreaseScheduledEvent(_AboutSubscription, _AboutLicense, OrganizationEvent):
    @strawberry.field(description="Seats from `effectiveAt` on (the current count when `canceled`).")
    def seats(self) -> int | None:
        return _int(self.event, "seats")

    @strawberry.field(description="When the decrease applies: the end of the subscription's period.")
    def effective_at(self) -> datetime | None:
        return _moment(self.event, "effective_at")

    @strawberry.field(description="true: a decrease scheduled before was canceled; the seats stay as they are.")
    def canceled(self) -> bool | None:
        value = _data(self.event, "canceled")
        return value if isinstance(value, bool) else None


@strawberry.type(description=MEANINGS["SUBSCRIPTION_PAST_DUE"])
class SubscriptionPastDueEvent(_AboutSubscription, _AboutLicense, _AboutInvoice, OrganizationEvent):
    @strawberry.field(description="Until when the licenses keep working; they are SUSPENDED after it until an "
                                  "invoice is paid.")
    def grace_until(self) -> datetime | None:
        return _moment(self.event, "grace_until")


@strawberry.type(description=MEANINGS["SUBSCRIPTION_RESTORED"])
class SubscriptionRestoredEvent(_AboutSubscription, _AboutLicense, _AboutInvoice, OrganizationEvent):
    pass


@strawberry.type(description=MEANINGS["LICENSE_SUSPENDED"])
class LicenseSuspendedEvent(_AboutLicense, OrganizationEvent):
    @strawberry.field(description="When the grace ended.")
    def suspended_at(self) -> datetime | None:
        return _moment(self.event, "suspended_at")


@strawberry.type(description=MEANINGS["INVOICE_CREATED"])
class InvoiceCreatedEvent(_AboutInvoice, OrganizationEvent):
    @strawberry.field(description="What it asks for.")
    def amount_due(self) -> Money | None:
        return self._money("amount_due")


@strawberry.type(description=MEANINGS["INVOICE_PAID"])
class InvoicePaidEvent(_AboutInvoice, OrganizationEvent):
    @strawberry.field(description="What was paid.")
    def amount_paid(self) -> Money | None:
        return self._money("amount_paid")


@strawberry.type(description=MEANINGS["INVOICE_PAYMENT_FAILED"])
class InvoicePaymentFailedEvent(_AboutInvoice, OrganizationEvent):
    @strawberry.field(description="What is still due.")
    def amount_due(self) -> Money | None:
        return self._money("amount_due")

    @strawberry.field(description="Why the payment failed, e.g. CARD_DECLINED.")
    def reason(self) -> str | None:
        return _data(self.event, "reason")


@strawberry.type(description=MEANINGS["CREDIT_POOL_LOW"])
class CreditPoolLowEvent(OrganizationEvent):
    @strawberry.field(description="The pool, as it is now.")
    def credit_pool(self) -> CloudCreditPool | None:
        return CloudCreditPool(organization_id=self.event.organization_id) if self.event.organization_id else None

    @strawberry.field(description="The balance when this was reported.")
    def balance(self) -> int | None:
        return _int(self.event, "balance")

    @strawberry.field(description="The threshold it fell below.")
    def threshold(self) -> int | None:
        return _int(self.event, "threshold")


@strawberry.type(description=MEANINGS["CREDIT_REQUEST_MADE"])
class CreditRequestMadeEvent(_AboutCreditRequest, OrganizationEvent):
    pass


@strawberry.type(description=MEANINGS["CREDIT_REQUEST_RESOLVED"])
class CreditRequestResolvedEvent(_CreditRequestResolved, OrganizationEvent):
    pass


@strawberry.type(description=MEANINGS["STAFF_ACTION_TAKEN"])
class StaffActionTakenEvent(OrganizationEvent):
    @strawberry.field(description="What was done, e.g. grantCredits.")
    def action(self) -> str | None:
        return _data(self.event, "action")

    @strawberry.field(description="What it was done to, e.g. a license or an account.")
    def target(self) -> str | None:
        return _data(self.event, "target")

    @strawberry.field(description="The staff role or service scope it was done under.")
    def scope(self) -> str | None:
        return _data(self.event, "scope")

    @strawberry.field(description="The reason the staff member gave.")
    def reason(self) -> str | None:
        return _data(self.event, "reason")


# Viewer events --------------------------------------------------------------------------------------


@strawberry.type(description="You were given a seat of a license.")
class ViewerSeatAllocatedEvent(_SeatChange, ViewerEvent):
    pass


@strawberry.type(description="A seat of a license you held was taken back.")
class ViewerSeatRevokedEvent(_SeatChange, ViewerEvent):
    pass


@strawberry.type(description=MEANINGS["CREDIT_ACCESS_CHANGED"] + " Read `account.creditAccess` for what it is now.")
class CreditAccessChangedEvent(_AboutAccount, ViewerEvent):
    pass


@strawberry.type(description="Your request for cloud credits was granted or declined.")
class ViewerCreditRequestResolvedEvent(_CreditRequestResolved, ViewerEvent):
    pass


@strawberry.type(description=MEANINGS["SESSION_ENDED"] + " When it is this connection's own session, the "
                             "connection closes with 4401 right after.")
class SessionEndedEvent(ViewerEvent):
    @strawberry.field(description="Why: SIGNED_OUT, SIGNED_OUT_EVERYWHERE, PASSWORD_CHANGED, EMAIL_CHANGED (by "
                                  "support) or REFRESH_TOKEN_REUSED (a stolen refresh token was detected).")
    def reason(self) -> str | None:
        return _data(self.event, "reason")

    @strawberry.field(description="Whether it is the session this subscription was opened with.")
    def this_session(self, info: Info) -> bool:
        return _data(self.event, "session_id") in (None, str(info.context.viewer.session_id))


def _moment(event: Event, key: str) -> datetime | None:
    raw = _data(event, key)
    try:
        return datetime.fromisoformat(str(raw)) if raw is not None else None
    except ValueError:
        return None


ORGANIZATION_EVENT_TYPES: dict[str, type[OrganizationEvent]] = {
    "MEMBER_JOINED": MemberJoinedEvent, "MEMBER_LEFT": MemberLeftEvent, "MEMBER_ROLE_CHANGED": MemberRoleChangedEvent,
    "INVITATION_SENT": InvitationSentEvent, "INVITATION_ACCEPTED": InvitationAcceptedEvent,
    "INVITATION_EXPIRED": InvitationExpiredEvent, "SEAT_ALLOCATED": SeatAllocatedEvent,
    "SEAT_REVOKED": SeatRevokedEvent, "LICENSE_EXPIRING": LicenseExpiringEvent, "LICENSE_EXPIRED": LicenseExpiredEvent,
    "LICENSE_QUANTITY_CHANGED": LicenseQuantityChangedEvent, "SUBSCRIPTION_RENEWED": SubscriptionRenewedEvent,
    "SUBSCRIPTION_ENDING": SubscriptionEndingEvent, "SEATS_DECREASE_SCHEDULED": SeatsDecreaseScheduledEvent,
    "SUBSCRIPTION_PAST_DUE": SubscriptionPastDueEvent, "SUBSCRIPTION_RESTORED": SubscriptionRestoredEvent,
    "LICENSE_SUSPENDED": LicenseSuspendedEvent, "INVOICE_CREATED": InvoiceCreatedEvent,
    "INVOICE_PAID": InvoicePaidEvent, "INVOICE_PAYMENT_FAILED": InvoicePaymentFailedEvent,
    "CREDIT_POOL_LOW": CreditPoolLowEvent, "CREDIT_REQUEST_MADE": CreditRequestMadeEvent,
    "CREDIT_REQUEST_RESOLVED": CreditRequestResolvedEvent, "STAFF_ACTION_TAKEN": StaffActionTakenEvent,
}
VIEWER_EVENT_TYPES: dict[str, type[ViewerEvent]] = {
    "SEAT_ALLOCATED": ViewerSeatAllocatedEvent, "SEAT_REVOKED": ViewerSeatRevokedEvent,
    "CREDIT_ACCESS_CHANGED": CreditAccessChangedEvent, "CREDIT_REQUEST_RESOLVED": ViewerCreditRequestResolvedEvent,
    "SESSION_ENDED": SessionEndedEvent,
}
assert set(ORGANIZATION_EVENT_TYPES) == set(ORGANIZATION_KINDS) and set(VIEWER_EVENT_TYPES) == set(VIEWER_KINDS)
EVENT_TYPES = [*ORGANIZATION_EVENT_TYPES.values(), *VIEWER_EVENT_TYPES.values()]


@strawberry.type(description="Live events, over GraphQL over WebSocket (`graphql-transport-ws`) on this same "
                             "path. Named so as not to collide with the domain type `Subscription`.")
class SubscriptionRoot:
    @strawberry.subscription(description="An organization's events as they are committed. For "
                                         f"{who('SubscriptionRoot.organizationEvents')}; each kind only for those "
                                         "who may read what it is about (members for the people rows, invoices for "
                                         "billing, ...).")
    async def organization_events(
        self, info: Info,
        organization_id: Annotated[strawberry.ID | None, strawberry.argument(
            description="The organization to follow. Customers may leave it out (their own); staff and "
                        "services must name one.")] = None,
        types: Annotated[list[OrganizationEventType] | None, strawberry.argument(  # type: ignore[valid-type]
            description="Only these kinds; all that the viewer may read when left out.")] = None,
        after: Annotated[str | None, strawberry.argument(
            description="An event's `cursor`: first the events after it (within the log's window), then live "
                        "ones, with no gap and none twice.")] = None,
    ) -> AsyncGenerator[OrganizationEvent, None]:
        organization = None
        if organization_id is not None:
            organization = node_uuid(organization_id, "Organization")
            if organization is None:
                raise NotFound("No organization with that ID.")
        kinds = [t.value for t in types] if types is not None else None
        async for event in live.organization_events(info.context, organization, kinds, after):
            yield ORGANIZATION_EVENT_TYPES[event.type](event=event)

    @strawberry.subscription(description="The signed-in account's own events: seats, credit access, credit "
                                         f"requests, sessions. For {who('SubscriptionRoot.viewerEvents')}.")
    async def viewer_events(
        self, info: Info,
        after: Annotated[str | None, strawberry.argument(
            description="An event's `cursor`: first the events after it, then live ones.")] = None,
    ) -> AsyncGenerator[ViewerEvent, None]:
        async for event in live.viewer_events(info.context, after):
            yield VIEWER_EVENT_TYPES[event.type](event=event)
