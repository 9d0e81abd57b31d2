-- The event log: what changed, written in the transaction of the change (so a rolled-back
-- change leaves no event and a committed one always has its row), read by subscribers from a
-- cursor (the id) and announced to every gateway process by NOTIFY on commit.
--
-- Ids are handed out in commit order: a writer takes the transaction-scoped advisory lock
-- EVENT_LOG_LOCK (datasources/postgres/events.py) before inserting, and holds it until its
-- commit, so no event with a smaller id can become visible after one with a larger id. A
-- reader that has seen id N therefore never misses an event by asking for id > N.
CREATE TABLE event_log (
    id bigserial PRIMARY KEY,
    type text NOT NULL,
    -- Whose managers see it (organizationEvents); NULL for an event of no organization.
    organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
    -- Whose own event it is (viewerEvents): the seat holder, the requester, the signed-out account.
    account_id uuid REFERENCES accounts (id) ON DELETE CASCADE,
    actor_account_id uuid REFERENCES accounts (id) ON DELETE SET NULL,
    -- The ids of the changed objects and the change's figures (old and new role, quantity, days left, reason).
    data jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL DEFAULT now(),
    -- Set by the scheduler for time-based events: the same expiry is never reported twice.
    dedupe_key text UNIQUE
);
CREATE INDEX event_log_by_organization ON event_log (organization_id, id) WHERE organization_id IS NOT NULL;
CREATE INDEX event_log_by_account ON event_log (account_id, id) WHERE account_id IS NOT NULL;
CREATE INDEX event_log_by_time ON event_log (occurred_at);

-- One notification per committed statement that wrote events; the payload is empty because a
-- listener reads every row past its high-water mark anyway (NOTIFY folds equal payloads of one
-- transaction into one).
CREATE FUNCTION event_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('account_gateway_events', '');
    RETURN NULL;
END $$;
CREATE TRIGGER event_log_notify AFTER INSERT ON event_log FOR EACH STATEMENT EXECUTE FUNCTION event_log_notify();
