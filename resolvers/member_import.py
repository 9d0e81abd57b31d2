"""People in bulk: a CSV of invitations, and lists of removals and role changes.

`import_members` reads a CSV with a header row naming its columns: `email` (required), `name`
and `role` (MEMBER or ADMIN, MEMBER when empty), in any order. Each row is checked on its own
(the same rules as `inviteMembers`: a valid email, not a member, not invited, in no other
organization, once in the file); a bad row is a user error at ["input", "csv", "<line>"] and
the other rows go on. A dry run checks every row against the organization as it is and writes
nothing, not even an audit entry. Otherwise each good row is invited in a transaction of its
own, audited, mailed and reported like `inviteMembers`, so a row that fails late (someone else
invited that email meanwhile) leaves the others done. The name is kept with the
invitation: the mail greets them by it, and it becomes their account's name if they accept
without giving one.

`remove_members` and `change_member_roles` run `removeMember` and `changeMemberRole` for each
entry in turn, each in its own audited transaction, and collect each entry's outcome.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from uuid import UUID

from datasources.errors import Forbidden, NotFound
from datasources.postgres import people as data
from resolvers import people
from resolvers.context import Context
from resolvers.permissions import viewer_membership
from resolvers.user_errors import Problem
from resolvers.writes import NOT_FOUND, after_write, require_change, require_change_in

MAX_ROWS = 1000
MAX_LIST = 100
COLUMNS = ("email", "name", "role")
IMPORT = "importMembers"


@dataclass(frozen=True)
class ImportRow:
    line: int  # in the file, the header being line 1
    email: str
    name: str
    role: str
    invitation_id: UUID | None = None  # the invitation made (None for a dry run or a refused row)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class ImportResult:
    rows: list[ImportRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # about the file as a whole


def _csv_problem(message: str, line: int | None = None) -> Problem:
    return Problem(("input", "csv") if line is None else ("input", "csv", str(line)), message, "INVALID")


def parse(text: str) -> tuple[list[ImportRow], list[Problem]]:
    """The rows of the file (blank lines skipped), or what is wrong with the file as a whole."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), strict=True)  # spreadsheets write a BOM
    try:
        header = next(reader, None)
        if header is None:
            return [], [Problem(("input", "csv"), "The file is empty: give a header row (email,name,role) and "
                                                  "one row per person.", "REQUIRED")]
        columns = [c.strip().lower() for c in header]
        unknown = [str(i + 1) for i, c in enumerate(columns) if c not in COLUMNS]
        if "email" not in columns or unknown or len(set(columns)) != len(columns):
            # By position, not by the text sent: an error never repeats a submitted value.
            where = f"; column {', '.join(unknown[:10])} is none of them" if unknown else ""
            return [], [_csv_problem(f"The first row names the columns: email, and optionally name and role, each "
                                     f"once{where}.", 1)]
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(rows) == MAX_ROWS:
                return [], [_csv_problem(f"At most {MAX_ROWS:,} people per file; split it.")]
            line = reader.line_num
            if len(values) != len(columns):
                rows.append(ImportRow(line, "", "", "", problems=[_csv_problem(
                    f"Line {line} has {len(values)} values for {len(columns)} columns.", line)]))
                continue
            row = dict(zip(columns, (v.strip() for v in values)))
            rows.append(ImportRow(line, row["email"], row.get("name", ""), (row.get("role") or "MEMBER").upper()))
    except csv.Error as exc:
        return [], [_csv_problem(f"Line {reader.line_num} is not valid CSV: {exc}.", reader.line_num)]
    if not rows:
        return [], [Problem(("input", "csv"), "The file names no one: one row per person after the header.",
                            "REQUIRED")]
    return rows, []


async def import_members(ctx: Context, organization_id: UUID | None, text: str, dry_run: bool) -> ImportResult:
    await require_change(ctx, IMPORT)
    if organization_id is None:
        raise NotFound(NOT_FOUND)
    actor = await require_change_in(ctx, IMPORT, organization_id)
    rows, problems = parse(text)
    if problems:
        return ImportResult(problems=problems)
    inviter = await ctx.loaders.accounts.account.load(actor)
    path = lambda line: ("input", "csv", str(line))  # noqa: E731
    out: list[ImportRow] = []
    seen: set[str] = set()
    for row in rows:
        early = row.problems or [p for p in (people.name_problem(path(row.line), row.name),) if p]
        email = people.normalize_email(row.email)
        if not early and email in seen:
            early = [_csv_problem(f"Line {row.line}: {email} is in the file more than once.", row.line)]
        seen.add(email or "")
        if early:
            out.append(ImportRow(row.line, row.email, row.name, row.role, problems=early))
            continue
        async with ctx.db.transaction() as conn:
            organization = await data.lock_organization(conn, organization_id)
            if organization is None:
                raise NotFound(NOT_FOUND)
            if dry_run:
                standings = await data.email_standings(conn, organization_id, [email] if email else [])
                problem = people.invitation_problem(path(row.line), email, row.role,
                                                    standings.get(email or ""), organization_id, set())
                out.append(ImportRow(row.line, row.email, row.name, row.role, problems=[problem] if problem else []))
                continue
            stored, created = await people.invite_in(conn, ctx, organization, inviter,
                                                     [(row.email, row.role, row.name)],
                                                     lambda _, line=row.line: path(line))
            for invitation in created:
                await people.report_sent(conn, ctx, invitation, resent=False)
        [result] = stored["results"]
        out.append(ImportRow(row.line, row.email, row.name, row.role,
                             invitation_id=UUID(result["invitationId"]) if result["invitationId"] else None,
                             problems=[Problem(tuple(p["field"]), p["message"], p["code"])
                                       for p in result["problems"]]))
    if not dry_run:
        after_write(ctx)
    return ImportResult(rows=out)


# --- lists of removals and role changes -------------------------------------------------------


@dataclass(frozen=True)
class ListOutcome:
    account_id: UUID | None
    done: bool
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class ListResult:
    outcomes: list[ListOutcome] = field(default_factory=list)  # one per entry, in order
    problems: list[Problem] = field(default_factory=list)  # about the list as a whole: nothing ran


def _at(index: int, problems: list[Problem], list_field: str) -> list[Problem]:
    """Each problem of one entry, under that entry's place in the list (a removal's problems
    are all about the member named, whichever field the single mutation puts them at)."""
    return [Problem(("input", list_field, str(index), *(p.field[1:] if list_field == "changes" else ())),
                    p.message, p.code) for p in problems]


async def _own_organization(ctx: Context, mutation: str) -> None:
    """Refuses before any entry runs: a MEMBER (FORBIDDEN), anonymous, staff and services."""
    await require_change(ctx, mutation)
    mine = await viewer_membership(ctx)
    if mine is None:
        raise Forbidden("You are not a member of an organization.")
    await require_change_in(ctx, mutation, mine.organization_id)


async def remove_members(ctx: Context, account_ids: list[UUID | None], revoke_seats: bool) -> ListResult:
    await _own_organization(ctx, "removeMembers")
    if not 1 <= len(account_ids) <= MAX_LIST:
        return ListResult(problems=[Problem(("input", "accountIds"), f"Name 1 to {MAX_LIST} members.", "INVALID")])
    out = []
    for index, account_id in enumerate(account_ids):
        try:
            result = await people.remove_member(ctx, account_id, revoke_seats=revoke_seats)
        except NotFound:
            out.append(ListOutcome(account_id, False, [Problem(("input", "accountIds", str(index)),
                                                               "No member of your organization has this ID.",
                                                               "NOT_FOUND")]))
            continue
        out.append(ListOutcome(account_id, not result.problems, _at(index, result.problems, "accountIds")))
    return ListResult(out)


async def change_member_roles(ctx: Context, changes: list[tuple[UUID | None, str]]) -> ListResult:
    await _own_organization(ctx, "changeMemberRoles")
    if not 1 <= len(changes) <= MAX_LIST:
        return ListResult(problems=[Problem(("input", "changes"), f"Give 1 to {MAX_LIST} changes.", "INVALID")])
    out = []
    for index, (account_id, role) in enumerate(changes):
        try:
            result = await people.change_member_role(ctx, account_id, role)
        except NotFound:
            out.append(ListOutcome(account_id, False, [Problem(("input", "changes", str(index), "accountId"),
                                                               "No member of your organization has this ID.",
                                                               "NOT_FOUND")]))
            continue
        out.append(ListOutcome(account_id, not result.problems, _at(index, result.problems, "changes")))
    return ListResult(out)
