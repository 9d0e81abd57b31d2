-- SCIM 2.0 provisioning (RFC 7643/7644): an organization's identity provider creates, updates
-- and deactivates its people through /scim/v2/, with bearer tokens the OWNER makes.

-- Only the SHA-256 of a token is kept: the token itself is shown once, when it is created.
CREATE TABLE scim_tokens (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    token_hash       bytea NOT NULL UNIQUE,
    created_by       uuid REFERENCES accounts (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz,
    revoked_at       timestamptz
);
CREATE INDEX scim_tokens_by_organization ON scim_tokens (organization_id, created_at, id);

-- One row per person the identity provider provisioned in the organization. `email` is the
-- link to the person (their account, or the invitation while they have joined with none);
-- `attributes` keeps what the provider sent of the User resource (name, displayName, emails).
-- `active` is the provider's wish: false keeps the resource while the person is out.
CREATE TABLE scim_users (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_name        text NOT NULL CHECK (char_length(user_name) BETWEEN 1 AND 320),
    external_id      text CHECK (char_length(external_id) <= 1000),
    email            text NOT NULL CHECK (email = lower(email)),
    invitation_id    uuid REFERENCES invitations (id) ON DELETE SET NULL,
    active           boolean NOT NULL DEFAULT true,
    attributes       jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer NOT NULL DEFAULT 1
);
-- userName is unique per organization, compared without case (RFC 7643 §4.1.1: caseExact false).
CREATE UNIQUE INDEX scim_users_user_name ON scim_users (organization_id, lower(user_name));
CREATE UNIQUE INDEX scim_users_email ON scim_users (organization_id, email);
-- The stable order of list pages.
CREATE INDEX scim_users_by_organization ON scim_users (organization_id, created_at, id);
