-- Products with their downloads and learning resources; subscriptions, licenses and seats.

CREATE TABLE products (
    id           uuid PRIMARY KEY,
    sku          text NOT NULL UNIQUE,
    name         text NOT NULL,
    family       text NOT NULL,
    description  text NOT NULL DEFAULT ''
);

CREATE TABLE downloads (
    id           uuid PRIMARY KEY,
    product_id   uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    version      text NOT NULL,
    platform     text NOT NULL CHECK (platform IN ('WINDOWS', 'MACOS', 'LINUX')),
    url          text NOT NULL,
    size_bytes   bigint NOT NULL CHECK (size_bytes > 0),
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    released_on  date NOT NULL
);
CREATE INDEX downloads_by_product ON downloads (product_id, released_on DESC);

CREATE TABLE learning_resources (
    id          uuid PRIMARY KEY,
    product_id  uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('VIDEO', 'SAMPLE_PROJECT', 'DOCS', 'KNOWLEDGE_BASE')),
    title       text NOT NULL,
    url         text NOT NULL,
    position    integer NOT NULL DEFAULT 0
);
CREATE INDEX learning_resources_by_product ON learning_resources (product_id, position);

CREATE TABLE subscriptions (
    id                    uuid PRIMARY KEY,
    organization_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    product_id            uuid NOT NULL REFERENCES products (id),
    plan_interval         text NOT NULL CHECK (plan_interval IN ('MONTH', 'YEAR', 'THREE_YEARS')),
    seats                 integer NOT NULL CHECK (seats > 0),
    status                text NOT NULL
                          CHECK (status IN ('ACTIVE', 'CANCELED', 'PAST_DUE', 'EXPIRED', 'TRIALING')),
    auto_renew            boolean NOT NULL,
    current_period_start  timestamptz NOT NULL,
    current_period_end    timestamptz NOT NULL CHECK (current_period_end > current_period_start),
    unit_price            bigint NOT NULL CHECK (unit_price >= 0),
    currency              char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_by_organization ON subscriptions (organization_id, current_period_end);

CREATE TABLE licenses (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    product_id       uuid NOT NULL REFERENCES products (id),
    subscription_id  uuid REFERENCES subscriptions (id) ON DELETE SET NULL,
    kind             text NOT NULL
                     CHECK (kind IN ('SUBSCRIPTION', 'PERPETUAL', 'TRIAL', 'BETA', 'EDUCATIONAL')),
    seat_model       text NOT NULL CHECK (seat_model IN ('NAMED', 'FLOATING')),
    quantity         integer NOT NULL CHECK (quantity > 0),
    expires_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'PERPETUAL') = (expires_at IS NULL))
);
CREATE INDEX licenses_by_organization ON licenses (organization_id, id);

CREATE TABLE allocations (
    license_id    uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
    account_id    uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    allocated_at  timestamptz NOT NULL DEFAULT now(),
    allocated_by  uuid REFERENCES accounts (id) ON DELETE SET NULL,
    PRIMARY KEY (license_id, account_id)
);
CREATE INDEX allocations_by_account ON allocations (account_id);
