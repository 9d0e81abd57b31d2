-- Seats and billing as one picture (issue 18): each running subscription exists at the payment
-- provider (a subscription whose quantity is the seat count, on a per-seat price), and the rows
-- here follow it. The provider is the source for seats, auto-renew (its `cancel_at_period_end`),
-- status and period dates; these columns say which provider object a row follows and what the
-- provider last confirmed.

ALTER TABLE subscriptions
    -- The provider's subscription (sub_...); NULL for one that ended before the provider held
    -- subscriptions, or one not yet created there (the startup sync and the first change create it).
    ADD COLUMN provider_subscription_id text UNIQUE,
    -- The provider's per-seat price (plan) the subscription is on.
    ADD COLUMN provider_price_id text,
    -- A decrease waiting for the end of the period (the provider's schedule holds it): the seats
    -- from `scheduled_seats_at` on. NULL when nothing is scheduled.
    ADD COLUMN scheduled_seats integer CHECK (scheduled_seats > 0),
    ADD COLUMN scheduled_seats_at timestamptz,
    -- When a renewal payment failed and the subscription became PAST_DUE; NULL otherwise.
    ADD COLUMN past_due_since timestamptz,
    -- The `created` time of the newest provider event applied to this row: an older event that
    -- arrives late (the provider delivers out of order) changes nothing.
    ADD COLUMN provider_updated_at timestamptz,
    ADD CHECK ((scheduled_seats IS NULL) = (scheduled_seats_at IS NULL));

-- A failed renewal payment: the licenses of the subscription keep working until `grace_until`
-- (the GRACE status), are SUSPENDED after it, and come back when an invoice is paid (NULL again).
ALTER TABLE licenses ADD COLUMN grace_until timestamptz;
