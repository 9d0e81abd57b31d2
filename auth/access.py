"""Who reaches what: the one table of principal kinds × parts of the graph.

Every access-controlled field, type and staff mutation names its schema coordinate
("Organization.invoices", "License", "grantCredits") when it checks the viewer
(`resolvers.permissions`); the coordinate's row here decides, and so does the compiled SQL
of the fast path (its `Scope` is made from the same rows). The README's table is rendered
from `markdown()` and a test keeps it equal; another test tries every cell over HTTP.

The customer columns mean "in their own organization": a customer never reaches another
organization's objects (they are not found). Staff roles and service scopes reach every
organization, but only the rows they are given. Everyone reads their own account, the seats
they hold and their own credit access, whatever the table says about other people's.

Every mutation of the schema is in exactly one row. The customers' own mutations are for
accounts: the vendor's staff change a customer's organization only through the staff
mutations (with a reason), and a service token is no one's account, so both are refused
there (FORBIDDEN); an anonymous caller is told to sign in (UNAUTHENTICATED).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from auth.principals import SCOPES, STAFF_ROLES

ANONYMOUS = "anonymous"
MEMBER = "MEMBER"
MANAGER = "OWNER/ADMIN"
# The columns: the customer kinds, the staff roles, then one column per service scope (a token
# holding several scopes reaches what any of them reaches).
PRINCIPALS = (ANONYMOUS, MEMBER, MANAGER, *STAFF_ROLES, *SCOPES)
CUSTOMER_KINDS = frozenset({ANONYMOUS, MEMBER, MANAGER})
ACCOUNT_KINDS = frozenset({MEMBER, MANAGER, *STAFF_ROLES})  # whoever signs in with a password


@dataclass(frozen=True)
class Row:
    name: str
    what: str  # one line for the README
    allowed: frozenset[str]
    # "Type.field": FORBIDDEN at that field when refused; "Type": its objects wherever they are
    # reached (node(id:), a reference), null when refused as for an ID that does not exist;
    # "mutation": FORBIDDEN before anything is read.
    coordinates: tuple[str, ...]
    # Refused anonymous callers are told to sign in (UNAUTHENTICATED) rather than FORBIDDEN:
    # the row is for accounts, whoever signs in may be one it allows.
    sign_in: bool = False


def _row(name: str, what: str, allowed: Iterable[str], coordinates: Iterable[str], *, sign_in: bool = False) -> Row:
    return Row(name, what, frozenset(allowed), tuple(coordinates), sign_in)


def _changes(name: str, what: str, allowed: Iterable[str], mutations: Iterable[str]) -> Row:
    """A row of the customers' own mutations (see the module's docstring)."""
    return _row(name, what, allowed, mutations, sign_in=True)


ROWS: tuple[Row, ...] = (
    _row("staff", "The way in for the vendor's staff and services: find and open any organization (its id "
         "and name; the rows below decide the rest).",
         ("SUPPORT", "BILLING", "ADMIN_TOOLING", "accounts:read", "billing:read"),
         ("Query.staff", "Staff.organizations", "Staff.organization")),
    _row("people", "Other people's accounts and emails (also as `Member.account`, `AuditLogEntry.actor`, "
         "`LicenseAllocation.account`, ...), members, invitations and the audit log.",
         (MANAGER, "SUPPORT", "ADMIN_TOOLING", "accounts:read"),
         ("Staff.accounts", "Organization.members", "Organization.invitations", "Organization.auditLog",
          "Organization.pendingOwnershipTransfer", "Organization.corporateSignIn", "Account", "Member", "Invitation", "AuditLogEntry")),
    _row("entitlements", "Licenses and all their seats, subscriptions, the credit pool, and the staff reports on "
         "them.",
         (MANAGER, "SUPPORT", "BILLING", "ADMIN_TOOLING", "accounts:read"),
         ("Organization.licenses", "Organization.subscriptions", "Organization.creditPool", "License.allocations",
          "Staff.licensesExpiring", "Staff.seatUtilization", "Staff.creditUsage",
          "License", "LicenseAllocation", "Subscription", "CloudCredit", "CloudCreditUsage", "CloudCreditRequest")),
    _row("billing", "Invoices and their PDF links, the invoice archive link, cards, billing details and balances.",
         (MANAGER, "BILLING", "ADMIN_TOOLING", "billing:read"),
         ("Organization.invoices", "Organization.outstandingBalance", "Organization.paymentMethods",
          "Organization.billingInfo", "Organization.invoicesArchiveUrl", "Invoice.pdfUrl",
          "Staff.organizationsWithOutstandingBalance", "OrganizationBalance.outstandingBalance")),
    _row("SCIM tokens", "The SCIM tokens the organization's identity provider uses (names and dates, never the "
         "secrets).", (MANAGER, "SUPPORT", "ADMIN_TOOLING", "accounts:read"), ("Organization.scimTokens",)),
    _row("changeAccountEmail", "Change a customer's email.", ("SUPPORT", "ADMIN_TOOLING", "accounts:write"),
         ("changeAccountEmail",)),
    _row("staffTransferOwnership", "Make a member an organization's OWNER when its OWNER has left.",
         ("SUPPORT", "ADMIN_TOOLING", "accounts:write"), ("staffTransferOwnership",)),
    _row("email domains", "Confirm or reject an organization's claim on an email domain for corporate sign-in.",
         ("SUPPORT", "ADMIN_TOOLING", "accounts:write"), ("confirmEmailDomain", "rejectEmailDomain")),
    _row("staffResendInvitation", "Resend an invitation for an organization.",
         ("SUPPORT", "ADMIN_TOOLING", "accounts:write"), ("staffResendInvitation",)),
    _row("grantCredits", "Grant cloud credits.", ("BILLING", "ADMIN_TOOLING", "credits:write"), ("grantCredits",)),
    _row("extendLicense", "Extend a license's expiry.", ("BILLING", "ADMIN_TOOLING", "licenses:write"),
         ("extendLicense",)),
    _row("adjustLicenseQuantity", "Change a license's seat count.", ("BILLING", "ADMIN_TOOLING", "licenses:write"),
         ("adjustLicenseQuantity",)),
    _changes("people changes", "Invite people (one by one or from a CSV), resend and revoke invitations, remove "
             "members, change their roles (one by one or in lists).",
             (MANAGER,), ("inviteMembers", "importMembers", "resendInvitation", "revokeInvitation", "removeMember",
                          "removeMembers", "changeMemberRole", "changeMemberRoles")),
    _changes("ownership", "Hand the organization over to an ADMIN (the OWNER asks, the ADMIN confirms), or take "
             "the request back: only the OWNER asks and cancels.", (MANAGER,),
             ("transferOwnership", "cancelOwnershipTransfer", "acceptOwnership")),
    _changes("corporate sign-in", "Set up the organization's OpenID provider, the email domains it claims and "
             "whether passwords are refused for them: only the OWNER.", (MANAGER,), ("configureSignIn",)),
    _changes("SCIM token changes", "Create and revoke the organization's SCIM tokens: only the OWNER does (an ADMIN "
             "is refused with NOT_ALLOWED).", (MANAGER,), ("createScimToken", "revokeScimToken")),
    _changes("seat changes", "Allocate and revoke seats of the organization's licenses.", (MANAGER,),
             ("allocateLicense", "revokeLicense")),
    _changes("credit access", "Set members' cloud-credit access (disabled, unlimited, a quota), approve and "
             "decline their credit requests.", (MANAGER,),
             ("setCreditAccess", "approveCreditRequest", "declineCreditRequest")),
    _changes("credit alert", "Set the credit pool balance at or under which the OWNER and ADMINs are warned.",
             (MANAGER,), ("setCreditPoolAlert",)),
    _changes("credit requests", "Ask the organization's OWNER and ADMINs for more cloud credits.", (MEMBER, MANAGER),
             ("requestCredits",)),
    _changes("subscription changes", "Switch a subscription's auto-renew on or off, change its seats.", (MANAGER,),
             ("setSubscriptionAutoRenew", "changeSeatQuantity")),
    _changes("billing changes", "Pay invoices and the balance, add, remove and choose cards, change billing details.",
             (MANAGER,), ("payInvoice", "payOutstandingBalance", "addPaymentMethod", "setDefaultPaymentMethod",
                          "removePaymentMethod", "updateBillingInfo")),
    _changes("own account", "Change your own name, country, password and which notification mails you get, and "
             "sign out: every signed-in account (staff too, a customer in no organization too).", ACCOUNT_KINDS,
             ("updateProfile", "changePassword", "updateNotificationPreferences", "logout")),
    _row("organization events", "Follow an organization's live events (`organizationEvents`); each kind only for "
         "those whose rows above reach what it is about (people, entitlements, billing).",
         (MANAGER, "SUPPORT", "BILLING", "ADMIN_TOOLING", "accounts:read", "billing:read"),
         ("SubscriptionRoot.organizationEvents",), sign_in=True),
    _row("own events", "Follow your own live events (`viewerEvents`): seats, credit access, credit requests, sessions.",
         ACCOUNT_KINDS, ("SubscriptionRoot.viewerEvents",), sign_in=True),
    _row("signing in", "Sign in (with a password or a corporate sign-in's one-time code), trade a refresh token, "
         "accept an invitation: the credential is in the input, whoever sends it.", PRINCIPALS,
         ("login", "completeSignIn", "refreshToken", "acceptInvitation")),
)


def _index(rows: tuple[Row, ...]) -> dict[str, Row]:
    found: dict[str, Row] = {}
    for row in rows:
        unknown = row.allowed - set(PRINCIPALS)
        if unknown:
            raise ValueError(f"row {row.name!r} names unknown principals {sorted(unknown)}")
        for coordinate in row.coordinates:
            if coordinate in found:
                raise ValueError(f"{coordinate} is in rows {found[coordinate].name!r} and {row.name!r}")
            found[coordinate] = row
    return found


ROW_OF: dict[str, Row] = _index(ROWS)


def allows(kinds: Iterable[str], coordinate: str) -> bool:
    """Whether a principal of any of `kinds` reaches `coordinate` (KeyError for one not in the table)."""
    return not ROW_OF[coordinate].allowed.isdisjoint(kinds)


def refused_as(kinds: Iterable[str], coordinate: str) -> str:
    """The error a refused principal of `kinds` gets at a mutation: UNAUTHENTICATED for anonymous
    on a row for accounts, FORBIDDEN otherwise."""
    return "UNAUTHENTICATED" if ANONYMOUS in set(kinds) and ROW_OF[coordinate].sign_in else "FORBIDDEN"


def allowing(kinds: Iterable[str], coordinate: str) -> str | None:
    """The first of `kinds`, in the table's column order, that reaches `coordinate`: what a
    staff change records in the audit log as the role or scope it was made under."""
    allowed = ROW_OF[coordinate].allowed
    held = set(kinds)
    return next((k for k in PRINCIPALS if k in held and k in allowed), None)


def who(coordinate: str) -> str:
    """Who reaches `coordinate`, in words, for the schema's descriptions (so they follow the table)."""
    allowed = ROW_OF[coordinate].allowed
    if allowed >= ACCOUNT_KINDS:
        return "everyone" if allowed == set(PRINCIPALS) else "every signed-in account"
    parts = []
    if MANAGER in allowed or MEMBER in allowed:
        parts.append("the organization's " + " and ".join(k for k in (MEMBER, MANAGER) if k in allowed))
    if roles := [r for r in STAFF_ROLES if r in allowed]:
        parts.append(f"staff ({', '.join(roles)})")
    if scopes := [s for s in SCOPES if s in allowed]:
        parts.append(f"services with {' or '.join(f'`{s}`' for s in scopes)}")
    return (", ".join(parts[:-1]) + " and " + parts[-1]) if len(parts) > 1 else parts[0]


def _cell(row: Row, principal: str) -> str:
    if principal in row.allowed:
        return "✓"
    return "sign in" if refused_as({principal}, row.coordinates[0]) == "UNAUTHENTICATED" else "—"


def markdown() -> str:
    """The table as the README shows it: one line per row, ✓ where the principal reaches it."""
    header = "| | " + " | ".join(f"`{p}`" if ":" in p else p for p in PRINCIPALS) + " |"
    lines = [header, "|---" * (len(PRINCIPALS) + 1) + "|"]
    for row in ROWS:
        cells = " | ".join(_cell(row, p) for p in PRINCIPALS)
        lines.append(f"| **{row.name}** | {cells} |")
    lines += ["", "| row | what it holds | fields, types (their objects, wherever reached) and mutations |",
              "|---|---|---|"]
    for row in ROWS:
        lines.append(f"| **{row.name}** | {row.what} | {', '.join(f'`{c}`' for c in row.coordinates)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # `python -m auth.access`: the README's table
    print(markdown(), end="")
