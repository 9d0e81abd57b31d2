-- Accounts, organizations, memberships, sessions and invitations.

CREATE TYPE organization_role AS ENUM ('OWNER', 'ADMIN', 'MEMBER');

CREATE TABLE organizations (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    payment_customer_id  text UNIQUE,
    created_at           timestamptz NOT NULL DEFAULT now()
);

-- Customer numbers are human-readable and never reused.
CREATE SEQUENCE customer_number_seq START 100001;

CREATE TABLE accounts (
    id               uuid PRIMARY KEY,
    customer_number  text NOT NULL UNIQUE
                     DEFAULT 'C-' || nextval('customer_number_seq')::text,
    email            text NOT NULL CHECK (email = lower(email) AND position('@' IN email) > 1),
    name             text NOT NULL CHECK (length(name) <= 200),
    country          char(2) CHECK (country ~ '^[A-Z]{2}$'),
    password_hash    text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_email_key ON accounts (email);

-- The primary key on account_id is the rule "an account belongs to at most one organization".
CREATE TABLE memberships (
    account_id       uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role             organization_role NOT NULL,
    joined_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX memberships_one_owner ON memberships (organization_id) WHERE role = 'OWNER';
CREATE INDEX memberships_by_organization ON memberships (organization_id, account_id);

-- A bearer token names its session; revoking the row ends the token before it expires.
CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_by_account ON sessions (account_id);

CREATE TABLE invitations (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email            text NOT NULL CHECK (email = lower(email)),
    role             organization_role NOT NULL CHECK (role <> 'OWNER'),
    token_hash       bytea NOT NULL UNIQUE,
    invited_by       uuid REFERENCES accounts (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    accepted_at      timestamptz,
    revoked_at       timestamptz
);
CREATE INDEX invitations_by_organization ON invitations (organization_id, created_at);
