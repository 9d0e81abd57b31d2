-- The payment provider's answers, kept so billing screens read PostgreSQL instead of waiting on
-- the provider (loaders/billing.py). One row per customer and list: `body` is the provider's
-- last answer as JSON (the JSON null for a customer the provider no longer knows), or SQL NULL
-- when dropped and not yet fetched again.
--
-- `generation` is bumped each time the row is dropped (a verified webhook about the customer, a
-- write of the gateway's own): a fetch writes its answer back only while the generation is still
-- the one it read first, so an answer that left the provider before the change can never
-- overwrite the drop that came after it.
CREATE TABLE billing_mirror (
    customer_id  text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('customer', 'invoices', 'payment_methods')),
    generation   bigint NOT NULL DEFAULT 0,
    body         jsonb,
    fetched_at   timestamptz,
    PRIMARY KEY (customer_id, kind)
);
-- The reconcile pass takes the rows fetched longest ago (and those dropped) first.
CREATE INDEX billing_mirror_by_age ON billing_mirror (fetched_at NULLS FIRST);
