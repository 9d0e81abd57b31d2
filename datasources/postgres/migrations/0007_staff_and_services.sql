-- The vendor's own principals: service tokens for machine clients and staff roles for its
-- people, apart from organization roles; and the scope or role each audited action used.

-- Only the SHA-256 of a token is kept: the token itself is shown once, when it is created.
CREATE TABLE service_tokens (
    id            uuid PRIMARY KEY,
    name          text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    scopes        text[] NOT NULL CHECK (cardinality(scopes) > 0),
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
-- A name names one live token, so `service-token revoke NAME` is never ambiguous.
CREATE UNIQUE INDEX service_tokens_live_name ON service_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE staff_roles (
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('SUPPORT', 'BILLING', 'ADMIN_TOOLING')),
    granted_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
-- At most one live role per account; revoked grants stay as history.
CREATE UNIQUE INDEX staff_roles_live ON staff_roles (account_id) WHERE revoked_at IS NULL;

-- The staff role or service scope under which the vendor acted (NULL for customers' own actions).
ALTER TABLE audit_log ADD COLUMN scope text;

-- The expiring-licenses report walks licenses by expiry.
CREATE INDEX licenses_by_expiry ON licenses (expires_at, id) WHERE expires_at IS NOT NULL;
