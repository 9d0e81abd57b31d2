-- Refresh tokens: long-lived, single-use credentials that mobile and web clients trade for a
-- new short-lived bearer token. The chain (family) of a sign-in is its session: every token
-- rotated from one `login` belongs to the session that login opened, so revoking the session
-- (logout, the account's sessions ended by support) ends the chain too.
CREATE TABLE refresh_tokens (
    id           uuid PRIMARY KEY,
    session_id   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- sha256 of the token: it is 32 random bytes, so a plain hash is enough, and a database
    -- leak hands out nothing usable.
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    -- The token this one was rotated from; null for the one `login` issued.
    parent_id    uuid REFERENCES refresh_tokens (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    -- Set when the token is traded in; presenting it again is reuse and ends the chain.
    used_at      timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
