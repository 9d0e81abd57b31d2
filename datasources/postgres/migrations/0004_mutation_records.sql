-- What mutations need: the outcome of each audited action, lookups of the audit log by action
-- and actor, and a claim on an idempotency key until its first result is stored.

ALTER TABLE audit_log ADD COLUMN outcome text NOT NULL DEFAULT 'SUCCESS'
    CHECK (outcome IN ('SUCCESS', 'PARTIAL', 'REFUSED'));
CREATE INDEX audit_log_by_action ON audit_log (organization_id, action, id);
CREATE INDEX audit_log_by_actor ON audit_log (organization_id, actor_account_id, id);

-- A key is claimed (response NULL) inside the transaction that does the work; a concurrent
-- request with the same key waits on the row and then replays the stored response.
ALTER TABLE idempotency_records ADD COLUMN completed_at timestamptz;
CREATE INDEX idempotency_records_created ON idempotency_records (created_at);
