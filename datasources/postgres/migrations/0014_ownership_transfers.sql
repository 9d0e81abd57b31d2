-- Ownership handed over (issue 19): the OWNER names an ADMIN, who confirms with the token mailed
-- to them; or staff hand it over at once, with a reason, when the owner has left. The swap of
-- roles happens in one transaction, and memberships_one_owner keeps it to one OWNER at a time.

CREATE TABLE ownership_transfers (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    from_account_id  uuid REFERENCES accounts (id) ON DELETE SET NULL,
    to_account_id    uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- SHA-256 of the token mailed to the new owner; the token itself is never stored.
    token_hash       bytea NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    accepted_at      timestamptz,
    canceled_at      timestamptz,
    CHECK (accepted_at IS NULL OR canceled_at IS NULL)
);

-- At most one transfer waits per organization: a new one replaces (cancels) the one before.
CREATE UNIQUE INDEX ownership_transfers_one_pending ON ownership_transfers (organization_id)
    WHERE accepted_at IS NULL AND canceled_at IS NULL;
