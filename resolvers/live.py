"""What the live subscriptions do: who may follow which events, resuming from a cursor, and the
backlog-then-live stream with no gap and no duplicate.

Permissions are the queries' own: organizationEvents is a row of the access table, and each
kind is delivered only to those who may read what it is about (its `Organization` field's row),
so a BILLING staff member follows invoices but not people. A customer names no organization
(their own) or their own; another organization is NOT_FOUND as it is for `node(id:)`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from uuid import UUID

from auth import access
from auth.viewer import Viewer, require_account
from datasources.errors import BadUserInput, Forbidden, GatewayError, NotFound
from datasources.postgres import events
from loaders import create_loaders
from resolvers import accounts as resolve_accounts
from resolvers.context import Context
from resolvers.event_hub import Hub, Key, Overflowed, Subscriber
from resolvers.events import ORGANIZATION_KINDS, VIEWER_KINDS
from datasources.postgres.accounts import Membership
from planning import rights
from resolvers.permissions import (kinds_everywhere, kinds_in, kinds_of_own, kinds_with, may, refusal,
                                   viewer_membership)

ORGANIZATION_EVENTS = "SubscriptionRoot.organizationEvents"
VIEWER_EVENTS = "SubscriptionRoot.viewerEvents"
# Each organization kind is about what this `Organization` field shows: whoever may not read
# that field does not get the event either.
READ_BY = {
    "MEMBER_JOINED": "Organization.members", "MEMBER_LEFT": "Organization.members",
    "MEMBER_ROLE_CHANGED": "Organization.members",
    "INVITATION_SENT": "Organization.invitations", "INVITATION_ACCEPTED": "Organization.invitations",
    "INVITATION_EXPIRED": "Organization.invitations",
    "SEAT_ALLOCATED": "Organization.licenses", "SEAT_REVOKED": "Organization.licenses",
    "LICENSE_EXPIRING": "Organization.licenses", "LICENSE_EXPIRED": "Organization.licenses",
    "LICENSE_QUANTITY_CHANGED": "Organization.licenses",
    "SUBSCRIPTION_RENEWED": "Organization.subscriptions", "SUBSCRIPTION_ENDING": "Organization.subscriptions",
    "SEATS_DECREASE_SCHEDULED": "Organization.subscriptions", "SUBSCRIPTION_PAST_DUE": "Organization.subscriptions",
    "SUBSCRIPTION_RESTORED": "Organization.subscriptions", "LICENSE_SUSPENDED": "Organization.licenses",
    "INVOICE_CREATED": "Organization.invoices", "INVOICE_PAID": "Organization.invoices",
    "INVOICE_PAYMENT_FAILED": "Organization.invoices",
    "CREDIT_POOL_LOW": "Organization.creditPool", "CREDIT_REQUEST_MADE": "Organization.creditPool",
    "CREDIT_REQUEST_RESOLVED": "Organization.creditPool",
    "STAFF_ACTION_TAKEN": "Organization.auditLog",
}
assert set(READ_BY) == set(ORGANIZATION_KINDS), "every organization kind needs the field that decides who reads it"
# Events about the subscriber's own membership: its right to follow the organization is checked again.
MEMBERSHIP_KINDS = frozenset({"MEMBER_ROLE_CHANGED", "MEMBER_LEFT"})
# What the hub is asked for, one set for every subscriber (a set each cost 0.3 to 1 KB per idle
# subscription).
_EVERY_ORGANIZATION_KIND, _EVERY_VIEWER_KIND = frozenset(ORGANIZATION_KINDS), frozenset(VIEWER_KINDS)
_SESSION_ENDED = frozenset({"SESSION_ENDED"})
# Events after which a subscriber's rights are read again for the answers it shares.
_REKEY_KINDS = MEMBERSHIP_KINDS | {"MEMBER_JOINED"}
_CURSOR_PREFIX = "event:"
_MAX_ID = 2**63 - 1  # the log's bigint ids
_BACKLOG_PAGE = 500  # events read at once when resuming


class CursorExpired(GatewayError):
    """A cursor older than the event log's window: the events after it may be gone."""

    code = "BAD_USER_INPUT"


class SubscriberTooSlow(GatewayError):
    """The client read events more slowly than they came and fell too far behind."""

    code = "SUBSCRIBER_TOO_SLOW"


# Cursors ---------------------------------------------------------------------------------------

def cursor_of(event: events.Event) -> str:
    """Opaque to clients: the event's id and time (the time tells a cursor past the window)."""
    raw = f"{_CURSOR_PREFIX}{event.id}:{int(event.occurred_at.timestamp())}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@dataclasses.dataclass(frozen=True)
class Cursor:
    last_id: int
    occurred_at: datetime


def parse_cursor(raw: str, retention_days: float) -> Cursor:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        last_id, seconds = (int(part) for part in text.removeprefix(_CURSOR_PREFIX).split(":"))
        if not 0 <= last_id <= _MAX_ID:
            raise ValueError(text)
        cursor = Cursor(last_id, datetime.fromtimestamp(seconds, timezone.utc))
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError, OSError):
        raise BadUserInput("'after' is not an event cursor: pass the `cursor` of the last event received.",
                           field="after") from None
    if cursor.occurred_at < datetime.now(timezone.utc) - timedelta(days=retention_days):
        raise CursorExpired(f"The cursor in 'after' is older than the event log keeps ({retention_days:g} days): "
                            "events after it may be gone. Refetch what you show, then subscribe without 'after'.",
                            field="after", reason="CURSOR_EXPIRED")
    return cursor


async def _of_this_log(ctx: Context, cursor: Cursor | None) -> Cursor | None:
    """A cursor past the log's newest event is not one this log handed out (another
    deployment's, or made up): followed, it would hold back every event until the ids caught
    up with it, in silence."""
    if cursor is not None and cursor.last_id > await events.last_id(ctx.db):
        raise BadUserInput("'after' is not a cursor of this gateway's events: pass the `cursor` of the last event "
                           "received, or subscribe without 'after'.", field="after")
    return cursor


# Who may follow what -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class OrganizationFollow:
    organization_id: UUID
    kinds: frozenset[str]  # what the viewer may read of it, within what was asked


async def organization_to_follow(ctx: Context, organization_id: UUID | None, types: list[str] | None
                                 ) -> OrganizationFollow:
    if ctx.viewer.service is None:
        require_account(ctx.viewer)
    everywhere = kinds_everywhere(ctx)
    vendor = access.allows(everywhere, ORGANIZATION_EVENTS)  # a staff role or service scope that may
    if organization_id is None:
        if vendor:
            raise BadUserInput("Name the organization to follow with 'organizationId'.", field="organizationId")
        mine = await viewer_membership(ctx)
        if mine is None:
            raise Forbidden(refusal(ORGANIZATION_EVENTS))
        organization_id = mine.organization_id
    elif vendor:
        if await resolve_accounts.organization(ctx, organization_id) is None:
            raise NotFound("No organization with that ID.")
    elif everywhere:  # a staff role or service scope that may not: refused before anything is looked up
        raise Forbidden(refusal(ORGANIZATION_EVENTS))
    elif await resolve_accounts.visible_organization(ctx, organization_id) is None:
        raise NotFound("No organization with that ID.")  # as node(id:) answers another organization's
    held = await kinds_in(ctx, organization_id)
    if not access.allows(held, ORGANIZATION_EVENTS):
        raise Forbidden(refusal(ORGANIZATION_EVENTS))
    asked = ORGANIZATION_KINDS if types is None else types
    kinds = frozenset(k for k in asked if access.allows(held, READ_BY[k]))
    if asked and not kinds:  # else a subscription that can never deliver anything, open in silence
        raise Forbidden("Not allowed: you may not read any of the kinds in 'types' for this organization.")
    return OrganizationFollow(organization_id, _EVERY_ORGANIZATION_KIND if kinds == _EVERY_ORGANIZATION_KIND else kinds)


async def viewer_to_follow(ctx: Context) -> UUID:
    if ctx.viewer.service is None:
        require_account(ctx.viewer)
    if not access.allows(await kinds_of_own(ctx), VIEWER_EVENTS):
        raise Forbidden(refusal(VIEWER_EVENTS))
    assert ctx.viewer.account_id is not None
    return ctx.viewer.account_id


def fresh(ctx: Context) -> Context:
    """The same viewer with new loaders: each event is resolved from what is stored now."""
    return dataclasses.replace(ctx, loaders=create_loaders(ctx.db, ctx.payments))


# Answers shared by subscribers ----------------------------------------------------------------------

# Seats and licenses a viewer holds are read in Python (`entitlements.visible_license`,
# `visible_allocation`) where the table does not let the viewer read them in the organization.
_HELD_FALLBACKS = ("License", "LicenseAllocation")


@dataclasses.dataclass(frozen=True, slots=True)
class Rights:
    """What an answer to an organization's event depends on, of the subscriber: `key` is equal
    for two subscribers exactly when the same operation answers them alike (the transport
    executes it once for all of them), and `membership` is what it was computed from, which
    the execution for them uses (`for_rights`), so that it answers for these rights."""

    membership: Membership | None
    key: tuple[object, ...]


async def rights_for(ctx: Context, organization_id: UUID) -> Rights:
    """The subscriber's kinds in the event's organization and in its own, its own organization,
    and the scope that statements apply (`planning.rights.Scope`), its `viewer_id` left out only
    where it cannot change an answer: every account and every seat it reaches, it reaches
    everywhere or in its own organization. There `x.id = viewer` (ACCOUNT_VISIBLE, SEAT_VISIBLE,
    the SEATS count) is implied: an account is a member of one organization, and a seat is held
    by a member of the license's organization (`resolvers.seats` refuses others, and a member
    leaves with their seats revoked). Otherwise the viewer is part of the key: it shares with
    no one else. The fields that read the viewer in Python are the document's side
    (`schema.live_sharing`)."""
    viewer = ctx.viewer
    mine = await viewer_membership(ctx) if viewer.account_id is not None else None
    everywhere = kinds_everywhere(ctx)
    own = mine.organization_id if mine else None
    own_kinds = kinds_with(everywhere, mine, own)
    scope = await rights.scope(ctx)
    implied = scope is not None and (
        scope.viewer_id is None
        or own is not None
        and (scope.accounts_everywhere or scope.accounts_in == own)
        and (scope.seats_everywhere or scope.seats_in == own)
        and all(access.allows(own_kinds, coordinate) for coordinate in _HELD_FALLBACKS))
    if implied and scope is not None:
        scope = dataclasses.replace(scope, viewer_id=None)
    key = (await kinds_in(ctx, organization_id), own_kinds, own, scope,
           None if implied else (viewer.account_id, viewer.session_id))
    return Rights(mine, key)


def for_rights(ctx: Context, found: Rights) -> Context:
    """A context for one event (fresh loaders) whose viewer has the membership its rights were
    computed from: the execution answers for the rights in the key, even when the membership
    changed since and the event saying so is still on its way (it then ends or re-keys the
    subscription)."""
    event_ctx = fresh(ctx)
    if ctx.viewer.account_id is not None:
        event_ctx.loaders.accounts.membership.prime(ctx.viewer.account_id, found.membership)
    return event_ctx


def changes_rights(ctx: Context, event: events.Event) -> bool:
    """Whether the event may change the subscriber's rights (its own membership)."""
    return event.type in _REKEY_KINDS and _about_viewer(ctx, event)


# The streams ----------------------------------------------------------------------------------------

def _hub(ctx: Context) -> Hub:
    if ctx.hub is None:
        raise Forbidden("Subscriptions are served over WebSocket (graphql-transport-ws) on this same path.")
    return ctx.hub


async def _delivered(subscriber: Subscriber, backlog: AsyncIterator[events.Event], last_id: int
                     ) -> AsyncIterator[events.Event]:
    """The backlog, then what the hub offers past it: ids only grow, so a live event already
    delivered from the backlog (registered before it was read) is skipped by its id."""
    async for event in backlog:
        last_id = event.id
        yield event
    while True:
        try:
            event = await subscriber.next()
        except Overflowed as exc:
            raise SubscriberTooSlow(f"This subscription {exc} and was ended. Subscribe again with 'after' set to "
                                    "the cursor of the last event received to get the rest.") from None
        if event.id > last_id:
            last_id = event.id
            yield event


async def _pages(read: Callable[[int], Awaitable[list[events.Event]]], last_id: int) -> AsyncIterator[events.Event]:
    """The backlog past `last_id`, a page at a time."""
    while True:
        page = await read(last_id)
        for event in page:
            yield event
        if len(page) < _BACKLOG_PAGE:
            return
        last_id = page[-1].id


async def organization_events(ctx: Context, organization_id: UUID | None, types: list[str] | None,
                              after: str | None) -> AsyncIterator[events.Event]:
    """Checked when subscribing; again whenever the subscriber's own membership changes."""
    cursor = parse_cursor(after, ctx.config.event_retention_days) if after is not None else None
    follow = await organization_to_follow(ctx, organization_id, types)
    cursor = await _of_this_log(ctx, cursor)
    # Every organization kind, whatever was asked: the subscriber's own role changes must arrive.
    with _hub(ctx).subscribed(Key(organization_id=follow.organization_id), _EVERY_ORGANIZATION_KIND) as subscriber:
        wanted = sorted(follow.kinds)

        async def read(past: int) -> list[events.Event]:
            return await events.for_organization(ctx.db, follow.organization_id, past, wanted, _BACKLOG_PAGE)

        backlog = _pages(read, cursor.last_id) if cursor else _nothing()
        async for event in _delivered(subscriber, backlog, cursor.last_id if cursor else 0):
            if event.type in MEMBERSHIP_KINDS and _about_viewer(ctx, event):
                await _still_allowed(fresh(ctx), follow.organization_id)
            if event.type in follow.kinds:
                yield event


async def viewer_events(ctx: Context, after: str | None) -> AsyncIterator[events.Event]:
    cursor = parse_cursor(after, ctx.config.event_retention_days) if after is not None else None
    account_id = await viewer_to_follow(ctx)
    cursor = await _of_this_log(ctx, cursor)
    with _hub(ctx).subscribed(Key(account_id=account_id), _EVERY_VIEWER_KIND) as subscriber:
        async def read(past: int) -> list[events.Event]:
            return await events.for_account(ctx.db, account_id, past, list(VIEWER_KINDS), _BACKLOG_PAGE)

        backlog = _pages(read, cursor.last_id) if cursor else _nothing()
        async for event in _delivered(subscriber, backlog, cursor.last_id if cursor else 0):
            yield event


async def _nothing() -> AsyncIterator[events.Event]:
    return
    yield  # an async generator that yields nothing


def _about_viewer(ctx: Context, event: events.Event) -> bool:
    account = ctx.viewer.account_id
    return account is not None and (event.data.get("account_id") == str(account) or event.account_id == account)


async def _still_allowed(ctx: Context, organization_id: UUID) -> None:
    if not await may(ctx, ORGANIZATION_EVENTS, organization_id):
        raise Forbidden("Your role in the organization changed: you no longer follow its events. "
                        + refusal(ORGANIZATION_EVENTS))


def watch_session(hub: Hub, viewer: Viewer, ended: Callable[[], None]) -> Subscriber:
    """Calls `ended` when the viewer's session ends (signed out, elsewhere too): the transport
    then closes the connection; `hub.unwatch` the result when the connection ends. Sessions
    end with a SESSION_ENDED event for the account; one that names no session ended all of
    them. A callback rather than a task and a queue: every signed-in connection has one."""
    account_id, session_id = viewer.account_id, str(viewer.session_id)
    assert account_id is not None

    def on_event(event: events.Event) -> None:
        if event.data.get("session_id") in (None, session_id):
            ended()

    return hub.watch(Key(account_id=account_id), _SESSION_ENDED, on_event)
