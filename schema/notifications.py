"""Notification preferences: which events each account is mailed about."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry

from resolvers import notification_preferences as resolve
from resolvers.notifications import MAIL_KINDS
from schema.common import Info, UserError, user_errors

# Made from the one list of mailable kinds (resolvers/notifications.MAIL_KINDS).
NotificationKind = strawberry.enum(
    Enum("NotificationKind", {kind: strawberry.enum_value(kind, description=description)  # type: ignore[misc]
                              for kind, description in MAIL_KINDS.items()}),
    description="The events an account can be mailed about.")


@strawberry.type(description="Whether the viewer is mailed about one kind of event.")
class NotificationPreference:
    kind: NotificationKind = strawberry.field(description="The kind of event.")
    mail: bool = strawberry.field(description="Whether the viewer is mailed about it now.")
    mail_by_default: bool = strawberry.field(
        description="What the viewer's role gets unless they choose otherwise: OWNER and ADMINs every "
                    "organization kind, everyone their own CREDIT_REQUEST_RESOLVED.")
    applies: bool = strawberry.field(
        description="Whether the viewer receives this kind at all in their role: the organization kinds go to its "
                    "OWNER and ADMINs only. When false, `mail` is false and cannot be turned on.")

    @classmethod
    def from_choice(cls, choice: resolve.Choice) -> "NotificationPreference":
        return cls(kind=NotificationKind(choice.kind), mail=choice.mail, mail_by_default=choice.by_default,
                   applies=choice.applies)


@strawberry.input(description="Whether to be mailed about one kind of event.")
class NotificationPreferenceInput:
    kind: NotificationKind = strawberry.field(description="The kind of event, each at most once per request.")
    mail: bool = strawberry.field(description="true: mail me; false: do not.")


@strawberry.input(description="The viewer's choices to change; kinds left out keep theirs.")
class UpdateNotificationPreferencesInput:
    mail: list[NotificationPreferenceInput] = strawberry.field(
        description="One entry per kind to change. A choice equal to the role's default is not stored, so it "
                    "follows the default from then on.")


@strawberry.type(description="The result of `updateNotificationPreferences`.")
class UpdateNotificationPreferencesPayload:
    preferences: list[NotificationPreference] = strawberry.field(
        description="Every kind with the viewer's choice now (unchanged when the input was refused).")
    user_errors: list[UserError] = strawberry.field(
        description="INVALID: a kind named twice. NOT_ALLOWED: turning on a kind the viewer's role never "
                    "receives. Either way nothing changed.")


async def notification_preferences(info: Info) -> list[NotificationPreference]:
    return [NotificationPreference.from_choice(c) for c in await resolve.preferences(info.context)]


async def update_notification_preferences(info: Info, input: Annotated[
        UpdateNotificationPreferencesInput, strawberry.argument(description="The choices.")]
        ) -> UpdateNotificationPreferencesPayload:
    result = await resolve.update_preferences(info.context, [(c.kind.value, c.mail) for c in input.mail])
    return UpdateNotificationPreferencesPayload(
        preferences=[NotificationPreference.from_choice(c) for c in result.choices],
        user_errors=user_errors(result.problems))


@strawberry.type
class NotificationMutations:
    update_notification_preferences: UpdateNotificationPreferencesPayload = strawberry.mutation(
        resolver=update_notification_preferences,
        description="Chooses which events the viewer is mailed about (their own account's choices only).")


MUTATIONS = NotificationMutations
