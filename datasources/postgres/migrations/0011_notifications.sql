-- Notifications (issue 17): what each account chose to receive by mail, the credit pool's alert
-- threshold, and the scheduler's memory of the time-based events it reported.

-- Only choices that differ from the role's default are stored (resolvers/notifications.py holds
-- the defaults), so a default changed later reaches everyone who never chose otherwise.
CREATE TABLE notification_preferences (
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    mail        boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, kind)
);

-- The balance at or under which CREDIT_POOL_LOW is reported (NULL: no alert). It is reported once
-- per crossing: `credit_low_warned` is set when it is, and cleared (with `credit_low_crossing`
-- counted up, which names the next report's dedupe key) once the balance is back above the
-- threshold or the threshold changes.
ALTER TABLE organizations
    ADD COLUMN credit_low_threshold bigint CHECK (credit_low_threshold >= 0),
    ADD COLUMN credit_low_warned boolean NOT NULL DEFAULT false,
    ADD COLUMN credit_low_crossing integer NOT NULL DEFAULT 0;

-- What the scheduler reported, by the event's dedupe key, for as long as the same key could come
-- up again (`relevant_until`: the license's expiry, or the end of the window in which an expiry
-- is still reported). The event log alone cannot remember it: it keeps events for
-- EVENT_RETENTION_DAYS (7), while a 30-day warning stays due until the 7-day one.
CREATE TABLE scheduler_reports (
    dedupe_key      text PRIMARY KEY,
    relevant_until  timestamptz NOT NULL
);
CREATE INDEX scheduler_reports_by_end ON scheduler_reports (relevant_until);

-- The scheduler's scan of pending invitations (licenses by expiry have theirs, 0007).
CREATE INDEX invitations_pending_by_expiry ON invitations (expires_at)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
