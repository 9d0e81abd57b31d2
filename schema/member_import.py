"""People in bulk: importMembers (a CSV of invitations), removeMembers and changeMemberRoles."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers import member_import as resolve
from resolvers import people as resolve_people
from schema.account import OrganizationRole
from schema.common import Info, UserError, node_uuid, user_errors
from schema.organization import Invitation


@strawberry.input(description="A CSV of people to invite into an organization.")
class ImportMembersInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="The organization to invite into (an Organization ID); by default the viewer's "
                                  "own.")
    csv: str = strawberry.field(
        description="Comma-separated, the first row naming the columns: `email` (required), `name` and `role` "
                    "(MEMBER or ADMIN; MEMBER when empty), in any order, then one row per person, at most 1,000. "
                    "Quote a value holding a comma. The name greets them in the invitation mail.")
    dry_run: bool = strawberry.field(
        default=False, description="Check every row against the organization as it is, and invite no one.")


@strawberry.type(description="What became, or would become, of one row of the CSV.")
class ImportedRow:
    line: int = strawberry.field(description="Its line in the file; the header is line 1.")
    email: str = strawberry.field(description="The email as the row gives it.")
    role: str = strawberry.field(description="The role as the row gives it (upper case).")
    invitation: Invitation | None = strawberry.field(
        description="The invitation sent; null for a dry run or a refused row.")
    user_errors: list[UserError] = strawberry.field(
        description="Why this row was (or would be) refused, at [\"input\", \"csv\", \"<line>\", ...]: INVALID "
                    "(email, role, name, or the row's shape, or the email twice in the file), ALREADY_MEMBER, "
                    "ALREADY_INVITED, IN_ANOTHER_ORGANIZATION. Empty: invited, or for a dry run, would be.")


@strawberry.type(description="The result of `importMembers`.")
class ImportMembersPayload:
    rows: list[ImportedRow] = strawberry.field(
        description="One per row of people, in file order; empty when the file as a whole was refused.")
    invited_count: int = strawberry.field(description="Invitations sent (0 for a dry run).")
    user_errors: list[UserError] = strawberry.field(
        description="About the file as a whole (empty, no header, unknown columns, not CSV, over 1,000 rows); "
                    "then no one was invited.")


async def import_members(info: Info, input: Annotated[ImportMembersInput, strawberry.argument(
        description="Organization, CSV and whether it is a dry run.")]) -> ImportMembersPayload:
    organization_id = (node_uuid(input.organization_id, "Organization") if input.organization_id is not None
                       else await resolve_people.viewer_organization_id(info.context))
    result = await resolve.import_members(info.context, organization_id, input.csv, input.dry_run)
    invitations = await info.context.loaders.organizations.invitation.load_all(
        [r.invitation_id for r in result.rows if r.invitation_id])
    by_id = {i.id: i for i in invitations if i is not None}
    rows = [ImportedRow(line=r.line, email=r.email, role=r.role,
                        invitation=Invitation.from_record(by_id[r.invitation_id]) if r.invitation_id in by_id
                        else None, user_errors=user_errors(r.problems)) for r in result.rows]
    return ImportMembersPayload(rows=rows, invited_count=sum(1 for r in rows if r.invitation),
                                user_errors=user_errors(result.problems))


@strawberry.type(description="What became of one entry of a list of changes.")
class MemberChangeResult:
    account_id: strawberry.ID | None = strawberry.field(description="The Account ID as given.")
    done: bool = strawberry.field(description="Whether this entry's change was made.")
    user_errors: list[UserError] = strawberry.field(
        description="Why not, at the entry's place in the input list (the single mutation's codes).")


def _results(result: resolve.ListResult, given: list[strawberry.ID]) -> list[MemberChangeResult]:
    return [MemberChangeResult(account_id=g, done=o.done, user_errors=user_errors(o.problems))
            for g, o in zip(given, result.outcomes)]


@strawberry.input(description="Members to remove, each on its own.")
class RemoveMembersInput:
    account_ids: list[strawberry.ID] = strawberry.field(description="The members' Account IDs, 1 to 100.")
    revoke_seats: bool = strawberry.field(
        default=False, description="As `removeMember`'s: revoke their seats of the organization's licenses too.")


@strawberry.type(description="The result of `removeMembers`.")
class RemoveMembersPayload:
    results: list[MemberChangeResult] = strawberry.field(description="One per Account ID, in input order.")
    user_errors: list[UserError] = strawberry.field(description="INVALID: not 1 to 100 IDs; then nothing changed.")


async def remove_members(info: Info, input: Annotated[RemoveMembersInput, strawberry.argument(
        description="Members and whether to revoke their seats.")]) -> RemoveMembersPayload:
    result = await resolve.remove_members(info.context, [node_uuid(a, "Account") for a in input.account_ids],
                                          input.revoke_seats)
    return RemoveMembersPayload(results=_results(result, input.account_ids), user_errors=user_errors(result.problems))


@strawberry.input(description="One member's new role.")
class MemberRoleChangeInput:
    account_id: strawberry.ID = strawberry.field(description="The member's Account ID.")
    role: OrganizationRole = strawberry.field(description="ADMIN or MEMBER.")


@strawberry.input(description="Role changes, each on its own.")
class ChangeMemberRolesInput:
    changes: list[MemberRoleChangeInput] = strawberry.field(description="1 to 100 changes.")


@strawberry.type(description="The result of `changeMemberRoles`.")
class ChangeMemberRolesPayload:
    results: list[MemberChangeResult] = strawberry.field(description="One per change, in input order.")
    user_errors: list[UserError] = strawberry.field(
        description="INVALID: not 1 to 100 changes; then nothing changed.")


async def change_member_roles(info: Info, input: Annotated[ChangeMemberRolesInput, strawberry.argument(
        description="The changes.")]) -> ChangeMemberRolesPayload:
    result = await resolve.change_member_roles(
        info.context, [(node_uuid(c.account_id, "Account"), c.role.value) for c in input.changes])
    return ChangeMemberRolesPayload(results=_results(result, [c.account_id for c in input.changes]),
                                    user_errors=user_errors(result.problems))


@strawberry.type
class BulkPeopleMutations:
    import_members: ImportMembersPayload = strawberry.mutation(
        resolver=import_members,
        description="Invites the people of a CSV (email, name, role), each row on its own, as `inviteMembers` "
                    "would; `dryRun` checks every row and invites no one.")
    remove_members: RemoveMembersPayload = strawberry.mutation(
        resolver=remove_members,
        description="Removes several members, each as `removeMember` would, in a transaction of its own.")
    change_member_roles: ChangeMemberRolesPayload = strawberry.mutation(
        resolver=change_member_roles,
        description="Changes several members' roles, each as `changeMemberRole` would, in a transaction of its "
                    "own.")


MUTATIONS = BulkPeopleMutations
