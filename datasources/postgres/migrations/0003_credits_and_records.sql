-- Cloud credits, the audit log, idempotency records and the mail outbox.

CREATE TABLE credit_grants (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    amount           bigint NOT NULL CHECK (amount > 0),
    source           text NOT NULL,
    granted_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz
);
CREATE INDEX credit_grants_by_organization ON credit_grants (organization_id, granted_at);

CREATE TABLE credit_usage (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    account_id       uuid REFERENCES accounts (id) ON DELETE SET NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    description      text NOT NULL,
    used_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_usage_by_organization ON credit_usage (organization_id, used_at, id);
CREATE INDEX credit_usage_by_account ON credit_usage (account_id, used_at);

-- No row means the default access, UNLIMITED.
CREATE TABLE credit_access (
    account_id       uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    mode             text NOT NULL CHECK (mode IN ('DISABLED', 'UNLIMITED', 'QUOTA')),
    quota            bigint CHECK (quota >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((mode = 'QUOTA') = (quota IS NOT NULL))
);

CREATE TABLE credit_requests (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    account_id       uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    amount           bigint NOT NULL CHECK (amount > 0),
    note             text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz
);

CREATE TABLE audit_log (
    id                bigserial PRIMARY KEY,
    organization_id   uuid REFERENCES organizations (id) ON DELETE CASCADE,
    actor_account_id  uuid REFERENCES accounts (id) ON DELETE SET NULL,
    actor_service     text,
    action            text NOT NULL,
    target            text,
    details           jsonb NOT NULL DEFAULT '{}',
    reason            text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_by_organization ON audit_log (organization_id, id);

CREATE TABLE idempotency_records (
    scope          text NOT NULL,
    key            text NOT NULL,
    request_hash   bytea NOT NULL,
    response       jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

CREATE TABLE mail_outbox (
    id          bigserial PRIMARY KEY,
    to_address  text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    attempts    integer NOT NULL DEFAULT 0
);
CREATE INDEX mail_outbox_unsent ON mail_outbox (id) WHERE sent_at IS NULL;
