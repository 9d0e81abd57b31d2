-- Events the payment provider delivered to POST /webhooks/payments, each kept once.
-- The provider delivers an event again (same id) until it gets a 2xx, sometimes twice at
-- once: the first insert of an id wins, and only that transaction applies the event.
CREATE TABLE provider_events (
    id               text PRIMARY KEY,  -- the provider's event id (evt_...)
    type             text NOT NULL,
    object_id        text,
    customer_id      text,
    organization_id  uuid REFERENCES organizations (id) ON DELETE SET NULL,
    outcome          text NOT NULL CHECK (outcome IN ('APPLIED', 'IGNORED')),
    created_at       timestamptz NOT NULL,  -- when the provider created the event
    received_at      timestamptz NOT NULL DEFAULT now(),
    payload          jsonb NOT NULL
);
CREATE INDEX provider_events_by_organization ON provider_events (organization_id, received_at)
    WHERE organization_id IS NOT NULL;

-- Payment attempts whose outcome is unknown carry `pending` (their invoice ids) in their
-- idempotency record; an event about an invoice finds them through this small index.
CREATE INDEX idempotency_records_pending ON idempotency_records USING gin ((response -> 'pending'))
    WHERE response ? 'pending';
