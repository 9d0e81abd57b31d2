-- Corporate sign-in (issue 19): an organization's OpenID Connect provider, the email domains it
-- claims (confirmed by staff), sign-ins under way, the one-time codes that finish them, and which
-- provider identity is which account.

CREATE TABLE sign_in_configs (
    organization_id  uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    issuer           text NOT NULL,
    client_id        text NOT NULL,
    -- Sent to the provider's token endpoint (client_secret_basic); never shown again through the API.
    client_secret    text NOT NULL,
    enforce          boolean NOT NULL DEFAULT false,
    updated_by       uuid REFERENCES accounts (id) ON DELETE SET NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE email_domains (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    domain           text NOT NULL CHECK (domain = lower(domain)),
    status           text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'CONFIRMED', 'REJECTED')),
    requested_at     timestamptz NOT NULL DEFAULT now(),
    decided_by       uuid REFERENCES accounts (id) ON DELETE SET NULL,
    decided_at       timestamptz,
    reason           text
);
-- Several organizations may ask for a domain; staff confirm it for one only.
CREATE UNIQUE INDEX email_domains_one_claim ON email_domains (organization_id, domain);
CREATE UNIQUE INDEX email_domains_one_owner ON email_domains (domain) WHERE status = 'CONFIRMED';

-- A sign-in started at /sso/start, finished (once) at /sso/callback. `state` is in the URL the
-- browser carries; only its hash is kept, with the nonce and the PKCE verifier it must match.
CREATE TABLE sign_in_attempts (
    state_hash       bytea PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    nonce            text NOT NULL,
    code_verifier    text NOT NULL,
    email            text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz
);

-- What /sso/callback hands the portal: traded once by `completeSignIn` for the usual token pair.
CREATE TABLE sign_in_codes (
    code_hash        bytea PRIMARY KEY,
    account_id       uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz
);

-- The provider's subject for an account: an email may change at the provider, `sub` does not.
CREATE TABLE external_identities (
    issuer           text NOT NULL,
    subject          text NOT NULL,
    account_id       uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_account ON external_identities (account_id);
